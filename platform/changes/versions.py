"""Dataset versions: retire one (its maker's token or an admin's). A published version never
changes otherwise, so deleting one is refused with what to do instead."""

from __future__ import annotations

from gradwalk.platform.changes import Context
from gradwalk.platform.shared.schemas import VersionPublic
from gradwalk.platform.versions import datasets


def retire(ctx: Context, dataset: str, version: int, reason: str) -> VersionPublic:
    """Mark the version retired, with ``reason``; its rows stay as they are."""
    ctx.caller.require("curator", f"retiring version {version} of {dataset!r}")
    ctx.caller.require_owner(datasets.describe(ctx.store, dataset, version).created_by,
                             f"version {version} of {dataset!r}")
    return datasets.retire(ctx.store, dataset, version, reason)


def delete(ctx: Context, dataset: str, version: int) -> None:
    """Always refused (NotAllowed): a published version is immutable; retire it instead."""
    ctx.caller.require("curator", f"deleting version {version} of {dataset!r}")
    datasets.delete_version(ctx.store, dataset, version)
