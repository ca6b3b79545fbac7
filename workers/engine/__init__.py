"""The gradient engine: pure torch/transformers/peft, nothing of Celery or Neo4j (docs/architecture.md §2, §4.1).

Entry points for the worker tasks:
- ``config.EngineConfig.for_device(device, **overrides)``: settings with the device's defaults;
- ``warmup.warmup_indices(n_pool, fraction, seed)`` then ``warmup.warmup(examples, out_dir, config)``:
  the LESS warm-up, one checkpoint (adapter, Adam state, mean lr) per epoch;
- ``features.Featurizer(config, checkpoints).run(examples, mode, progress)`` (or ``.stream``):
  unit feature rows, ``len(checkpoints) * proj_dim`` wide, plus stats;
- ``embeddings.Embedder(cache_dir, device).encode(examples)``: MiniLM sentence embeddings.

For judging a selection (benchmarks/quality.py): ``finetune.finetune`` (a fixed-budget LoRA
fine-tune) and ``evaluate`` (held-out response loss, option accuracy, greedy answers).

Modules: models (locate, convert, load), packages (model folders from pinned wheels), tokenize
(chat template, response-only labels), lora, pergrad (batched per-example gradients), adam,
projection, features, warmup, embeddings, finetune, evaluate, timing.
Nothing is imported here, so reading the config never loads torch.
"""
