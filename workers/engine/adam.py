"""Adam's update direction for a training example at a warm-up checkpoint (LESS, docs/architecture.md §4.1).

With the checkpoint's moments m_c, v_c and the example's own gradient g:
``m = b1 m_c + (1 - b1) g``, ``v = b2 v_c + (1 - b2) g^2``, ``g' = m / sqrt(v + eps)``, without
bias correction, exactly as the LESS reference code computes it.
"""

from __future__ import annotations

import torch

BETA1 = 0.9
BETA2 = 0.999
EPS = 1e-8


def adam_direction(grads: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, *,
                   beta1: float = BETA1, beta2: float = BETA2, eps: float = EPS) -> torch.Tensor:
    """[N, P] per-example gradients -> [N, P] update directions; the moments are [P] vectors."""
    m = torch.lerp(exp_avg.expand_as(grads), grads, 1 - beta1)  # b1 m_c + (1 - b1) g
    v = grads.square().mul_(1 - beta2).add_(exp_avg_sq, alpha=beta2).add_(eps)
    return m.div_(v.sqrt_())
