"""Reports and plots from synthetic run directories with known numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from safegrad.analysis import bootstrap_ci, group_runs, load_runs
from safegrad.analysis.plots import (
    aligned_curves,
    plot_run,
    plot_runs,
    plot_trajectories,
    zonotope_vertices_2d,
)
from safegrad.analysis.report import format_number, group_stats, report

STEPS = [2560, 5120, 7680, 10240]


def make_run(root: Path, name: str, safeguard, seed: int, returns, wall=10.0, margins=None):
    d = root / name / f"seed{seed}"
    d.mkdir(parents=True)
    cfg = {
        "env": "BalancePendulum-v0",
        "algo": "shac",
        "safeguard": safeguard,
        "safeguard_side": "env",
        "seed": seed,
        "name": f"{name}__seed{seed}",
        "algo_config": {"horizon": 64},
        "total_steps": STEPS[-1],
    }
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    lines = ["step,train_reward,eval_return,eval_min_margin,intervention_rate,violations_total"]
    for i, (s, r) in enumerate(zip(STEPS, returns)):
        m = "" if margins is None else margins[i]
        lines.append(f"{s - 1280},-1.0,,,0.1,0")
        lines.append(f"{s},-0.5,{r},{m},0.2,0")
    (d / "progress.csv").write_text("\n".join(lines) + "\n")
    summary = {
        "final_return": returns[-1],
        "best_return": max(returns),
        "env_steps": STEPS[-1],
        "wall_time_s": wall,
        "steps_per_s": STEPS[-1] / wall,
        "safety_violations": 0 if safeguard else 3,
        "interventions": 40 if safeguard else 0,
        "intervention_rate": 0.1 if safeguard else 0.0,
    }
    (d / "summary.json").write_text(json.dumps(summary))
    return d


@pytest.fixture
def sweep(tmp_path):
    # ray-mask: three seeds that converge (steps-to-95 %: 5120, 7680, 5120)
    make_run(
        tmp_path, "rm", "ray-mask", 0, [-900.0, -8.2, -8.1, -8.0], margins=[0.5, 0.4, 0.3, 0.3]
    )
    make_run(
        tmp_path, "rm", "ray-mask", 1, [-900.0, -50.0, -9.0, -9.0], margins=[0.6, 0.2, 0.1, 0.2]
    )
    make_run(
        tmp_path, "rm", "ray-mask", 2, [-900.0, -10.0, -10.0, -10.0], margins=[0.4, 0.4, 0.4, 0.4]
    )
    # unsafeguarded: one of three seeds is stuck at -850
    make_run(tmp_path, "none", None, 0, [-1000.0, -20.0, -12.0, -12.0], wall=5.0)
    make_run(tmp_path, "none", None, 1, [-1000.0, -900.0, -860.0, -850.0], wall=5.0)
    make_run(tmp_path, "none", None, 2, [-1000.0, -14.0, -14.0, -14.0], wall=5.0)
    return tmp_path


def test_groups_and_report_numbers(sweep):
    groups = group_runs(load_runs([sweep]))
    assert sorted(groups) == [
        "BalancePendulum-v0 / shac / none",
        "BalancePendulum-v0 / shac / ray-mask",
    ]
    rm = group_stats("rm", groups["BalancePendulum-v0 / shac / ray-mask"])
    assert rm.n == 3 and rm.n_stuck == 0
    assert rm.return_mean == pytest.approx(-9.0)
    assert rm.return_ci == pytest.approx(bootstrap_ci([-8.0, -9.0, -10.0]))
    assert rm.steps_mean == pytest.approx((5120 + 7680 + 5120) / 3)
    none = group_stats("none", groups["BalancePendulum-v0 / shac / none"])
    assert none.n_stuck == 1  # -850 covered < 50 % of the median improvement
    assert none.return_mean == pytest.approx(-13.0)  # the stuck run is excluded
    assert none.steps_mean == pytest.approx((7680 + 5120) / 2)
    assert none.violations_mean == 3 and none.wall_time_mean == 5.0
    text = report([sweep], out=sweep / "report.md")
    assert (sweep / "report.md").read_text() == text
    lo, hi = bootstrap_ci([-8.0, -9.0, -10.0])
    row = next(line for line in text.splitlines() if "/ ray-mask |" in line)
    assert f"-9.0 [{format_number(lo)}, {format_number(hi)}]" in row
    assert "5 973 [" in row and "| 0/3 |" in row
    row = next(line for line in text.splitlines() if "/ none |" in line)
    assert "-13.0 [" in row and "| 1/3 |" in row
    assert text.count("| yes |") == 1  # the per-run table marks the stuck run


def test_format_number_matches_the_paper_style():
    assert format_number(12800.4) == "12 800"
    assert format_number(-8.44) == "-8.4"
    assert format_number(None) == "-" and format_number(float("nan")) == "-"


def test_aligned_curves_interpolate_on_the_common_range(tmp_path):
    a = make_run(tmp_path, "a", None, 0, [0.0, 10.0, 20.0, 30.0])
    runs = load_runs([a])
    steps, vals = aligned_curves(runs)
    assert steps.tolist() == STEPS and vals.tolist() == [[0.0, 10.0, 20.0, 30.0]]


def _png_ok(path: Path) -> None:
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    assert img[..., :3].std() > 0.05  # not a blank canvas


def test_plots_from_run_directories(sweep, tmp_path):
    written = plot_runs([sweep], tmp_path / "figs")
    names = sorted(p.name for p in written)
    assert names == ["interventions.png", "learning_curves.png", "safety_margins.png", "timing.png"]
    for p in written:
        _png_ok(p)
    one = plot_run(sweep / "rm" / "seed0")
    assert [p.name for p in one] == ["learning_curve.png", "safety_margins.png"]
    _png_ok(one[0])


def test_zonotope_vertices_and_trajectory_plot(tmp_path):
    v = zonotope_vertices_2d(np.zeros(2), np.eye(2))
    assert sorted(map(tuple, v.round(12).tolist())) == [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    G = np.array([[1.0, 0.5, -0.3], [0.2, 1.0, 0.7]])
    v = zonotope_vertices_2d(np.array([2.0, -1.0]), G)
    x, y = v[:, 0], v[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    dets = [abs(np.linalg.det(G[:, [i, j]])) for i in range(3) for j in range(i + 1, 3)]
    assert area == pytest.approx(4 * sum(dets))  # zonotope area formula
    assert len(v) == 6
    t = np.linspace(0, 1, 50)
    data = {
        "states_0": np.stack([4 * t, 4 * t**2], axis=1),
        "states_1": np.stack([4 * t**2, 4 * t], axis=1),
        "obstacle_centers": np.array([[2.0, 1.0], [1.0, 2.5]]),
        "obstacle_radii": np.array([0.4, 0.3]),
        "goal": np.array([4.0, 4.0]),
        "goal_radius": np.array(0.3),
        "env": np.array("ReachAvoid-v0"),
    }
    np.savez(tmp_path / "t.npz", **data)
    p = plot_trajectories(tmp_path / "t.npz", tmp_path / "traj.png")
    _png_ok(p)
    assert plot_trajectories({"returns": np.zeros(1)}, tmp_path / "none.png") is None
