"""Fixtures of the platform tests: small pools and targets, selection-job records, the real API
server of the session (uvicorn, started with the other services) and a live API token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest


def records(tag: str, n: int) -> list[dict]:
    """``n`` distinct chat examples; the first one also has a system message."""
    out = [{"messages": [{"role": "user", "content": f"{tag} question {i}"},
                         {"role": "assistant", "content": f"{tag} answer {i}"}]} for i in range(n)]
    out[0]["messages"].insert(0, {"role": "system", "content": f"{tag} be brief"})
    return out


@dataclass(frozen=True)
class Collections:
    pool: str
    target: str
    ids: list[str]  # the pool's instruction ids, in file order


@pytest.fixture
def collections(store, prefix) -> Collections:
    """A ready pool of 10 instructions and a ready target of 2 validation examples."""
    from gradwalk.platform.intake.ingest import read_records
    from gradwalk.platform.intake.pools import import_pool, import_target

    pool = records(f"{prefix}pool", 10)
    import_pool(store, f"{prefix}pool", pool)
    import_target(store, f"{prefix}target", records(f"{prefix}target", 2))
    ids = [r.id for r in read_records(pool).records]
    return Collections(f"{prefix}pool", f"{prefix}target", ids)


@pytest.fixture
def new_job(store, collections):
    """Make a queued selection-job record (method random) for a dataset; returns its id."""
    from gradwalk.platform.work import jobs

    def make(dataset: str, seed: int = 0) -> str:
        request = jobs.JobRequest(pool=collections.pool, targets=[collections.target], method="random",
                                  dataset=dataset, params={"ratio": 0.5, "seed": seed})
        return jobs.create(store, request)

    return make


@pytest.fixture(scope="session")
def api_url(services, settings) -> str:
    """The session's API server (uvicorn on settings.api_port), ready."""
    from gradwalk.platform.local.stack import ApiService

    api = ApiService(settings)
    api.spawn()  # already running when `services up` started it
    api.wait_ready()
    return f"http://127.0.0.1:{settings.api_port}"


@pytest.fixture(scope="session")
def api_token(store) -> str:
    from gradwalk.platform.access import auth

    return auth.create(store, f"test-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def client(api_url, api_token):
    from gradwalk import Client

    with Client(api_url, api_token) as connected:
        yield connected
