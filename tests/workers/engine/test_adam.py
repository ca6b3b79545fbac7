"""Adam's update direction against the state of a real torch.optim.Adam."""

from __future__ import annotations

import copy

import pytest
import torch

from gradwalk.workers.engine.adam import BETA1, BETA2, EPS, adam_direction

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_adam_direction_is_the_next_adam_moments_without_bias_correction():
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(300))
    optimizer = torch.optim.Adam([param], lr=1e-3, betas=(BETA1, BETA2), eps=EPS)
    for _ in range(5):  # a real, non-trivial optimizer state
        optimizer.zero_grad()
        (param.sin() * torch.randn(300)).sum().backward()
        optimizer.step()
    state = optimizer.state[param]
    grads = torch.randn(4, 300) * torch.logspace(-4, 0, 300)  # per-example gradients, many scales

    got = adam_direction(grads, state["exp_avg"], state["exp_avg_sq"])

    for row, g in enumerate(grads):  # what Adam itself does with this gradient as its next one
        param_c, optimizer_c = copy.deepcopy((param, optimizer))
        param_c.grad = g.clone()
        optimizer_c.step()
        moments = optimizer_c.state[param_c]
        expected = moments["exp_avg"] / torch.sqrt(moments["exp_avg_sq"] + EPS)
        torch.testing.assert_close(got[row], expected, rtol=1e-5, atol=1e-6)
    # and the formula of docs/architecture.md §4.1 written out
    m = BETA1 * state["exp_avg"] + (1 - BETA1) * grads
    v = BETA2 * state["exp_avg_sq"] + (1 - BETA2) * grads**2
    torch.testing.assert_close(got, m / torch.sqrt(v + EPS))
    assert torch.equal(state["exp_avg"], optimizer.state[param]["exp_avg"])  # the state is not modified
