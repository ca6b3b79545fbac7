"""Feature run tasks (queue ``gpu``): warm up, fan out one task per shard, finish.

``gradwalk.features.run`` fixes the engine settings for the whole run and prepares its model, then
starts a chord of ``gradwalk.features.shard`` tasks whose body is ``gradwalk.features.finish``.
For a gradient run the settings are the device defaults of the worker that plans it, then the
user's overrides, and preparing means training the warm-up adapter (skipped when its checkpoints
exist). An embedding run has no warm-up: it loads the sentence encoder once (fetching it into the
cache on first use, before the shards fan out) and records its settings and width. Both kinds
write the same shards. A shard whose manifest exists is skipped, so a redelivered shard (its
worker killed) is redone at most once and every row lands exactly once. A row whose example has no
response token within ``max_length`` has no gradient: the shard leaves it out of its array and
names it in its manifest's ``skipped``, and the run records how many there were (an embedding
run skips none: every text has an embedding). A cancelled run stops at its worker's next step: the
warm-up at its next progress report, the fan-out before it starts, a shard not yet begun, the finish.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from celery import chord

from gradwalk import errors
from gradwalk.graph.knn.build import TRAIN_PART
from gradwalk.graph.selection.registry import EMBEDDING
from gradwalk.platform.shared.schemas import FeatureRunPublic
from gradwalk.platform.work import feature_extend, feature_runs
from gradwalk.platform.work.broker import GPU_QUEUE
from gradwalk.platform.work.feature_runs import val_part
from gradwalk.platform.work.task_names import FEATURES_EXTEND, FEATURES_FINISH, FEATURES_RUN, FEATURES_SHARD
from gradwalk.settings import get_settings
from gradwalk.statuses import FEATURE_RUN_FINISHED, FeatureRunStatus
from gradwalk.workers.app import app
from gradwalk.workers.context import feature_store, graph_store

if TYPE_CHECKING:
    from gradwalk.graph.store.adapter import GraphStore

log = logging.getLogger(__name__)

_FIXED_BY_WORKER = ("device", "cache_dir")
PROGRESS_EVERY_S = 2.0  # how often a running shard records its rows done


def _engine_config(engine: dict[str, Any]):
    from gradwalk.workers.engine.config import EngineConfig

    settings = get_settings()
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in engine.items()}
    return EngineConfig(**fields, device=settings.device, cache_dir=settings.cache_dir)


WARMUP_FOLDER = "warmup"  # beside the run's shards in the store; each host reads it from its own copy


def _warmup_dir(run_id: str, *, fetch: bool = False):
    """The run's warm-up folder on this host; with ``fetch``, copied from the store when absent there."""
    from gradwalk.workers.engine.warmup import MANIFEST

    if fetch:
        with contextlib.suppress(errors.NotFound):
            return feature_store().fetch_folder(run_id, WARMUP_FOLDER, MANIFEST)
    return feature_store().staging_folder(run_id, WARMUP_FOLDER)


def _embedder(engine: dict[str, Any]):
    from gradwalk.workers.engine.embeddings import Embedder

    settings = get_settings()
    chosen = {k: engine[k] for k in feature_runs.EMBEDDING_ENGINE_KEYS if k in engine}
    return Embedder(settings.cache_dir, settings.device, **chosen)


@functools.lru_cache(maxsize=1)
def _encoder(run_id: str) -> Callable[[list[dict[str, Any]], bool, Callable[[int, int], None]], np.ndarray]:
    """``encode(examples, train, progress)``: one run's feature rows (a zero row = no feature), its
    model (and adapters and projection) loaded once per worker process; ``progress(done, total)``
    is called as batches finish."""
    run = feature_runs.get(graph_store(), run_id)
    if run.kind == EMBEDDING:
        embedder = _embedder(run.engine)
        return lambda examples, _train, _progress: embedder.encode(examples)
    from gradwalk.workers.engine.features import Featurizer
    from gradwalk.workers.engine.warmup import load_checkpoints

    featurizer = Featurizer(_engine_config(run.engine), load_checkpoints(_warmup_dir(run_id, fetch=True)))
    return lambda examples, train, progress: featurizer.run(
        examples, "train" if train else "validation", progress=progress).rows


def _throttled(report: Callable[[int], None], every_s: float = PROGRESS_EVERY_S) -> Callable[[int, int], None]:
    """``progress(done, total)`` that passes ``done`` on at most once every ``every_s`` seconds."""
    last = [time.monotonic()]

    def progress(done: int, _total: int) -> None:
        if time.monotonic() - last[0] >= every_s:
            last[0] = time.monotonic()
            report(done)
    return progress


def _chunks(ids: list[str], size: int) -> list[list[str]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


class _Stopped(Exception):
    """The run was cancelled (or is being deleted) while this worker worked on it: stop quietly."""


def _prepare_gradients(store: GraphStore, run: FeatureRunPublic, ids: list[str]) -> dict[str, Any]:
    """Fix a gradient run's engine settings and train its warm-up; what the run records for them."""
    from gradwalk.workers.engine.config import EngineConfig, WarmupConfig
    from gradwalk.workers.engine.warmup import MANIFEST, warmup, warmup_indices

    chosen = EngineConfig.for_device(get_settings().device, **run.engine)
    engine = {k: v for k, v in dataclasses.asdict(chosen).items() if k not in _FIXED_BY_WORKER}
    config = _engine_config(engine)
    warm = WarmupConfig(**run.warmup)
    if not feature_runs.mark(store, run.id, FeatureRunStatus.WARMING_UP, engine=engine):
        raise _Stopped(run.id)

    def warm_progress(done: int, total: int) -> None:
        if not feature_runs.mark(store, run.id, FeatureRunStatus.WARMING_UP, warmup_steps_done=done,
                                 warmup_steps_total=total):
            raise _Stopped(run.id)

    sample = [ids[i] for i in warmup_indices(len(ids), warm.fraction, warm.seed)]
    checkpoints = warmup(feature_runs.examples(store, sample), _warmup_dir(run.id, fetch=True), config, warm,
                         progress=warm_progress)
    feature_store().publish_folder(run.id, WARMUP_FOLDER, MANIFEST)  # for the gpu workers of other hosts
    return {"engine": engine, "dim": len(checkpoints) * config.proj_dim,
            "checkpoints": [{"epoch": n + 1, "lr": c.lr} for n, c in enumerate(checkpoints)]}


def _prepare_embeddings(run: FeatureRunPublic) -> dict[str, Any]:
    """Load an embedding run's encoder (fetching it on first use); what the run records about it."""
    from gradwalk.workers.engine.embeddings import DEFAULT_EMBEDDING_MODEL

    embedder = _embedder(run.engine)
    engine = {"model": run.engine.get("model", DEFAULT_EMBEDDING_MODEL), "max_length": embedder.max_length,
              "batch_size": embedder.batch_size}
    return {"engine": engine, "dim": embedder.dim}


@app.task(name=FEATURES_RUN.name)
def run_features(run_id: str) -> dict[str, Any]:
    store = graph_store()
    run = feature_runs.get(store, run_id)
    if run.status in FEATURE_RUN_FINISHED:
        return {"run": run_id, "status": run.status}
    try:
        ids = feature_runs.member_ids(store, run.pool)
        prepared = _prepare_embeddings(run) if run.kind == EMBEDDING else _prepare_gradients(store, run, ids)
        size = get_settings().feature_shard_rows
        shards = [(TRAIN_PART, i, chunk) for i, chunk in enumerate(_chunks(ids, size))]
        for target in run.targets:
            shards += [(val_part(target), i, chunk)
                       for i, chunk in enumerate(_chunks(feature_runs.target_ids(store, target), size))]
        if not feature_runs.mark(store, run_id, FeatureRunStatus.FEATURIZING, shards_total=len(shards),
                                 rows_total=sum(len(c) for *_, c in shards), **prepared):
            raise _Stopped(run_id)
        _fan_out(run_id, shards)
        return {"run": run_id, "status": FeatureRunStatus.FEATURIZING, "shards": len(shards)}
    except _Stopped:
        return {"run": run_id, "status": feature_runs.get(store, run_id).status}
    except Exception as e:
        feature_runs.mark(store, run_id, FeatureRunStatus.FAILED, error=f"{type(e).__name__}: {e}"[:4000])
        raise


def _fan_out(run_id: str, shards: list[tuple[str, int, list[str]]]) -> None:
    """Featurise ``shards`` (part, index, row ids) as a chord whose body finishes the run."""
    body = finish_features.si(run_id).set(queue=GPU_QUEUE)
    if not shards:  # an extension whose rows all landed before it failed: only the finish is left
        body.apply_async()
        return
    chord([featurize_shard.si(run_id, part, index, chunk).set(queue=GPU_QUEUE)
           for part, index, chunk in shards])(body)


@app.task(name=FEATURES_EXTEND.name)
def extend_features(run_id: str) -> dict[str, Any]:
    """Featurise the pool rows a run lacks as new shards after its last one, with the run's own
    settings and warm-up (platform/work/feature_extend.py); the finish records the new generation."""
    store, features = graph_store(), feature_store()
    run = feature_runs.get(store, run_id)
    if run.status != FeatureRunStatus.EXTENDING:
        return {"run": run_id, "status": run.status}
    try:
        have, new = feature_extend.plan(store, features, run)
        val_rows = sum(m.rows + len(m.skipped) for target in run.targets
                       for m in features.manifests(run_id, val_part(target)))
        first = max((m.shard for m in features.manifests(run_id, TRAIN_PART)), default=-1) + 1
        shards = [(TRAIN_PART, first + i, chunk)
                  for i, chunk in enumerate(_chunks(new, get_settings().feature_shard_rows))]
        feature_runs.mark(store, run_id, FeatureRunStatus.EXTENDING, rows_total=len(have) + len(new) + val_rows,
                          shards_total=(run.shards_total or 0) + len(shards))
        _fan_out(run_id, shards)
        return {"run": run_id, "status": FeatureRunStatus.EXTENDING, "shards": len(shards), "rows": len(new)}
    except Exception as e:
        feature_runs.mark(store, run_id, FeatureRunStatus.FAILED, error=f"{type(e).__name__}: {e}"[:4000])
        raise


@app.task(name=FEATURES_SHARD.name)
def featurize_shard(run_id: str, part: str, shard: int, ids: list[str]) -> dict[str, Any]:
    store = graph_store()
    if feature_runs.get(store, run_id).status == FeatureRunStatus.CANCELLED:  # a shard not yet begun is dropped
        return {"run": run_id, "part": part, "shard": shard, "skipped": "cancelled"}
    try:
        if feature_store().manifest(run_id, part, shard) is None:
            train = part == TRAIN_PART
            examples = feature_runs.examples(store, ids, label="Instruction" if train else "ValExample")
            key = f"{part}/{shard}"
            rows = _encoder(run_id)(examples, train, _throttled(
                lambda done: feature_runs.shard_progress(store, run_id, key, done)))
            has_feature = np.linalg.norm(rows, axis=1) > 0
            feature_store().write_shard(run_id, part, shard, [i for i, ok in zip(ids, has_feature, strict=True) if ok],
                                        rows[has_feature],
                                        skipped=[i for i, ok in zip(ids, has_feature, strict=True) if not ok])
        feature_runs.shard_done(store, run_id, f"{part}/{shard}", len(ids))
        return {"run": run_id, "part": part, "shard": shard, "rows": len(ids)}
    except Exception as e:
        feature_runs.mark(store, run_id, FeatureRunStatus.FAILED, error=f"shard {part}/{shard}: {type(e).__name__}: {e}"[:4000])
        raise


@app.task(name=FEATURES_FINISH.name)
def finish_features(run_id: str) -> dict[str, Any]:
    """Check every planned shard is on disk with its rows, then mark the run complete.

    The run records ``rows`` (pool rows with a feature) and ``skipped`` (per part, rows without)."""
    store = graph_store()
    run = feature_runs.get(store, run_id)
    if run.status == FeatureRunStatus.CANCELLED:
        return {"run": run_id, "status": run.status}
    parts = [TRAIN_PART, *(val_part(t) for t in run.targets)]
    manifests = {part: feature_store().manifests(run_id, part) for part in parts}
    rows = {part: sum(m.rows for m in found) for part, found in manifests.items()}
    skipped = {part: sum(len(m.skipped) for m in found) for part, found in manifests.items()}
    if sum(rows.values()) + sum(skipped.values()) != run.rows_total:
        message = (f"feature run {run_id} finished with {sum(rows.values()) + sum(skipped.values())} "
                   f"of {run.rows_total} rows on disk")
        feature_runs.mark(store, run_id, FeatureRunStatus.FAILED, error=message)
        raise errors.Conflict(message)
    featureless = [part for part in parts if rows[part] == 0]
    if featureless:
        message = (f"feature run {run_id}: no row of {', '.join(featureless)} has a response token within "
                   f"max_length={run.engine.get('max_length')}; raise max_length or shorten the prompts")
        feature_runs.mark(store, run_id, FeatureRunStatus.FAILED, error=message)
        raise errors.InvalidInput(message)
    if any(skipped.values()):
        log.warning("feature run %s: rows without response tokens skipped: %s", run_id, skipped)
    feature_extend.finish_generation(store, run, rows[TRAIN_PART] + skipped[TRAIN_PART])
    feature_runs.mark(store, run_id, FeatureRunStatus.COMPLETE, parts=parts, rows=rows[TRAIN_PART], skipped=skipped)
    return {"run": run_id, "status": FeatureRunStatus.COMPLETE, "rows": rows, "skipped": skipped}
