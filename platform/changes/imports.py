"""Importing records into a pool or a target: a curator's change, its token recorded as the maker."""

from __future__ import annotations

from pathlib import Path

from gradwalk import errors
from gradwalk.platform.changes import Context
from gradwalk.platform.intake import pools
from gradwalk.platform.shared.schemas import Format

KINDS = ("pool", "target")


def import_records(ctx: Context, kind: str, name: str, source: Path, *, fmt: Format = "auto",
                   split: str | None = None, skip_invalid: bool = False, source_label: str | None = None,
                   sent_as: str | None = None) -> pools.ImportReport:
    """Import the file or ``save_to_disk`` folder ``source`` (on this host) into pool (or target)
    ``name``; a bad record is refused by file, line and field (the file named ``sent_as`` when
    given: an upload's own name) unless ``skip_invalid``."""
    if kind not in KINDS:
        raise errors.InvalidInput(f"import into a pool or a target, not a {kind!r}")
    ctx.caller.require("curator", f"importing into {kind} {name!r}")
    run = pools.import_pool if kind == "pool" else pools.import_target
    return run(ctx.store, name, source, fmt=fmt, split=split, skip_invalid=skip_invalid,
               source_label=source_label, created_by=ctx.caller.name, sent_as=sent_as)
