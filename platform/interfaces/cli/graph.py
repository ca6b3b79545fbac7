"""``gradwalk graph``: build (and cancel a build), extend, list, show, inspect, export and delete
instruction graphs, through the REST API like every noun (the builds run on the gpu workers)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from gradwalk.platform.interfaces.cli.common import JsonFlag, client, print_json
from gradwalk.platform.interfaces.cli.verbs import ForceFlag, echo_dependants, finish_delete

graph_app = typer.Typer(help="Instruction graphs: each pool row's k most similar rows, in Neo4j.", no_args_is_help=True)

GraphArg = Annotated[str, typer.Argument(help="Graph id as `graph list` prints it: <run>:k<k>:tau<tau>.")]


@graph_app.command("build")
def graph_build(
    features: Annotated[str, typer.Option("--features", help="Feature run whose pool rows become the nodes.")],
    k: Annotated[int, typer.Option("--k", help="Out-edges per node: its k most similar rows.")] = 64,
    tau: Annotated[float, typer.Option("--tau", help="Least cosine an edge may have.")] = 0.0,
    block_rows: Annotated[int | None, typer.Option("--block-rows", help="Rows per block task.")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Delete the graph first and build it anew.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Build a feature run's kNN graph into Neo4j on the gpu workers and follow it (resumes an
    unfinished one; a ready one is kept).

    Example: gradwalk graph build --features fr-0123456789ab --k 64 --tau 0
    """
    graph = client().build_graph(features, k=k, tau=tau, block_rows=block_rows, rebuild=rebuild)
    info = graph.wait(progress=not json_out)
    if json_out:
        typer.echo(info.model_dump_json(exclude={"dependants"}))
        return
    typer.echo(f"graph {info.id}: {info.nodes} nodes, {info.edges} edges, built in {info.build_s or 0:.1f}s")


@graph_app.command("cancel")
def graph_cancel(graph: GraphArg, json_out: JsonFlag = False) -> None:
    """Stop a graph's build (the token that built it, or an admin's): it ends failed, naming who
    cancelled it, and `graph build` with the same run, k and tau resumes it.

    Example: gradwalk graph cancel fr-0123456789ab:k64:tau0.0
    """
    info = client().graph(graph).cancel()
    typer.echo(info.model_dump_json() if json_out else f"{_graph_line(info)}\n  {info.error}")


@graph_app.command("extend")
def graph_extend(graph: GraphArg, json_out: JsonFlag = False) -> None:
    """Add the rows the graph's feature run gained (after `gradwalk features extend RUN`): each new
    row gets its top-k among all rows, and enters an old row's list where it beats the k-th
    neighbour. The result equals a rebuild; the work grows with new rows x N. Records a generation.
    Walks then read the graph's edges (same picks, slower) until `graph build --rebuild` writes its
    neighbour pages again.

    Example: gradwalk graph extend fr-0123456789ab:k64:tau0.0
    """
    handle = client().graph(graph)
    info = handle.wait(rows=handle.extend().rows_after, progress=not json_out)
    if json_out:
        typer.echo(info.model_dump_json(exclude={"dependants"}))
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


@graph_app.command("stats")
def graph_stats(graph: GraphArg, json_out: JsonFlag = False) -> None:
    """Print a graph's node and edge counts, degree distributions, weights and connected components.

    Example: gradwalk graph stats fr-0123456789ab:k64:tau0.0
    """
    stats = client().graph(graph).stats()
    if json_out:
        typer.echo(json.dumps(stats))
        return
    for key, value in stats.items():
        if isinstance(value, dict):
            value = "  ".join(f"{name} {number:.4g}" for name, number in value.items())
        typer.echo(f"{key:<25} {value}")


@graph_app.command("export")
def graph_export(graph: GraphArg, out: Annotated[str, typer.Argument(help="GraphML file to write.")]) -> None:
    """Write a graph as GraphML (networkx, igraph, Gephi read it): node id = instruction id, edge w.

    Example: gradwalk graph export fr-0123456789ab:k64:tau0.0 graph.graphml
    """
    handle = client().graph(graph)
    handle.export_graphml(out)
    info = handle.show()
    typer.echo(f"wrote {info.nodes} nodes and {info.edges} edges to {out}")


@graph_app.command("delete")
def graph_delete(graph: GraphArg, force: ForceFlag = False, json_out: JsonFlag = False) -> None:
    """Delete a graph's edges (in batches) and its record; a graph a job used stays as a tombstone.
    Run it again to finish a delete that was cut short.

    Example: gradwalk graph delete fr-0123456789ab:k64:tau0.0
    """
    finish_delete(client().graph(graph).delete(force=force), json_out)
