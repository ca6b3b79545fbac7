"""``gradwalk eval``: evaluate a dataset version on a target's test part, through the REST API."""

from __future__ import annotations

from typing import Annotated

import typer

from gradwalk.platform.interfaces.cli.common import JsonFlag, client, evaluation_text


def evaluate(dataset: str, version: int,
             target: Annotated[str, typer.Option("--target", "-t", help="The target whose test part is scored.")],
             epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Epochs over each fine-tune's rows (default: the worker's device default).")] = None,
             seeds: Annotated[int | None, typer.Option("--random-seeds", min=1, max=20, help="Random same-size subsets to compare with (default 3).")] = None,
             seed: Annotated[int | None, typer.Option("--seed", min=0, help="The version's fine-tune seed.")] = None,
             wait: Annotated[bool, typer.Option("--wait", help="Follow it until it finishes and print its figures.")] = False,
             json_out: JsonFlag = False) -> None:
    """Fine-tune on version VERSION of DATASET and on random subsets of the same size, score them and
    the base model on the target's test part, and say whether the version beats random.

    Example: gradwalk eval gsm8k-5pct 1 --target gsm8k --wait
    """
    asked = {k: v for k, v in {"epochs": epochs, "random_seeds": seeds, "seed": seed}.items() if v is not None}
    found = client().dataset(dataset).version(version).evaluate(target, **asked)
    info = found.wait(progress=not json_out) if wait else found.show()
    if json_out:
        typer.echo(info.model_dump_json())
        return
    typer.echo(evaluation_text(info))
