"""Spec A §5 common semantics: transition, disturbance, clamp and margins, rewards, autoreset."""

import math

import pytest
import torch
from envtasks import ALL_TASKS

from safegrad.envs import make

F64 = torch.float64


def _expected_transition(env, x, a):
    """Replay the env's generator to get the disturbance it will draw, then the spec's
    transition ``clamp_S(F(x, a, w))``."""
    state = env._generator.get_state()
    w = env._sample_disturbance().clone()
    env._generator.set_state(state)
    x_raw = env.system.step(x, a, w)
    return x_raw, env.system.clamp_state(x_raw), w


@pytest.mark.parametrize("env_id", ALL_TASKS)
def test_step_is_clamped_system_step_with_env_disturbance(env_id):
    env = make(env_id, num_envs=16, seed=0, dtype=F64)
    env.reset()
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        a = 2 * torch.rand(16, env.action_dim, generator=g, dtype=F64) - 1
        x = env.state.clone()
        x_raw, x_exp, w = _expected_transition(env, x, a)
        env.step(a)
        torch.testing.assert_close(env.state, x_exp, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "env_id",
    ["BalancePendulum-v0", "BalanceQuadrotor-v0", "BalanceCartPole-v0", "NavigateSeeker-v0"],
)
def test_disturbance_is_uniform_on_W(env_id):
    env = make(env_id, num_envs=4096, seed=0, dtype=F64)
    env.reset()
    w = env._sample_disturbance()
    lo = env.system.disturbance_low.to(F64)
    hi = env.system.disturbance_high.to(F64)
    assert (w >= lo).all() and (w <= hi).all()
    width = hi - lo
    assert (width > 0).all()
    # uniform on [lo, hi]: mean at the centre, extremes near the bounds, std = width / sqrt(12)
    torch.testing.assert_close(w.mean(0), (lo + hi) / 2, atol=0.05 * width.max(), rtol=0)
    torch.testing.assert_close(w.std(0), width / math.sqrt(12), rtol=0.05, atol=0)
    assert ((w.amin(0) - lo) < 0.01 * width).all() and ((hi - w.amax(0)) < 0.01 * width).all()
    # and it reaches the state: same state and action, different next states
    x0 = env.state[:1].expand(4096, -1)
    env.reset(options={"state": x0})
    env.step(torch.zeros(4096, env.action_dim, dtype=F64))
    assert env.state.std(0).max() > 0


def test_reachavoid_is_noise_free():
    env = make("ReachAvoid-v0", num_envs=64, seed=0, dtype=F64)
    env.reset(options={"state": torch.tensor([0.1, 0.1])})
    env.step(torch.ones(64, 2, dtype=F64))
    torch.testing.assert_close(env.state, torch.full((64, 2), 0.15, dtype=F64))


def test_clamp_and_state_margin_pendulum():
    env = make("BalancePendulum-v0", num_envs=3, seed=0, dtype=F64)
    env.reset(options={"state": torch.tensor([[0.0, 7.9], [0.0, 0.0], [3.0, -4.0]])})
    a = torch.tensor([[1.0], [0.0], [0.0]], dtype=F64)
    x_raw, _, _ = _expected_transition(env, env.state.clone(), a)
    _, _, _, _, info = env.step(a)
    # env 0 exceeds theta_dot <= 8 and is clamped; margin = 1 - |theta_dot_raw| / 8 (theta is
    # wrapped and left out)
    assert env.state[0, 1] == 8.0 and x_raw[0, 1] > 8.0
    torch.testing.assert_close(info["state_margin"], 1 - x_raw[:, 1].abs() / 8)
    assert info["clamped"].tolist() == [True, False, False]


def test_state_margin_uses_all_bounded_coordinates():
    env = make("BalanceQuadrotor-v0", num_envs=1, seed=0, dtype=F64)
    env.reset()
    half = torch.tensor([8, 8, math.pi / 12, 0.8, 1.0, math.pi / 2], dtype=F64)
    x = torch.tensor([[1.0, -2.0, 0.1, 0.6, 0.2, 0.3]], dtype=F64)
    torch.testing.assert_close(env.state_margin(x), (1 - x.abs() / half).amin(-1))
    # the margin of the household is relative to S's centre (not 0)
    hh = make("ManageHousehold-v0", num_envs=1, seed=0, dtype=F64)
    xs = torch.tensor([[9.0, 21.0, 55.0]], dtype=F64)
    torch.testing.assert_close(hh.state_margin(xs), torch.tensor([0.2], dtype=F64))


# ------------------------------------------------------------------------------------ rewards
def _step_from(env, x0, a):
    env.reset(options={"state": x0})
    x = env.state.clone()
    obs, r, term, trunc, info = env.step(a)
    return x, env.state.clone(), obs, r, info


def test_pendulum_reward_and_obs():
    env = make("BalancePendulum-v0", num_envs=2, seed=0, dtype=F64)
    a = torch.tensor([[0.5], [-0.2]], dtype=F64)
    _, xn, obs, r, _ = _step_from(env, torch.tensor([[0.3, 1.0], [-2.0, -3.0]]), a)
    exp = -(xn[:, 0] ** 2 + 0.1 * xn[:, 1] ** 2 + 0.001 * a[:, 0] ** 2)
    torch.testing.assert_close(r, exp)
    torch.testing.assert_close(obs, torch.stack([xn[:, 0].sin(), xn[:, 0].cos(), xn[:, 1]], -1))


def test_quadrotor_reward_goal_is_initial_position():
    env = make("BalanceQuadrotor-v0", num_envs=2, seed=0, dtype=F64)
    x0 = torch.tensor([[0.1, -0.2, 0.05, 0.1, 0.0, -0.3], [0.0, 0.3, -0.1, 0.0, 0.5, 0.2]])
    a = torch.tensor([[0.3, -0.5], [-1.0, 0.7]], dtype=F64)
    x, xn, obs, r, info = _step_from(env, x0, a)
    goal = x0[:, :2].to(F64)
    T = (6 / 7) * a[:, 0] + 9.81
    phi_cmd = (math.pi / 12) * a[:, 1]
    exp = -(
        2.5 * (xn[:, :2] - goal).norm(dim=-1)
        + 0.1 * (xn[:, 2:] ** 2).sum(-1)
        + 0.002 * T**2
        + 0.001 * phi_cmd**2
    )
    torch.testing.assert_close(r, exp)
    torch.testing.assert_close(obs, torch.cat([xn, goal], -1))
    torch.testing.assert_close(info["distance_to_goal"], (xn[:, :2] - goal).norm(dim=-1))


def test_quadrotor_hover_reward_is_about_minus_0_19():
    # spec A §5.2 note: -0.002 T^2 at hover is about -0.19 per step
    env = make("BalanceQuadrotor-v0", num_envs=1, seed=0, dtype=F64)
    env.reset(options={"state": torch.zeros(6)})
    env._w_low.zero_()
    env._w_width.zero_()
    _, r, *_ = env.step(torch.zeros(1, 2, dtype=F64))
    torch.testing.assert_close(r, torch.tensor([-0.002 * 9.81**2], dtype=F64))


@pytest.mark.parametrize("env_id", ["BalanceCartPole-v0", "SwingUpCartPole-v0"])
def test_cartpole_reward_and_obs(env_id):
    env = make(env_id, num_envs=2, seed=0, dtype=F64)
    x0 = torch.tensor([[1.0, 0.2, -0.5, 0.3], [-2.0, 3.0, 1.0, -1.0]])
    a = torch.tensor([[0.5], [-0.2]], dtype=F64)
    _, xn, obs, r, _ = _step_from(env, x0, a)
    exp = -(0.05 * xn[:, 0] ** 2 + 0.1 * xn[:, 2] ** 2 + xn[:, 1] ** 2 + 0.1 * xn[:, 3] ** 2)
    torch.testing.assert_close(r, exp)
    torch.testing.assert_close(
        obs, torch.stack([xn[:, 0], xn[:, 1].sin(), xn[:, 1].cos(), xn[:, 2], xn[:, 3]], -1)
    )


def test_swingup_starts_hanging_down():
    env = make("SwingUpCartPole-v0", num_envs=256, seed=0, dtype=F64)
    env.reset()
    th = env.state[:, 1]
    assert (th.abs() >= math.pi - 0.05 - 1e-12).all() and (th < math.pi).all()
    assert (env.state[:, [0, 2, 3]].abs() <= 0.05).all()
    assert (th > 0).any() and (th < 0).any()


@pytest.mark.parametrize(
    "env_id",
    ["BalancePendulum-v0", "BalanceQuadrotor-v0", "BalanceCartPole-v0", "ManageHousehold-v0"],
)
def test_reset_is_uniform_in_the_reset_box(env_id):
    env = make(env_id, num_envs=2048, seed=0, dtype=F64)
    env.reset()
    lo, hi = env.reset_box
    x = env.state
    assert (x >= lo).all() and (x <= hi).all()
    torch.testing.assert_close(x.mean(0), (lo + hi) / 2, atol=0.05 * float((hi - lo).max()), rtol=0)
    # a custom box is honoured
    box = (lo + 0.25 * (hi - lo), lo + 0.5 * (hi - lo))
    env2 = make(env_id, num_envs=512, seed=0, dtype=F64, reset_box=box)
    env2.reset()
    assert (env2.state >= box[0]).all() and (env2.state <= box[1]).all()


def test_navigate_seeker_reward_obs_and_layout():
    env = make("NavigateSeeker-v0", num_envs=256, seed=0, dtype=F64)
    obs, info = env.reset()
    p = env.episode_params
    r_obs = p["obstacle_radius"]
    assert ((r_obs >= 2) & (r_obs <= 4)).all()
    for pos in (env.state, p["goal"]):
        assert ((pos - p["obstacle_center"]).norm(dim=-1) >= r_obs + 0.5 - 1e-12).all()
    a = torch.zeros(256, 2, dtype=F64)
    obs, r, *_, info = env.step(a)
    xn = env.state
    torch.testing.assert_close(r, -2 * (p["goal"] - xn).norm(dim=-1))
    exp_obs = torch.cat([xn, p["goal"] - xn, p["obstacle_center"] - xn, r_obs[:, None]], -1)
    torch.testing.assert_close(obs, exp_obs)
    h = (xn - p["obstacle_center"]).pow(2).sum(-1) - r_obs**2
    torch.testing.assert_close(info["h"][:, 0], h)
    torch.testing.assert_close(info["h_min"], h)
    assert torch.equal(info["collision"], h < 0)


# ---------------------------------------------------------------------------------- autoreset
def test_next_step_autoreset_truncates_all_together():
    env = make("BalancePendulum-v0", num_envs=4, seed=0, max_episode_steps=3, dtype=F64)
    obs0, _ = env.reset()
    a = 0.1 * torch.ones(4, 1, dtype=F64)
    for t in range(1, 4):
        obs, r, term, trunc, info = env.step(a)
        assert not term.any()
        assert trunc.all() == (t == 3) and trunc.any() == (t == 3)
        assert (env.elapsed_steps == t).all()
    # the final observation is the one returned with truncated=True (next-step mode)
    torch.testing.assert_close(obs, env._observe(env.state))
    # the next call resets: the action is ignored, reward 0, flags False, fresh initial state
    gen_state = env._generator.get_state()
    expected_x0, _ = env._sample_reset(4)
    env._generator.set_state(gen_state)
    obs, r, term, trunc, info = env.step(1e3 * torch.ones(4, 1, dtype=F64))
    assert torch.equal(r, torch.zeros(4, dtype=F64))
    assert not term.any() and not trunc.any()
    torch.testing.assert_close(env.state, expected_x0)
    torch.testing.assert_close(obs, env._observe(expected_x0))
    assert (env.elapsed_steps == 0).all()
    # and the episode runs again
    _, r, _, trunc, _ = env.step(a)
    assert not trunc.any() and (r != 0).all() and (env.elapsed_steps == 1).all()


def test_reachavoid_per_env_termination_and_autoreset():
    env = make("ReachAvoid-v0", num_envs=3, seed=0, dtype=F64, max_episode_steps=4)
    x0 = torch.tensor([[4.0, 3.68], [0.0, 0.0], [4.0, 3.0]], dtype=F64)
    env.reset(options={"state": x0})
    up = torch.tensor([[0.0, 1.0]] * 3, dtype=F64)
    obs, r, term, trunc, info = env.step(up)
    # env 0 moves from 0.32 to 0.27 from the goal: reached (progress 0.05 + bonus 1)
    assert term.tolist() == [True, False, False] and not trunc.any()
    torch.testing.assert_close(r[0], torch.tensor(0.05 + 1.0, dtype=F64))
    torch.testing.assert_close(
        r[1], torch.tensor(0.05 * 4 / math.sqrt(32), dtype=F64), atol=1e-3, rtol=0
    )
    assert info["reached"].tolist() == [True, False, False]
    torch.testing.assert_close(obs[0], torch.cat([env.state[0], env.goal - env.state[0]]))
    # next step: env 0 is reset (reward 0, start disc), the others continue
    obs, r, term, trunc, info = env.step(up)
    assert r[0] == 0 and not term[0] and not trunc[0]
    assert env.state[0].norm() <= 0.3 + 1e-12
    assert env.elapsed_steps.tolist() == [0, 2, 2]
    torch.testing.assert_close(env.state[1], torch.tensor([0.0, 0.1], dtype=F64))
    # per-env truncation at the environment's own episode length
    for _ in range(2):
        obs, r, term, trunc, info = env.step(torch.zeros(3, 2, dtype=F64))
    assert trunc.tolist() == [False, True, True] and not term.any()
    assert env.elapsed_steps.tolist() == [2, 4, 4]
    env.step(torch.zeros(3, 2, dtype=F64))
    assert env.elapsed_steps.tolist() == [3, 0, 0]


def test_reachavoid_partial_reset_mask():
    env = make("ReachAvoid-v0", num_envs=3, seed=0, dtype=F64)
    env.reset(options={"state": torch.tensor([1.0, 0.0])})
    env.step(torch.zeros(3, 2, dtype=F64))
    env.reset(options={"reset_mask": torch.tensor([False, True, False])})
    assert env.state[0].tolist() == [1.0, 0.0] and env.state[2].tolist() == [1.0, 0.0]
    assert env.state[1].norm() <= 0.3
    assert env.elapsed_steps.tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="bool array of shape"):
        env.reset(options={"reset_mask": torch.tensor([1, 0, 1])})
