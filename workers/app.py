"""The Celery application: Redis broker and result backend, queues ``gpu`` and ``cpu``.

Kept small on purpose: it creates the app, configures it from settings when first used, and
names the task modules. Task modules stay thin (STYLE.md): take ids, call one pure function,
write the result, return a small JSON-able dict.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterator, Mapping
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult
from celery.signals import worker_init
from kombu import Queue

from gradwalk.settings import Settings, get_settings

GPU_QUEUE = "gpu"
CPU_QUEUE = "cpu"
QUEUES = (GPU_QUEUE, CPU_QUEUE)

TASK_MODULES = [
    "gradwalk.workers.tasks.system",
    "gradwalk.workers.tasks.features",
    "gradwalk.workers.tasks.graph",
    "gradwalk.workers.tasks.select",
]


def result_within(result: AsyncResult, timeout_s: float) -> Any:
    """A task's return value, waited for at most ``timeout_s`` (else Celery's TimeoutError).

    A result that timed out is forgotten: Celery would keep it pending until the process exits and
    then try to unsubscribe from a Redis that may be gone, printing a traceback."""
    try:
        return result.get(timeout=timeout_s)
    except CeleryTimeout:
        result.forget()
        raise


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings derived from gradwalk's settings (one place for both)."""
    return {
        "broker_url": settings.redis_url,
        "result_backend": settings.redis_url,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_queues": [Queue(q, routing_key=q) for q in QUEUES],
        "task_default_queue": CPU_QUEUE,
        "task_routes": {
            "gradwalk.features.*": {"queue": GPU_QUEUE},
            "gradwalk.graph.*": {"queue": GPU_QUEUE},
            "gradwalk.select.*": {"queue": CPU_QUEUE},
            "gradwalk.publish.*": {"queue": CPU_QUEUE},
        },
        # A task is acknowledged only when it finished, so a killed worker's task is redelivered.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Redis redelivers an unacknowledged task after the visibility timeout: keep it above the
        # longest task's time limit or a long task would run twice.
        "broker_transport_options": {"visibility_timeout": settings.task_time_limit_s + 3600},
        "result_backend_transport_options": {"visibility_timeout": settings.task_time_limit_s + 3600},
        "task_time_limit": settings.task_time_limit_s,
        "task_soft_time_limit": max(60, settings.task_time_limit_s - 60),
        "result_expires": 7 * 24 * 3600,
        "task_track_started": True,
        "worker_max_tasks_per_child": settings.worker_max_tasks_per_child,
        # A pool process that replaces a dead or recycled one must say it is up within this time or
        # is killed and replaced again, forever. Celery's 4 s is less than importing torch takes on
        # a busy machine (3-16 s measured on two cores), which a process's init may do.
        "worker_proc_alive_timeout": 120.0,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
    }


class _SettingsConfig(Mapping):
    """Celery's configuration, computed from gradwalk's settings when Celery first reads it."""

    @functools.cached_property
    def _values(self) -> dict[str, Any]:
        return celery_config(get_settings())

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


app = Celery("gradwalk", include=TASK_MODULES)
app.config_from_object(_SettingsConfig())


@worker_init.connect
def _import_torch_before_forking(sender: Any = None, **_: Any) -> None:
    """A gpu worker imports torch in its main process, before it forks its pool: every pool
    process (at start, after a crash, after worker_max_tasks_per_child) then has it already instead
    of importing it anew, 3-16 s on a busy machine. Importing torch starts no thread and does not
    touch CUDA, so forking after it is safe."""
    consumed = getattr(getattr(getattr(sender, "app", None), "amqp", None), "queues", None)
    if consumed is not None and GPU_QUEUE in (consumed.consume_from or {}) and importlib.util.find_spec("torch"):
        import torch  # noqa: F401

# Connects the watcher that requeues the tasks of workers that died whole (worker_ready signal).
from gradwalk.workers import recovery  # noqa: F401
