"""Gymnasium API: check_env on the single-env view, spaces, seeding, dtypes, bad actions."""

import warnings

import numpy as np
import pytest
import torch
from envtasks import ALL_TASKS, RENDERABLE
from gymnasium.utils.env_checker import check_env

from safegrad.envs import SingleEnvView, make


def _random_actions(env, steps, seed):
    g = torch.Generator().manual_seed(seed)
    return 2 * torch.rand(steps, env.num_envs, env.action_dim, generator=g, dtype=env.dtype) - 1


def _rollout(env, actions, seed):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    rewards = []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append(obs)
        rewards.append(r)
    return torch.stack(out), torch.stack(rewards)


@pytest.mark.parametrize("env_id", ALL_TASKS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_check_env_passes_on_single_env_view(env_id, dtype):
    mode = "rgb_array" if env_id in RENDERABLE else None
    view = SingleEnvView(make(env_id, num_envs=1, seed=0, dtype=dtype, render_mode=mode))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(view)  # includes the render check for renderable tasks
    # the checker's own complaints come as warnings; ours must not trigger any about the API
    messages = [str(w.message) for w in caught if "spec" not in str(w.message)]
    assert not messages, messages


@pytest.mark.parametrize("env_id", ALL_TASKS)
def test_reset_and_step_shapes_dtypes_and_spaces(env_id):
    env = make(env_id, num_envs=3, seed=1, dtype=torch.float64)
    obs, info = env.reset()
    assert obs.shape == (3, env.obs_dim) and obs.dtype == torch.float64
    assert env.state.shape == (3, env.state_dim) and env.state.dtype == torch.float64
    assert set(info) == set(env.info_keys)
    actions = _random_actions(env, 20, 0)
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        assert obs.shape == (3, env.obs_dim)
        assert r.shape == (3,) and r.dtype == torch.float64
        assert term.shape == trunc.shape == (3,) and term.dtype == trunc.dtype == torch.bool
        assert set(info) == set(env.info_keys)
        for k, v in info.items():
            assert isinstance(v, torch.Tensor) and v.shape[0] == 3, k
        assert env.observation_space.contains(obs.numpy()), obs
        assert torch.isfinite(r).all()
    assert env.elapsed_steps.shape == (3,)


@pytest.mark.parametrize("env_id", ALL_TASKS)
def test_seeding_determinism(env_id):
    env = make(env_id, num_envs=4)
    actions = _random_actions(env, 30, 0)
    o1, r1 = _rollout(env, actions, seed=7)
    o2, r2 = _rollout(make(env_id, num_envs=4), actions, seed=7)
    assert torch.equal(o1, o2) and torch.equal(r1, r2)
    o3, r3 = _rollout(env, actions, seed=8)
    assert not torch.equal(o1, o3)
    # make(seed=s).reset() equals reset(seed=s)
    env_s = make(env_id, num_envs=4, seed=7)
    obs, _ = env_s.reset()
    assert torch.equal(obs, o1[0])


def test_reset_without_seed_continues_the_stream():
    env = make("BalancePendulum-v0", num_envs=4, seed=3)
    a, _ = env.reset()
    b, _ = env.reset()
    assert not torch.equal(a, b)
    c, _ = env.reset(seed=3)
    assert torch.equal(a, c)


def test_float32_and_float64_agree():
    # noise-free system and a given initial state: the two dtypes must follow one trajectory
    from safegrad.systems import PlanarQuadrotor

    x0 = torch.tensor([0.1, -0.2, 0.05, 0.1, 0.0, -0.3], dtype=torch.float64)
    envs = [
        make("BalanceQuadrotor-v0", num_envs=4, dtype=dt, system=PlanarQuadrotor(w_max=0.0))
        for dt in (torch.float32, torch.float64)
    ]
    actions = 0.3 * _random_actions(envs[1], 20, 1)
    out = []
    for env in envs:
        obs0, _ = env.reset(options={"state": x0})
        steps = [env.step(a.to(env.dtype)) for a in actions]
        out.append((torch.stack([s[0] for s in steps]), torch.stack([s[1] for s in steps])))
    (o32, r32), (o64, r64) = out
    torch.testing.assert_close(o32.double(), o64, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(r32.double(), r64, atol=1e-4, rtol=1e-4)


def test_numpy_actions_are_accepted():
    env = make("BalancePendulum-v0", num_envs=2, seed=0)
    env.reset()
    obs, *_ = env.step(np.zeros((2, 1)))
    assert isinstance(obs, torch.Tensor)


class TestBadActions:
    def setup_method(self):
        self.env = make("BalanceQuadrotor-v0", num_envs=3, seed=0)
        self.env.reset()

    def test_step_before_reset(self):
        env = make("BalancePendulum-v0", num_envs=2)
        with pytest.raises(RuntimeError, match="reset"):
            env.step(torch.zeros(2, 1))

    @pytest.mark.parametrize("shape", [(3,), (3, 1), (2, 2), (3, 2, 1), (6,)])
    def test_wrong_shape(self, shape):
        with pytest.raises(
            ValueError, match=rf"shape \({', '.join(map(str, shape))},?\); expected \(3, 2\)"
        ):
            self.env.step(torch.zeros(shape))

    @pytest.mark.parametrize("bad", [float("nan"), float("inf")])
    def test_non_finite_action_raises_naming_entry(self, bad):
        a = torch.zeros(3, 2)
        a[1, 0] = bad
        with pytest.raises(ValueError, match=rf"actions\[1, 0\]={bad}.*check_nan=False"):
            self.env.step(a)

    def test_check_nan_false_lets_nan_through(self):
        env = make("BalancePendulum-v0", num_envs=2, seed=0, check_nan=False)
        env.reset()
        obs, r, *_ = env.step(torch.tensor([[float("nan")], [0.0]]))
        assert torch.isnan(r[0]) and torch.isfinite(r[1])

    def test_non_numeric(self):
        with pytest.raises(TypeError, match="not numeric"):
            self.env.step([["a", "b"]] * 3)

    def test_complex(self):
        with pytest.raises(TypeError, match="real dtype"):
            self.env.step(torch.zeros(3, 2, dtype=torch.complex64))

    def test_bad_reset_options(self):
        with pytest.raises(ValueError, match="unknown reset option"):
            self.env.reset(options={"stat": 1})
        with pytest.raises(ValueError, match=r"shape \(3, 5\)"):
            self.env.reset(options={"state": torch.zeros(3, 5)})
        with pytest.raises(ValueError, match=r"state\[0, 2\]=1.0 lies outside S"):
            self.env.reset(options={"state": torch.tensor([0, 0, 1.0, 0, 0, 0])})
        with pytest.raises(ValueError, match="reset_mask is only supported"):
            self.env.reset(options={"reset_mask": torch.ones(3, dtype=torch.bool)})


def test_clip_actions_option():
    env = make("BalancePendulum-v0", num_envs=1, seed=0, clip_actions=True, dtype=torch.float64)
    env_ref = make("BalancePendulum-v0", num_envs=1, seed=0, dtype=torch.float64)
    env.reset()
    env_ref.reset()
    o1, r1, *_ = env.step(torch.tensor([[5.0]]))
    o2, r2, *_ = env_ref.step(torch.tensor([[1.0]]))
    assert torch.equal(o1, o2) and torch.equal(r1, r2)
