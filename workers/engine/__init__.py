"""The gradient engine: pure torch/transformers/peft, nothing of Celery or Neo4j (docs/architecture.md §2, §4.1).

Entry points for the worker tasks:
- ``config.EngineConfig.for_device(device, **overrides)``: settings with the device's defaults;
- ``warmup.warmup_indices(n_pool, fraction, seed)`` then ``warmup.warmup(examples, out_dir, config)``:
  the LESS warm-up, one checkpoint (adapter, Adam state, mean lr) per epoch;
- ``features.Featurizer(config, checkpoints).run(examples, mode, progress)`` (or ``.stream``):
  unit feature rows, ``len(checkpoints) * proj_dim`` wide, plus stats.

Modules: models (locate, convert, load), tokenize (chat template, response-only labels), lora,
pergrad (batched per-example gradients), adam, projection, features, warmup, timing.
Nothing is imported here, so reading the config never loads torch.
"""
