"""Health tasks: a worker proves it is consuming its queue and says what it computes on."""

from __future__ import annotations

import os
import socket

from gradwalk.device import resolve_device
from gradwalk.platform.work.task_names import SYSTEM_PING
from gradwalk.workers.app import app


@app.task(name=SYSTEM_PING.name)
def ping() -> dict[str, object]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "worker_pid": os.getppid(),  # the prefork pool's parent: the worker process itself
        "device": resolve_device(),
    }
