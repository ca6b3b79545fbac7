"""Importing records into a pool or a target: a curator's change, its token recorded as the maker."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from gradwalk import errors
from gradwalk.platform.changes import Context
from gradwalk.platform.intake import pools, uploads
from gradwalk.platform.shared.schemas import Format

KINDS = ("pool", "target")


def import_records(ctx: Context, kind: str, name: str, source: Path, *, fmt: Format = "auto",
                   split: str | None = None, skip_invalid: bool = False, source_label: str | None = None,
                   sent_as: str | None = None, part: str = "validation", test_fraction: float | None = None,
                   seed: int = 0) -> pools.ImportReport:
    """Import the file or ``save_to_disk`` folder ``source`` (on this host) into pool (or target)
    ``name``; a bad record is refused by file, line and field (the file named ``sent_as`` when
    given: an upload's own name) unless ``skip_invalid``.

    A target has two parts: ``part`` says which one ``source`` fills, or ``test_fraction`` splits
    it, seeded by ``seed``, into both (the report's ``test`` is the test part's)."""
    if kind not in KINDS:
        raise errors.InvalidInput(f"import into a pool or a target, not a {kind!r}")
    if kind == "pool" and (part != "validation" or test_fraction is not None):
        raise errors.InvalidInput("a pool has no validation or test part: give part and test_fraction for targets only")
    if test_fraction is not None and part != "validation":
        raise errors.InvalidInput("a test split imports both parts: leave part out with test_fraction")
    ctx.caller.require("curator", f"importing into {kind} {name!r}")
    if kind == "pool":
        return pools.import_pool(ctx.store, name, source, fmt=fmt, split=split, skip_invalid=skip_invalid,
                                 source_label=source_label, created_by=ctx.caller.name, sent_as=sent_as)

    def into(into_part: str, keep: Callable[[str], bool] | None = None) -> pools.ImportReport:
        return pools.import_target(ctx.store, name, source, fmt=fmt, split=split, skip_invalid=skip_invalid,
                                   source_label=source_label, created_by=ctx.caller.name, sent_as=sent_as,
                                   part=into_part, keep=keep)

    if test_fraction is None:
        return into(part)
    held_out = pools.held_out_ids(source, fraction=test_fraction, seed=seed, fmt=fmt, split=split,
                                  skip_invalid=skip_invalid, sent_as=sent_as)
    validation = into("validation", lambda row: row not in held_out)
    return dataclasses.replace(validation, test=into("test", held_out.__contains__))


def import_upload(ctx: Context, kind: str, name: str, stream: BinaryIO, filename: str | None,
                  **options: Any) -> pools.ImportReport:
    """Import an uploaded file (the REST upload's and the web page's) into pool (or target)
    ``name``: it lands in a temporary folder, inflated and measured under the upload limits
    (platform/intake/uploads.py), and is read as :func:`import_records` reads a file sent as
    ``filename``. The role is checked before a byte is written."""
    ctx.caller.require("curator", f"importing into {kind} {name!r}")
    with uploads.received(stream, filename, ctx.settings) as (path, label):
        return import_records(ctx, kind, name, path, sent_as=label, **options)
