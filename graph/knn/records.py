"""Instruction graphs as records: what an ``:InstructionGraph`` node says, found by id.

A graph is ``(:InstructionGraph {id, feature_run, k, tau, ...})-[:BUILT_FROM]->(:FeatureRun)`` plus
its edges ``(:Instruction)-[:SIMILAR {graph, w}]->(:Instruction)``: each row's k most similar other
rows with cosine ≥ τ. Its id is ``"<run>:k<k>:tau<tau>"`` (:func:`graph_id`), so asking for the
same graph twice finds the one already there instead of building a copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gradwalk import errors
from gradwalk.graph.knn.cypher import LIST_GRAPHS, READ_GRAPH
from gradwalk.graph.knn.topk import block_ranges
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.statuses import GraphStatus


@dataclass(frozen=True)
class GraphInfo:
    """An ``:InstructionGraph`` node as read back."""

    id: str
    feature_run: str
    k: int
    tau: float
    status: str
    nodes: int
    edges: int
    blocks: int
    blocks_done: int
    block_rows: int
    created_at: str | None = None
    started_at: str | None = None
    built_at: str | None = None
    build_s: float | None = None
    error: str | None = None
    build_id: str | None = None  # the build that may write while the graph is being built
    heartbeat_at: str | None = None

    @classmethod
    def from_node(cls, props: dict[str, Any]) -> GraphInfo:
        def text(value: Any) -> str | None:
            return None if value is None else str(value.iso_format() if hasattr(value, "iso_format") else value)

        return cls(
            id=props["id"], feature_run=props["feature_run"], k=int(props["k"]), tau=float(props["tau"]),
            status=props["status"], nodes=int(props["nodes"]), edges=int(props.get("edges") or 0),
            blocks=int(props["blocks"]), blocks_done=int(props.get("blocks_done") or 0),
            block_rows=int(props["block_rows"]), created_at=text(props.get("created_at")),
            started_at=text(props.get("started_at")), built_at=text(props.get("built_at")),
            build_s=props.get("build_s"), error=props.get("error"), build_id=props.get("build_id"),
            heartbeat_at=text(props.get("heartbeat_at")),
        )

    def block(self, index: int) -> tuple[int, int]:
        """Row range (start, stop) of block ``index``."""
        ranges = block_ranges(self.nodes, self.block_rows)
        if not 0 <= index < len(ranges):
            raise errors.InvalidInput(f"graph {self.id} has blocks 0..{len(ranges) - 1}, not {index}")
        return ranges[index]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def graph_id(run_id: str, k: int, tau: float) -> str:
    """The id of the graph with these parameters: one graph per (feature run, k, τ)."""
    return f"{run_id}:k{int(k)}:tau{float(tau) + 0.0!r}"  # + 0.0 turns -0.0 into 0.0


def get_graph(store: GraphStore, graph: str) -> GraphInfo:
    rows = store.read(READ_GRAPH, {"graph": graph})
    if not rows:
        raise errors.NotFound(f"instruction graph {graph} does not exist")
    return GraphInfo.from_node(rows[0]["graph"])


def list_graphs(store: GraphStore, feature_run: str | None = None) -> list[GraphInfo]:
    return [GraphInfo.from_node(r["graph"]) for r in store.read(LIST_GRAPHS, {"run": feature_run})]


def ready_graph(store: GraphStore, graph: str, row_ids: Sequence[str]) -> GraphInfo:
    """A graph a walk may read: complete, with one node per given row."""
    info = get_graph(store, graph)
    if info.status != GraphStatus.READY:
        raise errors.Conflict(f"instruction graph {graph} is {info.status}, not ready")
    if len(row_ids) != info.nodes:
        grown = f"; its feature run has grown: run `gradwalk graph extend {graph}`" if len(row_ids) > info.nodes else ""
        raise errors.InvalidInput(f"graph {graph} has {info.nodes} nodes but {len(row_ids)} rows were given{grown}")
    return info


def superseded(info: GraphInfo) -> errors.Conflict:
    """The refusal a build's writes get once another build (or a deletion) has taken its graph."""
    return errors.Conflict(
        f"instruction graph {info.id} is no longer being built by build {info.build_id} "
        "(deleted, finished or taken over)"
    )
