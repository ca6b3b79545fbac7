"""Tasks whose worker died whole go back on their queue; tasks whose Neo4j went away wait for it.

``task_acks_late`` + ``task_reject_on_worker_lost`` cover a pool process killed under a live
worker: the worker sees its child die and requeues the task at once. A worker killed whole
(SIGKILL, the out-of-memory killer, a lost host) can tell no one: with Redis as the broker its
unacknowledged message stays in kombu's ``unacked`` hash and would only come back after the
visibility timeout, which must outlast the longest task (hours).

So every worker runs a watcher thread. Each ``orphan_check_s`` it asks all live workers which
tasks they hold (running, reserved, or waiting for a retry's ETA) and requeues an unacknowledged
task message that is older than ``orphan_grace_s``, that no live worker holds, and that was
found unheld by the previous check too (a reply that came late never costs a second run). A
round whose own worker did not answer is skipped. The requeue moves the message as kombu's own
restore does, in one Redis transaction, so two watchers never requeue one message twice. Every task of gradwalk is
idempotent by key (shards, graph blocks, a job's one version), so even a wrongly requeued task
would cost time, not data.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from gradwalk import errors
from gradwalk.platform.work.broker import celery_config
from gradwalk.settings import get_settings

log = logging.getLogger(__name__)

UNACKED = "unacked"  # kombu's Redis transport: delivery tag -> [message, exchange, routing key]
UNACKED_INDEX = "unacked_index"  # delivery tag -> time of delivery
REPLY_TIMEOUT_S = 2.0


def held_task_ids(app: Any, *, timeout_s: float = REPLY_TIMEOUT_S) -> tuple[set[str], set[str]]:
    """(ids of the tasks that live workers hold, names of the workers that answered)."""
    inspect = app.control.inspect(timeout=timeout_s)
    held: set[str] = set()
    answered: set[str] = set()
    for reply in (inspect.active(), inspect.reserved()):
        for worker, requests in (reply or {}).items():
            answered.add(worker)
            held.update(r.get("id") for r in requests or [])
    for worker, entries in (inspect.scheduled() or {}).items():
        answered.add(worker)
        held.update((e.get("request") or {}).get("id") for e in entries or [])
    held.discard(None)
    return held, answered


def unacked_tasks(client: Any) -> dict[str, tuple[str, float]]:
    """Unacknowledged task messages: delivery tag -> (task id, seconds since delivery)."""
    now = time.time()
    delivered = {tag.decode() if isinstance(tag, bytes) else tag: score
                 for tag, score in client.zrange(UNACKED_INDEX, 0, -1, withscores=True)}
    out: dict[str, tuple[str, float]] = {}
    for tag, raw in client.hgetall(UNACKED).items():
        tag = tag.decode() if isinstance(tag, bytes) else tag
        try:
            message = json.loads(raw)[0]
            task_id = message["headers"]["id"]
        except (ValueError, KeyError, IndexError, TypeError):
            continue  # not a Celery task message
        out[tag] = (task_id, now - delivered.get(tag, now))
    return out


class OrphanWatcher:
    """Requeues orphaned task messages; one per worker process (see the module's docstring)."""

    def __init__(self, app: Any, hostname: str, *, check_s: float, grace_s: float) -> None:
        self.app, self.hostname = app, hostname
        self.check_s, self.grace_s = check_s, grace_s
        self._suspects: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gradwalk-orphan-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.check_s):
            try:
                self.check()
            except Exception:  # a broker hiccup: try again next round
                log.warning("checking for orphaned tasks failed", exc_info=True)

    def check(self) -> list[str]:
        """One round; returns the ids of the tasks it requeued."""
        with self.app.connection_for_write() as connection:
            client = connection.default_channel.client
            candidates = {tag: (task, age) for tag, (task, age) in unacked_tasks(client).items()
                          if age >= self.grace_s}
            if not candidates:
                self._suspects.clear()
                return []
            held, answered = held_task_ids(self.app)
            if self.hostname not in answered:
                return []  # the broadcast itself is unhealthy: decide nothing
            unheld = {tag for tag, (task, _) in candidates.items() if task not in held}
            orphans, self._suspects = unheld & self._suspects, unheld - (unheld & self._suspects)
            requeued = []
            for tag in sorted(orphans):
                task, age = candidates[tag]
                if requeue(connection.default_channel, tag):
                    log.warning("requeued task %s: delivered %.0fs ago to a worker that is gone", task, age)
                    requeued.append(task)
            return requeued


def requeue(channel: Any, tag: str) -> bool:
    """Move one unacknowledged message back to the head of its queue, as kombu's own restore does,
    in one Redis transaction; False when another watcher (or an ack) got there first."""
    restored: list[bool] = []

    def move(pipe: Any) -> None:
        raw = pipe.hget(UNACKED, tag)
        pipe.multi()
        pipe.zrem(UNACKED_INDEX, tag)
        pipe.hdel(UNACKED, tag)
        if raw:
            message, exchange, routing_key = json.loads(raw)
            channel._do_restore_message(message, exchange, routing_key, pipe, False)
        restored.append(bool(raw))

    channel.client.transaction(move, UNACKED)
    return restored[-1]


# Neo4j unreachable (restarting, failing over) for longer than the driver's own retries
# (neo4j_max_retry_s): a task waits until Neo4j answers (up to NEO4J_WAIT_S), then runs again from
# the start, at most NEO4J_RETRIES times. Every task is idempotent by key, so a rerun is harmless.
NEO4J_WAIT_S = 600.0
NEO4J_RETRIES = 3


def retry_when_neo4j_is_back(task: Any, error: errors.ServiceUnavailable, store: Any) -> None:
    """Retry ``task`` at once (raising Celery's Retry) when Neo4j answers again within
    NEO4J_WAIT_S and retries are left; otherwise return, and the caller records the failure."""
    if task.request.retries < task.max_retries and wait_for_neo4j(store, NEO4J_WAIT_S):
        raise task.retry(exc=error, countdown=0)


def wait_for_neo4j(store: Any, timeout_s: float, *, poll_s: float = 1.0) -> bool:
    """Wait until Neo4j answers again (True) or ``timeout_s`` has passed (False). A task that lost
    Neo4j (a restart, a failover) waits here and is then retried at once, instead of sleeping
    through a backoff schedule long after Neo4j is back."""
    try:
        store.wait_reachable(timeout_s, poll_s=poll_s)
    except errors.ServiceUnavailable:
        return False
    return True


_watcher: OrphanWatcher | None = None


@worker_ready.connect
def _start_watcher(sender: Any = None, **_: Any) -> None:
    global _watcher
    settings = get_settings()
    if settings.orphan_check_s <= 0 or sender is None:
        return
    # An app of its own: the worker's app has connections bound to the worker's event loop, which
    # another thread must not touch.
    app = Celery("gradwalk-orphan-watcher", set_as_current=False)
    app.conf.update(celery_config(settings))
    _watcher = OrphanWatcher(app, sender.hostname, check_s=settings.orphan_check_s,
                             grace_s=settings.orphan_grace_s)
    _watcher.start()


@worker_shutdown.connect
def _stop_watcher(**_: Any) -> None:
    if _watcher is not None:
        _watcher.stop()
