"""``gradwalk token``: the administrator's bootstrap of API tokens. It talks to Neo4j directly, since
there is no token yet to call the REST API with."""

from __future__ import annotations

from typing import Annotated

import typer

from gradwalk.platform.interfaces.cli.common import JsonFlag, connect, print_json

token_app = typer.Typer(help="API tokens (administrators; talks to Neo4j directly).", no_args_is_help=True)


@token_app.command("create")
def token_create(name: str,
                 role: Annotated[str, typer.Option(help="reader (reads, read-only Cypher), curator (also imports, "
                                                        "jobs, publishing; changes only its own jobs and versions) "
                                                        "or admin (everything).")] = "curator") -> None:
    """Create API token NAME with a role and print it: it is shown this once, only its hash is kept.

    Example: gradwalk token create me --role reader
    """
    from gradwalk.platform.access import auth

    with connect() as store:
        token = auth.create(store, name, role)
    typer.echo(token)
    typer.echo(f"token {name!r} ({role}) created: store it now, it cannot be shown again "
               "(use it as GRADWALK_API_TOKEN)", err=True)


@token_app.command("revoke")
def token_revoke(name: str) -> None:
    """Revoke API token NAME from now on.

    Example: gradwalk token revoke me
    """
    from gradwalk.platform.access import auth

    with connect() as store:
        record = auth.revoke(store, name)
    typer.echo(f"token {name!r} revoked at {record['revoked_at']}")


@token_app.command("list")
def token_list(json_out: JsonFlag = False) -> None:
    """Token names with their creation and revocation times (never the secrets).

    Example: gradwalk token list --json
    """
    from gradwalk.platform.access import auth

    with connect() as store:
        found = auth.list_tokens(store)
    if json_out:
        print_json(found)
        return
    for t in found:
        revoked = f", revoked {t['revoked_at']}" if t["revoked_at"] else ""
        typer.echo(f"{t['name']:<30} {t['role'] or 'reader':<8} created {t['created_at']}{revoked}")
