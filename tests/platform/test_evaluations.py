"""Evaluating versions end to end through the client, with the real model and workers: a
version against random same-size subsets and the base model on the target's test part (greedy
exact match and option accuracy both), figures that its stored per-example scores reproduce, the
version's lineage naming its evaluations, random baselines reused by the next version of the same
size, and cancelled evaluations, queued or in the middle of a fine-tune, that keep nothing."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from typer.testing import CliRunner

from gradwalk import errors
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.platform.demo.sources import estimated_tokens, write_jsonl
from gradwalk.platform.interfaces.cli import app as cli
from gradwalk.platform.versions.evaluations import BASELINES, scores_key
from gradwalk.platform.work.broker import producer
from gradwalk.workers.engine.evaluation import summarize

pytestmark = pytest.mark.timeout(1200)

# The real model, small: a rank-4 adapter, short rows, one epoch, two random seeds, 4 greedy tokens.
SETTINGS = {"epochs": 1, "random_seeds": 2, "batch_size": 4, "greedy": True, "max_new_tokens": 4,
            "engine": {"lora_r": 4, "lora_alpha": 16, "max_length": 128, "batch_size": 8}}


# Multiple-choice test examples: option accuracy runs beside gsm8k's exact match on one test part.
CHOICES = [{"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                         {"role": "assistant", "content": str(a + b)}],
            "options": [str(a + b - 1), str(a + b), str(a + b + 2)], "gold": str(a + b)} for a, b in ((7, 5), (3, 9))]


def _mean(values: list) -> float:
    scored = [v for v in values if v is not None]
    return sum(scored) / len(scored)


def _rows(shipped: dict, name: str, limit: int) -> list[dict]:
    return [r for r in shipped[name] if sum(estimated_tokens(m["content"]) for m in r["messages"]) <= limit]


def _wait_for_step(evaluation) -> int:
    """The fine-tune step an evaluation reported first: it is surely inside its version's fine-tune."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        found = re.search(r"fine-tuning on the version's .*: step (\d+) of", evaluation.show().stage or "")
        if found:
            return int(found.group(1))
        time.sleep(0.1)
    raise AssertionError(f"evaluation {evaluation.id} never reported a fine-tune step")


def test_a_version_is_evaluated_against_random_rows(client, api_url, api_token, store, settings, shipped, prefix,
                                                    tmp_path):
    pool, target, dataset = f"{prefix}pool", f"{prefix}gsm8k", f"{prefix}random"
    write_jsonl(_rows(shipped, "pool", 40)[:16], tmp_path / "pool.jsonl")
    problems = _rows(shipped, "gsm8k", 100)
    write_jsonl(problems[:3], tmp_path / "val.jsonl")
    write_jsonl(problems[3:7] + CHOICES, tmp_path / "test.jsonl")
    client.import_pool(pool, tmp_path / "pool.jsonl")
    client.import_target(f"{prefix}val-only", tmp_path / "val.jsonl")
    tests = client.import_target(target, tmp_path / "val.jsonl", test=tmp_path / "test.jsonl").test.size

    first = client.select(pool=pool, target=target, method="random", ratio=0.25, dataset=dataset,
                          seed=0).wait(timeout=300).dataset_version()
    with pytest.raises(errors.InvalidInput, match="has no test part"):
        first.evaluate(f"{prefix}val-only", **SETTINGS)
    done = first.evaluate(target, **SETTINGS).wait(timeout=900)
    assert (done.status, done.dataset, done.version, done.target) == ("succeeded", dataset, 1, target)
    assert done.summary["cached"] == []
    assert set(done.summary["figures"]) == {"loss", "exact_match", "option_accuracy"}
    assert done.settings["evaluation"]["epochs"] == 1 and done.settings["rows"] == 4
    assert done.settings["test_examples"] == tests and done.settings["pool_rows"] == 16

    # the figures are what the stored per-example scores give
    scores = client.evaluation(done.id).scores()
    assert len(scores["version"]["loss"]) == tests and len(scores["random"]) == 2
    assert summarize(scores) == done.summary["figures"]
    options = done.summary["figures"]["option_accuracy"]
    assert [v for v in scores["version"]["option_accuracy"] if v is not None] in ([0, 0], [0, 1], [1, 0], [1, 1])
    assert options["version"] == pytest.approx(_mean(scores["version"]["option_accuracy"]))
    assert options["base"] == pytest.approx(_mean(scores["base"]["option_accuracy"]))
    assert options["random"] == pytest.approx(_mean([v for r in scores["random"] for v in r["option_accuracy"]]))
    loss = done.summary["figures"]["loss"]
    assert loss["difference"]["verdict"] in ("better", "worse", "inside the noise")
    assert loss["difference"]["low"] <= loss["difference"]["mean"] <= loss["difference"]["high"]
    assert [e.id for e in first.evaluations()] == [done.id]
    # the version's lineage names it, through the client and the CLI (both read the REST API)
    named = [{"id": done.id, "target": target, "status": "succeeded"}]
    assert client.dataset(dataset).version(1).info.lineage["evaluations"] == named
    listed = CliRunner().invoke(cli, ["dataset", "versions", dataset, "--json"],
                                env={"GRADWALK_API_URL": api_url, "GRADWALK_API_TOKEN": api_token})
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout)[0]["lineage"]["evaluations"] == named
    assert store.read("MATCH (e:Evaluation {id: $id})-[:OF]->(v:DatasetVersion)<-[:HAS_VERSION]-(:Dataset {name: $d}), "
                      "(e)-[:ON]->(:Target {name: $t}) RETURN v.version AS v",
                      {"id": done.id, "d": dataset, "t": target}) == [{"v": 1}]

    # the version's page lists it with its figures and a plot of them
    web = httpx.Client(base_url=api_url, timeout=60)
    assert web.post("/ui/signin", data={"token": api_token, "next": "/ui/"}).status_code == 303
    page = web.get(f"/ui/datasets/{dataset}/1")
    assert page.status_code == 200 and done.id in page.text and 'aria-label="loss on ' in page.text
    assert f'<a href="#evaluations">{done.id}</a>' in page.text  # in the lineage line
    assert loss["difference"]["verdict"] in page.text

    # a second version of the same size trains only its own rows: the base model and the random
    # subsets come from the artifact store
    second = client.select(pool=pool, target=target, method="random", ratio=0.25, dataset=dataset,
                           seed=1).wait(timeout=300).dataset_version()
    again = second.evaluate(target, **SETTINGS).wait(timeout=900)
    assert again.summary["cached"] == ["base", "random-0", "random-1"]
    assert client.evaluation(again.id).scores()["random"] == scores["random"]
    page = web.get(f"/ui/datasets/{dataset}")
    assert page.status_code == 200 and done.id in page.text and again.id in page.text
    web.close()

    # a cancelled evaluation keeps no figures and names no scores file
    cancelled = second.evaluate(target, **SETTINGS)
    assert cancelled.cancel().status == "cancelled"
    shown = cancelled.show()
    assert (shown.status, shown.summary, shown.scores) == ("cancelled", None, None)
    with pytest.raises(errors.NotFound, match="has no scores"):
        cancelled.scores()
    with pytest.raises(errors.Conflict, match="already cancelled"):
        cancelled.cancel()

    # a cancel reaches the middle of a fine-tune: 400 steps asked (the base model's scores are
    # cached), it stops at the next check, and no scores file or baseline is kept
    features = FeatureStore.from_settings(settings)
    baselines = features.files.keys(BASELINES)
    long = second.evaluate(target, **{**SETTINGS, "epochs": 100, "batch_size": 1})
    under_way = _wait_for_step(long)
    assert long.cancel().status == "cancelled"
    outcome = producer().AsyncResult(long.id).get(timeout=300)
    stopped = outcome["stopped"]
    assert (outcome["status"], stopped["what"], stopped["total"]) == ("cancelled", "step", 400)
    assert under_way <= stopped["done"] < 400, stopped  # inside the fine-tune, not at its end
    stopped_record = long.show()
    assert (stopped_record.status, stopped_record.summary, stopped_record.scores) == ("cancelled", None, None)
    assert not features.files.exists(scores_key(long.id)) and features.files.keys(BASELINES) == baselines

    # the target's evaluations are its dependants: a delete names them, a forced one keeps them
    with pytest.raises(errors.Conflict, match=f"evaluation {done.id}"):
        client.target(target).delete()
    client.target(target).delete(force=True)
    assert client.evaluation(done.id).show().target == target
    for e in (done, again):
        print(f"evaluation {e.id}: {e.started_at} .. {e.finished_at}, cached {e.summary['cached']}")
    print(f"evaluation {long.id}: {stopped_record.started_at} .. {stopped_record.finished_at}, cancelled at {stopped}")
