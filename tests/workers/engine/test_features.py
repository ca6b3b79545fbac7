"""Warm-up checkpoints and the feature pipeline, end to end on the real SmolLM2-135M."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradwalk.errors import InvalidInput, NotFound
from gradwalk.workers.engine.adam import adam_direction
from gradwalk.workers.engine.config import EngineConfig, WarmupConfig
from gradwalk.workers.engine.features import Featurizer
from gradwalk.workers.engine.lora import set_weights
from gradwalk.workers.engine.pergrad import per_example_grads_loop
from gradwalk.workers.engine.tokenize import encode
from gradwalk.workers.engine.warmup import (
    ADAM_STATE,
    load_checkpoints,
    lr_factor,
    warmup,
    warmup_indices,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROJ_DIM = 256
# a bigger learning rate than LESS's 2e-5 so that two tiny epochs move the adapter visibly
WARM = WarmupConfig(epochs=2, examples_per_step=3, lr=2e-3, seed=1)


@pytest.fixture(scope="module")
def config(model_dir) -> EngineConfig:
    return EngineConfig.for_device("cpu", model=str(model_dir), max_length=64, batch_size=4, proj_dim=PROJ_DIM)


@pytest.fixture(scope="module")
def warm_dir(tmp_path_factory, config, examples):
    folder = tmp_path_factory.mktemp("warmup")
    warmup(examples, folder, config, WARM)
    return folder


@pytest.fixture(scope="module")
def featurizer(config, warm_dir) -> Featurizer:
    return Featurizer(config, load_checkpoints(warm_dir))


@pytest.fixture(scope="module")
def train_run(featurizer, examples):
    progress = []
    result = featurizer.run(examples, "train", progress=lambda done, total: progress.append((done, total)))
    return result, progress


@pytest.fixture(scope="module")
def validation_rows(featurizer, examples):
    return featurizer.run(examples, "validation").rows


def test_warmup_sample_is_seeded():
    a = warmup_indices(1000, 0.05, seed=7)
    assert len(a) == 50 and len(set(a)) == 50 and (np.diff(a) > 0).all()
    assert np.array_equal(a, warmup_indices(1000, 0.05, seed=7))
    assert not np.array_equal(a, warmup_indices(1000, 0.05, seed=8))
    assert len(warmup_indices(3, 0.05, seed=0)) == 1


@pytest.mark.parametrize("total, ramp", [(1, 1), (2, 1), (4, 1), (10, 3), (3, 3)])
def test_every_warmup_step_has_a_positive_lr_and_the_peak_is_reached(total, ramp):
    factors = [lr_factor(s, total, ramp) for s in range(total)]
    assert all(0 < f <= 1 for f in factors) and max(factors) == 1
    assert factors[:ramp] == sorted(factors[:ramp]) and factors[ramp - 1:] == sorted(factors[ramp - 1:], reverse=True)


def test_warmup_saves_adapter_adam_state_and_epoch_lr(warm_dir, config, examples):
    from safetensors.torch import load_file

    checkpoints = load_checkpoints(warm_dir)
    manifest = json.loads((warm_dir / "warmup.json").read_text())
    assert [c.path.name for c in checkpoints] == ["checkpoint-1", "checkpoint-2"]
    assert manifest["steps_per_epoch"] == 2 and manifest["lora"] == {"r": 8, "alpha": 32, "targets": ["q_proj", "v_proj"]}
    # linear schedule over 4 steps with ceil(4 * 0.03) = 1 warm-up step: lr 2e-3, 2e-3 | 4/3e-3, 2/3e-3
    assert checkpoints[0].lr == pytest.approx(2e-3) and checkpoints[1].lr == pytest.approx(1e-3)
    for c in checkpoints:
        assert (c.path / "adapter_config.json").is_file() and (c.path / "adapter_model.safetensors").is_file()
        first, second = c.adam_state()
        assert len(first) == len(second) == 120  # 30 layers x (q, v) x (A, B)
        assert all((v >= 0).all() for v in second.values())
    one, two = (load_file(c.path / ADAM_STATE) for c in checkpoints)
    assert not torch.equal(one["exp_avg_sq.model.layers.0.self_attn.q_proj.lora_B"],
                           two["exp_avg_sq.model.layers.0.self_attn.q_proj.lora_B"])
    stamp = (warm_dir / "warmup.json").stat().st_mtime_ns
    assert warmup(examples, warm_dir, config, WARM) == checkpoints  # finished: returned, not trained again
    assert (warm_dir / "warmup.json").stat().st_mtime_ns == stamp
    for other in ((examples[1:], config, WARM), (examples, config.with_(max_length=32), WARM),
                  (examples, config, WarmupConfig(epochs=1, examples_per_step=3, lr=2e-3, seed=1))):
        with pytest.raises(InvalidInput, match="other examples or settings"):
            warmup(*other[:1], warm_dir, *other[1:])


def test_features_are_unit_rows_weighted_by_checkpoint_lr(train_run):
    result, progress = train_run
    rows, stats = result.rows, result.stats
    assert rows.dtype == np.float32 and rows.shape == (6, 2 * PROJ_DIM)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    # learning rates 2e-3 and 1e-3: each checkpoint's part carries η_c / Σ η of the squared norm
    np.testing.assert_allclose(np.linalg.norm(rows[:, :PROJ_DIM], axis=1) ** 2, 2 / 3, rtol=1e-4)
    assert progress == [(4, 6), (6, 6)]
    assert stats["n_examples"] == 6 and stats["n_truncated"] == 0 and stats["n_empty"] == 0
    assert stats["device"] == "cpu" and stats["autocast"] == "off" and stats["dim"] == 2 * PROJ_DIM
    assert stats["lora"]["n_params"] == 460_800 and stats["projection"]["kind"] == "sparse"
    assert {"forward_backward", "per_example_grads", "adam", "projection"} <= set(stats["stage_seconds"])
    assert stats["peak_memory_bytes"] > 0


def test_one_feature_by_hand(featurizer, examples, train_run):
    """Batch-1 gradients, Adam with each checkpoint's moments, projection, lr weights: the same row."""
    rows = train_run[0].rows
    index = 3
    encoded = encode(featurizer.tokenizer, examples[index], featurizer.config.max_length)
    parts = []
    for c, checkpoint in enumerate(featurizer.checkpoints):
        set_weights(featurizer.layers, featurizer.weights[c])
        grad = per_example_grads_loop(featurizer.model, featurizer.layers, [encoded], featurizer.tokenizer.pad_token_id)
        first, second = featurizer.moments()[c]
        x = F.normalize(featurizer.projection(adam_direction(grad, first, second)), dim=1)
        parts.append(x * (checkpoint.lr / sum(k.lr for k in featurizer.checkpoints)) ** 0.5)
    expected = F.normalize(torch.cat(parts, 1), dim=1)[0].numpy()
    np.testing.assert_allclose(rows[index], expected, atol=2e-4)


def test_validation_features_use_plain_gradients(train_run, validation_rows):
    np.testing.assert_allclose(np.linalg.norm(validation_rows, axis=1), 1.0, rtol=1e-5)
    assert np.abs(train_run[0].rows - validation_rows).max(axis=1).min() > 0.05  # every row differs


def test_rows_do_not_depend_on_the_batch(featurizer, examples, validation_rows):
    """Padding and batch composition leave every example's row unchanged."""
    alone = featurizer.run([examples[1]], "validation").rows
    np.testing.assert_allclose(alone[0], validation_rows[1], atol=2e-4)


def test_examples_without_a_response_token_get_a_zero_row(featurizer, examples):
    long_prompt = {"messages": [{"role": "user", "content": "Tell me a story. " * 40},
                                {"role": "assistant", "content": "Once upon a time."}]}
    result = featurizer.run([examples[0], long_prompt], "train")
    assert result.stats["n_truncated"] == 1 and result.stats["n_empty"] == 1
    assert not result.rows[1].any()
    assert np.linalg.norm(result.rows[0]) == pytest.approx(1.0, rel=1e-5)


def test_refusals(config, warm_dir, featurizer, examples):
    with pytest.raises(NotFound):
        load_checkpoints(warm_dir / "checkpoint-1")
    with pytest.raises(InvalidInput):
        featurizer.run(examples, "test")
    with pytest.raises(InvalidInput):
        EngineConfig(proj_dim=1000, proj_nnz=3)
    with pytest.raises(NotFound):
        Featurizer(config.with_(model=str(warm_dir)), load_checkpoints(warm_dir))
