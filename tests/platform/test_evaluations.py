"""Evaluating versions end to end through the client, with the real model and workers: a
version against random same-size subsets and the base model on the target's test part, figures
that its stored per-example scores reproduce, random baselines reused by the next version of the
same size, and a cancelled evaluation that keeps nothing."""

from __future__ import annotations

import httpx
import pytest

from gradwalk import errors
from gradwalk.platform.demo.sources import estimated_tokens, write_jsonl
from gradwalk.workers.engine.evaluation import summarize

pytestmark = pytest.mark.timeout(1200)

# The real model, small: a rank-4 adapter, short rows, one epoch, two random seeds, 4 greedy tokens.
SETTINGS = {"epochs": 1, "random_seeds": 2, "batch_size": 4, "greedy": True, "max_new_tokens": 4,
            "engine": {"lora_r": 4, "lora_alpha": 16, "max_length": 128, "batch_size": 8}}


def _rows(shipped: dict, name: str, limit: int) -> list[dict]:
    return [r for r in shipped[name] if sum(estimated_tokens(m["content"]) for m in r["messages"]) <= limit]


def test_a_version_is_evaluated_against_random_rows(client, api_url, api_token, store, shipped, prefix, tmp_path):
    pool, target, dataset = f"{prefix}pool", f"{prefix}gsm8k", f"{prefix}random"
    write_jsonl(_rows(shipped, "pool", 40)[:16], tmp_path / "pool.jsonl")
    problems = _rows(shipped, "gsm8k", 100)
    write_jsonl(problems[:3], tmp_path / "val.jsonl")
    write_jsonl(problems[3:7], tmp_path / "test.jsonl")
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
    assert set(done.summary["figures"]) == {"loss", "exact_match"}
    assert done.settings["evaluation"]["epochs"] == 1 and done.settings["rows"] == 4
    assert done.settings["test_examples"] == tests and done.settings["pool_rows"] == 16

    # the figures are what the stored per-example scores give
    scores = client.evaluation(done.id).scores()
    assert len(scores["version"]["loss"]) == tests and len(scores["random"]) == 2
    assert summarize(scores) == done.summary["figures"]
    loss = done.summary["figures"]["loss"]
    assert loss["difference"]["verdict"] in ("better", "worse", "inside the noise")
    assert loss["difference"]["low"] <= loss["difference"]["mean"] <= loss["difference"]["high"]
    assert [e.id for e in first.evaluations()] == [done.id]
    assert store.read("MATCH (e:Evaluation {id: $id})-[:OF]->(v:DatasetVersion)<-[:HAS_VERSION]-(:Dataset {name: $d}), "
                      "(e)-[:ON]->(:Target {name: $t}) RETURN v.version AS v",
                      {"id": done.id, "d": dataset, "t": target}) == [{"v": 1}]

    # the version's page lists it with its figures and a plot of them
    web = httpx.Client(base_url=api_url, timeout=60)
    assert web.post("/ui/signin", data={"token": api_token, "next": "/ui/"}).status_code == 303
    page = web.get(f"/ui/datasets/{dataset}/1")
    assert page.status_code == 200 and done.id in page.text and 'aria-label="loss on ' in page.text
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

    # the target's evaluations are its dependants: a delete names them, a forced one keeps them
    with pytest.raises(errors.Conflict, match=f"evaluation {done.id}"):
        client.target(target).delete()
    client.target(target).delete(force=True)
    assert client.evaluation(done.id).show().target == target
    for e in (done, again):
        print(f"evaluation {e.id}: {e.started_at} .. {e.finished_at}, cached {e.summary['cached']}")
