"""Differentiability: rollout returns vs finite differences (float64), detach()."""

import pytest
import torch
from envtasks import ALL_TASKS

from safegrad.envs import make

F64 = torch.float64


def _nominal_actions(env_id, env, steps, seed):
    """Open-loop action sequences that keep every task away from kinks (clamp, angle wrap,
    goal termination, the household price switch)."""
    g = torch.Generator().manual_seed(seed)
    noise = 0.2 * (2 * torch.rand(steps, env.num_envs, env.action_dim, generator=g, dtype=F64) - 1)
    if env_id == "ManageHousehold-v0":
        return noise + torch.tensor([0.0, -0.2], dtype=F64)
    if env_id == "SwingUpCartPole-v0":
        return 0.5 * noise
    return noise


def _initial_state(env_id):
    return {
        "BalancePendulum-v0": torch.tensor([0.05, 0.0]),
        "BalanceQuadrotor-v0": torch.zeros(6),
        "ManageHousehold-v0": torch.tensor([5.0, 21.0, 30.0]),
        "BalanceCartPole-v0": torch.zeros(4),
        "SwingUpCartPole-v0": torch.tensor([0.0, 3.0, 0.0, 0.0]),
        "NavigateSeeker-v0": torch.tensor([-6.0, -6.0]),
        "ReachAvoid-v0": torch.tensor([0.1, 0.0]),
    }[env_id].to(F64)


def _return(env, x0, actions, seed):
    env.reset(seed=seed, options={"state": x0})
    total = torch.zeros((), dtype=F64)
    for a in actions:
        _, r, term, trunc, _ = env.step(a)
        assert not term.any() and not trunc.any()
        total = total + r.sum()
    return total


@pytest.mark.parametrize("env_id", ALL_TASKS)
def test_rollout_gradient_matches_finite_differences(env_id):
    steps, seed = 64, 3
    env = make(env_id, num_envs=2, seed=seed, dtype=F64)
    x0 = _initial_state(env_id)
    actions = _nominal_actions(env_id, env, steps, seed).requires_grad_(True)
    ret = _return(env, x0, actions, seed)
    (grad,) = torch.autograd.grad(ret, actions)
    assert grad.abs().sum() > 0
    g = torch.Generator().manual_seed(0)
    eps = 1e-6
    with torch.no_grad():
        for _ in range(3):  # directional derivatives along random directions
            v = torch.randn(actions.shape, generator=g, dtype=F64)
            fd = (
                _return(env, x0, actions + eps * v, seed)
                - _return(env, x0, actions - eps * v, seed)
            ) / (2 * eps)
            torch.testing.assert_close((grad * v).sum(), fd, rtol=1e-5, atol=1e-6)
        # and a few coordinates: first, middle and last step
        for t, i, j in [(0, 0, 0), (steps // 2, 1, env.action_dim - 1), (steps - 1, 0, 0)]:
            e = torch.zeros_like(actions)
            e[t, i, j] = 1.0
            fd = (
                _return(env, x0, actions + eps * e, seed)
                - _return(env, x0, actions - eps * e, seed)
            ) / (2 * eps)
            torch.testing.assert_close(grad[t, i, j], fd, rtol=1e-5, atol=1e-7)


def test_pendulum_full_jacobian_gradcheck():
    env = make("BalancePendulum-v0", num_envs=1, seed=0, dtype=F64)
    x0 = torch.tensor([0.1, -0.2], dtype=F64)

    def f(actions):
        return _return(env, x0, actions.view(-1, 1, 1), 0)

    a = 0.1 * torch.randn(64, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert torch.autograd.gradcheck(f, (a.requires_grad_(True),), eps=1e-6, atol=1e-6)


def test_gradient_flows_into_the_initial_state_and_detach_cuts_it():
    env = make("BalanceQuadrotor-v0", num_envs=2, seed=0, dtype=F64)
    env.reset()
    x0 = env.state.clone().requires_grad_(True)
    env.state = x0
    for _ in range(5):
        _, r, *_ = env.step(torch.zeros(2, 2, dtype=F64))
    (gx,) = torch.autograd.grad(r.sum(), x0)
    assert gx.abs().sum() > 0
    env.detach()
    assert not env.state.requires_grad and env.state.grad_fn is None
    a = torch.zeros(2, 2, dtype=F64, requires_grad=True)
    _, r, *_ = env.step(a)
    r.sum().backward()
    assert a.grad is not None and x0.grad is None
