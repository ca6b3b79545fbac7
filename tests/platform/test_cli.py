"""The ``gradwalk`` command tree (platform/interfaces/cli/): the names users type, help that helps, and a
start that loads no driver, queue or torch. The verbs themselves are tested with what they do
(test_api.py, test_graph_build.py, test_doctor.py, ...)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main
from typer.testing import CliRunner

from gradwalk.platform.interfaces.cli import app

# Every command path users and scripts type; a rename or a lost command fails here.
COMMANDS = {
    "api", "api serve", "cypher", "demo", "doctor", "eval", "migrate",
    "dataset", "dataset diff", "dataset export", "dataset link", "dataset list", "dataset retire", "dataset rows", "dataset show",
    "dataset versions",
    "features", "features cancel", "features delete", "features extend", "features list", "features run", "features show", "features status",
    "graph", "graph build", "graph cancel", "graph delete", "graph export", "graph extend", "graph list", "graph show", "graph stats",
    "job", "job cancel", "job list", "job show", "job status", "job submit", "job wait",
    "pool", "pool delete", "pool import", "pool list", "pool rows", "pool show",
    "target", "target delete", "target import", "target list", "target rows", "target show",
    "services", "services build", "services down", "services status", "services up",
    "token", "token create", "token list", "token revoke",
}


def _tree() -> dict:
    """Every command and group by its path (Typer carries its own click, so no click types here)."""
    found = {}

    def walk(command, path: tuple[str, ...]) -> None:
        if path:
            found[" ".join(path)] = command
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def test_the_command_tree_keeps_its_names():
    assert set(_tree()) == COMMANDS


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_command_helps_with_usage_and_an_example(path):
    result = CliRunner().invoke(app, [*path.split(), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"Usage: gradwalk {path} " in result.output
    if not hasattr(_tree()[path], "commands"):  # a command, not a group
        assert f"Example: gradwalk {path}" in result.output


def test_every_json_option_says_the_same():
    helps = {(option.help, option.default) for command in _tree().values() for option in command.params
             if "--json" in getattr(option, "opts", ())}
    assert helps == {("Print machine-readable JSON.", False)}


def test_help_starts_without_driver_queue_or_torch():
    code = ("import sys; from gradwalk.platform.interfaces.cli import app; "
            "print(sorted(m for m in ('neo4j', 'celery', 'torch', 'uvicorn', 'fastapi') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_selection_method_is_described_where_users_choose_one():
    """job submit --help and the client's select() name each method with its parameters and defaults."""
    import re

    from gradwalk.graph.selection.registry import METHODS
    from gradwalk.platform.interfaces.client import Client
    from gradwalk.platform.shared.methods import USAGE

    helped = " ".join(CliRunner().invoke(app, ["job", "submit", "--help"], env={"COLUMNS": "400"}).output.split())
    documented = dict(re.findall(r"- ``([a-z0-9-]+)`` \(([^)]*)\)", " ".join(Client.select.__doc__.split())))
    assert set(documented) == set(METHODS)
    assert USAGE == tuple(method.usage() for method in METHODS.values())  # the client side's copy
    for method in METHODS.values():
        assert method.usage() in helped
        params = ", ".join(f"{name}={value!r}" for name, value in method.defaults().items() if name != "ratio")
        assert documented[method.name] == params
