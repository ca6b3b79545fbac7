"""Several clients at once, over the loopback API: each submits selection jobs to one shared
dataset and reads jobs and versions while they run. Bounded: CLIENTS x JOBS_PER_CLIENT jobs,
READS_PER_JOB reads after each submission, 180 s at most. No job is lost, no version number is
handed out twice or skipped, no request fails; p50/p99 latencies are recorded."""

from __future__ import annotations

import statistics
import threading
import time
from collections import defaultdict

import httpx
import pytest

from gradwalk.platform.versions import datasets
from gradwalk.platform.work import jobs
from gradwalk.statuses import JOB_FINISHED

from .conftest import wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(300)]

CLIENTS, JOBS_PER_CLIENT, READS_PER_JOB = 6, 5, 6


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def test_concurrent_clients_lose_no_job_and_share_no_version(stack, crafted, prefix):
    run = crafted(40)
    dataset = f"{prefix}load"
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: dict[int, int] = defaultdict(int)
    submitted: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def timed(web: httpx.Client, kind: str, method: str, url: str, **kwargs) -> httpx.Response:
        began = time.perf_counter()
        response = web.request(method, url, **kwargs)
        with lock:
            latencies[kind].append(time.perf_counter() - began)
            statuses[response.status_code] += 1
        return response

    def client(n: int) -> None:
        try:
            with httpx.Client(base_url=stack.api_url, timeout=60,
                              headers={"Authorization": f"Bearer {stack.token}"}) as web:
                start.wait()
                for j in range(JOBS_PER_CLIENT):
                    body = {"pool": run.pool, "targets": [run.target], "method": "random", "dataset": dataset,
                            "params": {"ratio": 0.5, "seed": n * 100 + j}}
                    answer = timed(web, "submit", "POST", "/jobs", json=body)
                    assert answer.status_code == 202, answer.text
                    job_id = answer.json()["id"]
                    with lock:
                        submitted.append(job_id)
                    for r in range(READS_PER_JOB):
                        timed(web, "job", "GET", f"/jobs/{job_id}")
                        listed = timed(web, "versions", "GET", f"/datasets/{dataset}/versions")
                        assert listed.status_code in (200, 404), listed.text  # 404 until version 1
                        if r == READS_PER_JOB - 1 and listed.status_code == 200 and listed.json():
                            latest = listed.json()[-1]["version"]
                            timed(web, "rows", "GET", f"/datasets/{dataset}/versions/{latest}/rows",
                                  params={"limit": 50})
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(e)

    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert failures == []
    total = CLIENTS * JOBS_PER_CLIENT
    assert len(submitted) == len(set(submitted)) == total

    def all_finished():
        found = [jobs.get(stack.store, j).status for j in submitted]
        return found if all(s in JOB_FINISHED for s in found) else None

    final = wait_for(all_finished, timeout_s=180, poll_s=1.0, what=f"{total} jobs to finish")
    elapsed = time.monotonic() - began
    assert final == ["succeeded"] * total  # no job lost
    versions = datasets.versions(stack.store, dataset)
    numbers = [v.version for v in versions]
    assert sorted(numbers) == list(range(1, total + 1))  # none twice, none skipped
    assert sorted(v.job_id for v in versions) == sorted(submitted)  # one version per job
    assert set(statuses) <= {200, 202, 404} and all(code < 500 for code in statuses)

    figures = {kind: {"n": len(v), "p50_ms": round(1000 * statistics.median(v), 1),
                      "p99_ms": round(1000 * percentile(v, 99), 1)} for kind, v in latencies.items()}
    every = [x for v in latencies.values() for x in v]
    figures["all"] = {"n": len(every), "p50_ms": round(1000 * statistics.median(every), 1),
                      "p99_ms": round(1000 * percentile(every, 99), 1)}
    print(f"\nload: {total} jobs by {CLIENTS} clients in {elapsed:.1f}s; latencies {figures}")
    stack.record(fault=f"load: {CLIENTS} clients, {total} jobs to one dataset, {figures['all']['n']} requests",
                 runs=1, outcome=f"all {total} jobs succeeded in {elapsed:.0f}s; versions 1..{total} once each",
                 lost="nothing", latency=figures)
