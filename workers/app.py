"""The Celery application: Redis broker and result backend, queues ``gpu`` and ``cpu``.

Kept small on purpose: it creates the app, configures it from settings when first used, and
names the task modules. Task modules stay thin (STYLE.md): take ids, call one pure function,
write the result, return a small JSON-able dict.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from celery import Celery
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
