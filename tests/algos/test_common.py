"""Shared algorithm pieces: env rollout state, running normaliser, policy-layer checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import safegrad
from safegrad.algos._common import RunningMeanStd, build_policy_layer, evaluate_policy


def _run(env, actions):
    out = []
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        out.append((obs.clone(), r.clone(), term.clone(), trunc.clone()))
    return out


@pytest.mark.parametrize(
    ("env_id", "kw", "safeguard"),
    [
        ("BalancePendulum-v0", {"max_episode_steps": 5}, None),
        ("BalancePendulum-v0", {"max_episode_steps": 5}, "ray-mask"),
        ("ReachAvoid-v0", {"max_episode_steps": 4}, "composite-cbf"),
        ("NavigateSeeker-v0", {"max_episode_steps": 4}, None),
        ("ManageHousehold-v0", {"max_episode_steps": 4}, None),
    ],
)
def test_rollout_state_continues_identically(env_id, kw, safeguard):
    """get_rollout_state mid-episode (and across autoresets, per-env resets, episode params,
    the hour counter) restored into a fresh env gives bit-identical steps."""
    env = safegrad.make(env_id, num_envs=3, seed=4, safeguard=safeguard, **kw)
    env.reset(seed=4)
    m = env.action_dim
    gen = torch.Generator().manual_seed(0)
    acts = [2 * torch.rand(3, m, generator=gen) - 1 for _ in range(13)]
    _run(env, acts[:6])
    snap = env.get_rollout_state()
    ref = _run(env, acts[6:])
    fresh = safegrad.make(env_id, num_envs=3, seed=99, safeguard=safeguard, **kw)
    fresh.set_rollout_state(snap)
    got = _run(fresh, acts[6:])
    assert any(bool((t | u).any()) for _, _, t, u in ref), "the case must cross an episode end"
    for a, b in zip(ref, got, strict=True):
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)
    # the snapshot is a copy: stepping the original does not change it
    snap2 = env.get_rollout_state()
    assert not torch.equal(snap["generator"], snap2["generator"])


def test_rollout_state_errors():
    env = safegrad.make("BalancePendulum-v0", num_envs=2, seed=0)
    env.reset()
    snap = env.get_rollout_state()
    with pytest.raises(ValueError, match="num_envs"):
        safegrad.make("BalancePendulum-v0", num_envs=3).set_rollout_state(snap)
    with pytest.raises(ValueError, match="env_id"):
        safegrad.make("BalanceCartPole-v0", num_envs=2).set_rollout_state(snap)
    with pytest.raises(TypeError, match="missing"):
        env.set_rollout_state({"state": snap["state"]})


def test_running_mean_std_matches_numpy():
    gen = torch.Generator().manual_seed(0)
    rms = RunningMeanStd(3, dtype=torch.float64, device=torch.device("cpu"), eps_count=0.0)
    batches = [torch.randn(n, 3, generator=gen, dtype=torch.float64) * 3 + 1 for n in (5, 1, 7)]
    for b in batches:
        rms.update(b)
    allx = torch.cat(batches).numpy()
    np.testing.assert_allclose(rms.mean.numpy(), allx.mean(0), rtol=1e-12)
    np.testing.assert_allclose(rms.var.numpy(), allx.var(0), rtol=1e-12)
    assert rms.count == 13
    x = torch.tensor([[100.0, 1.0, -1.0]], dtype=torch.float64)
    z = rms.normalise(x)
    assert float(z[0, 0]) == 10.0  # clipped
    torch.testing.assert_close(z[0, 1:], ((x - rms.mean) / (rms.var + 1e-8).sqrt())[0, 1:])
    other = RunningMeanStd(3, dtype=torch.float64, device=torch.device("cpu"))
    other.load_state_dict(rms.state_dict())
    assert torch.equal(other.mean, rms.mean) and other.count == rms.count


def test_policy_layer_checks():
    pend = safegrad.make("BalancePendulum-v0", num_envs=2)
    with pytest.raises(ValueError, match="CBF constraints"):
        build_policy_layer(pend, "composite-cbf", None, replayed=True, algo="SAC")
    with pytest.raises(ValueError, match="one side only"):
        build_policy_layer(
            safegrad.make("BalancePendulum-v0", num_envs=2, safeguard="ray-mask"),
            "boundary-projection",
            None,
            replayed=True,
            algo="SAC",
        )
    for env_id in ("NavigateSeeker-v0", "ManageHousehold-v0"):
        env = safegrad.make(env_id, num_envs=2)
        with pytest.raises(ValueError, match="replay"):
            build_policy_layer(env, "boundary-projection", None, replayed=True, algo="SAC")
        build_policy_layer(env, "boundary-projection", None, replayed=False, algo="PPO")
    with pytest.raises(ValueError, match="grad_mode"):
        build_policy_layer(pend, "ray-mask", {"grad_mode": "none"}, replayed=True, algo="SAC")


def test_evaluate_policy_layer_monitors_bare_env():
    """A policy that always pushes hard: unsafe on the bare task (monitored only when a layer is
    given), safe through the boundary-projection layer, which then intervenes."""
    env = safegrad.make("BalancePendulum-v0", num_envs=2, max_episode_steps=50)
    kw = dict(train_env=None, episodes=2, seed=0, dtype=torch.float32, device=torch.device("cpu"))
    push = lambda obs: torch.ones(obs.shape[0], 1)
    layer = build_policy_layer(env, "boundary-projection", None, replayed=True, algo="SAC")
    res = evaluate_policy(env, push, policy_safeguard=layer.safeguard, **kw)
    assert res["violations"] == 0 and res["interventions"] > 0
    wrapped = safegrad.safeguards.SafeguardWrapper(env, None)
    res_unsafe = evaluate_policy(wrapped, push, **kw)
    assert res_unsafe["violations"] > 0 and res_unsafe["interventions"] == 0


def test_make_adam_fused_step_matches_pytorch_adam_and_state_loads_across_flags():
    """The fused Adam of make_adam is PyTorch's update rule (to rounding), and a state written
    by the unfused implementation loads into it (and keeps the fused flag)."""
    from safegrad.algos._common import load_adam_state, make_adam

    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(7, 5, generator=g, dtype=torch.float64)
    grads = [torch.randn(7, 5, generator=g, dtype=torch.float64) for _ in range(5)]
    ws = []
    for fused in (True, False):
        w = torch.nn.Parameter(w0.clone())
        if fused:
            opt = make_adam([w], 1e-2, (0.7, 0.95), torch.device("cpu"))
            assert opt.param_groups[0]["fused"] is True
        else:
            opt = torch.optim.Adam([w], lr=1e-2, betas=(0.7, 0.95))
        for gr in grads:
            w.grad = gr.clone()
            opt.step()
        ws.append((w.detach().clone(), opt.state_dict()))
    torch.testing.assert_close(ws[0][0], ws[1][0], rtol=1e-12, atol=1e-12)
    assert not torch.equal(ws[0][0], w0)
    w = torch.nn.Parameter(ws[1][0].clone())
    opt = make_adam([w], 1e-2, (0.7, 0.95), torch.device("cpu"))
    load_adam_state(opt, ws[1][1], torch.device("cpu"))
    assert opt.param_groups[0]["fused"] is True and opt.param_groups[0]["foreach"] is None
    assert int(opt.state[w]["step"]) == 5
