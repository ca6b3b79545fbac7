"""``gradwalk graph``: build, inspect and export instruction graphs (in Neo4j directly); list, show and
delete them through the REST API, as every noun does."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from gradwalk.platform.interfaces.cli.common import JsonFlag, client, connect, maker, print_json
from gradwalk.platform.interfaces.cli.verbs import ForceFlag, echo_dependants, finish_delete
from gradwalk.platform.shared.waiting import progress_bar
from gradwalk.settings import get_settings

graph_app = typer.Typer(help="Instruction graphs: each pool row's k most similar rows, in Neo4j.", no_args_is_help=True)

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
    """Build a feature run's kNN graph into Neo4j (resumes an unfinished one; a ready one is kept).

    Example: gradwalk graph build --features fr-0123456789ab --k 64 --tau 0
    """
    from gradwalk.graph.knn.build import build_graph
    from gradwalk.platform.artifacts.feature_store import FeatureStore

    settings = get_settings()
    with connect() as store, progress_bar(f"building the graph of {features}") as progress:
        if local:
            info = build_graph(store, FeatureStore.from_settings(settings), features, k, tau, block_rows=block_rows,
                               device=settings.device, rebuild=rebuild, progress=progress)
        else:
            from gradwalk.platform.work.graph_queue import submit_build, wait_build

            reply = submit_build(features, k, tau, block_rows=block_rows, rebuild=rebuild)
            info = wait_build(store, reply, progress=progress)
        from gradwalk.platform.work.graph_queue import record_maker

        record_maker(store, info.id, maker(store))
    if json_out:
        typer.echo(json.dumps(info.to_dict()))
        return
    typer.echo(f"graph {info.id}: {info.nodes} nodes, {info.edges} edges, built in {info.build_s or 0:.1f}s")


@graph_app.command("extend")
def graph_extend(
    graph: Annotated[str, typer.Argument(help="Graph id as `graph list` prints it: <run>:k<k>:tau<tau>.")],
    local: Annotated[bool, typer.Option("--local", help="Extend in this process, not on a gpu worker.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Add the rows the graph's feature run gained (after `gradwalk features extend RUN`): each new
    row gets its top-k among all rows, and enters an old row's list where it beats the k-th
    neighbour. The result equals a rebuild; the work grows with new rows x N. Records a generation.
    Walks then read the graph's edges (same picks, slower) until `graph build --rebuild` writes its
    neighbour pages again.

    Example: gradwalk graph extend fr-0123456789ab:k64:tau0.0
    """
    settings = get_settings()
    with connect() as store:
        if local:
            from gradwalk.graph.knn.extend import extend_graph
            from gradwalk.platform.artifacts.feature_store import FeatureStore

            with progress_bar(f"extending {graph}") as progress:
                info = extend_graph(store, FeatureStore(settings.artifacts), graph, device=settings.device,
                                    progress=progress)
        else:
            from gradwalk.platform.work.graph_queue import extend_on_worker

            info = extend_on_worker(graph)
    if json_out:
        typer.echo(json.dumps(info.to_dict()))
        return
    typer.echo(f"graph {info.id}: {info.nodes} nodes, {info.edges} edges")


@graph_app.command("list")
def graph_list(
    features: Annotated[str | None, typer.Option("--features", help="Only graphs of this feature run.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Print each instruction graph with its status, build progress and edge count.

    Example: gradwalk graph list --features fr-0123456789ab
    """
    found = client().graphs(feature_run=features)
    if json_out:
        print_json([info.model_dump() for info in found])
        return
    for info in found:
        typer.echo(_graph_line(info))


def _graph_line(info: Any) -> str:
    return (f"{info.id:<40} {info.status:<9} {info.blocks_done}/{info.blocks} blocks  "
            f"{info.nodes} nodes  {info.edges} edges" + (f"  by {info.created_by}" if info.created_by else ""))


@graph_app.command("show")
def graph_show(graph: GraphArg, json_out: JsonFlag = False) -> None:
    """Show a graph's record (k, tau, nodes, edges, build times) and the jobs and versions that depend on it.

    Example: gradwalk graph show fr-0123456789ab:k64:tau0.0
    """
    info = client().graph(graph).show()
    if json_out:
        typer.echo(info.model_dump_json())
        return
    typer.echo(_graph_line(info))
    typer.echo(f"  feature run {info.feature_run}, k {info.k}, tau {info.tau}, built {info.built_at}"
               + (f", deleted {info.deleted_at} by {info.deleted_by}" if getattr(info, "deleted_at", None) else ""))
    echo_dependants(info.dependants)


def _graph_row_ids(store, graph: str) -> list[str]:
    """A graph's node ids: the pool rows of its feature run, in row order."""
    from gradwalk.graph.knn.build import feature_row_ids
    from gradwalk.graph.knn.records import get_graph
    from gradwalk.platform.artifacts.feature_store import FeatureStore

    info = get_graph(store, graph)
    return feature_row_ids(FeatureStore.from_settings(get_settings()), info.feature_run)


@graph_app.command("stats")
def graph_stats(graph: GraphArg, json_out: JsonFlag = False) -> None:
    """Print a graph's node and edge counts, degree distributions, weights and connected components.

    Example: gradwalk graph stats fr-0123456789ab:k64:tau0.0
    """
    from gradwalk.graph.knn import export as graph_export

    with connect() as store:
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
    """Write a graph as GraphML (networkx, igraph, Gephi read it): node name = instruction id, edge w.

    Example: gradwalk graph export fr-0123456789ab:k64:tau0.0 graph.graphml
    """
    from gradwalk.graph.knn.export import to_igraph

    with connect() as store:
        row_ids = _graph_row_ids(store, graph)
        exported = to_igraph(store, graph, row_ids)
    exported.write_graphml(out)
    typer.echo(f"wrote {exported.vcount()} nodes and {exported.ecount()} edges to {out}")


@graph_app.command("delete")
def graph_delete(graph: GraphArg, force: ForceFlag = False, json_out: JsonFlag = False) -> None:
    """Delete a graph's edges (in batches) and its record; a graph a job used stays as a tombstone.
    Run it again to finish a delete that was cut short.

    Example: gradwalk graph delete fr-0123456789ab:k64:tau0.0
    """
    finish_delete(client().graph(graph).delete(force=force), json_out)
