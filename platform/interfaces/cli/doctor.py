"""``gradwalk doctor``: can this machine run gradwalk, and what fixes it when it cannot."""

from __future__ import annotations

import json

import typer

from gradwalk.platform.interfaces.cli.common import JsonFlag
from gradwalk.settings import get_settings


def doctor(json_out: JsonFlag = False) -> None:
    """Check that this machine can run gradwalk: Java 17, Maven, redis-server, free ports, disk
    space, the Neo4j build, each pinned model and data package (cached, or else still served), and
    the services when they are up. Prints ✔/✘ with the command that fixes each ✘; exits 1 if any.

    Example: gradwalk doctor
    """
    from gradwalk.platform.local.doctor import render, run_checks

    checks = run_checks(get_settings())
    typer.echo(json.dumps([c.to_dict() for c in checks]) if json_out else render(checks))
    if not all(c.ok for c in checks):
        raise typer.Exit(1)
