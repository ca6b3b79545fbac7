"""The evaluation's figures from per-example scores (workers/engine/evaluation.py), without a model."""

from __future__ import annotations

import json

import pytest

from gradwalk import errors
from gradwalk.workers.engine.evaluation import EvaluationConfig, _last_number, summarize


def _scores(version: list, randoms: list[list], base: list, figure: str = "loss") -> dict:
    return {"base": {figure: base}, "version": {figure: version}, "random": [{figure: r} for r in randoms]}


def test_a_version_clearly_lower_in_loss_is_better_and_unscored_examples_drop_out():
    figures = summarize(_scores([1.0, 1.1, 0.9, None], [[2.0, 2.1, 1.9, None], [2.2, 2.0, 2.1, None]],
                                [3.0, 3.0, 3.0, None]))
    loss = figures["loss"]
    assert (loss["version"], loss["base"], loss["difference"]["n"]) == (pytest.approx(1.0), 3.0, 3)
    assert loss["random_seeds"] == [pytest.approx(2.0), pytest.approx(2.1)]
    assert loss["difference"]["verdict"] == "better" and loss["difference"]["high"] < 0
    assert json.loads(json.dumps(figures)) == figures  # no NaN: a JSON record holds it whole


def test_accuracy_reads_higher_as_better_and_a_tie_is_noise():
    worse = summarize(_scores([0, 0, 0, 0], [[1, 1, 1, 1]], [0, 1, 0, 1], "exact_match"))
    assert worse["exact_match"]["difference"]["verdict"] == "worse"
    tie = summarize(_scores([1, 0, 1, 0], [[1, 0, 1, 0]], [0, 0, 0, 0], "option_accuracy"))
    assert tie["option_accuracy"]["difference"]["verdict"] == "inside the noise"


def test_nothing_scored_is_refused_and_settings_follow_the_device():
    with pytest.raises(errors.InvalidInput, match="fewer than 2 test examples"):
        summarize(_scores([None, 1.0], [[1.0, 1.0]], [1.0, 1.0]))
    assert EvaluationConfig.for_device("cpu").greedy is False
    assert EvaluationConfig.for_device("cuda:0").greedy is True
    assert EvaluationConfig.for_device("cpu", epochs=1).finetune_config(rows=10, seed=3).steps == 2
    with pytest.raises(errors.InvalidInput):
        EvaluationConfig(epochs=0)
    assert (_last_number("so 1,250 dollars."), _last_number("none")) == ("1250", None)
