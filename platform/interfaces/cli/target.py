"""``gradwalk target``: import, list, show, rows, delete, as ``gradwalk pool`` has them."""

from __future__ import annotations

from typing import Annotated

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


TestOpt = Annotated[str | None, typer.Option("--test", help="A file of held-out test examples (the part an "
                                                            "evaluation scores on), read as SOURCE is.")]
FractionOpt = Annotated[float | None, typer.Option("--test-fraction", min=0.0, max=1.0, help=(
    "Hold out this share of SOURCE's examples as the test part, drawn by --seed."))]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, help="The seed of --test-fraction's split.")]


@target_app.command("import")
def target_import(name: str, source: Source, fmt: FormatOpt = "auto", split: SplitOpt = None,
                  skip_invalid: SkipOpt = False, source_label: LabelOpt = None, on_server: OnServerOpt = False,
                  test: TestOpt = None, test_fraction: FractionOpt = None, seed: SeedOpt = 0,
                  json_out: JsonFlag = False) -> None:
    """Import validation examples into target NAME (created if new; re-importing is a no-op), and
    with --test or --test-fraction its held-out test part.

    Example: gradwalk target import gsm8k data/gsm8k-val.jsonl --test data/gsm8k-test.jsonl
    """
    run_import("target", name, source, fmt, split, skip_invalid, source_label, on_server, json_out,
               test=test, test_fraction=test_fraction, seed=seed if test_fraction is not None else None)


add_collection_verbs(target_app, "target", "gsm8k")
