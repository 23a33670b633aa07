"""Sweeps: grid expansion, local runs, skip-finished / resume on re-launch, Ray backend."""

from __future__ import annotations

import json
import shutil

import pytest

from safegrad.experiments import ConfigError
from safegrad.experiments.config import apply_override, parse_value
from safegrad.experiments.rundir import RunDir
from safegrad.experiments.sweep import expand_grid, load_sweep_file, run_sweep

from .conftest import tiny


def _base(*extra: str) -> dict:
    data: dict = {}
    for s in tiny("total_steps=32", "eval_every=16", "checkpoint_every=16", *extra):
        k, _, v = s.partition("=")
        apply_override(data, k, parse_value(v))
    return data


GRID = {"safeguard": [None, "ray-mask"], "seed": [0, 1]}


def test_expand_grid_names_and_validates(tmp_path):
    jobs = expand_grid(_base(), {**GRID, "algo_config.c_reg": [0.0]}, tmp_path)
    names = sorted(str(j.run_dir.relative_to(tmp_path)) for j in jobs)
    assert names == [
        "BalancePendulum-v0__shac__none__c_reg=0.0/seed0",
        "BalancePendulum-v0__shac__none__c_reg=0.0/seed1",
        "BalancePendulum-v0__shac__ray-mask__c_reg=0.0/seed0",
        "BalancePendulum-v0__shac__ray-mask__c_reg=0.0/seed1",
    ]
    assert {j.config.seed for j in jobs} == {0, 1}
    with pytest.raises(ConfigError, match=r"safeguard='composite-cbf'.*CBF constraints"):
        expand_grid(_base(), {"safeguard": ["ray-mask", "composite-cbf"]}, tmp_path)
    with pytest.raises(ConfigError, match="non-empty list"):
        expand_grid(_base(), {"seed": 3}, tmp_path)


def test_local_sweep_2x2_skips_finished_and_resumes_started(tmp_path):
    jobs = expand_grid(_base(), GRID, tmp_path)
    res = run_sweep(jobs, workers=1, out=tmp_path, quiet=True)
    assert [r["status"] for r in res] == ["finished"] * 4
    summaries = [RunDir(j.run_dir).read_summary() for j in jobs]
    assert [s["safeguard"] for s in summaries] == [None, None, "ray-mask", "ray-mask"]
    assert summaries[0]["final_return"] != summaries[1]["final_return"]  # seeds differ
    stamps = [RunDir(j.run_dir).summary.stat().st_mtime_ns for j in jobs]
    # re-launch: everything is skipped, nothing rewritten
    res2 = run_sweep(expand_grid(_base(), GRID, tmp_path), out=tmp_path, quiet=True)
    assert [r["status"] for r in res2] == ["skipped"] * 4
    assert [RunDir(j.run_dir).summary.stat().st_mtime_ns for j in jobs] == stamps
    # a run that crashed after a checkpoint is resumed and ends where it would have
    crashed = RunDir(jobs[3].run_dir)
    crashed.summary.unlink()
    for ck in crashed.list_checkpoints()[1:]:
        shutil.rmtree(ck)
    (crashed.checkpoints / "latest").unlink()
    res3 = run_sweep(expand_grid(_base(), GRID, tmp_path), out=tmp_path, quiet=True)
    assert [r["status"] for r in res3] == ["skipped"] * 3 + ["resumed"]
    assert crashed.read_summary()["final_return"] == summaries[3]["final_return"]
    status = json.loads((tmp_path / "sweep_status.json").read_text())
    assert [s["status"] for s in status] == ["skipped"] * 3 + ["resumed"]


def test_sweep_reports_failed_runs_without_stopping(tmp_path):
    jobs = expand_grid(_base(), {"seed": [0, 1]}, tmp_path)
    jobs[0].config.env_kwargs = {"max_episode_steps": -1}  # fails inside the run
    res = run_sweep(jobs, quiet=True)
    assert res[0]["status"] == "failed" and "max_episode_steps" in res[0]["error"]
    assert res[1]["status"] == "finished"


def test_sweep_file(tmp_path):
    f = tmp_path / "sweep.yaml"
    f.write_text(
        "set:\n  total_steps: 32\n  num_envs: 2\n  horizon: 8\n"
        "grid:\n  safeguard: [null, ray-mask]\n  seed: [0, 1]\nout: out\n"
    )
    base, grid, out = load_sweep_file(f)
    assert grid == GRID and out == str(tmp_path / "out")
    assert base["algo_config"] == {"horizon": 8}
    f.write_text("grid: {}\nworkers: 3\n")
    with pytest.raises(ConfigError, match="unknown sweep key"):
        load_sweep_file(f)


def test_process_pool_sweep(tmp_path):
    jobs = expand_grid(_base(), {"seed": [0, 1]}, tmp_path)
    res = run_sweep(jobs, workers=2, quiet=True)
    assert [r["status"] for r in res] == ["finished", "finished"]
    ref = expand_grid(_base(), {"seed": [0, 1]}, tmp_path / "seq")
    run_sweep(ref, workers=1, quiet=True)
    for a, b in zip(jobs, ref):
        ra, rb = RunDir(a.run_dir).read_summary(), RunDir(b.run_dir).read_summary()
        assert ra["env_steps"] == rb["env_steps"] == 32
        assert ra["final_return"] == pytest.approx(rb["final_return"], rel=1e-4)


def test_ray_sweep_on_a_local_instance(tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        jobs = expand_grid(_base(), GRID, tmp_path)
        res = run_sweep(jobs, backend="ray", quiet=True)
        assert [r["status"] for r in res] == ["finished"] * 4, res
        assert all(RunDir(j.run_dir).read_summary()["env_steps"] == 32 for j in jobs)
        res2 = run_sweep(expand_grid(_base(), GRID, tmp_path), backend="ray", quiet=True)
        assert [r["status"] for r in res2] == ["skipped"] * 4
    finally:
        ray.shutdown()


def test_cli_sweep_keeps_the_algorithm_preset(tmp_path, monkeypatch, capsys):
    """`sweep --preset configs/shac_quadrotor.yaml --algo shac`: the grid axis must not drop
    the preset's hyper-parameters (regression: --algo was applied to the base as a list)."""
    from pathlib import Path

    from safegrad import cli
    from safegrad.experiments import sweep

    seen = []
    orig = sweep.expand_grid

    def spy(base, grid, out):
        jobs = orig(base, grid, out)
        seen.extend(jobs)
        return jobs

    monkeypatch.setattr(sweep, "expand_grid", spy)
    preset = Path(__file__).resolve().parents[2] / "configs" / "shac_quadrotor.yaml"
    rc = cli.main(
        [
            "sweep",
            "--preset",
            str(preset),
            "--env",
            "BalanceQuadrotor-v0",
            "--algo",
            "shac",
            "--safeguard",
            "none",
            "ray-mask",
            "--seeds",
            "0",
            "--out",
            str(tmp_path),
            "--dry-run",
        ]
    )
    assert rc == 0
    assert len(seen) == 2
    for job in seen:
        assert job.config.algo == "shac"
        assert job.config.algo_config["horizon"] == 43  # quadrotor preset, not the default 64
        assert job.config.algo_config["gamma"] == 0.9
