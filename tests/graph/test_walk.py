"""The G2IS walk (docs/architecture.md §4.4) and its no-graph ablation: hand-solved walks, and the fast walk
against the line-by-line reference."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradwalk.errors import InvalidInput
from gradwalk.graph.selection.common import allocate_budgets, target_size
from gradwalk.graph.selection.pca import core_components
from gradwalk.graph.selection.walk import gradient_walk, no_graph_selection, relevance_to


def _load_reference():
    # By path, so it works under any pytest import mode and tests/ needs no __init__.py.
    path = Path(__file__).with_name("walk_reference.py")
    spec = importlib.util.spec_from_file_location("gradwalk_tests_walk_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_walk


reference_walk = _load_reference()


def unit(*rows):
    x = np.asarray(rows, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def triples(result):
    return list(zip(result, result.component.tolist(), result.step.tolist(), strict=True))


# Hand-solved walks. One component K = e1; rows chosen so each constraint bites exactly once.
K1 = np.array([[1.0, 0.0, 0.0]])
R0 = [1.0, 0.0, 0.0]  # the anchor: the largest X·K
R1 = [0.6, 0.8, 0.0]
R2 = [-0.28, 0.96, 0.0]  # agrees with R1 (dot 0.6) but not with R0 (dot -0.28)
R3 = [0.6, 0.0, 0.8]
R4 = [0.01, 0.6, 0.8]  # agrees with both, but pulls ΣS' off K
R5 = [-0.6, 0.8, 0.0]
R6 = [-0.8, 0.0, 0.6]


def test_constraint_5_rejects_a_neighbour_that_conflicts_with_an_earlier_member(cos):
    x = unit(R0, R1, R2, R3)
    neighbors = np.array([[1, 3, 2], [2, 0, 3], [1, 3, 0], [0, 1, 2]])
    # R2 would pass (6) and agrees with the current node R1; only the anchor R0 rules it out.
    assert x[2] @ x[1] > 0 and x[2] @ x[0] < 0
    assert abs(cos(x[0] + x[1] + x[2], K1[0])) >= 0.5 * cos(x[0] + x[1], K1[0])

    result = gradient_walk(x, K1, [1.0], neighbors, ratio=0.75, delta=0.5)

    assert list(result) == [0, 1, 3]
    assert result.step.tolist() == [0, 1, 2]
    assert result.components[0].fallbacks == 0


def test_constraint_6_rejects_a_neighbour_that_pulls_the_set_off_the_component(cos):
    x = unit(R0, R1, R4, R3)
    neighbors = np.array([[1, 2, 3], [2, 3, 0], [1, 3, 0], [0, 1, 2]])
    assert (x[[0, 1]] @ x[2] > 0).all()  # R4 conflicts with nobody...
    before = cos(x[0] + x[1], K1[0])
    assert cos(x[0] + x[1] + x[2], K1[0]) < 0.8 * before <= cos(x[0] + x[1] + x[3], K1[0])  # ...but drifts

    result = gradient_walk(x, K1, [1.0], neighbors, ratio=0.75, delta=0.8)

    assert list(result) == [0, 1, 3]


NO_WAY_ON = (unit(R0, R1, R5, R6), np.array([[1, 2, 3], [2, 0, 3], [1, 0, 3], [1, 0, 2]]))


def test_strict_fallback_stops_short_and_reports_it():
    x, neighbors = NO_WAY_ON  # after R0, R1 every other row has a negative dot with R0

    result = gradient_walk(x, K1, [1.0], neighbors, ratio=1.0, fallback="strict")

    assert list(result) == [0, 1]
    report = result.components[0]
    assert (report.budget, report.selected, report.shortfall, report.fallbacks) == (4, 2, 2, 0)
    summary = json.loads(json.dumps(result.summary()))
    assert summary["target"] == 4 and summary["selected"] == 2 and summary["shortfall"] == 2
    assert summary["components"][0]["shortfall"] == 2


def test_paper_fallback_fills_the_budget_with_the_best_untaken_rows():
    x, neighbors = NO_WAY_ON

    result = gradient_walk(x, K1, [1.0], neighbors, ratio=1.0, fallback="paper")

    assert list(result) == [0, 1, 2, 3]  # R5 (X·K = -0.6) before R6 (-0.8), both unconstrained
    assert result.components[0].fallbacks == 2 and result.shortfall == 0


@pytest.mark.parametrize("anchor_pool", [1, 1000])
def test_anchor_skips_rows_another_component_took(anchor_pool):
    x = unit(R0, R1, R2, R3)
    components = unit([1.0, 0.0, 0.0], [0.8, 0.6, 0.0])
    neighbors = np.array([[1, 3, 2], [0, 2, 3], [1, 3, 0], [0, 1, 2]])
    # Component 2 ranks R1 (0.96), R0 (0.8), R3 (0.48), R2: the first two went to component 1.
    assert np.argsort(-(x @ components[1])).tolist() == [1, 0, 3, 2]

    result = gradient_walk(x, components, [2.0, 1.0], neighbors, ratio=0.75, anchor_pool=anchor_pool)

    assert triples(result) == [(0, 0, 0), (1, 0, 1), (3, 1, 0)]
    assert [c.anchor for c in result.components] == [0, 3]
    assert result.records()[2] == {"row": 3, "rank": 2, "component": 1, "step": 0,
                                   "predecessor": None, "reached_by": "anchor"}


def test_trajectory_names_the_row_each_step_was_reached_from():
    x = unit(R0, R1, R2, R3)
    neighbors = np.array([[1, 3, 2], [2, 0, 3], [1, 3, 0], [0, 1, 2]])

    result = gradient_walk(x, K1, [1.0], neighbors, ratio=0.75, delta=0.5)

    assert [(r["row"], r["predecessor"], r["reached_by"]) for r in result.records()] == [
        (0, None, "anchor"), (1, 0, "edge"), (3, 1, "edge")]


def test_trajectory_marks_the_rows_a_fallback_jumped_to():
    x, neighbors = NO_WAY_ON

    result = gradient_walk(x, K1, [1.0], neighbors, ratio=1.0, fallback="paper")

    assert result.predecessor.tolist() == [-1, 0, 1, 2]
    assert result.reached_by == ("anchor", "edge", "fallback", "fallback")


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(6, 60),
    dim=st.integers(2, 8),
    k=st.integers(1, 8),
    ratio=st.floats(0.05, 1.0),
    delta=st.floats(0.0, 1.0),
    variance=st.floats(0.05, 0.95),
    anchor_pool=st.integers(1, 8),
    fallback=st.sampled_from(["strict", "paper"]),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_fast_walk_picks_exactly_what_the_reference_picks(
    seed, n, dim, k, ratio, delta, variance, anchor_pool, fallback, dtype, clustered, brute_neighbors
):
    rng = np.random.default_rng(seed)
    x = clustered(rng, n, dim).astype(dtype)
    components, weights = core_components(clustered(rng, 12, dim), variance)
    neighbors = brute_neighbors(x.astype(np.float64), min(k, n - 1))

    result = gradient_walk(x, components, weights, neighbors, ratio, delta, anchor_pool, fallback)

    budgets = allocate_budgets(n, ratio, weights)
    assert triples(result) == reference_walk(x, components, budgets, neighbors, delta, fallback, anchor_pool)
    assert len(set(result)) == len(result)
    assert [c.budget for c in result.components] == budgets.tolist()
    assert sum(budgets) == target_size(n, ratio)
    assert result.shortfall == sum(c.shortfall for c in result.components)
    if result.shortfall == 0:
        assert len(result) == target_size(n, ratio)
    if fallback == "paper":
        assert result.shortfall == 0


@pytest.mark.parametrize("fallback", ["strict", "paper"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_walk_matches_the_reference_on_a_large_pool_full_of_exact_ties(fallback, dtype, brute_neighbors):
    # Small integers: every dot product is exact, so equal X·K_i and zero X_s'·X_z are real ties,
    # and a pool past the first ranked prefix makes the walk extend its ranking.
    rng = np.random.default_rng(17)
    x = rng.integers(-1, 3, size=(1500, 6)).astype(dtype)
    x[(x == 0).all(axis=1), 0] = 1
    components = np.eye(6)[[0, 3]]
    neighbors = brute_neighbors(x / np.linalg.norm(x, axis=1, keepdims=True), 8)

    result = gradient_walk(x, components, [0.7, 0.3], neighbors, 0.1, 0.9, fallback=fallback)

    budgets = allocate_budgets(1500, 0.1, np.array([0.7, 0.3]))
    assert triples(result) == reference_walk(x, components, budgets, neighbors, 0.9, fallback)
    assert sum(c.fallbacks for c in result.components) > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_zero_dot_passes_and_a_tiny_negative_one_fails_whatever_the_dtype(dtype):
    # Both sit inside float32's rounding bound, so the walk settles them in float64.
    x = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1e-9, 0.0, 1.0], [-0.6, 0.8, 0.0]], dtype=dtype)
    neighbors = np.array([[1, 2], [0, 2], [0, 1], [0, 1]])
    assert list(gradient_walk(x, K1, [1.0], neighbors, 0.5, delta=0.5)) == [0, 1]
    neighbors[0] = [2, 1]
    assert list(gradient_walk(x, K1, [1.0], neighbors, 0.5, delta=0.5)) == [0, 1]


class RecordingSource:
    """A neighbour source like a store adapter: ragged lists, with a prefetch hook."""

    def __init__(self, table):
        self.lists = {i: [int(z) for z in row if z >= 0] for i, row in enumerate(table)}
        self.prefetched = []

    def __getitem__(self, node):
        return self.lists[node]

    def prefetch(self, nodes):
        self.prefetched.append(list(nodes))


def test_a_neighbour_source_object_walks_like_the_table_and_is_asked_to_prefetch(clustered, brute_neighbors):
    rng = np.random.default_rng(7)
    x = clustered(rng, 80, 6)
    components, weights = core_components(clustered(rng, 20, 6))
    table = brute_neighbors(x, 5)
    table[::3, -2:] = -1  # some nodes have fewer edges
    source = RecordingSource(table)

    from_source = gradient_walk(x, components, weights, source, 0.2)

    assert triples(from_source) == triples(gradient_walk(x, components, weights, table, 0.2))
    assert source.prefetched and all(set(batch) <= set(range(80)) for batch in source.prefetched)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"ratio": 0.0}, "ratio"),
        ({"ratio": 1.5}, "ratio"),
        ({"ratio": float("nan")}, "ratio"),
        ({"ratio": "0.1"}, "ratio"),
        ({"delta": -0.1}, "delta"),
        ({"delta": 1.01}, "delta"),
        ({"fallback": "greedy"}, "fallback"),
        ({"anchor_pool": 0}, "anchor_pool"),
        ({"train_features": np.ones(4)}, "train_features"),
        ({"components": np.ones((1, 2))}, "components"),
        ({"components": np.zeros((1, 3))}, "components"),
        ({"weights": [1.0, 1.0]}, "weights"),
        ({"weights": [-1.0]}, "weights"),
        ({"neighbors": np.zeros((3, 2), dtype=int)}, "neighbors"),
        ({"neighbors": np.full((4, 2), 9)}, "neighbors"),
        ({"neighbors": [[1], [0, 7], [0], [2]]}, "neighbors"),
        ({"neighbors": 5}, "neighbors"),
        ({"relevance": [1.0, 2.0]}, "relevance"),
        ({"relevance": [1.0, np.nan, 0.0, 0.0]}, "relevance"),
    ],
)
def test_walk_refuses_bad_input_and_names_the_parameter(change, named):
    args = {
        "train_features": unit(R0, R1, R2, R3),
        "components": K1,
        "weights": [1.0],
        "neighbors": np.array([[1, 2], [2, 0], [1, 3], [0, 1]]),
        "ratio": 1.0,
    } | change
    with pytest.raises(InvalidInput, match=named):
        gradient_walk(**args)


def test_no_graph_fills_each_budget_in_x_k_order_without_repeats():
    x = unit(R0, R1, R2, R3)
    components = unit([1.0, 0.0, 0.0], [0.8, 0.6, 0.0])

    result = no_graph_selection(x, components, [1.0, 1.0], ratio=1.0)

    # Component 1 ranks R0, R1 | R3, R2; component 2 ranks R1, R0, R3, R2 and finds R1, R0 taken.
    assert triples(result) == [(0, 0, 0), (1, 0, 1), (3, 1, 0), (2, 1, 1)]


@pytest.mark.parametrize("fallback", ["strict", "paper"])
def test_a_relevance_step_walks_as_the_plain_walk_on_lists_sorted_by_relevance(fallback, clustered, brute_neighbors):
    """The relevance step only reorders each node's neighbour list (ties keep the graph's order)."""
    rng = np.random.default_rng(31)
    x, val = clustered(rng, 150, 8), clustered(rng, 10, 8)
    table = brute_neighbors(x, 12)
    relevance = relevance_to(x, val)
    np.testing.assert_allclose(relevance, x @ val.mean(axis=0), rtol=1e-12)
    resorted = np.take_along_axis(table, np.argsort(-relevance[table], axis=1, kind="stable"), axis=1)
    components, weights = core_components(val, 0.8)

    stepped = gradient_walk(x, components, weights, table, 0.3, 0.7, fallback=fallback, relevance=relevance)
    plain = gradient_walk(x, components, weights, resorted, 0.3, 0.7, fallback=fallback)

    assert list(stepped) == list(plain)
    assert stepped.reached_by == plain.reached_by
    assert list(stepped) != list(gradient_walk(x, components, weights, table, 0.3, 0.7, fallback=fallback))
