"""Safety monitor, RCI resets in the tasks, and the ``safegrad rci`` CLI."""

import pytest
import torch

import safegrad
from safegrad.invariance import SafetyMonitor, load_rci
from safegrad.invariance.cli import main

F64 = torch.float64


def test_monitor_flags_unsafe_transitions_only():
    env = safegrad.make("BalancePendulum-v0", num_envs=256, seed=0, dtype=F64)
    env.reset()
    mon = SafetyMonitor(env)
    gen = torch.Generator().manual_seed(0)
    x = env.state
    inside = env.rci.sample(256, gen)
    out = mon.check(x, torch.zeros(256, 1, dtype=F64), inside)
    assert not out["violation"].any() and (out["margin"] >= 0).all()
    outside = inside.clone()
    outside[:10] = torch.tensor([3.0, 7.9], dtype=F64)  # beyond the set's theta hull
    out = mon.check(x, torch.zeros(256, 1, dtype=F64), outside)
    assert out["violation"][:10].all() and not out["violation"][10:].any()
    s = mon.summary()
    assert s["transitions"] == 512 and s["violations"] == 10 and s["worst_margin"] < 0
    # the info of a clamped step is a violation even if the clamped state looks fine
    info = {"state_margin": torch.full((256,), -0.1, dtype=F64)}
    assert mon.check(x, torch.zeros(256, 1, dtype=F64), inside, info)["violation"].all()
    mon.reset()
    assert mon.summary()["transitions"] == 0
    with pytest.raises(TypeError, match="safety_margin"):
        SafetyMonitor(object())
    with pytest.raises(ValueError, match="batch sizes"):
        mon.check(x, torch.zeros(3, 1, dtype=F64), inside)


@pytest.mark.parametrize("env_id", ["BalancePendulum-v0", "BalanceCartPole-v0"])
def test_safeguarded_rollout_has_no_violations_raw_rollout_has(env_id):
    """Projecting onto safe_action_set keeps the simulator inside the RCI set (monitor: 0
    violations over 100 steps); bang-bang raw actions leave it."""
    env = safegrad.make(env_id, num_envs=64, seed=0, dtype=F64)
    env.reset()
    mon = SafetyMonitor(env)
    gen = torch.Generator().manual_seed(0)
    for _ in range(100):
        raw = torch.where(torch.rand(64, 1, generator=gen, dtype=F64) < 0.5, -1.0, 1.0).to(F64)
        P = env.safe_action_set()
        a = P.project(raw)
        x = env.state
        _, _, _, _, info = env.step(a)
        assert not mon.check(x, a, env.state, info)["violation"].any()
    assert mon.summary()["violations"] == 0 and mon.transitions == 6400
    env.reset()
    mon2 = SafetyMonitor(env)
    for _ in range(60):
        x = env.state
        a = torch.ones(64, 1, dtype=F64)
        _, _, _, _, info = env.step(a)
        mon2.check(x, a, env.state, info)
    assert mon2.violations > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "env_id", ["BalancePendulum-v0", "BalanceQuadrotor-v0", "BalanceCartPole-v0"]
)
def test_rci_resets(env_id, dtype):
    env = safegrad.make(env_id, num_envs=512, seed=0, dtype=dtype)
    env.reset()
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert (env.rci.margin(env.state.to(F64)) >= -tol).all()
    lo, hi = env.reset_box
    assert (env.state >= lo.to(dtype) - tol).all() and (env.state <= hi.to(dtype) + tol).all()
    env2 = safegrad.make(env_id, num_envs=512, seed=0, dtype=dtype, reset_sampling="uniform")
    env2.reset()
    assert (env2.rci.margin(env2.state.to(F64)) >= -tol).all()
    # uniform sampling spreads further out than beta-uniform sampling
    assert env2.rci.margin(env2.state.to(F64)).mean() < env.rci.margin(env.state.to(F64)).mean()
    with pytest.raises(ValueError, match="reset_sampling"):
        safegrad.make(env_id, reset_sampling="grid")


def test_rci_option_errors_and_mismatch():
    from safegrad.systems import Pendulum

    with pytest.raises(TypeError, match="rci must be"):
        safegrad.make("BalancePendulum-v0", rci=3)
    with pytest.raises(ValueError, match="not valid for this system"):
        safegrad.make("BalancePendulum-v0", system=Pendulum(max_speed=6.0))
    env = safegrad.make("BalancePendulum-v0", system=Pendulum(max_speed=6.0), rci=None, seed=0)
    env.reset()
    assert env.rci is None and env.safe_action_set().num_constraints == 2 + 2
    with pytest.raises(TypeError, match="no RCI set"):
        safegrad.make("SwingUpCartPole-v0", rci="default")
    with pytest.raises(ValueError, match="c_sin"):
        safegrad.make("BalancePendulum-v0", system=Pendulum(g=10.0))
    env = safegrad.make("BalancePendulum-v0", rci=load_rci("pendulum"), num_envs=2)
    assert env.rci.name == "pendulum"
    # a smaller disturbance set keeps the set valid
    env = safegrad.make("BalancePendulum-v0", system=Pendulum(w_max=0.0), num_envs=2)
    assert env.rci is not None


def test_cli_verify_and_scaled(capsys):
    assert main(["verify", "BalancePendulum-v0", "--transitions", "3000"]) == 0
    out = capsys.readouterr().out
    assert "PASSED" in out and "containment_margin" in out
    assert main(["verify", "BalancePendulum-v0", "--transitions", "3000", "--scale", "1.1"]) == 1
    assert "FAILED" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["verify", "NoSuchEnv-v0"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "env_id", ["BalancePendulum-v0", "BalanceQuadrotor-v0", "BalanceCartPole-v0"]
)
def test_cli_verify_full(env_id):
    assert main(["verify", env_id]) == 0


def test_cli_compute_pendulum(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert (
        main(
            ["compute", "BalancePendulum-v0", "--out", str(out), "--transitions", "2000", "--quiet"]
        )
        == 0
    )
    new, shipped = load_rci(str(out)), load_rci("pendulum")
    # deterministic: the same set as the shipped one (up to solver round-off)
    torch.testing.assert_close(
        torch.tensor(new.generators), torch.tensor(shipped.generators), atol=1e-6, rtol=1e-6
    )
    assert new.meta["command"].endswith(f"--out {out}")
