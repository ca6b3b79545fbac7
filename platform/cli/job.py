"""The CLI's ``job``, ``dataset``, ``cypher``, ``token`` and ``api`` verbs.

``job``, ``dataset`` and ``cypher`` go through the Python client (the REST API at
GRADWALK_API_URL with GRADWALK_API_TOKEN), so they work from any machine and mirror the client's
methods. ``token`` is the administrator's bootstrap and talks to Neo4j directly; ``api serve`` runs
the server. Each command is a thin wrapper; ``--json`` prints machine-readable output.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from gradwalk import errors
from gradwalk.settings import get_settings

job_app = typer.Typer(help="Selection jobs: submit, follow, cancel.", no_args_is_help=True)
dataset_app = typer.Typer(help="Versioned datasets: list, read, export, diff, retire.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (administrators; talks to Neo4j directly).", no_args_is_help=True)
api_app = typer.Typer(help="The REST API server.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _client() -> Any:
    from gradwalk.platform.client import Client

    return Client()


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False))


def _value(text: str) -> Any:
    """A --param value: JSON when it parses (numbers, true, lists), else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _params(pairs: list[str] | None) -> dict[str, Any]:
    out = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise errors.InvalidInput(f"--param {pair!r}: write NAME=VALUE")
        out[name] = _value(value)
    return out


def _job_line(info: Any) -> str:
    where = f" → {info.dataset} v{info.version}" if info.version is not None else ""
    error = f": {info.error}" if info.error else ""
    return f"{info.id}  {info.status:<9} {100 * info.progress:5.1f}%  {info.stage or ''}{where}{error}"


# -- job ------------------------------------------------------------------------------------------
ParamOpt = Annotated[list[str] | None, typer.Option("--param", help="A parameter NAME=VALUE (repeatable).")]


@job_app.command("submit")
def job_submit(
    pool: Annotated[str, typer.Option(help="Pool to select from.")],
    target: Annotated[list[str], typer.Option(help="Target (repeat for multi-target selection).")],
    dataset: Annotated[str, typer.Option(help="Dataset the selection is published to.")],
    method: Annotated[str, typer.Option(help="g2is, g2is-no-graph, g2is-no-gradient, less, embedding or "
                                             "random.")] = "g2is",
    ratio: Annotated[float | None, typer.Option(help="Fraction of the pool to select.")] = None,
    param: ParamOpt = None,
    feature_run: Annotated[str | None, typer.Option(help="Feature run (default: the pool's latest of the kind "
                                                         "the method reads).")] = None,
    graph: Annotated[str | None, typer.Option(help="Instruction graph (default: the run's latest).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it finishes.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Submit a selection job; prints its id (and, with --wait, follows it with a progress bar)."""
    job = _client().select(pool=pool, target=target, dataset=dataset, method=method, ratio=ratio,
                           feature_run=feature_run, graph=graph, **_params(param))
    if wait:
        job.wait(progress=not json_out)
    typer.echo(job.info.model_dump_json() if json_out else _job_line(job.info))


@job_app.command("status")
def job_status(job_id: str, json_out: JsonFlag = False) -> None:
    """Show a job's status, progress, stage, result or error."""
    info = _client().job(job_id).info
    typer.echo(info.model_dump_json() if json_out else _job_line(info))


@job_app.command("list")
def job_list(status: Annotated[str | None, typer.Option(help="Only jobs in this status.")] = None,
             limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
             json_out: JsonFlag = False) -> None:
    """List jobs, newest first."""
    found = _client().jobs(status=status, limit=limit)
    if json_out:
        _print_json([job.info.model_dump() for job in found])
        return
    for job in found:
        typer.echo(_job_line(job.info))


@job_app.command("cancel")
def job_cancel(job_id: str, json_out: JsonFlag = False) -> None:
    """Cancel a queued or running job."""
    info = _client().job(job_id).cancel().info
    typer.echo(info.model_dump_json() if json_out else _job_line(info))


@job_app.command("wait")
def job_wait(job_id: str,
             timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
             json_out: JsonFlag = False) -> None:
    """Follow a job with a progress bar until it finishes; a failed job exits non-zero with its error."""
    job = _client().job(job_id).wait(progress=not json_out, timeout=timeout)
    typer.echo(job.info.model_dump_json() if json_out else _job_line(job.info))


# -- dataset --------------------------------------------------------------------------------------
@dataset_app.command("list")
def dataset_list(json_out: JsonFlag = False) -> None:
    """Datasets with their number of versions and latest version."""
    found = _client().datasets()
    if json_out:
        _print_json([d.model_dump() for d in found])
        return
    for d in found:
        typer.echo(f"{d.name:<40} {d.versions} version(s), latest v{d.latest}")


@dataset_app.command("versions")
def dataset_versions(name: str, json_out: JsonFlag = False) -> None:
    """Every version of dataset NAME with its size, status, hash and job."""
    found = _client().dataset(name).versions()
    if json_out:
        _print_json([v.info.model_dump() for v in found])
        return
    for v in found:
        i = v.info
        typer.echo(f"v{i.version:<4} {i.status:<8} {i.size:>8} rows  {i.content_hash[:12]}  {i.created_at}  "
                   f"{i.method} job {i.job_id}" + (f"  retired: {i.retired_reason}" if i.retired_reason else ""))


@dataset_app.command("rows")
def dataset_rows(name: str, version: int,
                 offset: Annotated[int, typer.Option(help="Skip this many rows.")] = 0,
                 limit: Annotated[int, typer.Option(help="At most this many rows.")] = 20) -> None:
    """Print rows of a version in rank order, one JSON object per line."""
    for row in _client().dataset(name).version(version).rows(offset=offset, limit=limit):
        typer.echo(row.model_dump_json())


@dataset_app.command("export")
def dataset_export(
    name: str, version: int,
    out: Annotated[str, typer.Option("--out", help="File (jsonl) or folder (hf, llamafactory) to write.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl, hf or llamafactory.")] = "jsonl",
) -> None:
    """Export a version for training: JSONL of messages, a datasets folder, or LLaMA-Factory files."""
    target = _client().dataset(name).version(version)
    written = target.export(fmt, out)
    typer.echo(f"{name} v{version} ({target.info.size} rows) → {written}")


@dataset_app.command("diff")
def dataset_diff(name: str, a: int, b: int,
                 limit: Annotated[int, typer.Option(help="Most ids listed per side.")] = 20,
                 json_out: JsonFlag = False) -> None:
    """What changed from version A to version B: added, removed and kept rows."""
    diff = _client().dataset(name).version(b).diff(a, limit=limit)
    if json_out:
        typer.echo(diff.model_dump_json())
        return
    typer.echo(f"{name} v{a} → v{b}: {diff.added} added, {diff.removed} removed, {diff.kept} kept")
    for instruction_id in diff.added_ids:
        typer.echo(f"+ {instruction_id}")
    for instruction_id in diff.removed_ids:
        typer.echo(f"- {instruction_id}")


@dataset_app.command("retire")
def dataset_retire(name: str, version: int,
                   reason: Annotated[str, typer.Option(help="Why (recorded on the version).")],
                   json_out: JsonFlag = False) -> None:
    """Retire a version: recorded with the reason; its rows stay readable and unchanged."""
    info = _client().dataset(name).version(version).retire(reason).info
    typer.echo(info.model_dump_json() if json_out else f"{name} v{version} retired on {info.retired_at}")


# -- cypher ---------------------------------------------------------------------------------------
def cypher(query: str, param: ParamOpt = None,
           limit: Annotated[int | None, typer.Option(help="At most this many rows.")] = None,
           timeout: Annotated[float | None, typer.Option(help="Server-side time limit, seconds.")] = None) -> None:
    """Run a read-only Cypher query; prints one JSON object per row (writes are refused)."""
    result = _client().cypher(query, _params(param), limit=limit, timeout_s=timeout)
    for row in result:
        _print_json(row)
    if result.truncated:
        typer.echo(f"(stopped at the row limit of {result.limit}; raise it with --limit)", err=True)


# -- token ----------------------------------------------------------------------------------------
@token_app.command("create")
def token_create(name: str,
                 role: Annotated[str, typer.Option(help="reader (reads, read-only Cypher), curator (also imports, "
                                                        "jobs, publishing; changes only its own jobs and versions) "
                                                        "or admin (everything).")] = "curator") -> None:
    """Create API token NAME with a role and print it: it is shown this once, only its hash is kept."""
    from gradwalk.graph.store import GraphStore
    from gradwalk.platform import auth

    with GraphStore.connect(get_settings()) as store:
        token = auth.create(store, name, role)
    typer.echo(token)
    typer.echo(f"token {name!r} ({role}) created: store it now, it cannot be shown again "
               "(use it as GRADWALK_API_TOKEN)", err=True)


@token_app.command("revoke")
def token_revoke(name: str) -> None:
    """Revoke API token NAME from now on."""
    from gradwalk.graph.store import GraphStore
    from gradwalk.platform import auth

    with GraphStore.connect(get_settings()) as store:
        record = auth.revoke(store, name)
    typer.echo(f"token {name!r} revoked at {record['revoked_at']}")


@token_app.command("list")
def token_list(json_out: JsonFlag = False) -> None:
    """Token names with their creation and revocation times (never the secrets)."""
    from gradwalk.graph.store import GraphStore
    from gradwalk.platform import auth

    with GraphStore.connect(get_settings()) as store:
        found = auth.list_tokens(store)
    if json_out:
        _print_json(found)
        return
    for t in found:
        revoked = f", revoked {t['revoked_at']}" if t["revoked_at"] else ""
        typer.echo(f"{t['name']:<30} {t['role'] or 'reader':<8} created {t['created_at']}{revoked}")


# -- api ------------------------------------------------------------------------------------------
@api_app.command("serve")
def api_serve(host: Annotated[str | None, typer.Option(help="Default: GRADWALK_API_HOST.")] = None,
              port: Annotated[int | None, typer.Option(help="Default: GRADWALK_API_PORT.")] = None) -> None:
    """Serve the REST API in the foreground (uvicorn)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run("gradwalk.platform.api:create_app", factory=True, host=host or settings.api_host,
                port=port or settings.api_port)
