"""Selection methods: the pure algorithms, and the one table the API, the CLI and experiments use.

Everything here is numpy only: no driver, no Celery, no web. A Celery task looks a method up,
loads the inputs it ``needs``, calls :meth:`Method.select`, and writes the :class:`Selection`.

The methods (docs/architecture.md §4.4, §4.5): ``g2is``; its ablations ``g2is-no-graph`` (PCA anchoring and
budgets, rows in X·K order, no walk) and ``g2is-no-gradient`` (the same walk on sentence
embeddings and a graph built from them); ``less``; ``embedding`` (the Sentence-BERT baseline);
``random``. What a method reads from a feature run follows from its ``needs``: gradient features
(``train_features``/``val_features``) come from a ``gradient`` run, embeddings
(``train_embeddings``/``val_embeddings``) from an ``embedding`` run (:data:`FEATURE_INPUTS`,
:attr:`Method.feature_kind`). Multi-target selection needs no method of its own: it pools the
validation rows of several targets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradwalk.checks import check_int
from gradwalk.errors import InvalidInput
from gradwalk.graph.selection.common import (
    FALLBACKS,
    ComponentReport,
    Selection,
    allocate_budgets,
    check_choice,
    check_fraction,
    check_positive_int,
    target_size,
    top_fraction,
)
from gradwalk.graph.selection.pca import core_components
from gradwalk.graph.selection.scoring import (
    REDUCTIONS,
    embedding_scores,
    less_scores,
    random_selection,
    scored_selection,
)
from gradwalk.graph.selection.walk import (
    ArrayNeighbors,
    NeighborSource,
    PrefetchingNeighborSource,
    gradient_walk,
    no_graph_selection,
    relevance_to,
)

__all__ = [
    "EMBEDDING",
    "FEATURE_INPUTS",
    "GRADIENT",
    "METHODS",
    "ArrayNeighbors",
    "ComponentReport",
    "Method",
    "NeighborSource",
    "PrefetchingNeighborSource",
    "Selection",
    "SelectionInputs",
    "allocate_budgets",
    "core_components",
    "embedding_scores",
    "get_method",
    "gradient_walk",
    "less_scores",
    "no_graph_selection",
    "random_selection",
    "scored_selection",
    "target_size",
    "top_fraction",
]


GRADIENT, EMBEDDING = "gradient", "embedding"
# The kinds of feature run (platform/work/feature_runs.py), each with the inputs its pool and
# validation arrays fill.
FEATURE_INPUTS: dict[str, tuple[str, str]] = {
    GRADIENT: ("train_features", "val_features"),
    EMBEDDING: ("train_embeddings", "val_embeddings"),
}


@dataclass(frozen=True)
class SelectionInputs:
    """What a method may read. The caller fills in the fields its method ``needs``."""

    train_features: np.ndarray | None = None  # [N, D]; LESS also takes [C, N, D] with lrs
    val_features: np.ndarray | None = None  # [M, D]; LESS also takes [C, M, D]
    neighbors: np.ndarray | NeighborSource | None = None
    val_subtasks: Sequence[object] | None = None
    lrs: Sequence[float] | None = None
    train_embeddings: np.ndarray | None = None
    val_embeddings: np.ndarray | None = None
    pool_size: int | None = None


@dataclass(frozen=True)
class _RatioParams:
    """Parameters are checked when they are parsed, so a bad value is refused by name before a job
    is recorded, never found later by a worker (the same checks as the selection functions)."""

    ratio: float

    def __post_init__(self) -> None:
        check_fraction(self.ratio, "ratio")


@dataclass(frozen=True)
class G2ISParams(_RatioParams):
    delta: float = 0.8
    variance: float = 0.5
    anchor_pool: int = 1000
    fallback: str = "strict"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.delta, "delta", allow_zero=True)
        check_fraction(self.variance, "variance")
        check_positive_int(self.anchor_pool, "anchor_pool")
        check_choice(self.fallback, "fallback", FALLBACKS)


STEPS = ("similarity", "relevance")


@dataclass(frozen=True)
class TargetWalkParams(G2ISParams):
    """``g2is-target``: the G2IS walk, steered by the target's shared direction (docs/quality.md).

    ``centre=False`` keeps the direction the validation gradients share as the first component;
    ``step="relevance"`` takes a node's qualifying neighbours most relevant to the target first.
    """

    centre: bool = False
    step: str = "relevance"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.centre, bool):
            raise InvalidInput(f"centre must be true or false, got {self.centre!r}")
        check_choice(self.step, "step", STEPS)


@dataclass(frozen=True)
class NoGraphParams(_RatioParams):
    variance: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.variance, "variance")


@dataclass(frozen=True)
class LessParams(_RatioParams):
    pass


@dataclass(frozen=True)
class EmbeddingParams(_RatioParams):
    reduce: str = "max"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.reduce, "reduce", REDUCTIONS)


@dataclass(frozen=True)
class RandomParams(_RatioParams):
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.seed, "seed", low=0)


@dataclass(frozen=True)
class Method:
    """A selection method: its name, typed parameters (defaults included), inputs, and how to run it."""

    name: str
    params: type
    needs: tuple[str, ...]
    run: Callable[[SelectionInputs, Any], Selection]
    description: str  # one line, for --help, the client and the web page's submit form

    def defaults(self) -> dict[str, Any]:
        """Each parameter with its default (None where the caller must give it: the ratio)."""
        return {f.name: None if f.default is dataclasses.MISSING else f.default
                for f in dataclasses.fields(self.params)}

    def usage(self) -> str:
        """One line: name, parameters with defaults, what it does."""
        params = ", ".join(name if value is None else f"{name}={value}" for name, value in self.defaults().items())
        return f"{self.name} ({params}): {self.description}"

    @property
    def feature_kind(self) -> str | None:
        """The kind of feature run whose arrays this method reads, or None when it reads none."""
        return next((kind for kind, (train, _) in FEATURE_INPUTS.items() if train in self.needs), None)

    def parse(self, params: Mapping[str, Any]) -> Any:
        """Typed parameters from a JSON-like mapping; unknown or missing names are refused by name."""
        known = {f.name: f for f in dataclasses.fields(self.params)}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise InvalidInput(f"{self.name} has no parameter {', '.join(unknown)}; it takes {', '.join(known)}")
        missing = [
            name
            for name, f in known.items()
            if name not in params and f.default is dataclasses.MISSING
        ]
        if missing:
            raise InvalidInput(f"{self.name} needs the parameter {', '.join(missing)}")
        return self.params(**params)

    def select(self, inputs: SelectionInputs, params: Mapping[str, Any]) -> Selection:
        """Run the method; the result carries this method's registry name (ablations reuse an
        algorithm whose own result is named after it)."""
        parsed = self.parse(params)
        absent = [name for name in self.needs if getattr(inputs, name) is None]
        if absent:
            raise InvalidInput(f"{self.name} needs the input {', '.join(absent)}")
        return dataclasses.replace(self.run(inputs, parsed), method=self.name)


def _with_params(selection: Selection, params: Any) -> Selection:
    """Record every parameter the run used, PCA's included, on the result."""
    return dataclasses.replace(selection, params={**selection.params, **dataclasses.asdict(params)})


def _g2is(inputs: SelectionInputs, p: G2ISParams) -> Selection:
    components, weights = core_components(inputs.val_features, p.variance)
    walked = gradient_walk(
        inputs.train_features, components, weights, inputs.neighbors, p.ratio, p.delta, p.anchor_pool, p.fallback
    )
    return _with_params(walked, p)


def _target_walk(inputs: SelectionInputs, p: TargetWalkParams) -> Selection:
    components, weights = core_components(inputs.val_features, p.variance, centre=p.centre)
    relevance = relevance_to(inputs.train_features, inputs.val_features) if p.step == "relevance" else None
    walked = gradient_walk(inputs.train_features, components, weights, inputs.neighbors, p.ratio, p.delta,
                           p.anchor_pool, p.fallback, relevance=relevance)
    return _with_params(walked, p)


def _g2is_on_embeddings(inputs: SelectionInputs, p: G2ISParams) -> Selection:
    """The "w/o gradient" ablation: the G2IS walk with embeddings in place of gradient features."""
    return _g2is(dataclasses.replace(inputs, train_features=inputs.train_embeddings,
                                     val_features=inputs.val_embeddings), p)


def _no_graph(inputs: SelectionInputs, p: NoGraphParams) -> Selection:
    components, weights = core_components(inputs.val_features, p.variance)
    return _with_params(no_graph_selection(inputs.train_features, components, weights, p.ratio), p)


def _less(inputs: SelectionInputs, p: LessParams) -> Selection:
    scores = less_scores(inputs.train_features, inputs.val_features, subtasks=inputs.val_subtasks, lrs=inputs.lrs)
    return scored_selection("less", scores, p.ratio)


def _embedding(inputs: SelectionInputs, p: EmbeddingParams) -> Selection:
    scores = embedding_scores(inputs.train_embeddings, inputs.val_embeddings, p.reduce)
    return scored_selection("embedding", scores, p.ratio, reduce=p.reduce)


def _random(inputs: SelectionInputs, p: RandomParams) -> Selection:
    return random_selection(inputs.pool_size, p.ratio, p.seed)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("g2is", G2ISParams, ("train_features", "val_features", "neighbors"), _g2is,
               "the paper's G2IS: walk the gradient graph from the anchors of the validation gradients' "
               "principal components"),
        Method("g2is-target", TargetWalkParams, ("train_features", "val_features", "neighbors"), _target_walk,
               "G2IS steered by the target: components of what the validation gradients share, steps to the "
               "neighbour most relevant to the target (docs/quality.md)"),
        Method("g2is-no-graph", NoGraphParams, ("train_features", "val_features"), _no_graph,
               "ablation: G2IS's components and budgets, rows in order of alignment, no walk"),
        Method("g2is-no-gradient", G2ISParams, ("train_embeddings", "val_embeddings", "neighbors"),
               _g2is_on_embeddings, "ablation: the G2IS walk on sentence embeddings and their graph"),
        Method("less", LessParams, ("train_features", "val_features"), _less,
               "LESS: the rows whose Adam-aware gradients are most similar to the target's mean validation gradient"),
        Method("embedding", EmbeddingParams, ("train_embeddings", "val_embeddings"), _embedding,
               "the rows whose sentence embeddings are closest to the target's validation examples"),
        Method("random", RandomParams, ("pool_size",), _random, "a seeded uniform sample: the baseline"),
    )
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise InvalidInput(f"unknown selection method {name!r}; known: {', '.join(METHODS)}") from None
