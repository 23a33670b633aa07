"""Registry: ids, defaults, errors (unknown ids with close matches, bad kwargs and values)."""

import pytest
import torch
from envtasks import ALL_TASKS

import safegrad
from safegrad.envs import SingleEnvView, TorchVectorEnv, env_spec, list_envs, make

# spec A §5 / spec B §7: (default N, episode length)
EXPECTED = {
    "BalancePendulum-v0": (8, 3000, 3, 1),
    "BalanceQuadrotor-v0": (16, 240, 8, 2),
    "ManageHousehold-v0": (8, 720, 23, 2),
    "BalanceCartPole-v0": (16, 240, 5, 1),
    "SwingUpCartPole-v0": (32, 240, 5, 1),
    "NavigateSeeker-v0": (64, 400, 7, 2),
    "ReachAvoid-v0": (1, 200, 4, 2),
}


def test_list_envs_has_every_task():
    assert set(ALL_TASKS) <= set(list_envs())
    assert list_envs() == sorted(list_envs())


@pytest.mark.parametrize("env_id", ALL_TASKS)
def test_make_defaults_match_the_specs(env_id):
    n, steps, obs_dim, act_dim = EXPECTED[env_id]
    env = make(env_id)
    assert isinstance(env, TorchVectorEnv)
    assert env.num_envs == n == env_spec(env_id).default_num_envs
    assert env.max_episode_steps == steps == env_spec(env_id).max_episode_steps
    assert env.single_observation_space.shape == (obs_dim,)
    assert env.observation_space.shape == (n, obs_dim)
    assert env.single_action_space.shape == (act_dim,)
    assert env.action_space.shape == (n, act_dim)
    assert (env.single_action_space.low == -1).all() and (env.single_action_space.high == 1).all()
    assert env.env_id == env_id
    assert env.metadata["autoreset_mode"].value == "NextStep"


def test_top_level_reexports():
    # safegrad.make is where a task and a safeguard meet; without a safeguard it is envs.make.
    assert safegrad.list_envs is list_envs
    a = safegrad.make("BalancePendulum-v0", num_envs=2, seed=3)
    b = make("BalancePendulum-v0", num_envs=2, seed=3)
    assert type(a) is type(b)
    assert torch.equal(a.reset()[0], b.reset()[0])


def test_unknown_env_id_suggests_close_matches():
    with pytest.raises(
        ValueError, match=r"unknown env id 'BalancePendulum-v1'.*BalancePendulum-v0"
    ):
        make("BalancePendulum-v1")
    with pytest.raises(ValueError, match=r"Did you mean 'ReachAvoid-v0'"):
        make("reachavoid-v0")
    with pytest.raises(ValueError, match="Registered: "):
        make("Nothing-like-it")


def test_unknown_task_kwarg_names_it_and_suggests():
    with pytest.raises(TypeError, match=r"'num_obstacle'.*Did you mean 'num_obstacles'"):
        make("ReachAvoid-v0", num_obstacle=10)
    with pytest.raises(TypeError, match=r"'paper_compat'"):
        make("BalancePendulum-v0", paper_compat=True)
    # inherited kwargs of a subclass are accepted
    env = make("SwingUpCartPole-v0", num_envs=2, reset_box=([-0.1, 3.0, 0, 0], [0.1, 3.1, 0, 0]))
    assert env.num_envs == 2


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        ({"num_envs": 0}, ValueError, "num_envs=0"),
        ({"num_envs": 2.5}, TypeError, "num_envs=2.5"),
        ({"dtype": torch.int32}, ValueError, "dtype=torch.int32"),
        ({"dtype": "float16"}, ValueError, "float16"),
        ({"device": "nonsense"}, ValueError, "nonsense"),
        ({"seed": -1}, ValueError, "seed=-1"),
        ({"seed": "a"}, TypeError, "seed='a'"),
        ({"max_episode_steps": 0}, ValueError, "max_episode_steps=0"),
        ({"render_mode": "human"}, ValueError, "render_mode='human'"),
        ({"check_nan": 1}, TypeError, "check_nan=1"),
        ({"reset_box": ([0.0, 0.0], [1.0, 9.0])}, ValueError, "leaves the state box"),
        ({"reset_box": ([0.0], [1.0, 2.0, 3.0])}, ValueError, "state_dim=2"),
        ({"reset_box": "box"}, TypeError, "reset_box='box'"),
        ({"render_env_index": 8}, ValueError, "env_index=8"),
    ],
)
def test_bad_values_raise_clear_errors(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make("BalancePendulum-v0", **kwargs)


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        make("BalancePendulum-v0", device="cuda")


def test_single_env_view_requires_one_env():
    with pytest.raises(ValueError, match="num_envs == 1"):
        SingleEnvView(make("BalancePendulum-v0", num_envs=2))
    view = SingleEnvView("BalancePendulum-v0", seed=0)
    assert view.vector_env.num_envs == 1
