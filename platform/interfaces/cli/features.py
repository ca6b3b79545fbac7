"""``gradwalk features``: start a feature run of a pool (and its targets), follow it, cancel it,
extend it, and list, show and delete runs, through the REST API like every noun.

``--kind gradient`` (the default) computes LoRA gradient features after a warm-up; ``--kind
embedding`` computes all-MiniLM-L6-v2 sentence embeddings (for the ``embedding`` and
``g2is-no-gradient`` methods), which take only ``--model`` and ``--batch-size``.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from gradwalk.platform.interfaces.cli.common import JsonFlag, client, print_json
from gradwalk.platform.interfaces.cli.verbs import ForceFlag, echo_dependants, finish_delete
from gradwalk.platform.shared.schemas import FIXED_SETTINGS, FeatureRunExtension, FeatureRunPublic
from gradwalk.statuses import FeatureRunStatus

features_app = typer.Typer(help="Gradient features or embeddings of a pool and its targets (GPU workers).",
                           no_args_is_help=True)

WaitFlag = Annotated[bool, typer.Option("--wait/--no-wait", help="Follow it until it ends.")]


@features_app.command("run")
def features_run(
    pool: Annotated[str, typer.Argument(help="The pool to featurise.")],
    target: Annotated[list[str], typer.Option("--target", "-t", help="A target to featurise too (repeatable).")],
    kind: Annotated[str, typer.Option(help="gradient (LoRA gradient features) or embedding (sentence "
                                           "embeddings).")] = "gradient",
    lora_r: Annotated[int | None, typer.Option(help="LoRA rank (GPU default 128, CPU 8).")] = None,
    proj_dim: Annotated[int | None, typer.Option(help="Projected dims per checkpoint (default 8192 on GPU and CPU: the sparse projection costs about the same at any width).")] = None,
    max_length: Annotated[int | None, typer.Option(help="Token limit per example (GPU 2048, CPU 512).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Examples per batch (per-example gradients, or "
                                                        "embeddings: default 64).")] = None,
    model: Annotated[str | None, typer.Option(help="A HF causal-LM folder on the workers (default "
                                                   "SmolLM2-135M-Instruct), or for embeddings a "
                                                   "sentence-transformers folder (default all-MiniLM-L6-v2).")] = None,
    warmup_fraction: Annotated[float | None, typer.Option(help="Fraction of the pool the warm-up trains on "
                                                               "(default 0.05).")] = None,
    warmup_epochs: Annotated[int | None, typer.Option(help="Warm-up epochs, one checkpoint each (default 4).")] = None,
    wait: WaitFlag = True,
    json_out: JsonFlag = False,
) -> None:
    """Queue a feature run: warm-up, then per-example LoRA gradient features of every row (or, with
    --kind embedding, a sentence embedding of every row).

    Example: gradwalk features run my-pool --target gsm8k
    """
    engine = {k: v for k, v in {"lora_r": lora_r, "proj_dim": proj_dim, "max_length": max_length,
                                "batch_size": batch_size, "model": model}.items() if v is not None}
    if lora_r is not None:
        engine["lora_alpha"] = 4 * lora_r  # keep LESS's alpha/r = 4
    warmup = {k: v for k, v in {"fraction": warmup_fraction, "epochs": warmup_epochs}.items() if v is not None}
    handle = client().start_feature_run(pool, target, kind=kind, engine=engine, warmup=warmup)
    run = handle.wait(progress=not json_out) if wait else handle.show()
    typer.echo(run.model_dump_json() if json_out else f"{run.id} ({run.kind}): {run.status} ({run.rows_done} rows)")


@features_app.command("extend")
def features_extend(
    run_id: Annotated[str, typer.Argument(help="The complete feature run whose pool has grown.")],
    wait: WaitFlag = True,
    json_out: JsonFlag = False,
) -> None:
    """Featurise only the pool rows the run lacks, with the run's own model, LoRA shape, projection
    seed, max_length and warm-up checkpoints, so new rows get what a full run gives them. It takes
    no settings: a run with other settings is a new run (gradwalk features run POOL). Then extend
    its graphs with gradwalk graph extend.

    Example: gradwalk features extend fr-0123456789ab
    """
    handle = client().feature_run(run_id)
    run = handle.extend()
    if run.adding and wait:
        run = FeatureRunExtension(**handle.wait(progress=not json_out).model_dump(), adding=run.adding)
    if json_out:
        typer.echo(run.model_dump_json())
    elif not run.adding and run.status == FeatureRunStatus.COMPLETE:
        typer.echo(f"{run_id}: already holds every row of pool {run.pool}; nothing to add")
    else:
        typer.echo(f"{run_id} ({run.kind}): {run.status}, {run.adding} new rows with the run's own settings "
                   f"({', '.join(FIXED_SETTINGS)}); to change any of them start a new run")


@features_app.command("status")
def features_status(run_id: str, json_out: JsonFlag = False) -> None:
    """Status and progress (rows done / total) of a feature run.

    Example: gradwalk features status fr-0123456789ab
    """
    run = client().feature_run(run_id).show()
    if json_out:
        typer.echo(run.model_dump_json())
    else:
        typer.echo(f"{run_id} ({run.kind}): {run.status}, {run.rows_done}/{run.rows_total} rows"
                   + (f", error: {run.error}" if run.error else ""))


@features_app.command("cancel")
def features_cancel(run_id: str, json_out: JsonFlag = False) -> None:
    """Cancel a queued, warming-up or featurizing run (the token that started it, or an admin's):
    it ends cancelled and its workers stop at their next step.

    Example: gradwalk features cancel fr-0123456789ab
    """
    run = client().feature_run(run_id).cancel()
    typer.echo(run.model_dump_json() if json_out else f"{_run_line(run)}\n  {run.error}")


def _run_line(run: FeatureRunPublic) -> str:
    return (f"{run.id:<16} {run.kind:<9} {run.status:<11} pool {run.pool}  {run.rows_done}/{run.rows_total} rows  "
            f"{run.created_at}" + (f"  by {run.created_by}" if run.created_by else ""))


@features_app.command("list")
def features_list(
    pool: Annotated[str | None, typer.Option(help="Only runs of this pool.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only runs of this kind: gradient or embedding.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """List feature runs, newest first, with kind, status, pool and progress (deleted ones as tombstones).

    Example: gradwalk features list --pool my-pool --kind gradient
    """
    found = client().feature_runs(pool=pool, kind=kind)
    if json_out:
        print_json([run.model_dump() for run in found])
        return
    for run in found:
        typer.echo(_run_line(run))


@features_app.command("show")
def features_show(run_id: str, json_out: JsonFlag = False) -> None:
    """Show a feature run: its record, and the graphs, jobs and versions that depend on it.

    Example: gradwalk features show fr-0123456789ab
    """
    run = client().feature_run(run_id).show()
    if json_out:
        typer.echo(run.model_dump_json())
        return
    typer.echo(_run_line(run))
    for key in ("engine", "warmup", "targets", "parts", "error", "deleted_at", "deleted_by"):
        if getattr(run, key, None):
            typer.echo(f"  {key}: {json.dumps(run.model_dump()[key])}")
    echo_dependants(run.dependants)


@features_app.command("delete")
def features_delete(run_id: str, force: ForceFlag = False, json_out: JsonFlag = False) -> None:
    """Delete a feature run and its artifact files (and, with --force, its graphs); a run a job used
    stays as a tombstone. Run it again to finish a delete that was cut short.

    Example: gradwalk features delete fr-0123456789ab --force
    """
    finish_delete(client().feature_run(run_id).delete(force=force), json_out)
