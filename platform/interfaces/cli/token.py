"""``gradwalk token``: API tokens, an administrator's commands, through the REST API. On the machine
that runs the services the local admin token (written by ``gradwalk services up``) makes them work
with no token exported; ``create --direct`` writes to Neo4j itself, for the first admin token of a
deployment that ``gradwalk services up`` did not start."""

from __future__ import annotations

from typing import Annotated

import typer

from gradwalk.platform.interfaces.cli.common import JsonFlag, client, print_json

token_app = typer.Typer(help="API tokens (administrators).", no_args_is_help=True)


@token_app.command("create")
def token_create(name: str,
                 role: Annotated[str, typer.Option(help="reader (reads, read-only Cypher), curator (also imports, "
                                                        "jobs, publishing; changes only its own jobs and versions) "
                                                        "or admin (everything).")] = "curator",
                 direct: Annotated[bool, typer.Option("--direct", help="Create it in Neo4j directly "
                                                      "(GRADWALK_NEO4J_*), not through the API: the first admin "
                                                      "token where `gradwalk services up` made none.")] = False,
                 ) -> None:
    """Create API token NAME with a role and print it: it is shown this once, only its hash is kept.

    Example: gradwalk token create me --role reader
    """
    if direct:
        from gradwalk.platform.interfaces.cli.bootstrap import first_token

        token = first_token(name, role)
    else:
        token = client().create_token(name, role).token
    typer.echo(token)
    typer.echo(f"token {name!r} ({role}) created: store it now, it cannot be shown again "
               "(use it as GRADWALK_API_TOKEN)", err=True)


@token_app.command("revoke")
def token_revoke(name: str) -> None:
    """Revoke API token NAME from now on.

    Example: gradwalk token revoke me
    """
    record = client().revoke_token(name)
    typer.echo(f"token {name!r} revoked at {record.revoked_at}")


@token_app.command("list")
def token_list(json_out: JsonFlag = False) -> None:
    """Token names with their creation and revocation times (never the secrets).

    Example: gradwalk token list --json
    """
    found = client().tokens()
    if json_out:
        print_json([t.model_dump() for t in found])
        return
    for t in found:
        revoked = f", revoked {t.revoked_at}" if t.revoked_at else ""
        typer.echo(f"{t.name:<30} {t.role or 'reader':<8} created {t.created_at}{revoked}")
