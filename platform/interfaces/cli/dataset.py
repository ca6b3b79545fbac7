"""``gradwalk dataset``: read, export, compare and retire versioned datasets through the REST API."""

from __future__ import annotations

from typing import Annotated

import typer

from gradwalk.platform.interfaces.cli.common import JsonFlag, client, evaluation_text, print_json

dataset_app = typer.Typer(help="Versioned datasets: list, read, export, link, diff, retire.", no_args_is_help=True)


@dataset_app.command("list")
def dataset_list(json_out: JsonFlag = False) -> None:
    """Datasets with their number of versions and latest version.

    Example: gradwalk dataset list
    """
    found = client().datasets()
    if json_out:
        print_json([d.model_dump() for d in found])
        return
    for d in found:
        typer.echo(f"{d.name:<40} {d.versions} version(s), latest v{d.latest}")


@dataset_app.command("show")
def dataset_show(name: str, json_out: JsonFlag = False) -> None:
    """Show dataset NAME: its number of versions, its latest, and each version's size and status.

    Example: gradwalk dataset show gsm8k-5pct
    """
    found = client().dataset(name)
    info = found.show()
    if json_out:
        typer.echo(info.model_dump_json())
        return
    typer.echo(f"dataset {info.name}: {info.versions} version(s), latest v{info.latest}, created {info.created_at}")
    dataset_versions(name, json_out=False)


@dataset_app.command("versions")
def dataset_versions(name: str, json_out: JsonFlag = False) -> None:
    """Every version of dataset NAME with its size, status, hash, job, source mix and evaluations.

    Example: gradwalk dataset versions gsm8k-5pct
    """
    found = client().dataset(name).versions()
    if json_out:
        print_json([v.info.model_dump() for v in found])
        return
    for v in found:
        i = v.info
        typer.echo(f"v{i.version:<4} {i.status:<8} {i.size:>8} rows  {i.content_hash[:12]}  {i.created_at}  "
                   f"{i.method} job {i.job_id}" + (f"  retired: {i.retired_reason}" if i.retired_reason else ""))
        if i.source_mix:
            typer.echo(f"      sources: {source_mix_text(i.source_mix, i.size)}")
        for e in v.evaluations():
            typer.echo("      evaluation " + evaluation_text(e).replace("\n", "\n      "))


SHOWN_SOURCES = 8


def source_mix_text(mix: list, size: int) -> str:
    """``a 12 (60%), b 8 (40%)``: the most common sources of a version, with their share."""
    parts = [f"{c.source if c.source is not None else '(none)'} {c.rows} ({100 * c.rows / max(size, 1):.0f}%)"
             for c in mix[:SHOWN_SOURCES]]
    if len(mix) > SHOWN_SOURCES:
        parts.append(f"and {len(mix) - SHOWN_SOURCES} more")
    return ", ".join(parts)


@dataset_app.command("rows")
def dataset_rows(name: str, version: int,
                 offset: Annotated[int, typer.Option(help="Skip this many rows.")] = 0,
                 limit: Annotated[int, typer.Option(help="At most this many rows.")] = 20) -> None:
    """Print rows of a version in rank order, one JSON object per line (with each record's own
    id, source and metadata).

    Example: gradwalk dataset rows gsm8k-5pct 1 --limit 5
    """
    for row in client().dataset(name).version(version).rows(offset=offset, limit=limit):
        typer.echo(row.model_dump_json())


@dataset_app.command("export")
def dataset_export(
    name: str, version: int,
    out: Annotated[str, typer.Option("--out", help="File (jsonl) or folder (hf, llamafactory) to write.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl, hf or llamafactory.")] = "jsonl",
) -> None:
    """Export a version for training: JSONL of messages, a datasets folder, or LLaMA-Factory files.

    Example: gradwalk dataset export gsm8k-5pct 1 --format llamafactory --out ./lf-data
    """
    target = client().dataset(name).version(version)
    written = target.export(fmt, out)
    typer.echo(f"{name} v{version} ({target.info.size} rows) → {written}")


@dataset_app.command("link")
def dataset_link(name: str, version: int,
                 expires: Annotated[int | None, typer.Option(help="Seconds the link holds (default and most: the "
                                                                  "server's GRADWALK_LINK_MAX_AGE_S).")] = None,
                 ) -> None:
    """Print a signed link to a version's parquet file that needs no token, for
    load_dataset("parquet", data_files=LINK). It expires, and ends when your token is revoked.

    Example: gradwalk dataset link gsm8k-5pct 1 --expires 3600
    """
    typer.echo(client().dataset(name).version(version).signed_url(expires))


@dataset_app.command("diff")
def dataset_diff(name: str, a: int, b: int,
                 limit: Annotated[int, typer.Option(help="Most ids listed per side.")] = 20,
                 json_out: JsonFlag = False) -> None:
    """What changed from version A to version B: added, removed and kept rows.

    Example: gradwalk dataset diff gsm8k-5pct 1 2
    """
    diff = client().dataset(name).version(b).diff(a, limit=limit)
    if json_out:
        typer.echo(diff.model_dump_json())
        return
    new = "" if diff.added_new is None else f" ({diff.added_new} of them new rows of the pool)"
    typer.echo(f"{name} v{a} → v{b}: {diff.added} added{new}, {diff.removed} removed, {diff.kept} kept")
    fresh = set(diff.added_new_ids)
    for instruction_id in diff.added_ids:
        typer.echo(f"+ {instruction_id}" + ("  (new)" if instruction_id in fresh else ""))
    for instruction_id in diff.removed_ids:
        typer.echo(f"- {instruction_id}")


@dataset_app.command("retire")
def dataset_retire(name: str, version: int,
                   reason: Annotated[str, typer.Option(help="Why (recorded on the version).")],
                   json_out: JsonFlag = False) -> None:
    """Retire a version: recorded with the reason; its rows stay readable and unchanged.

    Example: gradwalk dataset retire gsm8k-5pct 1 --reason "superseded by v2"
    """
    info = client().dataset(name).version(version).retire(reason).info
    typer.echo(info.model_dump_json() if json_out else f"{name} v{version} retired on {info.retired_at}")
