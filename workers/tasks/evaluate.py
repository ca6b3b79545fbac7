"""The evaluation of a version: fine-tune on its rows and on random same-size subsets, score all
and the base model on the target's test part, keep the scores file, then the figures.

Thin on purpose: the record is :mod:`gradwalk.platform.versions.evaluations`, the work is
:mod:`gradwalk.workers.engine.evaluation`. The base model's and each random subset's scores are
cached in the artifact store (created once, first writer wins), so a rerun after a killed worker,
or a second version of the same size, trains only what is missing. The evaluation's figures are
written only after its scores file is whole. Inside a fine-tune or a scoring, the engine calls back
after every step or batch; every CHECK_S seconds that reports the step and sees a cancel.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from typing import Any

from gradwalk import errors
from gradwalk.platform.versions import datasets, evaluations
from gradwalk.platform.work import feature_runs
from gradwalk.platform.work.task_names import EVALUATE_RUN
from gradwalk.statuses import EvaluationStatus
from gradwalk.workers.app import app
from gradwalk.workers.context import feature_store, graph_store
from gradwalk.workers.engine.config import EngineConfig
from gradwalk.workers.recovery import NEO4J_RETRIES, retry_when_neo4j_is_back

log = logging.getLogger(__name__)


# How often, inside a fine-tune or a scoring, the evaluation reports its step and asks whether it
# was cancelled: one small Neo4j write a second costs nothing beside a training step, and a cancel
# stops the unit within about a second.
CHECK_S = 1.0


@app.task(name=EVALUATE_RUN.name, bind=True, max_retries=NEO4J_RETRIES)
def run_evaluation(self, evaluation_id: str) -> dict[str, Any]:
    store = graph_store()
    progress = _Progress(store, evaluation_id)
    try:
        return _run(store, evaluation_id, progress)
    except evaluations.Cancelled:
        log.info("evaluation %s cancelled at %s", evaluation_id, progress.position)
        return {"evaluation": evaluation_id, "status": EvaluationStatus.CANCELLED, "stopped": progress.position}
    except errors.ServiceUnavailable as e:
        retry_when_neo4j_is_back(self, e, store)  # a rerun reuses the cached scores
        _fail(store, evaluation_id, str(e))
        raise
    except errors.GradwalkError as e:
        _fail(store, evaluation_id, str(e))
        raise
    except Exception as e:
        _fail(store, evaluation_id, f"{type(e).__name__}: {e}")
        raise


def _fail(store, evaluation_id: str, error: str) -> None:
    try:
        evaluations.fail(store, evaluation_id, error)
    except errors.ServiceUnavailable as e:
        log.error("evaluation %s failed (%s); Neo4j could not record it: %s", evaluation_id, error, e)


class _Progress:
    """Stage, share done and ETA of the evaluation's units of work (each fine-tune with its
    scoring counts 1, scoring the base model 1/2), reported when a unit begins and, inside one,
    every CHECK_S seconds (:meth:`tick`, the engine's callback); raises Cancelled once a cancel was
    asked. ``position`` is the last step or batch reached, for the log and the task's result."""

    def __init__(self, store, evaluation_id: str) -> None:
        self.store, self.id = store, evaluation_id
        self.units, self.done, self.weight, self.within = 1.0, 0.0, 0.0, 0.0
        self.started = self.reported = time.monotonic()
        self.stage = "starting"
        self.position: dict[str, Any] = {"stage": self.stage}

    def begin(self, stage: str, weight: float) -> None:
        """The unit before is done; one of ``weight`` units begins."""
        self.done += self.weight
        self.stage, self.weight, self.within = stage, weight, 0.0
        self.position = {"stage": stage}
        self._report(stage)

    def tick(self, what: str, done: int, total: int) -> None:
        self.position = {"stage": self.stage, "what": what, "done": done, "total": total}
        if what == "step":
            self.within = done / total
        if time.monotonic() - self.reported >= CHECK_S:
            self._report(f"{self.stage}: {what} {done} of {total}")

    def _report(self, stage: str) -> None:
        self.reported = now = time.monotonic()
        finished = self.done + self.weight * self.within
        eta = (now - self.started) / finished * (self.units - finished) if finished else None
        evaluations.report(self.store, self.id, stage, 0.02 + 0.96 * finished / self.units, eta)


def _run(store, evaluation_id: str, progress: _Progress) -> dict[str, Any]:
    from gradwalk.workers.engine.evaluation import EvaluationConfig, score_base, summarize, train_and_score

    features = feature_store()
    record = evaluations.start(store, evaluation_id)
    asked = dict(record.settings)
    config = EngineConfig.for_device("auto", **asked.pop("engine", {}))
    ev = EvaluationConfig.for_device(config.device, **asked)
    version = datasets.describe(store, record.dataset, record.version)
    rows = [{"messages": r["messages"]} for r in datasets.iter_rows(store, record.dataset, record.version)]
    test = evaluations.test_examples(store, record.target)
    pool = evaluations.candidates(store, features, version)
    if len(pool) < len(rows):
        raise errors.InvalidInput(f"the pool {version.pool!r} has {len(pool)} rows now, fewer than the version's "
                                  f"{len(rows)}: no random subset of that size to compare with")
    engine = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("cache_dir", "device")}
    settings = {"evaluation": ev.to_dict(), "engine": engine, "device": config.device, "rows": len(rows),
                "test_examples": len(test), "pool_rows": len(pool)}
    scoring = {"engine": engine, "test": evaluations.digest([t["id"] for t in test]),
               **{k: v for k, v in ev.to_dict().items() if k in ("greedy", "max_new_tokens")}}
    training = {**scoring, "evaluation": {k: v for k, v in ev.to_dict().items() if k not in ("random_seeds", "seed")},
                "train_seed": ev.seed}
    progress.units = 1.5 + ev.random_seeds
    cached: list[str] = []

    def baseline(name: str, depends_on: dict[str, Any], make) -> dict[str, list]:
        key = evaluations.baseline_key(depends_on)
        found = evaluations.read_json(features, key)
        if found is not None:
            cached.append(name)
            return found["scores"]
        made = make()
        features.files.create(key, json.dumps({"depends_on": depends_on, "scores": made}).encode())
        return made

    progress.begin("scoring the base model", 0.5)
    base = baseline("base", {"what": "base", **scoring}, lambda: score_base(test, config, ev, progress.tick))
    progress.begin(f"fine-tuning on the version's {len(rows)} rows", 1.0)
    mine = train_and_score(rows, test, config, ev, ev.seed, progress.tick)
    randoms = []
    pool_digest = evaluations.digest(pool)
    for seed in range(ev.random_seeds):
        progress.begin(f"fine-tuning on random rows, seed {seed}", 1.0)
        depends_on = {"what": "random", "pool": version.pool, "candidates": pool_digest, "size": len(rows),
                      "seed": seed, **training}
        randoms.append(baseline(f"random-{seed}", depends_on, lambda seed=seed: train_and_score(
            feature_runs.examples(store, random.Random(seed).sample(pool, len(rows))), test, config, ev, ev.seed,
            progress.tick)))
    progress.begin("keeping the scores", 0.0)
    scores = {"evaluation": evaluation_id, "test_ids": [t["id"] for t in test], "base": base, "version": mine,
              "random": randoms, "random_seeds": list(range(ev.random_seeds))}
    key = evaluations.scores_key(evaluation_id)
    # First writer wins and the figures come from the file as kept, so a twin run of the same task
    # (a redelivery while the first still ran) can never leave figures that its file does not give.
    features.files.create(key, json.dumps(scores).encode())
    summary = {"figures": summarize(evaluations.read_json(features, key)), "cached": cached}
    evaluations.succeed(store, evaluation_id, settings=settings, summary=summary, scores=key)
    return {"evaluation": evaluation_id, "status": EvaluationStatus.SUCCEEDED}
