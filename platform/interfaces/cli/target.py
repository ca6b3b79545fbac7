"""``gradwalk target``: import, list, show, rows, delete, as ``gradwalk pool`` has them."""

from __future__ import annotations

import typer

from gradwalk.platform.interfaces.cli.common import JsonFlag
from gradwalk.platform.interfaces.cli.pool import (
    FormatOpt,
    LabelOpt,
    OnServerOpt,
    SkipOpt,
    Source,
    SplitOpt,
    run_import,
)
from gradwalk.platform.interfaces.cli.verbs import add_collection_verbs

target_app = typer.Typer(help="Targets: validation examples of the task you care about.", no_args_is_help=True)


@target_app.command("import")
def target_import(name: str, source: Source, fmt: FormatOpt = "auto", split: SplitOpt = None,
                  skip_invalid: SkipOpt = False, source_label: LabelOpt = None, on_server: OnServerOpt = False,
                  json_out: JsonFlag = False) -> None:
    """Import validation examples into target NAME (created if new; re-importing is a no-op).

    Example: gradwalk target import gsm8k data/gsm8k-val.jsonl
    """
    run_import("target", name, source, fmt, split, skip_invalid, source_label, on_server, json_out)


add_collection_verbs(target_app, "target", "gsm8k")
