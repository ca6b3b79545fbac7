"""Local services: a private Neo4j + Redis pair for this module (restart, migrations), and the
checks `services up` makes before starting anything."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from gradwalk import errors
from gradwalk.graph.store import migrations
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.local import neo4j_launcher, stack
from gradwalk.ports import free_port


@pytest.fixture(scope="module")
def private(settings, tmp_path_factory):
    """Settings of a Neo4j + Redis pair that only this module uses (empty database)."""
    own = settings.model_copy(update={
        "state_dir": tmp_path_factory.mktemp("private-state"),
        "neo4j_uri": f"bolt://127.0.0.1:{free_port()}",
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
    })
    neo4j, redis_service = stack.Neo4jService(own), stack.RedisService(own)
    for service in (neo4j, redis_service):
        service.spawn()
    try:
        for service in (neo4j, redis_service):
            service.wait_ready()
        yield own
    finally:
        for service in (neo4j, redis_service):
            service.stop()


@pytest.fixture
def migration_dir(tmp_path) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "V001__constraints.cypher").write_text((migrations.MIGRATIONS_DIR / "V001__constraints.cypher").read_text())
    (folder / "V002__example_index.cypher").write_text(
        "// a second file, applied after V001\n"
        "CREATE INDEX example_name IF NOT EXISTS FOR (n:Example) ON (n.name);\n"
    )
    return folder


def _clear_migrations(store: GraphStore) -> None:
    store.write("MATCH (m:Migration) DELETE m")


def test_migrations_apply_in_order_and_rerun_is_a_noop(private, migration_dir):
    with GraphStore.connect(private) as store:
        _clear_migrations(store)
        first = migrations.migrate(store, migration_dir)
        assert [m.version for m in first] == [1, 2]
        assert migrations.migrate(store, migration_dir) == []
        recorded = migrations.applied(store)
        assert sorted(recorded) == [1, 2]
        assert recorded[1]["checksum"] == first[0].checksum and recorded[1]["applied_at"]
        names = {row["name"] for row in store.read("SHOW CONSTRAINTS YIELD name")}
        assert {"instruction_id", "dataset_version_key", "gradwalk_migration_version"} <= names


def test_edited_migration_is_refused_by_name(private, migration_dir):
    with GraphStore.connect(private) as store:
        _clear_migrations(store)
        migrations.migrate(store, migration_dir)
        edited = migration_dir / "V002__example_index.cypher"
        edited.write_text(edited.read_text() + "CREATE INDEX other IF NOT EXISTS FOR (n:Example) ON (n.x);\n")
        with pytest.raises(errors.Conflict, match="V002__example_index.cypher was edited"):
            migrations.migrate(store, migration_dir)


def test_concurrent_migrate_applies_each_file_once(private, migration_dir):
    with GraphStore.connect(private) as store:
        _clear_migrations(store)
    applied: list[list[int]] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            with GraphStore.connect(private) as own_store:  # a driver of its own, like another process
                applied.append([m.version for m in migrations.migrate(own_store, migration_dir)])
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failures == []
    assert sorted(v for versions in applied for v in versions) == [1, 2]
    with GraphStore.connect(private) as store:
        counts = store.read("MATCH (m:Migration) RETURN m.version AS v, count(*) AS n ORDER BY v")
    assert counts == [{"v": 1, "n": 1}, {"v": 2, "n": 1}]


def test_misnamed_migration_file_is_refused(tmp_path):
    (tmp_path / "V1_missing_underscores.cypher").write_text("RETURN 1;")
    with pytest.raises(errors.InvalidInput, match="V<NNN>__<name>.cypher"):
        migrations.discover(tmp_path)


def test_services_restart_with_their_data_intact(private):
    import redis

    with GraphStore.connect(private) as store:
        store.write("MERGE (:RestartProbe {name: 'kept'})")
    client = redis.Redis.from_url(private.redis_url)
    client.set("gradwalk:restart-probe", "kept")

    for service in (stack.Neo4jService(private), stack.RedisService(private)):
        assert service.stop() is True
        assert service.pid() is None
        assert service.spawn() is True
        service.wait_ready()

    with GraphStore.connect(private) as store:
        assert store.read("MATCH (p:RestartProbe) RETURN p.name AS name") == [{"name": "kept"}]
    assert redis.Redis.from_url(private.redis_url).get("gradwalk:restart-probe") == b"kept"


def test_up_refuses_a_taken_port(settings, tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        taken = settings.model_copy(update={"state_dir": tmp_path, "redis_url": f"redis://127.0.0.1:{port}/0"})
        with pytest.raises(errors.Conflict, match=f"port {port} on 127.0.0.1 is already taken"):
            stack.RedisService(taken).spawn()
        assert stack.RedisService(taken).pid() is None


def test_missing_java_is_a_one_line_hint():
    with pytest.raises(errors.ServiceUnavailable, match="apt-get install openjdk-17"):
        neo4j_launcher.check_java("/nonexistent/java")


def test_status_reports_the_session_services(services, settings):
    statuses = {s.name: s for s in stack.status(settings)}
    assert set(statuses) == {"neo4j", "redis", "worker-gpu", "worker-cpu", "api"}
    assert all(s.running for s in statuses.values())
    assert statuses["neo4j"].address == settings.neo4j_uri


def test_down_leaves_foreign_processes_alone(settings, tmp_path):
    """A pid file that names a process we did not start (a recycled pid) is never signalled."""
    import json
    import os

    foreign = settings.model_copy(update={"state_dir": tmp_path})
    service = stack.RedisService(foreign)
    service.run_dir.mkdir(parents=True)
    service.pid_file.write_text(json.dumps({"pid": os.getpid(), "marker": str(tmp_path / "redis" / "redis.conf")}))
    assert service.pid() is None
    assert service.stop() is False
    assert not service.pid_file.exists()
