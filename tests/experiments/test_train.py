"""The training loop: run directory contents, evaluation cadence, summary, resume."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from safegrad.experiments import ConfigError, evaluate_run, load_config, train
from safegrad.experiments.rundir import RunDir

from .conftest import tiny

# columns that measure time, not learning
TIMING = {"wall_time_s", "steps_per_s", "eval_time_s"}


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(fh)]


def test_run_directory_summary_and_cadence(tmp_path):
    cfg = load_config(
        overrides=tiny(
            "safeguard=ray-mask",
            "total_steps=256",
            "eval_every=64",
            "checkpoint_every=128",
            "tensorboard=true",
        )
    )
    s = train(cfg, tmp_path / "run", quiet=True)
    rd = RunDir(tmp_path / "run")
    # summary.json: fields present and typed
    on_disk = json.loads(rd.summary.read_text())
    assert on_disk == json.loads(json.dumps(s))
    for key, typ in {
        "final_return": float,
        "best_return": float,
        "env_steps": int,
        "wall_time_s": float,
        "safety_violations": int,
        "interventions": int,
        "seed": int,
        "steps_to_95": int,
        "num_evaluations": int,
    }.items():
        assert isinstance(s[key], typ), key
    assert set(s["versions"]) >= {"python", "torch", "numpy", "safegrad"}
    assert s["config"]["algo_config"]["horizon"] == 8
    assert s["env_steps"] == 256 and s["safety_violations"] == 0
    # 16 interactions per iteration; evaluation once >= 64 passed: 64, 128, 192, 256
    rows = _rows(rd.path)
    evals = [r for r in rows if r["eval_return"]]
    assert [int(r["step"]) for r in evals] == [64, 128, 192, 256]
    assert s["num_evaluations"] == 4
    assert s["final_return"] == pytest.approx(float(evals[-1]["eval_return"]))
    assert s["best_return"] == pytest.approx(max(float(r["eval_return"]) for r in evals))
    assert len(rows) == 16  # one row per learning iteration (log_every=0)
    assert int(rows[-1]["interventions_total"]) == s["interventions"]
    assert sum(int(r["interventions"]) for r in rows) == s["interventions"]
    assert {"policy_loss", "critic_loss", "train_reward", "eval_min_margin"} <= set(rows[0])
    # files
    assert yaml.safe_load(rd.config.read_text())["total_steps"] == 256
    assert any(rd.tensorboard.glob("events.out.tfevents.*"))
    assert [p.name for p in rd.list_checkpoints()] == ["step_000000128", "step_000000256"]
    assert (rd.checkpoints / "latest").read_text().strip() == "step_000000256"
    import matplotlib.image as mpimg

    img = mpimg.imread(rd.plots / "learning_curve.png")
    assert img.shape[0] > 200 and img.shape[1] > 300 and img[..., :3].std() > 0.05
    with np.load(rd.trajectories) as z:
        assert z["states_0"].shape == (49, 2)  # 48 steps + the initial state
        assert "safe_set_generators" in z.files


def test_log_every_averages_rows_and_eval_at_start(tmp_path):
    cfg = load_config(
        overrides=tiny("total_steps=128", "eval_every=0", "log_every=64", "eval_at_start=true")
    )
    s = train(cfg, tmp_path / "run", quiet=True)
    rows = _rows(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == [0, 64, 128]
    assert rows[0]["eval_return"] and rows[2]["eval_return"] and not rows[1]["eval_return"]
    assert s["num_evaluations"] == 2 and s["safety_violations"] >= 0


def test_on_eval_can_stop_training(tmp_path):
    cfg = load_config(overrides=tiny("total_steps=512", "eval_every=32"))
    seen = []

    def on_eval(step, ev):
        seen.append(step)
        return step < 64

    s = train(cfg, tmp_path / "run", on_eval=on_eval, quiet=True)
    assert seen == [32, 64] and s["env_steps"] == 64


def test_new_run_refuses_existing_dir_and_resume_checks_config(tmp_path):
    cfg = load_config(overrides=tiny("total_steps=32", "eval_every=16"))
    s = train(cfg, tmp_path / "run", quiet=True)
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, tmp_path / "run", quiet=True)
    # a finished run resumes to its summary at once
    assert train(None, tmp_path / "run", resume=True, quiet=True) == s
    other = load_config(overrides=tiny("total_steps=64", "eval_every=16"))
    with pytest.raises(ConfigError, match="total_steps"):
        train(other, tmp_path / "run", resume=True, quiet=True)
    with pytest.raises(FileNotFoundError, match="no run there"):
        train(None, tmp_path / "nothing", resume=True, quiet=True)


def test_evaluate_run_reproduces_final_evaluation(tmp_path):
    cfg = load_config(overrides=tiny("safeguard=ray-mask", "total_steps=64", "eval_every=32"))
    s = train(cfg, tmp_path / "run", quiet=True)
    res = evaluate_run(tmp_path / "run")
    assert res["step"] == 64 and res["violations"] == 0
    assert res["mean"] == pytest.approx(s["final_return"], rel=1e-6)
    res3 = evaluate_run(tmp_path / "run", episodes=3)
    assert len(res3["returns"]) == 3 and res3["returns"][0] == pytest.approx(res["returns"][0])


def _train_code(run_dir: Path, overrides: list[str] | None) -> str:
    if overrides is None:
        return f"from safegrad.experiments import train; train(None, {str(run_dir)!r}, True)"
    return (
        "from safegrad.experiments import load_config, train; "
        f"train(load_config(overrides={overrides!r}), {str(run_dir)!r}, quiet=True)"
    )


def test_kill_9_then_resume_equals_uninterrupted_run(tmp_path):
    """A run killed with SIGKILL after its first checkpoint and resumed ends bitwise equal (CPU,
    SHAC, linear LR schedules, ray-mask safeguard) to an uninterrupted run of the same seed."""
    ov = tiny(
        "safeguard=ray-mask",
        "total_steps=1024",
        "eval_every=128",
        "checkpoint_every=128",
        "actor_lr_schedule=linear",
        "critic_lr_schedule=linear",
        "seed=3",
    )
    ref, crashed = tmp_path / "ref", tmp_path / "crashed"
    subprocess.run([sys.executable, "-c", _train_code(ref, ov)], check=True, timeout=300)
    proc = subprocess.Popen([sys.executable, "-c", _train_code(crashed, ov)])
    try:
        deadline = time.monotonic() + 240
        while not RunDir(crashed).list_checkpoints():
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not RunDir(crashed).is_finished(), "killed too late: make the run longer"
    rows_at_kill = len(_rows(crashed))
    subprocess.run([sys.executable, "-c", _train_code(crashed, None)], check=True, timeout=300)
    a = json.loads((ref / "summary.json").read_text())
    b = json.loads((crashed / "summary.json").read_text())
    assert b["resumes"] == 1 and a["resumes"] == 0
    for k in ("final_return", "best_return", "env_steps", "safety_violations", "interventions"):
        assert a[k] == b[k], k
    ra, rb = _rows(ref), _rows(crashed)
    assert len(ra) == len(rb) == 64 and rows_at_kill < 64
    assert ra == rb  # every logged number (losses, learning rates, returns) bitwise equal


def test_resume_without_checkpoint_starts_over(tmp_path):
    cfg = load_config(overrides=tiny("total_steps=32", "eval_every=16", "checkpoint_every=0"))
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    rd.config.write_text(cfg.resolved().to_yaml())
    rd.progress.write_text("garbage\n")
    s = train(None, rd.path, resume=True, quiet=True)
    assert s["env_steps"] == 32 and len(_rows(rd.path)) == 2


@pytest.mark.parametrize("algo", ["sac", "ppo"])
def test_other_algorithms_train_through_the_loop(tmp_path, algo):
    pytest.importorskip(f"safegrad.algos.{algo}")
    ov = [
        "env=BalancePendulum-v0",
        f"algo={algo}",
        "num_envs=2",
        "env_kwargs.max_episode_steps=32",
        "safeguard=ray-mask",
        "total_steps=128",
        "eval_every=64",
        "checkpoint_every=64",
        "actor_hidden=[16, 16]",
        "critic_hidden=[16, 16]",
        "threads=1",
        "tensorboard=false",
    ]
    if algo == "sac":
        ov += ["learning_starts=8", "batch_size=16", "buffer_size=512"]
    else:
        ov += ["horizon=32", "num_batches=2", "num_epochs=2"]
    s = train(load_config(overrides=ov), tmp_path / "run", quiet=True)
    assert s["env_steps"] >= 128 and s["safety_violations"] == 0
    assert np.isfinite(s["final_return"]) and s["num_evaluations"] >= 2
    assert evaluate_run(tmp_path / "run")["violations"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sac", "ppo"])
def test_kill_9_then_resume_sac_ppo(tmp_path, algo):
    """As above for SAC / PPO (total_steps a multiple of the interactions per iteration)."""
    pytest.importorskip(f"safegrad.algos.{algo}")
    ov = [
        "env=BalancePendulum-v0",
        f"algo={algo}",
        "num_envs=2",
        "env_kwargs.max_episode_steps=32",
        "safeguard=ray-mask",
        "total_steps=512",
        "eval_every=64",
        "checkpoint_every=64",
        "actor_hidden=[16, 16]",
        "critic_hidden=[16, 16]",
        "threads=1",
        "tensorboard=false",
        "actor_lr_schedule=linear",
        "critic_lr_schedule=linear",
    ]
    if algo == "sac":
        ov += ["learning_starts=8", "batch_size=16", "buffer_size=512"]
    else:
        ov += ["horizon=32", "num_batches=2", "num_epochs=2"]
    ref, crashed = tmp_path / "ref", tmp_path / "crashed"
    subprocess.run([sys.executable, "-c", _train_code(ref, ov)], check=True, timeout=300)
    proc = subprocess.Popen([sys.executable, "-c", _train_code(crashed, ov)])
    deadline = time.monotonic() + 240
    while not RunDir(crashed).list_checkpoints():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not RunDir(crashed).is_finished()
    subprocess.run([sys.executable, "-c", _train_code(crashed, None)], check=True, timeout=300)
    assert _rows(ref) == _rows(crashed)
