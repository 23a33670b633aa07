"""TrainConfig: YAML round trip, presets, overrides and validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from safegrad.algos.shac import SHACConfig
from safegrad.experiments import ConfigError, TrainConfig, load_config
from safegrad.experiments.config import apply_override, parse_value, read_preset, yaml_load
from safegrad.experiments.registry import ALGOS, AlgorithmUnavailableError, AlgoSpec

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_yaml_round_trip(tmp_path):
    cfg = load_config(
        overrides=[
            "env=BalanceQuadrotor-v0",
            "safeguard=ray-mask",
            "safeguard_kwargs.grad_mode=passthrough",
            "horizon=16",
            "actor_hidden=[32, 32]",
            "c_reg=0.1",
            "total_steps=5000",
            "env_kwargs.max_episode_steps=100",
        ]
    )
    path = tmp_path / "c.yaml"
    cfg.to_yaml(path)
    back = TrainConfig.from_yaml(path)
    assert back == cfg
    assert back.algo_config == {"horizon": 16, "actor_hidden": [32, 32], "c_reg": 0.1}
    # the resolved config round trips too and is what a run directory stores
    r = cfg.resolved()
    r.to_yaml(path)
    assert TrainConfig.from_yaml(path) == r
    assert r.resolved() == r


def test_resolved_defaults_follow_spec_a_protocol():
    r = TrainConfig(env="BalancePendulum-v0").resolved()
    assert (r.num_envs, r.total_steps, r.eval_every, r.threads) == (8, 100_000, 2_500, 1)
    q = TrainConfig(env="BalanceQuadrotor-v0").resolved()
    assert (q.num_envs, q.total_steps, q.eval_every) == (16, 200_000, 5_000)
    assert q.name == "BalanceQuadrotor-v0__shac__none__seed0"


def test_algo_preset_from_file_name():
    cfg = load_config([CONFIGS / "shac_quadrotor.yaml"])
    assert cfg.env == "BalanceQuadrotor-v0" and cfg.algo == "shac"
    shac = SHACConfig.from_yaml(CONFIGS / "shac_quadrotor.yaml")
    obj = cfg.algo_config_object()
    assert obj == shac  # every preset value arrives in the algorithm's config
    assert "seed" not in cfg.algo_config and "dtype" not in cfg.algo_config


def test_run_preset_includes_algo_preset_and_overrides(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text(
        f"preset: {CONFIGS / 'shac_pendulum.yaml'}\n"
        "safeguard: ray-mask\nalgo_config: {horizon: 32, actor_lr: 1e-3}\ntotal_steps: 1000\n"
    )
    cfg = load_config([p], ["horizon=16", "seed=3"])
    obj = cfg.algo_config_object()
    base = SHACConfig.from_yaml(CONFIGS / "shac_pendulum.yaml")
    assert obj.horizon == 16 and obj.actor_lr == 1e-3 and obj.seed == 3
    assert obj.critic_lr == base.critic_lr and obj.polyak == base.polyak
    assert cfg.env == "BalancePendulum-v0" and cfg.total_steps == 1000


def test_shipped_run_presets_validate():
    runs = sorted((CONFIGS / "runs").glob("*.yaml"))
    assert any(p.name == "quickstart.yaml" for p in runs)
    for p in runs:
        cfg = load_config([p], validate=False)
        if cfg.algo != "shac":
            pytest.importorskip(ALGOS[cfg.algo].module)
        cfg.validate()
        assert cfg.safeguard is not None, p


def test_yaml_reads_exponent_floats_and_override_values():
    assert yaml_load("a: 1e-3\nb: 2E5\nc: 1.5\nd: 7") == {"a": 1e-3, "b": 2e5, "c": 1.5, "d": 7}
    assert parse_value("none") is None and parse_value("true") is True
    assert parse_value("[64, 64]") == [64, 64] and parse_value("ray-mask") == "ray-mask"
    d: dict = {}
    apply_override(d, "algo_config.horizon", 8)
    apply_override(d, "horizon", 9)  # a bare algorithm field
    apply_override(d, "total_steps", 10)
    apply_override(d, "env_kwargs.max_episode_steps", 50)
    assert d == {
        "algo_config": {"horizon": 9},
        "total_steps": 10,
        "env_kwargs": {"max_episode_steps": 50},
    }


# ------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "overrides, exc, match",
    [
        (["total_step=5"], ConfigError, "Did you mean 'total_steps'"),
        (["horizn=5"], ConfigError, "Did you mean 'horizon'"),
        (["algo_config.eval_every=5"], ConfigError, "TrainConfig key"),
        (["total_steps=abc"], ConfigError, "total_steps=.abc. has type str; expected"),
        (["horizon=0.5"], ConfigError, "SHACConfig.horizon"),
        (["horizon=0"], ConfigError, "horizon=0 must be >= 1"),
        (["safeguard=ray_mask"], ConfigError, "Did you mean 'ray-mask'"),
        (["env=BalancePendulum-v1"], ConfigError, "Did you mean 'BalancePendulum-v0'"),
        (["algo=shacc"], ConfigError, "Did you mean 'shac'"),
        (["safeguard=composite-cbf"], ConfigError, "needs a task with CBF constraints"),
        (
            ["safeguard=ray-mask", "safeguard_side=policy"],
            ConfigError,
            "SHAC back-propagates through the environment-side safeguard",
        ),
        (["c_reg=0.1"], ConfigError, "needs a safeguard"),
        (["safeguard_kwargs.grad_mode=passthrough"], ConfigError, "without a safeguard"),
        (["algo_config.seed=3"], ConfigError, "conflicts with seed=0"),
        (["env_kwargs.max_episode_stepz=3"], ConfigError, "Did you mean 'max_episode_steps'"),
        (["env_kwargs.seed=3"], ConfigError, "top level"),
        (["eval_episodes=0"], ConfigError, "eval_episodes=0 must be >= 1"),
        (["safeguard_side=both"], ConfigError, "expected one of"),
        (["dtype=float16"], ConfigError, "float16"),
        (["foo.bar=1"], ConfigError, "only algo_config, env_kwargs, safeguard_kwargs"),
    ],
)
def test_validation_errors_name_the_problem(overrides, exc, match):
    with pytest.raises(exc, match=match):
        load_config(overrides=overrides)


def test_optional_trackers_need_their_package(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "wandb" else real(n, *a)
    )
    with pytest.raises(ConfigError, match=r"pip install 'safegrad\[wandb\]'"):
        load_config(overrides=["wandb=true"])


def test_unknown_key_in_preset_file_names_file_and_key(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("env: BalancePendulum-v0\nevall_every: 5\n")
    with pytest.raises(ConfigError, match="Did you mean 'eval_every'"):
        load_config([p])
    q = tmp_path / "run2.yaml"
    q.write_text("env: BalancePendulum-v0\nhorizon: 5\n")  # an algorithm key at the top
    with pytest.raises(ConfigError, match="under algo_config"):
        load_config([q])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config([tmp_path / "missing.yaml"])


def test_algorithm_preset_needs_an_algorithm(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("horizon: 8\n")
    with pytest.raises(ConfigError, match="cannot tell which algorithm"):
        read_preset(p)
    assert read_preset(p, {"algo": "shac"})["algo_config"] == {"horizon": 8}


def test_missing_algorithm_module_has_a_clear_error(monkeypatch):
    monkeypatch.setitem(
        ALGOS, "fake", AlgoSpec("fake", "safegrad.algos.fake_missing", "F", "FConfig", "x")
    )
    with pytest.raises(AlgorithmUnavailableError, match="'fake'.*not available"):
        load_config(overrides=["algo=fake"])
