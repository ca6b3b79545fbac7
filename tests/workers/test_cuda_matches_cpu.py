"""On a machine with a GPU: the CUDA paths give the CPU paths' answers (skipped where there is none).

CI has no GPU; these run wherever one is present (they ran on an H100, see
benchmarks/results/gpu-h100.json)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradwalk.graph.knn.topk import knn_graph
from gradwalk.workers.engine.config import EngineConfig, WarmupConfig
from gradwalk.workers.engine.features import Featurizer
from gradwalk.workers.engine.warmup import load_checkpoints, warmup

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_knn_lists_on_cuda_equal_cpu():
    x = np.random.default_rng(0).normal(size=(2000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids_gpu, w_gpu = knn_graph(x, k=16, device="cuda")
    ids_cpu, w_cpu = knn_graph(x, k=16, device="cpu")
    # Products summed in another order can swap a near-tie: allow one row in a thousand.
    assert (ids_gpu == ids_cpu).all(axis=1).mean() >= 0.999
    np.testing.assert_allclose(w_gpu, w_cpu, atol=1e-5)


def test_feature_rows_on_cuda_equal_cpu(model_dir, examples, tmp_path):
    shape = {"model": str(model_dir), "max_length": 128, "batch_size": 4, "proj_dim": 512, "lora_r": 8,
             "lora_alpha": 32, "lora_targets": ("q_proj", "v_proj")}
    gpu, cpu = EngineConfig.for_device("cuda", **shape), EngineConfig.for_device("cpu", **shape)
    warmup(examples, tmp_path, gpu, WarmupConfig(epochs=2, examples_per_step=3, lr=2e-3, seed=1))
    checkpoints = load_checkpoints(tmp_path)
    for kind in ("train", "validation"):
        on_gpu = np.asarray(Featurizer(gpu, checkpoints).run(examples, kind).rows, dtype=np.float64)
        on_cpu = np.asarray(Featurizer(cpu, checkpoints).run(examples, kind).rows, dtype=np.float64)
        cosine = (on_gpu * on_cpu).sum(axis=1)  # unit rows; bf16 autocast on the GPU moves them a little
        assert cosine.min() > 0.999, (kind, cosine)
