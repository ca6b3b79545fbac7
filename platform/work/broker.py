"""The platform's side of Celery: queue work by task name and wait for replies, without the task code.

The API, the CLI and the records submit work here; the workers (:mod:`gradwalk.workers.app`)
build their app from the same :func:`celery_config`, so both ends agree on broker, queues and
routing. Nothing here imports a task module: the workers depend on the platform, never the reverse.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult
from kombu import Queue
from kombu.exceptions import OperationalError

from gradwalk.settings import Settings, get_settings

log = logging.getLogger(__name__)

GPU_QUEUE = "gpu"
CPU_QUEUE = "cpu"
QUEUES = (GPU_QUEUE, CPU_QUEUE)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings derived from gradwalk's settings (one place for both ends)."""
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
            "gradwalk.evaluate.*": {"queue": GPU_QUEUE},
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
        # a busy machine (docs/measurements.md, "Workers"), which a process's init may do.
        "worker_proc_alive_timeout": 120.0,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
    }


_PRODUCERS: dict[str, Celery] = {}


def producer(settings: Settings | None = None) -> Celery:
    """A Celery app that only sends and watches tasks, for ``settings``' broker (by default the
    process's settings); one per broker and process, holding no task code."""
    settings = settings or get_settings()
    app = _PRODUCERS.get(settings.redis_url)
    if app is None:
        app = _PRODUCERS[settings.redis_url] = Celery("gradwalk-producer", set_as_current=False)
        app.conf.update(celery_config(settings))
    return app


def send(task: str, args: list[Any], queue: str, *, task_id: str | None = None) -> AsyncResult:
    """Queue the task named ``task`` with JSON ``args`` on ``queue``."""
    return producer().send_task(task, args=args, queue=queue, task_id=task_id)


def result_within(result: AsyncResult, timeout_s: float) -> Any:
    """A task's return value, waited for at most ``timeout_s`` (else Celery's TimeoutError).

    A result that timed out is forgotten: Celery would keep it pending until the process exits and
    then try to unsubscribe from a Redis that may be gone, printing a traceback."""
    try:
        return result.get(timeout=timeout_s)
    except CeleryTimeout:
        result.forget()
        raise


def revoke(task_id: str) -> None:
    """Tell the workers to drop a task unstarted. Only a shortcut: the record says cancelled, and
    a worker reads it before it starts and at every progress report, so a broker that cannot be
    reached (Redis restarting) does not undo the cancel."""
    try:
        producer().control.revoke(task_id)
    except (OperationalError, OSError) as e:
        log.warning("%s is cancelled; telling the workers failed (%s), they see it in its record", task_id, e)
