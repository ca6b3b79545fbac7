"""The ``gradwalk`` command line.

Each command is a thin wrapper over a library function; gradwalk's error families become one
line on stderr and an exit code (InvalidInput 2, NotFound 3, Conflict 4, NotAllowed 5,
ServiceUnavailable 6) instead of a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from gradwalk import errors
from gradwalk.settings import get_settings

app = typer.Typer(
    name="gradwalk",
    help="Select the few percent of an instruction pool that teach a target task best (G2IS).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
services_app = typer.Typer(help="Run the local Neo4j, Redis and Celery workers (no Docker).", no_args_is_help=True)
app.add_typer(services_app, name="services")
pool_app = typer.Typer(help="Instruction pools: the examples to select from.", no_args_is_help=True)
app.add_typer(pool_app, name="pool")
target_app = typer.Typer(help="Targets: validation examples of the task you care about.", no_args_is_help=True)
app.add_typer(target_app, name="target")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _echo(message: str) -> None:
    typer.echo(message, err=True)


@services_app.command("up")
def services_up(json_out: JsonFlag = False) -> None:
    """Start Neo4j, Redis and one worker per queue (gpu, cpu); wait until each answers; migrate."""
    from gradwalk.platform import services

    statuses = services.up(get_settings(), echo=_echo)
    if json_out:
        typer.echo(json.dumps([s.__dict__ for s in statuses]))


@services_app.command("down")
def services_down() -> None:
    """Stop the processes that `services up` started (and nothing else)."""
    from gradwalk.platform import services

    services.down(get_settings(), echo=_echo)


@services_app.command("status")
def services_status(json_out: JsonFlag = False) -> None:
    """Print each local service, its address and pid."""
    from gradwalk.platform import services

    statuses = services.status(get_settings())
    if json_out:
        typer.echo(json.dumps([s.__dict__ for s in statuses]))
        return
    for s in statuses:
        typer.echo(f"{s.name:<13} {s.address:<26} {'pid ' + str(s.pid) if s.running else 'stopped'}")


@services_app.command("build")
def services_build() -> None:
    """Build the local Neo4j launcher with Maven (once; cached by a hash of its sources)."""
    from gradwalk.platform import services

    path = services.build_launcher(get_settings(), echo=_echo)
    typer.echo(f"neo4j launcher: {path}")


Source = Annotated[str, typer.Argument(help="A .jsonl/.json(.gz) file or a datasets save_to_disk folder.")]
FormatOpt = Annotated[str, typer.Option("--format", help="auto, alpaca, sharegpt, messages or prompt_completion.")]
SplitOpt = Annotated[str | None, typer.Option("--split", help="Split of a DatasetDict folder.")]
SkipOpt = Annotated[bool, typer.Option("--skip-invalid", help="Import the valid records; report the rest.")]
LabelOpt = Annotated[str | None, typer.Option("--source-label", help="Stored as each record's source.")]


def _import(kind: str, name: str, source: str, fmt: str, split: str | None, skip_invalid: bool,
            source_label: str | None, json_out: bool) -> None:
    from gradwalk.graph.store import GraphStore
    from gradwalk.platform import pools

    run = pools.import_pool if kind == "pool" else pools.import_target
    with GraphStore.connect(get_settings()) as store, typer.progressbar(
        length=1, label=f"importing into {kind} {name}", file=sys.stderr
    ) as bar:
        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        report = run(store, name, source, fmt=fmt, split=split, skip_invalid=skip_invalid,
                     source_label=source_label, progress=progress)
    if json_out:
        typer.echo(json.dumps(report.to_dict()))
        return
    typer.echo(report.summary())
    for reason in report.records.skip_reasons:
        typer.echo(f"  skipped: {reason}", err=True)


@pool_app.command("import")
def pool_import(name: str, source: Source, fmt: FormatOpt = "auto", split: SplitOpt = None,
                skip_invalid: SkipOpt = False, source_label: LabelOpt = None, json_out: JsonFlag = False) -> None:
    """Import instruction records into pool NAME (created if new; re-importing is a no-op)."""
    _import("pool", name, source, fmt, split, skip_invalid, source_label, json_out)


@target_app.command("import")
def target_import(name: str, source: Source, fmt: FormatOpt = "auto", split: SplitOpt = None,
                  skip_invalid: SkipOpt = False, source_label: LabelOpt = None, json_out: JsonFlag = False) -> None:
    """Import validation examples into target NAME (created if new; re-importing is a no-op)."""
    _import("target", name, source, fmt, split, skip_invalid, source_label, json_out)


@app.command("migrate")
def migrate(json_out: JsonFlag = False) -> None:
    """Apply pending Cypher migrations (migrations/V*.cypher) in order, under a lock."""
    from gradwalk.graph.migrations import migrate as apply_migrations
    from gradwalk.graph.store import GraphStore

    with GraphStore.connect(get_settings()) as store:
        newly = apply_migrations(store)
    names = [m.path.name for m in newly]
    typer.echo(json.dumps({"applied": names}) if json_out else f"applied: {', '.join(names) or 'none pending'}")


@app.command("demo")
def demo() -> None:
    """Run the main job end to end on the embedded default (starts local services as needed)."""
    from gradwalk.platform.demo import run_demo

    run_demo(get_settings(), echo=_echo)


def main() -> None:
    try:
        app()
    except errors.GradwalkError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
