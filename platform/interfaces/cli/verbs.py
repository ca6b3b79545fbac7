"""The verbs every noun shares — ``list``, ``show``, ``rows``, ``delete`` — through the REST API (the
Python client, GRADWALK_API_URL with GRADWALK_API_TOKEN), so roles apply as they do to any client.

The same names as the client's (``client.pool(NAME).rows()``) and the API's (``GET /pools/NAME/rows``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gradwalk.platform.interfaces.cli.common import JsonFlag, client, echo_err, print_json

ForceFlag = Annotated[bool, typer.Option("--force", help="Delete although runs, graphs, jobs or versions depend on "
                                                         "it: versions keep their rows, and runs and graphs a job "
                                                         "used stay as tombstones their lineage shows.")]
OffsetOpt = Annotated[int, typer.Option(help="Skip this many rows.")]
LimitOpt = Annotated[int, typer.Option(help="At most this many rows.")]


def _preview(messages: list[Any], width: int = 70) -> str:
    first = next((m.content for m in messages if m.role == "user"), messages[0].content if messages else "")
    text = " ".join(first.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def echo_dependants(dependants: Any) -> None:
    names = dependants.names() if dependants is not None else []
    typer.echo("depends on it: " + ("nothing" if not names else ""))
    for name in names:
        typer.echo(f"  {name}" + (" (active)" if name.removeprefix("job ") in dependants.active_jobs else ""))


def echo_delete(report: Any, indent: str = "") -> None:
    """One line per deleted record: what went, what stayed for published versions."""
    removed = ", ".join(f"{n} {what}" for what, n in report.removed.items())
    kept = ", ".join(f"{n} {what}" for what, n in report.kept.items() if n)
    typer.echo(f"{indent}{report.kind} {report.name}: {report.outcome}"
               + (f" ({removed} removed" + (f"; {kept} kept for other pools or versions" if kept else "") + ")"
                  if removed else ""))
    for child in report.cascaded:
        echo_delete(child, indent + "  ")


def finish_delete(report: Any, json_out: bool) -> None:
    if json_out:
        typer.echo(report.model_dump_json())
    else:
        echo_delete(report)


def add_collection_verbs(app: typer.Typer, kind: str, example: str) -> None:
    """``list``, ``show``, ``rows`` and ``delete`` for pools (or targets) on ``app``."""

    def list_all(json_out: JsonFlag = False) -> None:
        found = client().pools() if kind == "pool" else client().targets()
        if json_out:
            print_json([c.model_dump() for c in found])
            return
        for c in found:
            typer.echo(f"{c.name:<40} {c.status or '':<9} {c.size or 0:>9} rows  {c.created_at or ''}  "
                       f"{c.created_by or ''}")

    def show(name: str, json_out: JsonFlag = False) -> None:
        info = _handle(name).show()
        if json_out:
            typer.echo(info.model_dump_json())
            return
        typer.echo(f"{kind} {info.name}: {info.status}, {info.size or 0} rows, created {info.created_at}"
                   + (f" by {info.created_by}" if info.created_by else ""))
        typer.echo("sources:")
        for source, n in info.sources.items():
            typer.echo(f"  {source:<50} {n:>9}")
        typer.echo("imports:")
        for i in info.imports:
            typer.echo(f"  {i.at}  {i.source}: {i.read} read, {i.added} added, {i.duplicates} duplicates, "
                       f"{i.skipped} skipped" + (f" (by {i.created_by})" if i.created_by else ""))
            for reason in i.skip_reasons:
                typer.echo(f"    skipped: {reason}")
        echo_dependants(info.dependants)

    def rows(name: str, offset: OffsetOpt = 0, limit: LimitOpt = 20, json_out: JsonFlag = False) -> None:
        page = _handle(name).page(offset, limit)
        if json_out:
            typer.echo(page.model_dump_json())
            return
        for row in page.rows:
            typer.echo(f"{row.id[:16]}  {row.source or '':<24} {_preview(row.messages)}")
        echo_err(f"rows {offset + 1}-{offset + len(page.rows)} of {page.total}")

    def delete(name: str, force: ForceFlag = False, json_out: JsonFlag = False) -> None:
        finish_delete(_handle(name).delete(force=force), json_out)

    def _handle(name: str) -> Any:
        return client().pool(name) if kind == "pool" else client().target(name)

    plural = f"{kind}s"
    app.command("list", help=f"List the {plural} with status, size, creation time and maker.\n\n"
                              f"Example: gradwalk {kind} list")(list_all)
    app.command("show", help=f"Show a {kind}: size, rows per source, imports with their skipped lines, and the "
                              f"runs, graphs, jobs and versions that depend on it.\n\n"
                              f"Example: gradwalk {kind} show {example}")(show)
    app.command("rows", help=f"Print a page of a {kind}'s rows (ordered by id): id, source, first user message.\n\n"
                              f"Example: gradwalk {kind} rows {example} --offset 20 --limit 20 --json")(rows)
    app.command("delete", help=f"Delete a {kind} (your own, or any with an admin token); refused while anything "
                                "depends on it unless --force. Versions keep their rows; run it again to finish "
                                f"a delete that was cut short.\n\nExample: gradwalk {kind} delete {example} --force"
                )(delete)
