"""The ``gradwalk`` command line: one module per word the user types first (``gradwalk pool
import`` lives in ``pool.py``, ``gradwalk doctor`` in ``doctor.py``), and ``common.py`` for what
they share.

Each command is a thin wrapper over a library function; gradwalk's error families become one
line on stderr and an exit code (InvalidInput 2, NotFound 3, Conflict 4, NotAllowed 5,
ServiceUnavailable 6, Unauthenticated 7; with ``--wait``, WorkFailed 8 when the work failed or was
cancelled, WaitTimedOut 9) instead of a traceback. The Neo4j driver, torch, celery and uvicorn are
imported inside the commands, so ``gradwalk --help`` starts in about 0.3 s.
"""

from __future__ import annotations

import typer

from gradwalk.platform.interfaces.cli import (
    api,
    cypher,
    dataset,
    demo,
    doctor,
    evaluate,
    features,
    graph,
    job,
    migrate,
    pool,
    services,
    target,
    token,
)
from gradwalk.platform.interfaces.cli.common import run

app = typer.Typer(
    name="gradwalk",
    help="Select the few percent of an instruction pool that teach a target task best (G2IS).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("cypher")(cypher.cypher)
app.command("migrate")(migrate.migrate)
app.command("doctor")(doctor.doctor)
app.command("demo")(demo.demo)
app.command("eval")(evaluate.evaluate)
app.add_typer(services.services_app, name="services")
app.add_typer(pool.pool_app, name="pool")
app.add_typer(target.target_app, name="target")
app.add_typer(graph.graph_app, name="graph")
app.add_typer(features.features_app, name="features")
app.add_typer(job.job_app, name="job")
app.add_typer(dataset.dataset_app, name="dataset")
app.add_typer(token.token_app, name="token")
app.add_typer(api.api_app, name="api")


def main() -> None:
    run(app)

