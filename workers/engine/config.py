"""The engine's typed settings, with one set of defaults per kind of device.

GPU workers use the paper's settings (LESS Appendix B): LoRA r=128, alpha=512 on the q/k/v/o
projections (14.7M LoRA weights for SmolLM2-135M), sequences up to 2048 tokens. On a CPU the
forward/backward pass is the cost, so the CPU defaults keep alpha/r = 4 but use r=8 on q/v only
(460,800 weights) and at most 512 tokens.

Both project to 8192 dims per checkpoint with the sparse Johnson-Lindenstrauss transform (4
nonzeros per input coordinate): it costs about the same at every D and keeps the cosines between
real gradient pairs as well as a dense +-1 projection (docs/measurements.md, "Projection"). Since D no longer
costs compute, the CPU keeps the full 8192; a smaller ``proj_dim`` only saves storage and kNN time
downstream.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gradwalk.errors import InvalidInput

ProjectionKind = Literal["sparse", "dense"]


def default_cache_dir() -> Path:
    """The platform's one cache folder (``GRADWALK_CACHE_DIR``), so the model is prepared once."""
    from gradwalk.settings import Settings

    return Settings().cache_dir


@dataclass(frozen=True)
class EngineConfig:
    """What a feature run needs; ``for_device`` fills the defaults of the device it runs on."""

    model: str | None = None  # a local HF causal-LM folder; None = SmolLM2-135M-Instruct from PyPI
    cache_dir: Path = dataclasses.field(default_factory=default_cache_dir)
    device: str = "auto"
    lora_r: int = 128
    lora_alpha: int = 512
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    max_length: int = 2048
    batch_size: int = 16
    proj_dim: int = 8192
    proj_kind: ProjectionKind = "sparse"
    proj_nnz: int = 4  # nonzeros per input coordinate of the sparse projection
    proj_seed: int = 0

    def __post_init__(self) -> None:
        if self.lora_r < 1 or self.lora_alpha <= 0 or not self.lora_targets:
            raise InvalidInput("lora: r >= 1, alpha > 0 and at least one target module are needed")
        if self.max_length < 2 or self.batch_size < 1:
            raise InvalidInput("max_length must be >= 2 and batch_size >= 1")
        if self.proj_kind not in ("sparse", "dense"):
            raise InvalidInput(f"proj_kind must be 'sparse' or 'dense', not {self.proj_kind!r}")
        if self.proj_dim < 1 or not 1 <= self.proj_nnz <= self.proj_dim or self.proj_dim % self.proj_nnz:
            raise InvalidInput("proj_dim must be >= 1 and a multiple of proj_nnz (1 <= proj_nnz <= proj_dim)")

    @classmethod
    def for_device(cls, device: str = "auto", **overrides) -> EngineConfig:
        """The defaults for `device` ("auto" resolves to cuda when present), then `overrides`."""
        from gradwalk.device import resolve_device

        resolved = resolve_device(device)
        base = {} if resolved.startswith("cuda") else CPU_DEFAULTS
        return cls(device=resolved, **{**base, **overrides})

    def with_(self, **changes) -> EngineConfig:
        return dataclasses.replace(self, **changes)


CPU_DEFAULTS = {
    "lora_r": 8,
    "lora_alpha": 32,
    "lora_targets": ("q_proj", "v_proj"),
    "max_length": 512,
    "batch_size": 8,
}


@dataclass(frozen=True)
class WarmupConfig:
    """The warm-up training of LESS: 5% of the pool, 4 epochs, AdamW lr 2e-5, linear schedule
    with 3% warm-up steps, 128 examples per optimizer step, no weight decay, LoRA dropout 0.1."""

    fraction: float = 0.05
    epochs: int = 4
    lr: float = 2e-5
    examples_per_step: int = 128
    warmup_ratio: float = 0.03
    lora_dropout: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1 or self.epochs < 1 or self.lr <= 0 or self.examples_per_step < 1:
            raise InvalidInput("warm-up: 0 < fraction <= 1, epochs >= 1, lr > 0, examples_per_step >= 1")
