"""``gradwalk pool``: import, list, show, rows, delete, through the REST API (:mod:`verbs` has the
verbs every noun shares, the same ones ``gradwalk target`` has)."""

from __future__ import annotations

import json
from typing import Annotated, Any, get_args

import typer

from gradwalk.platform.interfaces.cli.common import JsonFlag, client
from gradwalk.platform.interfaces.cli.verbs import add_collection_verbs
from gradwalk.platform.shared.schemas import Format

pool_app = typer.Typer(help="Instruction pools: the examples to select from.", no_args_is_help=True)

FORMATS = get_args(Format)
Source = Annotated[str, typer.Argument(help="A .jsonl/.json(.gz) or .parquet file to upload, or with --on-server a "
                                            "file, a folder of .parquet files or a datasets save_to_disk folder "
                                            "in the API server's import folder.")]
FormatOpt = Annotated[str, typer.Option("--format", help=f"{', '.join(FORMATS[:-1])} or {FORMATS[-1]}.")]
SplitOpt = Annotated[str | None, typer.Option("--split", help="Split of a DatasetDict folder (with --on-server).")]
SkipOpt = Annotated[bool, typer.Option("--skip-invalid", help="Import the valid records; report the rest.")]
LabelOpt = Annotated[str | None, typer.Option("--source-label", help="Source of the records that name none of their own (the file itself is kept as the import's provenance).")]
OnServerOpt = Annotated[bool, typer.Option("--on-server", help="Import SOURCE from the API server's import folder "
                                                               "(GRADWALK_IMPORT_DIR there) instead of uploading it.")]


def run_import(kind: str, name: str, source: str, fmt: str, split: str | None, skip_invalid: bool,
               source_label: str | None, on_server: bool, json_out: bool, **test: Any) -> None:
    """Import into pool (or target) NAME through the REST API; the token is its maker. ``test``:
    a target's test part (:meth:`Client.import_target`)."""
    api = client()
    run = api.import_pool if kind == "pool" else api.import_target
    report = run(name, source, fmt=fmt, on_server=on_server, skip_invalid=skip_invalid, split=split,
                 source_label=source_label, **test)
    if json_out:
        typer.echo(json.dumps(report.model_dump()))
        return
    typer.echo(report.summary())
    for reason in report.records.skip_reasons + (report.test.records.skip_reasons if report.test else []):
        typer.echo(f"  skipped: {reason}", err=True)


@pool_app.command("import")
def pool_import(name: str, source: Source, fmt: FormatOpt = "auto", split: SplitOpt = None,
                skip_invalid: SkipOpt = False, source_label: LabelOpt = None, on_server: OnServerOpt = False,
                json_out: JsonFlag = False) -> None:
    """Import instruction records into pool NAME (created if new; re-importing is a no-op).

    Example: gradwalk pool import my-pool data/pool.jsonl --format alpaca
    """
    run_import("pool", name, source, fmt, split, skip_invalid, source_label, on_server, json_out)


add_collection_verbs(pool_app, "pool", "my-pool")
