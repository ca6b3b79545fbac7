"""A task round-trips through the real worker of each queue."""

from __future__ import annotations

import importlib
import inspect

import pytest

from gradwalk.platform.local.stack import WorkerService
from gradwalk.platform.work.broker import QUEUES, celery_config
from gradwalk.platform.work.task_names import SYSTEM_PING, TASKS
from gradwalk.workers.app import app


@pytest.mark.parametrize("queue", QUEUES)
def test_ping_runs_on_the_worker_of_its_queue(services, settings, queue):
    reply = app.send_task(SYSTEM_PING.name, queue=queue).get(timeout=120)
    assert reply["worker_pid"] == WorkerService(settings, queue).pid()
    assert reply["device"] in {"cpu", "cuda"}


def test_config_is_safe_for_long_ml_tasks(settings):
    conf = celery_config(settings)
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["broker_transport_options"]["visibility_timeout"] > conf["task_time_limit"]
    assert conf["task_serializer"] == conf["result_serializer"] == "json"
    assert conf["accept_content"] == ["json"]
    assert app.conf.broker_url == settings.redis_url
    assert app.conf.task_routes["gradwalk.features.*"] == {"queue": "gpu"}
    assert app.conf.task_routes["gradwalk.select.*"] == {"queue": "cpu"}


def test_the_workers_register_every_task_of_the_table_with_its_arguments():
    """The platform sends by the table in platform/work/task_names.py; each worker task is
    registered under a name of it and takes the positional arguments it lists, and the route of
    its name goes to the table's queue."""
    for module in app.conf.include or ():
        importlib.import_module(module)
    registered = {name for name in app.tasks if name.startswith("gradwalk.")}
    assert registered == {task.name for task in TASKS}
    for task in TASKS:
        parameters = list(inspect.signature(app.tasks[task.name].run).parameters)
        assert tuple(parameters) == task.args, task.name
        if task.queue is not None:
            assert app.amqp.router.route({}, task.name)["queue"].name == task.queue, task.name
