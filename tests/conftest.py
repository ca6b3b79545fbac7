"""Session fixtures: real Neo4j, Redis and Celery workers, started once per test session.

They run on free ports of their own with a state folder of their own (a temporary folder), so
tests never touch a user's services or data. Only the build cache (the Neo4j launcher, converted
models) is shared with the user's cache folder. Tests that need no service start none.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gradwalk.ports import free_port

_STATE_DIR = Path(tempfile.mkdtemp(prefix="gradwalk-test-"))



def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM (`timeout`, a CI runner giving up) ends the session as Ctrl-C does: the fixtures'
    # teardown still stops the session's Neo4j, Redis and workers instead of orphaning them.
    signal.signal(signal.SIGTERM, _interrupt)
    # Before anything reads settings: every service of this session is private to it.
    os.environ["GRADWALK_STATE_DIR"] = str(_STATE_DIR)
    os.environ["GRADWALK_NEO4J_URI"] = f"bolt://127.0.0.1:{free_port()}"
    os.environ["GRADWALK_NEO4J_PASSWORD"] = secrets.token_urlsafe(16)
    os.environ["GRADWALK_NEO4J_HEAP_MB"] = "768"
    os.environ["GRADWALK_NEO4J_PAGECACHE_MB"] = "256"
    os.environ["GRADWALK_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    os.environ["GRADWALK_API_PORT"] = str(free_port())
    os.environ["GRADWALK_FEATURE_SHARD_ROWS"] = "16"
    os.environ["GRADWALK_TORCH_THREADS"] = "1"  # the session's workers share two cores with Neo4j
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_unconfigure(config: pytest.Config) -> None:
    if not os.environ.get("GRADWALK_TEST_KEEP_STATE"):
        shutil.rmtree(_STATE_DIR, ignore_errors=True)


# Fixtures that start real services: the session's (``services``, and with it every fixture built
# on it: ``store``, ``api_url``, ...), the fault tests' private stack, test_services.py's private pair,
# the session's S3 server and the multi-host test's hosts.
SERVICE_FIXTURES = frozenset({"services", "stack", "private", "s3", "hosts"})


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``services`` every test whose fixtures, direct or not, start services, so that
    ``pytest -m "not services"`` runs the fast part without anyone marking tests by hand."""
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def settings():
    from gradwalk.settings import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def services(settings) -> Iterator[list]:
    """Neo4j, Redis and a worker per queue, up for the whole session."""
    from gradwalk.platform.local import stack

    try:
        yield stack.up(settings, echo=lambda _: None)
    finally:
        stack.down(settings, echo=lambda _: None)


@pytest.fixture(scope="session")
def s3(settings, tmp_path_factory) -> Iterator:
    """A real S3 server (s3proxy, filesystem backend) on a free port, for the whole session: the
    settings that point the artifact store at a bucket of it."""
    from pydantic import SecretStr

    from gradwalk.platform.local.stack import S3ProxyService

    own = settings.model_copy(update={
        "state_dir": tmp_path_factory.mktemp("s3-state"),
        "artifact_url": "s3://gradwalk-test/artifacts",
        "s3_endpoint_url": f"http://127.0.0.1:{free_port()}",
        "s3_access_key_id": "gradwalk-test",
        "s3_secret_access_key": SecretStr(secrets.token_urlsafe(16)),
    })
    server = S3ProxyService(own)
    try:
        server.spawn()
        server.wait_ready()
        yield own
    finally:
        server.stop()


@pytest.fixture(scope="session")
def store(services, settings):
    from gradwalk.graph.store.adapter import GraphStore

    with GraphStore.connect(settings) as connected:
        yield connected


@pytest.fixture
def prefix() -> str:
    """A unique name prefix, so tests sharing the session's database never collide."""
    return f"t{uuid.uuid4().hex[:10]}-"


@pytest.fixture(scope="session")
def shipped() -> dict[str, list[dict]]:
    """The data fixture in tests/fixtures (scripts/make_test_fixture.py): ``pool`` (440 records,
    tasks and chat) and ``gsm8k`` (60 problems), so no test downloads a data set for its rows."""
    import gzip
    import json

    folder = Path(__file__).parent / "fixtures"
    return {name: [json.loads(line) for line in gzip.open(folder / f"{name}.jsonl.gz", "rt", encoding="utf-8")]
            for name in ("pool", "gsm8k")}


@pytest.fixture(scope="session")
def gradwalk_cli(services, settings) -> Callable[..., subprocess.CompletedProcess]:
    """``gradwalk_cli(*args, token=SECRET)``: the installed ``gradwalk`` command against the session's
    API, in a process of its own, so a test sees the exit code and the stderr line a user sees."""
    command = str(Path(sys.executable).with_name("gradwalk"))

    def invoke(*args: str, token: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "GRADWALK_API_URL": settings.local_api_url, "GRADWALK_API_TOKEN": token}
        return subprocess.run([command, *args], capture_output=True, text=True, env=env, timeout=120, check=False)

    return invoke
