"""``gradwalk cypher``: a read-only Cypher query through the REST API."""

from __future__ import annotations

from typing import Annotated

import typer

from gradwalk.platform.interfaces.cli.common import ParamOpt, client, params, print_json


def cypher(query: str, param: ParamOpt = None,
           limit: Annotated[int | None, typer.Option(help="At most this many rows.")] = None,
           timeout: Annotated[float | None, typer.Option(help="Server-side time limit, seconds.")] = None) -> None:
    """Run a read-only Cypher query; prints one JSON object per row (writes are refused).

    Example: gradwalk cypher "MATCH (d:Dataset)-[:HAS_VERSION]->(v) RETURN d.name, v.version, v.size"
    """
    result = client().cypher(query, params(param), limit=limit, timeout_s=timeout)
    for row in result:
        print_json(row)
    if result.truncated:
        typer.echo(f"(stopped at the row limit of {result.limit}; raise it with --limit)", err=True)
