"""The workers' Celery application: the task modules, configured like the platform's producer.

Kept small on purpose: it creates the app, configures it from settings when first used (with
:func:`gradwalk.platform.work.broker.celery_config`, the one place both ends read), and names the
task modules. Task modules stay thin (docs/architecture.md): take ids, call one pure function,
write the result, return a small JSON-able dict.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterator, Mapping
from typing import Any

from celery import Celery
from celery.signals import worker_init

from gradwalk.platform.work.broker import GPU_QUEUE, celery_config
from gradwalk.settings import get_settings

TASK_MODULES = [
    "gradwalk.workers.tasks.system",
    "gradwalk.workers.tasks.features",
    "gradwalk.workers.tasks.graph",
    "gradwalk.workers.tasks.select",
    "gradwalk.workers.tasks.evaluate",
]


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
