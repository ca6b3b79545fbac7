"""What the CLI's nouns share: the one ``--json`` option, ``--param``, output helpers, the REST API
client (imported when a command runs, not when ``gradwalk --help`` does), and gradwalk's error
families as one line on stderr and an exit code."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gradwalk import errors

if TYPE_CHECKING:
    from gradwalk.platform.interfaces.client import Client
    from gradwalk.platform.shared.schemas import EvaluationPublic

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ParamOpt = Annotated[list[str] | None, typer.Option("--param", help="A parameter NAME=VALUE (repeatable).")]


def echo_err(message: str) -> None:
    """A progress or status line, on stderr so that stdout keeps only the result."""
    typer.echo(message, err=True)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False))


def client() -> Client:
    """The Python client of the REST API at GRADWALK_API_URL with GRADWALK_API_TOKEN (on the machine
    that runs the services, its local admin token when none is set)."""
    from gradwalk.platform.interfaces.client import Client

    return Client()


def _value(text: str) -> Any:
    """A --param value: JSON when it parses (numbers, true, lists), else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def params(pairs: list[str] | None) -> dict[str, Any]:
    out = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise errors.InvalidInput(f"--param {pair!r}: write NAME=VALUE")
        out[name] = _value(value)
    return out


def run(app: typer.Typer) -> None:
    """Run the CLI: gradwalk's error families become one line on stderr and an exit code
    (InvalidInput 2, ..., WorkFailed 8, WaitTimedOut 9: gradwalk/errors.py), not a traceback."""
    try:
        app()
    except errors.GradwalkError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)


def evaluation_text(e: EvaluationPublic) -> str:
    """An evaluation in a few lines: id, target and status, then each figure: version, random mean,
    base model, the difference to random with its 95% interval, and the verdict."""
    lines = [f"{e.id} on {e.target}: {e.status}" + (f" ({e.stage})" if e.status == "running" else "")
             + (f": {e.error}" if e.error else "")]
    for figure, f in ((e.summary or {}).get("figures") or {}).items():
        d = f["difference"]
        lines.append(f"  {figure}: version {f['version']:.4f}, random {f['random']:.4f}, base {f['base']:.4f}; "
                     f"difference {d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] on {d['n']} examples: "
                     f"{d['verdict']}")
    return "\n".join(lines)
