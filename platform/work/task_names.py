"""Every Celery task by name, with its queue and positional arguments: the one table the platform
sends by and the workers' decorators register under, so no task name is spelled twice.

A producer sends ``FEATURES_RUN.send(run_id)``; a worker registers ``@app.task(name=FEATURES_RUN.name)``
with the parameters ``args`` names (tests/workers/test_app.py checks that they agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery.result import AsyncResult

from gradwalk.platform.work import broker


@dataclass(frozen=True)
class Task:
    name: str
    queue: str | None  # None: the sender names the queue (a health check asks each queue in turn)
    args: tuple[str, ...]  # the task function's positional parameters, in order

    def send(self, *args: Any, task_id: str | None = None) -> AsyncResult:
        """Queue this task with JSON ``args`` (as many as it takes) on its queue."""
        if len(args) != len(self.args) or self.queue is None:
            raise TypeError(f"{self.name} takes ({', '.join(self.args)}) on a queue of its own, got {args!r}")
        return broker.send(self.name, list(args), self.queue, task_id=task_id)


FEATURES_RUN = Task("gradwalk.features.run", broker.GPU_QUEUE, ("run_id",))
FEATURES_EXTEND = Task("gradwalk.features.extend", broker.GPU_QUEUE, ("run_id",))
FEATURES_SHARD = Task("gradwalk.features.shard", broker.GPU_QUEUE, ("run_id", "part", "shard", "ids"))
FEATURES_FINISH = Task("gradwalk.features.finish", broker.GPU_QUEUE, ("run_id",))
GRAPH_BUILD = Task("gradwalk.graph.build", broker.GPU_QUEUE, ("run_id", "k", "tau", "block_rows", "rebuild"))
GRAPH_EXTEND = Task("gradwalk.graph.extend", broker.GPU_QUEUE, ("graph_id",))
GRAPH_BLOCK = Task("gradwalk.graph.block", broker.GPU_QUEUE, ("graph_id", "index", "build_id"))
GRAPH_FINISH = Task("gradwalk.graph.finish", broker.GPU_QUEUE, ("graph_id", "build_id"))
SELECT_RUN = Task("gradwalk.select.run", broker.CPU_QUEUE, ("job_id",))
EVALUATE_RUN = Task("gradwalk.evaluate.run", broker.GPU_QUEUE, ("evaluation_id",))
SYSTEM_PING = Task("gradwalk.system.ping", None, ())

TASKS = (FEATURES_RUN, FEATURES_EXTEND, FEATURES_SHARD, FEATURES_FINISH, GRAPH_BUILD, GRAPH_EXTEND, GRAPH_BLOCK,
         GRAPH_FINISH, SELECT_RUN, EVALUATE_RUN, SYSTEM_PING)
