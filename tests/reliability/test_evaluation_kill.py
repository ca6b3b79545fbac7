"""A gpu worker's process SIGKILLed in the middle of an evaluation's fine-tune costs nothing: its
worker requeues the task at once (late acks, reject on worker lost), ``start`` takes the running
evaluation again, the base model's scores come from the cache the first try filled, and it
completes with figures that its stored scores give. The rerun's fine-tune is a clean run's: a
seeded fine-tune always trains the same weights (tests/workers/engine/test_finetune.py), so a
second clean run is left out to save its minute. Until then nothing of it is stored: no figures,
no scores file, no baseline but the whole one of the base model."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from gradwalk import Client
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.demo.sources import write_jsonl
from gradwalk.platform.versions.evaluations import BASELINES, scores_key
from gradwalk.workers.engine.evaluation import summarize

from .conftest import TINY_ENGINE, chat, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(600)]

# The tiny engine; 4 rows, one at a time for 5 epochs: 20 steps, a second or more of fine-tuning to kill.
SETTINGS = {"epochs": 5, "random_seeds": 1, "batch_size": 1, "greedy": False,
            "engine": {k: TINY_ENGINE[k] for k in ("lora_r", "lora_alpha", "lora_targets", "max_length", "batch_size")}}


def _step(stage: str | None) -> int | None:
    found = re.search(r"fine-tuning on the version's .*: step (\d+) of", stage or "")
    return int(found.group(1)) if found else None


def test_a_worker_killed_mid_fine_tune_reruns_the_evaluation_with_nothing_half_stored(healed, prefix, tmp_path):
    stack = healed
    started = time.monotonic()
    pool, target, dataset = f"{prefix}ek-pool", f"{prefix}ek-target", f"{prefix}ek-picked"
    write_jsonl([chat(pool, i) for i in range(16)], tmp_path / "pool.jsonl")
    write_jsonl([chat(target, i) for i in range(3)], tmp_path / "val.jsonl")
    write_jsonl([chat(f"{target}-test", i) for i in range(3)], tmp_path / "test.jsonl")
    features = FeatureStore(stack.settings.artifacts)
    with Client(stack.api_url, stack.token) as client:
        client.import_pool(pool, tmp_path / "pool.jsonl")
        client.import_target(target, tmp_path / "val.jsonl", test=tmp_path / "test.jsonl")
        version = client.select(pool=pool, target=target, method="random", ratio=0.25, dataset=dataset,
                                seed=0).wait(timeout=300).dataset_version()
        evaluation = version.evaluate(target, **SETTINGS)
        task = stack.app.AsyncResult(evaluation.id)

        # The pool process running it dies in the version's fine-tune, after the base model's scoring.
        step = wait_for(lambda: _step(evaluation.show().stage), timeout_s=300, poll_s=0.05,
                        what="a step of the version's fine-tune")
        os.kill(task.info["pid"], signal.SIGKILL)
        killed = evaluation.show()
        assert (killed.summary, killed.scores) == (None, None) and killed.status == "running"
        assert not features.files.exists(scores_key(evaluation.id))
        cached = [json.loads(features.files.get(key) or b"null") for key in features.files.keys(BASELINES)]
        assert [c["depends_on"]["what"] for c in cached] == ["base"], "only the whole base model's scores"

        done = evaluation.wait(timeout=300, poll_s=0.5)
        rerun_s = time.monotonic() - started
        scores = evaluation.scores()
        assert done.summary["cached"] == ["base"]  # the rerun took the first try's base scores
        assert done.summary["figures"] == summarize(scores)
        assert task.state == "SUCCESS"
    stack.record(fault="SIGKILL of the pool process fine-tuning an evaluation's version (gpu worker)", runs=1,
                 outcome=f"killed at step {step}; requeued at once, rerun from the cached base scores; "
                         "figures as its stored scores give", lost="the killed fine-tune's steps",
                 run_s=round(rerun_s, 1))
