"""Feature run tasks (queue ``gpu``): warm up, fan out one task per shard, finish.

``gradwalk.features.run`` fixes the engine settings for the whole run (the device defaults of the
worker that plans it, then the user's overrides), trains the warm-up adapter (skipped when its
checkpoints exist), and starts a chord of ``gradwalk.features.shard`` tasks whose body is
``gradwalk.features.finish``. A shard whose manifest exists is skipped, so a redelivered shard
(its worker killed) is redone at most once and every row lands exactly once.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any

from celery import chord

from gradwalk import errors
from gradwalk.platform import feature_runs
from gradwalk.platform.feature_runs import TRAIN_PART, val_part
from gradwalk.settings import get_settings
from gradwalk.workers.app import GPU_QUEUE, app
from gradwalk.workers.context import feature_store, graph_store

log = logging.getLogger(__name__)

_FIXED_BY_WORKER = ("device", "cache_dir")


def _engine_config(engine: dict[str, Any]):
    from gradwalk.workers.engine.config import EngineConfig

    settings = get_settings()
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in engine.items()}
    return EngineConfig(**fields, device=settings.device, cache_dir=settings.cache_dir)


def _warmup_dir(run_id: str):
    return feature_store().root / "features" / run_id / "warmup"


@functools.lru_cache(maxsize=1)
def _featurizer(run_id: str):
    """The model, adapters and projection of one run, loaded once per worker process."""
    from gradwalk.workers.engine.features import Featurizer
    from gradwalk.workers.engine.warmup import load_checkpoints

    run = feature_runs.get(graph_store(), run_id)
    return Featurizer(_engine_config(run["engine"]), load_checkpoints(_warmup_dir(run_id)))


def _chunks(ids: list[str], size: int) -> list[list[str]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


@app.task(name="gradwalk.features.run")
def run_features(run_id: str) -> dict[str, Any]:
    from gradwalk.workers.engine.config import EngineConfig, WarmupConfig
    from gradwalk.workers.engine.warmup import warmup, warmup_indices

    store = graph_store()
    run = feature_runs.get(store, run_id)
    if run["status"] in ("complete", "failed"):
        return {"run": run_id, "status": run["status"]}
    try:
        settings = get_settings()
        chosen = EngineConfig.for_device(settings.device, **run["engine"])
        engine = {k: v for k, v in dataclasses.asdict(chosen).items() if k not in _FIXED_BY_WORKER}
        config = _engine_config(engine)
        warm = WarmupConfig(**run["warmup"])
        ids = feature_runs.member_ids(store, run["pool"])
        feature_runs.mark(store, run_id, "warming up", engine=engine)

        def warm_progress(done: int, total: int) -> None:
            feature_runs.mark(store, run_id, "warming up", warmup_steps_done=done, warmup_steps_total=total)

        sample = [ids[i] for i in warmup_indices(len(ids), warm.fraction, warm.seed)]
        checkpoints = warmup(feature_runs.examples(store, sample), _warmup_dir(run_id), config, warm,
                             progress=warm_progress)
        size = settings.feature_shard_rows
        shards = [(TRAIN_PART, i, chunk) for i, chunk in enumerate(_chunks(ids, size))]
        for target in run["targets"]:
            shards += [(val_part(target), i, chunk)
                       for i, chunk in enumerate(_chunks(feature_runs.target_ids(store, target), size))]
        feature_runs.mark(
            store, run_id, "featurizing", rows_total=sum(len(c) for *_, c in shards), shards_total=len(shards),
            dim=len(checkpoints) * config.proj_dim,
            checkpoints=[{"epoch": n + 1, "lr": c.lr} for n, c in enumerate(checkpoints)],
        )
        header = [featurize_shard.si(run_id, part, index, chunk).set(queue=GPU_QUEUE) for part, index, chunk in shards]
        chord(header)(finish_features.si(run_id).set(queue=GPU_QUEUE))
        return {"run": run_id, "status": "featurizing", "shards": len(shards)}
    except Exception as e:
        feature_runs.mark(store, run_id, "failed", error=f"{type(e).__name__}: {e}"[:4000])
        raise


@app.task(name="gradwalk.features.shard")
def featurize_shard(run_id: str, part: str, shard: int, ids: list[str]) -> dict[str, Any]:
    store = graph_store()
    try:
        if feature_store().manifest(run_id, part, shard) is None:
            train = part == TRAIN_PART
            examples = feature_runs.examples(store, ids, label="Instruction" if train else "ValExample")
            result = _featurizer(run_id).run(examples, "train" if train else "validation")
            feature_store().write_shard(run_id, part, shard, ids, result.rows)
        feature_runs.shard_done(store, run_id, f"{part}/{shard}", len(ids))
        return {"run": run_id, "part": part, "shard": shard, "rows": len(ids)}
    except Exception as e:
        feature_runs.mark(store, run_id, "failed", error=f"shard {part}/{shard}: {type(e).__name__}: {e}"[:4000])
        raise


@app.task(name="gradwalk.features.finish")
def finish_features(run_id: str) -> dict[str, Any]:
    """Check every planned shard is on disk with its rows, then mark the run complete."""
    store = graph_store()
    run = feature_runs.get(store, run_id)
    parts = [TRAIN_PART, *(val_part(t) for t in run["targets"])]
    rows = {part: sum(m.rows for m in feature_store().manifests(run_id, part)) for part in parts}
    if sum(rows.values()) != run["rows_total"]:
        message = f"feature run {run_id} finished with {sum(rows.values())} of {run['rows_total']} rows on disk"
        feature_runs.mark(store, run_id, "failed", error=message)
        raise errors.Conflict(message)
    feature_runs.mark(store, run_id, "complete", parts=parts)
    return {"run": run_id, "status": "complete", "rows": rows}
