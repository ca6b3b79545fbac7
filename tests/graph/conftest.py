"""Fixtures of the graph tests: a complete feature run in the session's Neo4j with the checks its
instruction graphs are held to, and the synthetic pools the selection algorithms are tested on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from gradwalk.graph.knn.build import TRAIN_PART
from gradwalk.graph.knn.neighbors import neighbors
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.artifacts.feature_store import FeatureStore

ROWS, DIM = 300, 16

EDGE_COUNT = "MATCH ()-[r:SIMILAR {graph: $graph}]->() RETURN count(r) AS n"
DUPLICATES = """
MATCH (a)-[r:SIMILAR {graph: $graph}]->(b)
WITH a, b, count(r) AS copies WHERE copies > 1
RETURN count(*) AS n"""


@dataclass
class Run:
    """A feature run of unit rows in Neo4j, and what its graphs must look like."""

    id: str
    ids: list[str]
    x: np.ndarray
    features: FeatureStore
    store: GraphStore

    @property
    def rows(self) -> int:
        return len(self.ids)

    def brute_force(self, k: int, tau: float) -> list[list[tuple[int, float]]]:
        """Each row's top-k other rows by (cosine descending, row ascending) with cosine >= tau, in float64."""
        x = self.x.astype(np.float64)
        sims = x @ x.T
        out = []
        for i in range(x.shape[0]):
            order = [j for j in np.lexsort((np.arange(x.shape[0]), -sims[i])) if j != i and sims[i, j] >= tau][:k]
            out.append([(int(j), float(sims[i, j])) for j in order])
        return out

    def assert_edges_equal_brute_force(self, graph: str, k: int, tau: float) -> None:
        got = neighbors(self.store, graph, self.ids)
        row = {node: i for i, node in enumerate(self.ids)}
        for i, want in enumerate(self.brute_force(k, tau)):
            edges = got[self.ids[i]]
            assert [row[t] for t, _ in edges] == [j for j, _ in want], f"row {i}"
            np.testing.assert_allclose([w for _, w in edges], [w for _, w in want], atol=1e-6)

    def assert_lists_match_edges(self, graph: str) -> None:
        """Every row's stored neighbour page row says what its SIMILAR edges say, in the walk's order."""
        from gradwalk.graph.knn.neighbors import GraphNeighbors

        with GraphNeighbors(self.store, graph, self.ids) as arrays, \
                GraphNeighbors(self.store, graph, self.ids, lists=False) as edges:
            assert arrays.uses_lists and not edges.uses_lists
            for row in range(self.rows):
                listed = arrays[row]
                np.testing.assert_array_equal(listed[listed >= 0], edges[row], err_msg=f"row {row}")

    def edge_count(self, graph: str) -> int:
        return self.store.read(EDGE_COUNT, {"graph": graph})[0]["n"]

    def duplicates(self, graph: str) -> int:
        return self.store.read(DUPLICATES, {"graph": graph})[0]["n"]


@pytest.fixture
def run(store, settings, prefix) -> Run:
    """A complete feature run of unit rows in two shards, its instructions and its FeatureRun node."""
    x = np.random.default_rng(0).normal(size=(ROWS, DIM)) + 0.3
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"{prefix}{i:04d}" for i in range(ROWS)]
    run_id = f"{prefix}run"
    features = FeatureStore(settings.artifacts)  # where the session's workers look
    features.write_shard(run_id, TRAIN_PART, 0, ids[:200], x[:200])
    features.write_shard(run_id, TRAIN_PART, 1, ids[200:], x[200:])
    store.write_rows("UNWIND $rows AS row CREATE (:Instruction {id: row.id})", [{"id": i} for i in ids])
    store.write("CREATE (:FeatureRun {id: $id, status: 'complete', dim: $dim, rows: $rows})",
                {"id": run_id, "dim": DIM, "rows": ROWS})
    return Run(run_id, ids, x, features, store)


@pytest.fixture(scope="session")
def clustered():
    """``clustered(rng, n, dim)``: unit rows around a few centres that share an offset, so most rows
    agree, as gradients do."""

    def make(rng, n, dim, clusters=4, spread=0.6):
        centres = rng.normal(size=(clusters, dim)) + 1.0
        x = centres[rng.integers(clusters, size=n)] + spread * rng.normal(size=(n, dim))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return make


@pytest.fixture(scope="session")
def brute_neighbors():
    """``brute_neighbors(x, k)``: a neighbour table sorted by descending cosine (which of several tied
    rows makes the cut is arbitrary)."""

    def table(x, k):
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1)

    return table


@pytest.fixture(scope="session")
def cos():
    """``cos(v, k)``: the cosine of two vectors, as the formulas write it."""
    return lambda v, k: float(v @ k / (np.linalg.norm(v) * np.linalg.norm(k)))
