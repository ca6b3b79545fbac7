"""The service layer (platform/changes/) is the one way in for a change: it checks the caller's
role itself, so a reader token is refused every change there and through every REST route that
makes one, and nothing changes."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest

from gradwalk import errors
from gradwalk.platform.access import auth
from gradwalk.platform.changes import Context, deletes, features, graphs, imports, jobs, tokens, versions
from gradwalk.platform.versions import datasets
from gradwalk.platform.work.jobs import JobRequest

STATE = ("MATCH (n) WHERE n:Pool OR n:Target OR n:FeatureRun OR n:InstructionGraph OR n:SelectionJob "
         "OR n:DatasetVersion OR n:ApiToken OR n:Instruction "
         "RETURN count(n) AS nodes, collect(DISTINCT coalesce(n.status, '')) AS statuses")


@pytest.fixture
def made(store, collections, new_job, prefix) -> dict[str, str]:
    """A pool and target, a queued job and a published version, all made by a curator token."""
    maker = f"{prefix}curator"
    auth.create(store, maker, "curator")
    queued = new_job(f"{prefix}ds")
    done = new_job(f"{prefix}ds", 1)
    store.write("MATCH (j:SelectionJob) WHERE j.id IN $ids SET j.created_by = $who", {"ids": [queued, done],
                                                                                       "who": maker})
    datasets.publish(store, f"{prefix}ds", [{"instruction_id": i, "rank": r} for r, i in enumerate(collections.ids[:2])],
                     job_id=done, lineage={})
    return {"pool": collections.pool, "target": collections.target, "job": queued, "dataset": f"{prefix}ds"}


def _changes(made: dict[str, str], tmp_path: Path) -> dict[str, object]:
    """Every change of the service layer, each asked for with plausible arguments."""
    upload = tmp_path / "rows.jsonl"
    upload.write_text('{"prompt": "a", "completion": "b"}\n')
    request = JobRequest(pool=made["pool"], targets=[made["target"]], method="random", dataset=made["dataset"],
                         params={"ratio": 0.5})
    return {
        "import pool": lambda c: imports.import_records(c, "pool", made["pool"], upload),
        "import target": lambda c: imports.import_records(c, "target", made["target"], upload),
        "upload into a pool": lambda c: imports.import_upload(c, "pool", made["pool"], io.BytesIO(b"{}"), "p.jsonl"),
        "start feature run": lambda c: features.start(c, made["pool"], [made["target"]]),
        "cancel feature run": lambda c: features.cancel(c, "fr-000000000000"),
        "extend feature run": lambda c: features.extend(c, "fr-000000000000"),
        "build graph": lambda c: graphs.build(c, "fr-000000000000", 4, 0.0),
        "cancel graph build": lambda c: graphs.cancel(c, "fr-000000000000:k4:tau0.0"),
        "extend graph": lambda c: graphs.extend(c, "fr-000000000000:k4:tau0.0"),
        "submit job": lambda c: jobs.submit(c, request),
        "submit job like": lambda c: jobs.submit_like(c, made["dataset"]),
        "cancel job": lambda c: jobs.cancel(c, made["job"]),
        "retire version": lambda c: versions.retire(c, made["dataset"], 1, "mine now"),
        "delete version": lambda c: versions.delete(c, made["dataset"], 1),
        "delete pool": lambda c: deletes.delete_collection(c, "pool", made["pool"], force=True),
        "delete target": lambda c: deletes.delete_collection(c, "target", made["target"], force=True),
        "delete feature run": lambda c: deletes.delete_feature_run(c, "fr-000000000000", force=True),
        "delete graph": lambda c: deletes.delete_graph(c, "fr-000000000000:k4:tau0.0", force=True),
        "create token": lambda c: tokens.create(c, "reader-made", "admin"),
        "revoke token": lambda c: tokens.revoke(c, "reader-made"),
    }


def test_a_reader_is_refused_every_change_by_the_service_layer(store, settings, made, prefix, tmp_path):
    reader = Context(store, settings, auth.Principal(f"{prefix}reader", "reader"))
    before = store.read(STATE)
    for name, change in _changes(made, tmp_path).items():
        with pytest.raises(errors.NotAllowed, match="role 'reader'") as refused:
            change(reader)
        assert "needs role" in str(refused.value), name
    assert store.read(STATE) == before


def test_tokens_are_an_admins_change(store, settings, prefix):
    curator = Context(store, settings, auth.Principal(f"{prefix}cur", "curator"))
    with pytest.raises(errors.NotAllowed, match="needs role 'admin'"):
        tokens.create(curator, f"{prefix}x")
    admin = Context(store, settings, auth.Principal(f"{prefix}root", "admin"))
    secret = tokens.create(admin, f"{prefix}x", "reader")
    assert auth.authenticate(store, secret) == auth.Principal(f"{prefix}x", "reader")
    assert tokens.revoke(admin, f"{prefix}x")["revoked_at"]
    assert f"{prefix}x" in [t["name"] for t in tokens.list_tokens(admin)]


def test_the_local_admin_token_is_kept_in_the_state_folder_for_its_owner_only(store, settings):
    mine = tokens.local_admin(store, settings)
    path = settings.local_token_file
    assert mine.role == "admin" and path.stat().st_mode & 0o777 == 0o600
    assert auth.authenticate(store, path.read_text().strip()) == mine
    assert tokens.local_admin(store, settings) == mine  # kept while it lives
    auth.revoke(store, mine.name)
    renewed = tokens.local_admin(store, settings)
    assert renewed != mine and auth.authenticate(store, path.read_text().strip()) == renewed


def test_a_reader_is_refused_every_change_through_rest(api_url, store, made, prefix):
    reader = auth.create(store, f"{prefix}reader", "reader")
    row = b'{"prompt": "a", "completion": "b"}\n'
    attempts = [
        ("POST", f"/pools/{made['pool']}/upload", {"files": {"file": ("p.jsonl", row)}}),
        ("POST", f"/targets/{made['target']}/upload", {"files": {"file": ("p.jsonl", row)}}),
        ("POST", f"/pools/{made['pool']}/import", {"json": {"path": "x.jsonl"}}),
        ("POST", "/feature-runs", {"json": {"pool": made["pool"], "targets": [made["target"]]}}),
        ("POST", "/feature-runs/fr-000000000000/extend", {}),
        ("POST", "/feature-runs/fr-000000000000/cancel", {}),
        ("POST", "/graphs", {"json": {"feature_run": "fr-000000000000", "k": 4}}),
        ("POST", "/graphs/fr-000000000000:k4:tau0.0/extend", {}),
        ("POST", "/graphs/fr-000000000000:k4:tau0.0/cancel", {}),
        ("POST", "/jobs", {"json": {"pool": made["pool"], "targets": [made["target"]], "method": "random",
                                    "dataset": made["dataset"], "params": {"ratio": 0.5}}}),
        ("POST", f"/jobs/like/{made['dataset']}", {}),
        ("POST", f"/jobs/{made['job']}/cancel", {}),
        ("POST", f"/datasets/{made['dataset']}/versions/1/retire", {"json": {"reason": "mine now"}}),
        ("DELETE", f"/datasets/{made['dataset']}/versions/1", {}),
        ("DELETE", f"/pools/{made['pool']}", {"params": {"force": "true"}}),
        ("DELETE", f"/targets/{made['target']}", {"params": {"force": "true"}}),
        ("DELETE", "/feature-runs/fr-000000000000", {}),
        ("DELETE", "/graphs/fr-000000000000:k4:tau0.0", {}),
        ("POST", "/tokens", {"json": {"name": f"{prefix}mine", "role": "admin"}}),
        ("POST", f"/tokens/{prefix}reader/revoke", {}),
    ]
    before = store.read(STATE)
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {reader}"}, timeout=60) as web:
        for method, path, extra in attempts:
            answer = web.request(method, path, **extra)
            assert answer.status_code == 403, (method, path, answer.text)
            assert "role 'reader'" in answer.json()["error"]["message"], (method, path)
        assert web.get(f"/jobs/{made['job']}").json()["status"] == "queued"
    assert store.read(STATE) == before
