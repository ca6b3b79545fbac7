"""Deleting pools, targets, feature runs and graphs: the maker's token or an admin's, for
everything a forced delete takes with it too (the rules are platform/deletion.py's)."""

from __future__ import annotations

from gradwalk.platform.catalog import deletion
from gradwalk.platform.changes import Context
from gradwalk.platform.shared.schemas import DeletePublic


def delete_collection(ctx: Context, kind: str, name: str, *, force: bool = False) -> DeletePublic:
    """Delete pool (or target) ``name``; versions keep their rows."""
    ctx.caller.require("curator", f"deleting {kind} {name!r}")
    return deletion.delete_collection(ctx.store, kind, name, features=ctx.features, force=force, caller=ctx.caller,
                                      batch=ctx.settings.delete_batch_rows)


def delete_feature_run(ctx: Context, run_id: str, *, force: bool = False) -> DeletePublic:
    """Delete a feature run with its artifact files (a tombstone stays when a job used it)."""
    ctx.caller.require("curator", f"deleting feature run {run_id}")
    return deletion.delete_feature_run(ctx.store, run_id, features=ctx.features, force=force, caller=ctx.caller,
                                       batch=ctx.settings.delete_batch_rows)


def delete_graph(ctx: Context, graph: str, *, force: bool = False) -> DeletePublic:
    """Delete an instruction graph's edges and record (a tombstone stays when a job used it)."""
    ctx.caller.require("curator", f"deleting graph {graph}")
    return deletion.delete_graph(ctx.store, graph, force=force, caller=ctx.caller,
                                 batch=ctx.settings.delete_batch_rows)
