"""Per-example gradients of the LoRA weights, for a whole padded batch from one backward pass.

For a LoRA layer ``y = W x + s * B(A x)`` the gradient of example n's loss with respect to A is
``sum_t dh[n,t] (x) x[n,t]`` and with respect to B ``sum_t dz[n,t] (x) h[n,t]``, where ``h = A x``,
``z = B h`` and ``dh``, ``dz`` are the loss gradients at those outputs. Forward hooks keep x, h and
z; one ``autograd.grad`` of the *sum* of the per-example losses gives dh and dz (examples do not
interact, so each example's slice is its own gradient; the batch-summed weight gradients are never
formed), and one batched matmul per weight turns them into per-example gradients. Padded positions
sit after the real ones, so their dh and dz are exactly zero and add nothing.

The loss of an example is the mean token cross-entropy over its response tokens (docs/architecture.md §4.1).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from gradwalk.workers.engine.lora import LoraLayer, lora_params
from gradwalk.workers.engine.timing import StageTimes
from gradwalk.workers.engine.tokenize import IGNORE, Encoded, collate


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on GPUs that have it, fp16 on older ones, full fp32 on CPU."""
    if torch.device(device).type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(torch.device(device).type, dtype=dtype) if dtype else nullcontext()


def loss_scale(dtype: torch.dtype | None) -> float:
    """fp16 gradients underflow without a scale; it is divided out again before use."""
    return 2.0**12 if dtype == torch.float16 else 1.0


def example_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over each example's response tokens (0 when it has none); `logits[:, j]`
    predicts `targets[:, j]`."""
    keep = targets != IGNORE
    token_loss = F.cross_entropy(logits[keep].float(), targets[keep], reduction="none")
    sums = torch.zeros(targets.shape[0], device=logits.device).index_add_(0, keep.nonzero()[:, 0], token_loss)
    return sums / keep.sum(1).clamp(min=1)


def batch_losses(model, batch: dict[str, torch.Tensor], *, response_logits_only: bool = False) -> torch.Tensor:
    """Per-example losses of a padded batch.

    With `response_logits_only` the vocabulary logits are formed only at the positions where some
    example of the batch predicts a response token (transformers' ``logits_to_keep``), which skips
    the LM head, softmax and their backward on the prompts: about a quarter of the work of a small
    model with a large vocabulary. Models whose forward lacks ``logits_to_keep`` get all logits.
    """
    targets = batch["labels"][:, 1:]
    kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "use_cache": False}
    if response_logits_only and _keeps_logits(model):
        positions = (targets != IGNORE).any(0).nonzero()[:, 0]
        logits = model(**kwargs, logits_to_keep=positions).logits
        return example_losses(logits, targets[:, positions])
    return example_losses(model(**kwargs).logits[:, :-1], targets)


def _keeps_logits(model) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def per_example_grads(model, layers: Sequence[LoraLayer], batch: dict[str, torch.Tensor], *,
                      amp: torch.dtype | None = None, times: StageTimes | None = None) -> torch.Tensor:
    """[N, P] fp32 gradients of each example's loss, in the order of :func:`lora.lora_params`.

    `batch` holds right-padded tensors already on the model's device; the model must be in eval
    mode so that LoRA dropout is off.
    """
    device = batch["input_ids"].device
    times = times or StageTimes(device)
    if not (batch["labels"][:, 1:] != IGNORE).any():  # no response token at all: nothing to differentiate
        return torch.zeros(len(batch["labels"]), sum(p.numel() for _, p in lora_params(layers)), device=device)
    kept: dict[int, list[torch.Tensor]] = {}

    def keep_a(index):
        return lambda module, args, out: kept.__setitem__(index, [args[0], out])

    def keep_b(index):
        return lambda module, args, out: kept[index].append(out)

    handles = []
    for i, layer in enumerate(layers):
        handles.append(layer.A.register_forward_hook(keep_a(i)))
        handles.append(layer.B.register_forward_hook(keep_b(i)))
    scale = loss_scale(amp)
    try:
        with times.stage("forward_backward"):
            with autocast(device, amp):
                losses = batch_losses(model, batch, response_logits_only=True)
            outputs = [t for i in range(len(layers)) for t in kept[i][1:]]
            grads = torch.autograd.grad(losses.sum() * scale, outputs)
        with times.stage("per_example_grads"), torch.no_grad():
            pieces = []
            for i in range(len(layers)):
                x, h, _ = kept[i]
                dh, dz = grads[2 * i], grads[2 * i + 1]
                pieces.append(torch.bmm(dh.transpose(1, 2).float(), x.float()).flatten(1))  # A: [N, r*in]
                pieces.append(torch.bmm(dz.transpose(1, 2).float(), h.float()).flatten(1))  # B: [N, out*r]
            flat = torch.cat(pieces, 1)
            if scale != 1.0:
                flat /= scale
    finally:
        for handle in handles:
            handle.remove()
        kept.clear()
    return flat


def per_example_grads_loop(model, layers: Sequence[LoraLayer], examples: Sequence[Encoded], pad_id: int, *,
                           amp: torch.dtype | None = None, times: StageTimes | None = None) -> torch.Tensor:
    """The reference and LESS-style baseline: one unpadded forward/backward per example."""
    params = [p for _, p in lora_params(layers)]
    device = params[0].device
    times = times or StageTimes(device)
    scale = loss_scale(amp)
    rows = []
    for example in examples:
        batch = {k: v.to(device) for k, v in collate([example], pad_id).items()}
        with times.stage("forward_backward"):
            with autocast(device, amp):
                loss = batch_losses(model, batch)[0]
            grads = torch.autograd.grad(loss * scale, params)
            rows.append(torch.cat([g.reshape(-1).float() for g in grads]) / scale)
    return torch.stack(rows)
