"""Redis killed and restarted while jobs are queued: no queued job is lost.

Redis runs with an append-only file fsynced before each reply (``appendfsync always``), so a task
is on disk once ``send_task`` returns: a crash right after a submission (SIGKILL) and a clean
restart (SIGTERM) both keep every queued job. The cpu worker is stopped while the jobs queue up,
so they are queued, not running, when Redis goes down."""

from __future__ import annotations

import signal
import time

import pytest

from gradwalk.platform.versions import datasets
from gradwalk.platform.work import jobs

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(300)]

PER_BATCH = 5


def test_queued_jobs_survive_redis_crash_and_restart(healed, crafted, prefix):
    stack = healed
    store = stack.store
    run = crafted(30)
    dataset = f"{prefix}queued"
    cpu = stack.workers["cpu"]
    cpu.stop()  # the jobs stay queued

    def submit(seed: int) -> str:
        return stack.submit_job(jobs.JobRequest(pool=run.pool, targets=[run.target], method="random",
                                                dataset=dataset, params={"ratio": 0.5, "seed": seed}))

    crashed = [submit(seed) for seed in range(PER_BATCH)]
    assert stack.redis_client().llen("cpu") == PER_BATCH
    stack.kill(stack.redis, signal.SIGKILL)  # at once: no time for a periodic fsync
    started = time.monotonic()
    stack.restart(stack.redis)
    crash_s = time.monotonic() - started
    assert stack.redis_client().llen("cpu") == PER_BATCH

    restarted = [submit(seed) for seed in range(PER_BATCH, 2 * PER_BATCH)]  # the client reconnects
    stack.redis.stop()  # SIGTERM: a clean shutdown
    stack.restart(stack.redis)
    assert stack.redis_client().llen("cpu") == 2 * PER_BATCH

    stack.restart(cpu)
    done = [jobs.wait(store, job_id, timeout_s=120, poll_s=0.5) for job_id in [*crashed, *restarted]]
    assert [j.status for j in done] == ["succeeded"] * (2 * PER_BATCH)
    versions = datasets.versions(store, dataset)
    assert sorted(v.version for v in versions) == list(range(1, 2 * PER_BATCH + 1))
    assert sorted(v.job_id for v in versions) == sorted([*crashed, *restarted])
    stack.record(fault="Redis SIGKILLed right after 5 submissions, then restarted", runs=1,
                 outcome=f"5/5 queued jobs kept (AOF, fsync always); restart {crash_s:.1f}s",
                 lost="nothing")
    stack.record(fault="Redis stopped (SIGTERM) and restarted with 10 jobs queued", runs=1,
                 outcome="10/10 queued jobs kept and run once each (versions 1..10)", lost="nothing")
