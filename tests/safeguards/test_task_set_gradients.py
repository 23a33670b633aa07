"""Gradients of every action-set safeguard w.r.t. the *safe-set tensors* on real task states
(the path SHAC differentiates through: state -> safe action set -> safeguard), against central
finite differences in float64.  Regression test: the fused box paths once dropped d(a_s)/d(d).
"""

from __future__ import annotations

import pytest
import torch

from safegrad import envs
from safegrad.safeguards import BoundaryProjection, RayMask
from safegrad.sets import HPolytope

F64 = torch.float64
TASKS = ["ManageHousehold-v0", "BalanceQuadrotor-v0", "BalancePendulum-v0", "NavigateSeeker-v0"]
# The safeguards' own action box is widened so that no row of the task's set ties with it: at a
# tie (a set row equal to the box bound, e.g. the action-bound rows every task includes) the map
# has a kink, central differences average the one-sided derivatives and no gradient is "the"
# gradient (the fused paths then give the gradient to the box, a constant).
BOX = (-3.0, 3.0)
SAFEGUARDS = {
    "BP": lambda: BoundaryProjection(action_box=BOX),
    "RM": lambda: RayMask("linear", action_box=BOX),
    "HRM": lambda: RayMask("tanh", action_box=BOX),
}


def _fd_grad(f, d0: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    g = torch.zeros_like(d0)
    for idx in range(d0.numel()):
        dp, dm = d0.clone().view(-1), d0.clone().view(-1)
        dp[idx] += eps
        dm[idx] -= eps
        g.view(-1)[idx] = (f(dp.view_as(d0)) - f(dm.view_as(d0))) / (2 * eps)
    return g


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", list(SAFEGUARDS))
def test_gradient_wrt_safe_set_offsets_matches_fd(task, name):
    env = envs.make(task, num_envs=2, seed=0, dtype=F64)
    env.reset(seed=0)
    P = env.safe_action_set(env.state)
    C, d0 = P.C.detach(), P.d.detach()
    gen = torch.Generator().manual_seed(1)
    a = 1.4 * torch.rand(2, env.action_dim, generator=gen, dtype=F64) - 0.7
    w = torch.randn(2, env.action_dim, generator=gen, dtype=F64)  # random linear functional
    sg = SAFEGUARDS[name]()

    def f(d):
        out, _ = sg(a, HPolytope(C, d))
        return float((out * w).sum())

    d = d0.clone().requires_grad_(True)
    out, info = sg(a, HPolytope(C, d))
    assert not bool(info["fallback"].any())
    (g,) = torch.autograd.grad((out * w).sum(), d)
    fd = _fd_grad(f, d0)
    scale = max(1.0, float(fd.abs().max()))
    assert torch.allclose(g, fd, atol=1e-5 * scale, rtol=1e-5), (
        f"{task} {name}: max |autograd - FD| = {float((g - fd).abs().max()):.3g}"
    )
