"""Evaluating a version: fine-tune on its rows and on random rows of the same size, score each
on the target's held-out test part, and say whether the version beats random (docs/architecture.md
§4.6). Pure engine code: the worker task (workers/tasks/evaluate.py) loads the rows and keeps
the results.

Every fine-tune sees each of its rows for ``epochs`` epochs, so a version and a random subset of
the same size get the same steps. The figures are per test example, so a stored scores file is
enough to recompute every summary figure (:func:`summarize`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np

from gradwalk.errors import InvalidInput
from gradwalk.workers.engine.compare import paired_difference
from gradwalk.workers.engine.config import EngineConfig
from gradwalk.workers.engine.finetune import FinetuneConfig, finetune

# Scores where a lower value is better; the others (accuracies) are better higher.
LOWER_IS_BETTER = {"loss": True, "option_accuracy": False, "exact_match": False}
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")

# ``(what, done, total)`` after each fine-tune step (what: "step") and each scoring batch or greedy
# answer ("loss batch", "option batch", "answer"). It may raise to stop the unit there: that is how
# a cancel reaches the middle of a fine-tune or a scoring.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class EvaluationConfig:
    """How every subset is trained and scored. GPU and CPU defaults differ (:meth:`for_device`):
    a CPU trains fewer epochs and skips greedy decoding, which costs a generation per example."""

    epochs: int = 3
    random_seeds: int = 3
    batch_size: int = 8
    lr: float = 2e-4
    warmup_ratio: float = 0.1
    seed: int = 0
    greedy: bool = True  # exact match of the number a target's gold names, by greedy decoding
    max_new_tokens: int = 256

    def __post_init__(self) -> None:
        if self.epochs < 1 or not 1 <= self.random_seeds <= 20 or self.max_new_tokens < 1:
            raise InvalidInput("evaluation: epochs >= 1, 1 <= random_seeds <= 20, max_new_tokens >= 1")
        FinetuneConfig(steps=1, batch_size=self.batch_size, lr=self.lr, warmup_ratio=self.warmup_ratio)

    @classmethod
    def for_device(cls, device: str, **overrides) -> EvaluationConfig:
        """The defaults of ``device`` (a resolved "cpu" or "cuda..."), then ``overrides``."""
        base = {} if device.startswith("cuda") else CPU_DEFAULTS
        return cls(**{**base, **overrides})

    def finetune_config(self, rows: int, seed: int) -> FinetuneConfig:
        """The fixed budget of a fine-tune on ``rows`` rows: each seen ``epochs`` times."""
        return FinetuneConfig(steps=max(1, math.ceil(self.epochs * rows / self.batch_size)),
                              batch_size=self.batch_size, lr=self.lr, warmup_ratio=self.warmup_ratio, seed=seed)

    def to_dict(self) -> dict:
        return asdict(self)


CPU_DEFAULTS = {"epochs": 2, "greedy": False, "max_new_tokens": 128}


def _part(progress: Progress | None, what: str) -> Callable[[int, int], None] | None:
    return partial(progress, what) if progress else None


def score(model, tokenizer, test: Sequence[dict], config: EngineConfig, ev: EvaluationConfig,
          progress: Progress | None = None) -> dict[str, list]:
    """Per test example: ``loss`` (mean answer-token loss), and where examples carry ``gold``,
    ``option_accuracy`` (those with ``options``) or ``exact_match`` of the last number of a greedy
    answer (the others, when ``ev.greedy``); NaN where a figure does not apply."""
    from gradwalk.workers.engine import evaluate

    out = {"loss": evaluate.response_losses(model, tokenizer, test, config.max_length, config.batch_size,
                                            _part(progress, "loss batch"))}
    choice = [i for i, r in enumerate(test) if r.get("options") and r.get("gold") is not None]
    if choice:
        out["option_accuracy"] = np.full(len(test), np.nan)
        out["option_accuracy"][choice] = evaluate.option_correct(
            model, tokenizer, [test[i] for i in choice], config.max_length, config.batch_size,
            _part(progress, "option batch"))
    numbers = [i for i, r in enumerate(test) if not r.get("options") and r.get("gold") is not None]
    if numbers and ev.greedy:
        answers = evaluate.greedy_answers(model, tokenizer, [test[i] for i in numbers], ev.max_new_tokens,
                                          _part(progress, "answer"))
        out["exact_match"] = np.full(len(test), np.nan)
        out["exact_match"][numbers] = [float(_last_number(a) == _last_number(str(test[i]["gold"])))
                                       for a, i in zip(answers, numbers, strict=True)]
    return {k: [None if np.isnan(v) else float(v) for v in values] for k, values in out.items()}


def _last_number(text: str) -> str | None:
    found = _NUMBER.findall(text)
    return found[-1].replace(",", "").rstrip(".") if found else None


def score_base(test: Sequence[dict], config: EngineConfig, ev: EvaluationConfig,
               progress: Progress | None = None) -> dict[str, list]:
    """The base model's scores, the floor every fine-tune is read against."""
    import torch

    from gradwalk.device import resolve_device
    from gradwalk.workers.engine.models import load_model, resolve_model

    model, tokenizer = load_model(resolve_model(config.model, config.cache_dir),
                                  torch.device(resolve_device(config.device)))
    return score(model.eval(), tokenizer, test, config, ev, progress)


def train_and_score(rows: Sequence[dict], test: Sequence[dict], config: EngineConfig, ev: EvaluationConfig,
                    seed: int, progress: Progress | None = None) -> dict[str, list]:
    """Fine-tune a fresh adapter (seeded by ``seed``) on ``rows`` and score it on ``test``."""
    tuned = finetune(rows, config, ev.finetune_config(len(rows), seed), _part(progress, "step"))
    return score(tuned.model, tuned.tokenizer, test, config, ev, progress)


def _mean(values: np.ndarray) -> float | None:
    """The mean of the scored examples; None when none was (JSON has no NaN)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def summarize(scores: dict) -> dict:
    """Each figure's means (base, version, random) and the version's paired difference to the
    random mean with its bootstrap 95% interval and verdict, from a scores file's content:
    ``{"base": {figure: [...]}, "version": {...}, "random": [{...} per seed]}``."""
    figures = {}
    for figure, lower in LOWER_IS_BETTER.items():
        if figure not in scores["version"]:
            continue
        version = np.array(scores["version"][figure], dtype=np.float64)
        randoms = np.array([r[figure] for r in scores["random"]], dtype=np.float64)
        base = np.array(scores["base"][figure], dtype=np.float64)
        if np.isfinite(version).sum() < 2:
            continue
        figures[figure] = {
            "base": _mean(base), "version": _mean(version), "random": _mean(randoms),
            "random_seeds": [_mean(r) for r in randoms],
            "difference": paired_difference(version, randoms, lower_is_better=lower).to_dict(),
        }
    if not figures:
        raise InvalidInput("fewer than 2 test examples could be scored: none of the test part fits max_length")
    return figures
