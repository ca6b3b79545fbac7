"""The main job (README's first command) end to end on a tiny plan: the same code path as
`gradwalk demo`, with the session's real services, model, data and workers."""

from __future__ import annotations

import dataclasses

import pytest

from gradwalk.graph.common import target_size
from gradwalk.platform import datasets
from gradwalk.platform.demo import QUICK, run_demo

# QUICK's shape, shrunk to fit the test budget of two CPU cores.
TINY = dataclasses.replace(
    QUICK, pool_size=40, val_size=4, test_size=4, max_tokens=100, k=8, ratio=0.25,
    engine={"lora_r": 4, "lora_alpha": 16, "max_length": 160, "batch_size": 8, "proj_dim": 128},
    warmup={"fraction": 0.2, "epochs": 2, "examples_per_step": 4},
    pool="demo-test-pool", target="demo-test-gsm8k", dataset="demo-test-gsm8k-25pct",
)
pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def demo_run(services, settings):
    lines: list[str] = []
    return run_demo(settings, TINY, echo=lines.append), lines


def test_every_stage_runs_and_publishes_a_version(demo_run, store):
    result, lines = demo_run
    assert list(result["times_s"]) == ["services", "data", "import", "features", "graph", "selection"]
    assert result["pool_rows"] == TINY.pool_size and result["target_rows"] == TINY.val_size
    usable = result["pool_rows"] - result["skipped"].get("train", 0)
    assert result["selected"] == target_size(usable, TINY.ratio) - result["shortfall"]
    assert sum(c["selected"] for c in result["components"]) == result["selected"]
    version = datasets.describe(store, TINY.dataset, result["version"])
    rows = list(datasets.iter_rows(store, TINY.dataset, result["version"]))
    assert version["size"] == len(rows) == result["selected"]
    assert [r["rank"] for r in rows] == list(range(len(rows)))
    assert version["lineage"]["method"] == "g2is" and version["lineage"]["graph"] == result["graph"]
    assert result["edges"] > 0
    assert any(line.startswith("next steps") for line in lines)


def test_names_carry_a_digest_of_the_data_and_a_rerun_reuses_the_work(demo_run, settings):
    result, _ = demo_run
    pool = result["plan"]["pool"]
    assert pool.startswith(f"{TINY.pool}-") and len(pool) == len(TINY.pool) + 9
    again = run_demo(settings, TINY, echo=lambda _: None)
    assert again["plan"]["pool"] == pool and again["feature_run"] == result["feature_run"]
    assert again["graph"] == result["graph"] and again["version"] == result["version"] + 1
