"""``gradwalk migrate``: apply the Cypher migrations to Neo4j."""

from __future__ import annotations

import json

import typer

from gradwalk.platform.interfaces.cli.bootstrap import connect
from gradwalk.platform.interfaces.cli.common import JsonFlag


def migrate(json_out: JsonFlag = False) -> None:
    """Apply pending Cypher migrations (migrations/V*.cypher) in order, under a lock.

    Example: gradwalk migrate
    """
    from gradwalk.graph.store.migrations import migrate as apply_migrations

    with connect() as store:
        newly = apply_migrations(store)
    names = [m.path.name for m in newly]
    typer.echo(json.dumps({"applied": names}) if json_out else f"applied: {', '.join(names) or 'none pending'}")
