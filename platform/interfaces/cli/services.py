"""``gradwalk services``: the local Neo4j, Redis and Celery workers, without Docker."""

from __future__ import annotations

import json

import typer

from gradwalk.platform.interfaces.cli.common import JsonFlag, echo_err
from gradwalk.settings import get_settings

services_app = typer.Typer(help="Run the local Neo4j, Redis and Celery workers (no Docker).", no_args_is_help=True)


@services_app.command("up")
def services_up(json_out: JsonFlag = False) -> None:
    """Start Neo4j, Redis and one worker per queue (gpu, cpu); wait until each answers; migrate.

    Example: gradwalk services up
    """
    from gradwalk.platform.local import stack

    statuses = stack.up(get_settings(), echo=echo_err)
    if json_out:
        typer.echo(json.dumps([s.__dict__ for s in statuses]))


@services_app.command("down")
def services_down() -> None:
    """Stop the processes that `services up` started (and nothing else).

    Example: gradwalk services down
    """
    from gradwalk.platform.local import stack

    stack.down(get_settings(), echo=echo_err)


@services_app.command("status")
def services_status(json_out: JsonFlag = False) -> None:
    """Print each local service, its address and pid.

    Example: gradwalk services status --json
    """
    from gradwalk.platform.local import stack

    statuses = stack.status(get_settings())
    if json_out:
        typer.echo(json.dumps([s.__dict__ for s in statuses]))
        return
    for s in statuses:
        typer.echo(f"{s.name:<13} {s.address:<26} {'pid ' + str(s.pid) if s.running else 'stopped'}")


@services_app.command("build")
def services_build() -> None:
    """Build the local Neo4j launcher and fetch s3proxy, the local S3 server, with Maven (once each;
    cached by a hash of their sources).

    Example: gradwalk services build
    """
    from gradwalk.platform.local.neo4j_launcher import build_launcher
    from gradwalk.platform.local.s3proxy import build_s3proxy

    settings = get_settings()
    typer.echo(f"neo4j launcher: {build_launcher(settings, echo=echo_err)}")
    typer.echo(f"s3proxy: {build_s3proxy(settings, echo=echo_err)}")
