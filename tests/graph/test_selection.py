"""The method registry: typed parameters, the feature kind each method reads, refusals by name."""

from __future__ import annotations

import numpy as np
import pytest

from gradwalk.errors import InvalidInput
from gradwalk.graph.selection.pca import core_components
from gradwalk.graph.selection.registry import METHODS, SelectionInputs, get_method
from gradwalk.graph.selection.walk import gradient_walk


def test_registry_runs_methods_with_typed_params_and_records_them(clustered, brute_neighbors):
    rng = np.random.default_rng(13)
    x, val = clustered(rng, 50, 6), clustered(rng, 10, 6)
    neighbors = brute_neighbors(x, 6)
    inputs = SelectionInputs(
        train_features=x, val_features=val, neighbors=neighbors, train_embeddings=x, val_embeddings=val, pool_size=50
    )

    result = get_method("g2is").select(inputs, {"ratio": 0.2, "delta": 0.5})

    components, weights = core_components(val, 0.5)
    assert list(result) == list(gradient_walk(x, components, weights, neighbors, 0.2, delta=0.5))
    assert result.summary()["params"] == {
        "ratio": 0.2, "delta": 0.5, "variance": 0.5, "anchor_pool": 1000, "fallback": "strict"
    }
    for name in METHODS:
        picked = get_method(name).select(inputs, {"ratio": 0.2})
        assert (len(picked), picked.method) == (10, name)


def test_each_method_reads_the_feature_run_kind_its_inputs_come_from():
    kinds = {name: method.feature_kind for name, method in METHODS.items()}
    assert kinds == {"g2is": "gradient", "g2is-target": "gradient", "g2is-no-graph": "gradient", "less": "gradient",
                     "g2is-no-gradient": "embedding", "embedding": "embedding", "random": None}


def test_the_no_gradient_ablation_is_the_walk_on_embeddings(clustered, brute_neighbors):
    rng = np.random.default_rng(17)
    gradients, embeddings = clustered(rng, 60, 6), clustered(rng, 60, 5)
    val_gradients, val_embeddings = clustered(rng, 8, 6), clustered(rng, 8, 5)
    neighbors = brute_neighbors(embeddings, 6)
    inputs = SelectionInputs(train_features=gradients, val_features=val_gradients, train_embeddings=embeddings,
                             val_embeddings=val_embeddings, neighbors=neighbors)

    result = get_method("g2is-no-gradient").select(inputs, {"ratio": 0.25, "delta": 0.5})

    components, weights = core_components(val_embeddings, 0.5)
    assert list(result) == list(gradient_walk(embeddings, components, weights, neighbors, 0.25, delta=0.5))
    assert result.method == "g2is-no-gradient" and len(result) == 15


@pytest.mark.parametrize(
    ("name", "params", "inputs", "named"),
    [
        ("g2is", {"ratio": 0.2, "beta": 1}, {}, "beta"),
        ("g2is", {"delta": 0.5}, {}, "ratio"),
        ("g2is", {"ratio": 0.2}, {"neighbors": None}, "neighbors"),
        ("walk", {"ratio": 0.2}, {}, "walk"),
        ("g2is-target", {"ratio": 0.2, "step": "nearest"}, {}, "step"),
        ("g2is-target", {"ratio": 0.2, "centre": "no"}, {}, "centre"),
    ],
)
def test_registry_refuses_unknown_names_and_missing_inputs(name, params, inputs, named):
    rows = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]])  # two unit rows
    full = {"train_features": rows, "val_features": rows, "neighbors": np.array([[1], [0]])}
    with pytest.raises(InvalidInput, match=named):
        get_method(name).select(SelectionInputs(**(full | inputs)), params)


def _pool(clustered, brute_neighbors, seed=23, n=120):
    rng = np.random.default_rng(seed)
    x, val = clustered(rng, n, 8), clustered(rng, 12, 8)
    return SelectionInputs(train_features=x, val_features=val, neighbors=brute_neighbors(x, 10), pool_size=n)


def test_g2is_target_with_the_papers_choices_is_g2is(clustered, brute_neighbors):
    inputs = _pool(clustered, brute_neighbors)
    paper = get_method("g2is").select(inputs, {"ratio": 0.2, "delta": 0.6})
    same = get_method("g2is-target").select(inputs, {"ratio": 0.2, "delta": 0.6, "centre": True, "step": "similarity"})
    assert list(same) == list(paper)
    assert same.summary()["params"] == {"ratio": 0.2, "delta": 0.6, "variance": 0.5, "anchor_pool": 1000,
                                        "fallback": "strict", "centre": True, "step": "similarity"}


@pytest.mark.parametrize("ratio", [0.05, 0.2, 0.5])
def test_g2is_target_is_deterministic_keeps_its_budgets_and_never_repeats_a_row(ratio, clustered, brute_neighbors):
    inputs = _pool(clustered, brute_neighbors, seed=29)
    first = get_method("g2is-target").select(inputs, {"ratio": ratio})
    again = get_method("g2is-target").select(inputs, {"ratio": ratio})

    assert list(first) == list(again)
    assert len(set(first)) == len(first)
    assert len(first) + first.shortfall == int(np.floor(120 * ratio))
    for report in first.components:
        assert (first.component == report.index).sum() == report.selected <= report.budget
    assert len(first.components) == len(core_components(inputs.val_features, 0.5, centre=False)[1])
