"""LoRA adapters with peft, and one fixed order of their parameters.

Every flat vector the engine handles (a per-example gradient, Adam's moments, the coordinates the
projection maps) lists the LoRA weights in the same order: model order, A before B for each
adapted layer. Parameters are keyed by a canonical name such as
``model.layers.0.self_attn.q_proj.lora_A``, which is the same whether the model was freshly wrapped
or loaded from a saved adapter, so Adam states saved by the warm-up line up with the gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gradwalk.errors import InvalidInput

_PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class LoraLayer:
    """One adapted linear layer: ``y = W x + scaling * B(A(x))``."""

    name: str  # canonical path of the adapted module, e.g. model.layers.0.self_attn.q_proj
    A: nn.Linear
    B: nn.Linear

    @property
    def params(self) -> list[tuple[str, torch.Tensor]]:
        return [(f"{self.name}.lora_A", self.A.weight), (f"{self.name}.lora_B", self.B.weight)]


def attach_lora(model, r: int, alpha: float, targets: tuple[str, ...], dropout: float = 0.0):
    """Wrap `model` in a fresh, seeded-by-caller LoRA adapter; only the adapter trains."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), lora_dropout=dropout,
                        bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def load_lora(model, adapter_dir: Path):
    """Wrap `model` with the adapter saved in `adapter_dir`, in eval mode (dropout off)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, adapter_dir, is_trainable=True).eval()


def lora_layers(peft_model) -> list[LoraLayer]:
    from peft.tuners.lora import LoraLayer as PeftLoraLayer

    layers = []
    for name, module in peft_model.named_modules():
        if isinstance(module, PeftLoraLayer):
            if len(module.active_adapters) != 1 or module.use_dora[module.active_adapters[0]]:
                raise InvalidInput(f"{name}: exactly one plain (non-DoRA) LoRA adapter is supported")
            adapter = module.active_adapters[0]
            layers.append(LoraLayer(name.removeprefix(_PEFT_PREFIX), module.lora_A[adapter], module.lora_B[adapter]))
    if not layers:
        raise InvalidInput("the model has no LoRA layers")
    return layers


def lora_params(layers: Sequence[LoraLayer]) -> list[tuple[str, torch.Tensor]]:
    return [param for layer in layers for param in layer.params]


def n_params(layers: Sequence[LoraLayer]) -> int:
    return sum(p.numel() for _, p in lora_params(layers))


def read_adapter(adapter_dir: Path) -> dict[str, torch.Tensor]:
    """The saved LoRA weights of `adapter_dir` by canonical name."""
    from safetensors.torch import load_file

    return {key.removeprefix(_PEFT_PREFIX).removesuffix(".weight"): value
            for key, value in load_file(Path(adapter_dir) / "adapter_model.safetensors").items()}


@torch.no_grad()
def set_weights(layers: list[LoraLayer], weights: dict[str, torch.Tensor]) -> None:
    """Copy saved LoRA weights into the model's layers (switching checkpoints without reloading)."""
    for name, param in lora_params(layers):
        if name not in weights:
            raise InvalidInput(f"the adapter has no weight for {name}")
        param.copy_(weights[name])


def flatten(layers: list[LoraLayer], tensors: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
    """One flat fp32 vector of per-parameter tensors (e.g. Adam's moments), in gradient order."""
    return torch.cat([tensors[name].reshape(-1).to(device, torch.float32) for name, _ in lora_params(layers)])
