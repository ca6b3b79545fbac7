"""The CLI takes the one way in: every command but the bootstrap ones (services, migrate, doctor,
demo, ``api serve`` and the first admin token) talks to the REST API through the Python client, so
none of them can open a Neo4j session or write a record behind the API's back. Read from the
modules' own imports, those inside functions included."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from gradwalk.platform.interfaces import cli

CLI = Path(cli.__file__).parent
# Commands that must work with no API: they start or check the services, migrate, or make the
# first admin token (bootstrap.py, which token.py's `create --direct` alone may reach).
BOOTSTRAP = {"services", "migrate", "doctor", "demo", "api", "bootstrap"}
# What a command that goes through the API may load of gradwalk: the client and what it shares with
# the server (the client's own list, tests/test_layout.py), and the CLI's own modules.
CLIENT_SIDE = ("gradwalk.errors", "gradwalk.statuses", "gradwalk.platform.interfaces.client",
               "gradwalk.platform.interfaces.client_records",
               "gradwalk.platform.shared.", "gradwalk.platform.interfaces.cli.common",
               "gradwalk.platform.interfaces.cli.verbs", "gradwalk.platform.interfaces.cli.pool")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _outside(name: str) -> bool:
    top = name.split(".")[0]
    return top != "__future__" and top not in sys.stdlib_module_names and top != "typer" and not (
        name.startswith(CLIENT_SIDE) or name == "gradwalk.errors")


def test_the_bootstrap_commands_are_the_only_ones_outside_the_api():
    modules = {path.stem for path in CLI.glob("*.py")} - {"__init__"}
    assert BOOTSTRAP < modules
    reached = {}
    for stem in sorted(modules - BOOTSTRAP):
        reached[stem] = sorted(name for name in _imports(CLI / f"{stem}.py") if _outside(name))
    assert reached == {stem: ([f"{cli.__name__}.bootstrap.first_token"] if stem == "token" else [])
                       for stem in reached}


@pytest.mark.parametrize("stem", sorted(BOOTSTRAP - {"bootstrap"}))
def test_no_command_module_imports_another_ones_neo4j_access(stem):
    """Only migrate and token reach bootstrap.py's connection."""
    uses = any(name.startswith(f"{cli.__name__}.bootstrap") for name in _imports(CLI / f"{stem}.py"))
    assert uses == (stem == "migrate")
