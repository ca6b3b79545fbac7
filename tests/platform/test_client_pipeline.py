"""The README's pipeline, step by step, driven through the Python client alone: a process that
knows only the API's URL and a token (no Neo4j, Redis or artifact settings, none of their driver
modules loaded) imports a gzip pool with a bad line, a target, runs features, builds a graph,
selects, exports, then grows the pool and extends the run and the graph for the next version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from gradwalk.platform.access import auth
from gradwalk.platform.demo.sources import estimated_tokens, write_jsonl

pytestmark = pytest.mark.timeout(1800)

# The real model, small: a rank-4 adapter, short rows, a narrow projection, one warm-up epoch.
ENGINE = {"lora_r": 4, "lora_alpha": 16, "max_length": 128, "batch_size": 8, "proj_dim": 64}
WARMUP = {"fraction": 0.25, "epochs": 1, "examples_per_step": 4}
FIRST, ADDED, TARGET_ROWS = 16, 4, 4

PIPELINE = """
import json, sys
from pathlib import Path
from gradwalk import Client, errors

folder, spec = Path(sys.argv[1]), json.loads(sys.argv[2])
pool, target, dataset = spec["pool"], spec["target"], spec["dataset"]
out = {}
with Client() as client:
    try:
        client.import_pool(pool, folder / "pool.jsonl.gz")
    except errors.InvalidInput as e:
        out["refused"] = str(e)
    out["imported"] = client.import_pool(pool, folder / "pool.jsonl.gz", skip_invalid=True).model_dump()
    client.import_target(target, folder / "val.jsonl")
    out["pools"] = [p.name for p in client.pools()]
    out["pool"] = client.pool(pool).show().model_dump()
    run = client.start_feature_run(pool, [target], engine=spec["engine"], warmup=spec["warmup"])
    out["run"] = client.feature_run(run.id).wait(timeout=900).model_dump()
    out["runs"] = [r.id for r in client.feature_runs(pool=pool)]
    graph = client.build_graph(run.id, k=4, tau=0.0)
    out["graph"] = client.graph(graph.id).wait(timeout=900).model_dump()
    job = client.select(pool=pool, target=target, method="g2is", ratio=0.25, dataset=dataset,
                        feature_run=run.id, graph=graph.id).wait(timeout=900)
    out["job"] = client.job(job.id).info.model_dump(mode="json")
    out["dataset"] = client.dataset(dataset).show().model_dump()
    out["exported"] = str(job.dataset_version().export("llamafactory", folder / "lf"))
    job.dataset_version().to_jsonl(folder / "v1.jsonl")

    client.import_pool(pool, folder / "more.jsonl")
    out["adding"] = client.extend_feature_run(run.id).adding
    out["extended_run"] = client.feature_run(run.id).wait(timeout=900).model_dump()
    grown = client.extend_graph(graph.id)
    out["extended_graph"] = client.graph(graph.id).wait(rows=grown.rows_after, timeout=900).model_dump()
    again = client.select_like(dataset).wait(timeout=900)
    out["diff"] = again.dataset_version().diff(1).model_dump()
heavy = ("neo4j", "celery", "kombu", "redis", "torch", "numpy", "fastapi", "gradwalk.settings")
out["loaded"] = sorted(m for m in heavy if m in sys.modules)
print(json.dumps(out))
"""


def _rows(shipped: dict, name: str, limit: int, n: int) -> list[dict]:
    return [r for r in shipped[name] if sum(estimated_tokens(m["content"]) for m in r["messages"]) <= limit][:n]


def test_the_pipeline_through_the_client_alone(api_url, store, shipped, tmp_path):
    import gzip

    tag = f"cp{uuid.uuid4().hex[:8]}"
    spec = {"pool": f"{tag}-pool", "target": f"{tag}-gsm8k", "dataset": f"{tag}-5pct", "engine": ENGINE,
            "warmup": WARMUP}
    rows = _rows(shipped, "pool", 40, FIRST + ADDED)
    lines = [json.dumps(r) for r in rows[:FIRST]]
    lines.insert(2, '{"messages": [{"role": "user", "content": "no answer"}]}')  # line 3: no assistant turn
    with gzip.open(tmp_path / "pool.jsonl.gz", "wt", encoding="utf-8") as packed:
        packed.write("\n".join(lines) + "\n")
    write_jsonl(rows[FIRST:], tmp_path / "more.jsonl")
    write_jsonl(_rows(shipped, "gsm8k", 100, TARGET_ROWS), tmp_path / "val.jsonl")
    token = auth.create(store, f"{tag}-curator", "curator")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GRADWALK_API_URL": api_url,
           "GRADWALK_API_TOKEN": token}
    if "PYTHONPATH" in os.environ:  # a source checkout run without an install
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    done = subprocess.run([sys.executable, "-c", PIPELINE, str(tmp_path), json.dumps(spec)], env=env,
                          capture_output=True, text=True, timeout=1700, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])

    # named by the file as it was sent, not by the server's temporary copy of it
    assert out["refused"].startswith("pool.jsonl.gz line 3: field 'messages'"), out["refused"]
    assert (out["imported"]["records"]["skipped"], out["pool"]["size"]) == (1, FIRST)
    assert out["pool"]["imports"][0]["skip_reasons"][0].startswith("pool.jsonl.gz line 3: ")
    assert spec["pool"] in out["pools"] and out["pool"]["created_by"] == f"{tag}-curator"
    assert (out["run"]["status"], out["run"]["rows"], out["run"]["created_by"]) == (
        "complete", FIRST, f"{tag}-curator")
    assert out["runs"] == [out["run"]["id"]]
    assert (out["graph"]["status"], out["graph"]["nodes"], out["graph"]["created_by"]) == (
        "ready", FIRST, f"{tag}-curator")
    assert (out["job"]["status"], out["job"]["version"], out["dataset"]["latest"]) == ("succeeded", 1, 1)
    assert len((tmp_path / "v1.jsonl").read_text().splitlines()) == FIRST // 4
    assert Path(out["exported"]).is_file()
    assert out["adding"] == ADDED and (out["extended_run"]["status"], out["extended_run"]["rows"]) == (
        "complete", FIRST + ADDED)
    assert (out["extended_graph"]["status"], out["extended_graph"]["nodes"]) == ("ready", FIRST + ADDED)
    assert out["diff"]["added"] + out["diff"]["kept"] == (FIRST + ADDED) // 4
    assert out["loaded"] == []
