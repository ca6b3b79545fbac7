"""``gradwalk pool``: import, list, show, rows, delete. ``import`` writes to Neo4j directly; the
other verbs go through the REST API (:mod:`verbs`), the same ones ``gradwalk target`` has."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from gradwalk.platform.intake.ingest import FORMATS
from gradwalk.platform.interfaces.cli.common import JsonFlag, connect, maker
from gradwalk.platform.interfaces.cli.verbs import add_collection_verbs
from gradwalk.platform.shared.waiting import progress_bar

pool_app = typer.Typer(help="Instruction pools: the examples to select from.", no_args_is_help=True)

Source = Annotated[str, typer.Argument(help="A .jsonl/.json(.gz) file or a datasets save_to_disk folder.")]
FormatOpt = Annotated[str, typer.Option("--format", help=f"{', '.join(FORMATS[:-1])} or {FORMATS[-1]}.")]
SplitOpt = Annotated[str | None, typer.Option("--split", help="Split of a DatasetDict folder.")]
SkipOpt = Annotated[bool, typer.Option("--skip-invalid", help="Import the valid records; report the rest.")]
LabelOpt = Annotated[str | None, typer.Option("--source-label", help="Source of the records that name none of their own (the file itself is kept as the import's provenance).")]


def run_import(kind: str, name: str, source: str, fmt: str, split: str | None, skip_invalid: bool,
               source_label: str | None, json_out: bool) -> None:
    """Import into pool (or target) NAME; the token in GRADWALK_API_TOKEN, if any, is its maker."""
    from gradwalk.platform.intake import pools

    run = pools.import_pool if kind == "pool" else pools.import_target
    with connect() as store, progress_bar(f"importing into {kind} {name}") as update:
        report = run(store, name, source, fmt=fmt, split=split, skip_invalid=skip_invalid,
                     source_label=source_label, progress=update, created_by=maker(store))
    if json_out:
        typer.echo(json.dumps(report.to_dict()))
        return
    typer.echo(report.summary())
    for reason in report.records.skip_reasons:
        typer.echo(f"  skipped: {reason}", err=True)


@pool_app.command("import")
def pool_import(name: str, source: Source, fmt: FormatOpt = "auto", split: SplitOpt = None,
                skip_invalid: SkipOpt = False, source_label: LabelOpt = None, json_out: JsonFlag = False) -> None:
    """Import instruction records into pool NAME (created if new; re-importing is a no-op).

    Example: gradwalk pool import my-pool data/pool.jsonl --format alpaca
    """
    run_import("pool", name, source, fmt, split, skip_invalid, source_label, json_out)


add_collection_verbs(pool_app, "pool", "my-pool")
