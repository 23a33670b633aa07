"""Figures from run directories: learning curves with bootstrap CI bands across seeds, safety
margins over training (spec B Figs. 3-4: ``min_i h_i`` and composite ``h`` per evaluation
episode), trajectories over the safe set / obstacles, intervention rates and timing bars.

Matplotlib's object API with the Agg canvas only: nothing here selects a backend or opens a
window, and nothing imports ``pyplot``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from safegrad.analysis.runs import Run, group_runs, load_run, load_runs
from safegrad.analysis.stats import bootstrap_ci

__all__ = [
    "aligned_curves",
    "plot_learning_curves",
    "plot_safety_margins",
    "plot_intervention_rates",
    "plot_timing",
    "plot_trajectories",
    "plot_run",
    "plot_runs",
    "zonotope_vertices_2d",
]

_MARGIN_LABELS = {
    "eval_min_margin": "min safety margin (monitor)",
    "eval_min_h": r"min$_i$ $h_i$",
    "eval_min_composite_h": "min composite $h$",
}


def _figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (6.4, 4.0)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def aligned_curves(
    runs: Sequence[Run], metric: str = "eval_return"
) -> tuple[np.ndarray, np.ndarray]:
    """``(steps (S,), values (R, S))``: each run's ``metric`` curve linearly interpolated onto
    the union of the runs' steps inside the range all runs cover."""
    curves = [r.curve(metric) for r in runs]
    curves = [(s, v) for s, v in curves if s.size]
    if not curves:
        return np.empty(0), np.empty((0, 0))
    lo = max(s[0] for s, _ in curves)
    hi = min(s[-1] for s, _ in curves)
    grid = np.unique(np.concatenate([s for s, _ in curves]))
    grid = grid[(grid >= lo) & (grid <= hi)]
    vals = np.stack([np.interp(grid, s, v) for s, v in curves])
    return grid, vals


def _band(
    ax: Any,
    runs: Sequence[Run],
    metric: str,
    label: str,
    color: Any,
    ci: float,
    n_resamples: int,
    show_runs: bool,
) -> bool:
    steps, vals = aligned_curves(runs, metric)
    if steps.size == 0:
        return False
    mean = vals.mean(axis=0)
    if show_runs and vals.shape[0] > 1:
        for v in vals:
            ax.plot(steps, v, color=color, alpha=0.25, linewidth=0.8)
    n = vals.shape[0]
    ax.plot(
        steps,
        mean,
        color=color,
        label=f"{label} (n={n})",
        linewidth=1.8,
        marker="o" if steps.size < 30 else None,
        markersize=3,
    )
    if n >= 2:
        lo, hi = bootstrap_ci(vals, confidence=ci, n_resamples=n_resamples)
        ax.fill_between(steps, lo, hi, color=color, alpha=0.2, linewidth=0)
    return True


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_learning_curves(
    groups: Mapping[str, Sequence[Run]],
    path: str | Path,
    metric: str = "eval_return",
    ci: float = 0.95,
    n_resamples: int = 1000,
    show_runs: bool = True,
    title: str | None = None,
) -> Path:
    """Mean ``metric`` (default the evaluation return) per group over interactions, with the
    bootstrap ``ci`` band across seeds (spec A §6) and thin per-seed lines."""
    fig, axes = _figure()
    ax = axes[0, 0]
    any_data = False
    for (label, runs), color in zip(groups.items(), _colors(len(groups))):
        any_data |= _band(ax, runs, metric, label, color, ci, n_resamples, show_runs)
    if not any_data:
        ax.text(0.5, 0.5, f"no {metric} data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("interactions (env steps summed over envs)")
    ax.set_ylabel("evaluation return" if metric == "eval_return" else metric)
    ax.set_title(title or f"learning curves ({int(ci * 100)} % bootstrap CI)")
    ax.grid(alpha=0.3)
    if any_data:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_safety_margins(
    groups: Mapping[str, Sequence[Run]],
    path: str | Path,
    metrics: Sequence[str] = ("eval_min_margin", "eval_min_h", "eval_min_composite_h"),
    ci: float = 0.95,
    n_resamples: int = 1000,
) -> Path | None:
    """One panel per margin metric present (spec B Figs. 3-4): the per-evaluation minimum over
    the episode, mean and CI band across seeds, with the ``0`` safety boundary.  ``None`` if no
    run has any of the metrics."""
    present = [
        m
        for m in metrics
        if any(np.isfinite(r.column(m)).any() for g in groups.values() for r in g)
    ]
    if not present:
        return None
    fig, axes = _figure(1, len(present))
    colors = _colors(len(groups))
    for ax, m in zip(axes[0], present):
        for (label, runs), color in zip(groups.items(), colors):
            _band(ax, runs, m, label, color, ci, n_resamples, show_runs=True)
        ax.axhline(0.0, color="red", linestyle="--", linewidth=1, label="boundary")
        ax.set_xlabel("interactions")
        ax.set_ylabel(_MARGIN_LABELS.get(m, m))
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("safety margins during evaluation (>= 0: safe)")
    return _save(fig, path)


def plot_intervention_rates(
    groups: Mapping[str, Sequence[Run]],
    path: str | Path,
    ci: float = 0.95,
    n_resamples: int = 1000,
) -> Path | None:
    """Training intervention rate (interventions per transition between log rows) and
    cumulative violations over interactions.  ``None`` if no run logged interventions."""
    if not any(
        np.isfinite(r.column("intervention_rate")).any() for g in groups.values() for r in g
    ):
        return None
    fig, axes = _figure(1, 2)
    colors = _colors(len(groups))
    for (label, runs), color in zip(groups.items(), colors):
        _band(axes[0, 0], runs, "intervention_rate", label, color, ci, n_resamples, False)
        _band(axes[0, 1], runs, "violations_total", label, color, ci, n_resamples, False)
    axes[0, 0].set_ylabel("interventions / transition (training)")
    axes[0, 1].set_ylabel("safety violations (training, cumulative)")
    for ax in axes[0]:
        ax.set_xlabel("interactions")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    return _save(fig, path)


def plot_timing(
    groups: Mapping[str, Sequence[Run]],
    path: str | Path,
    ci: float = 0.95,
    n_resamples: int = 1000,
) -> Path | None:
    """Bars of wall-clock time per run and of training throughput (steps/s) per group, mean
    with bootstrap CI error bars (spec A §7.6).  ``None`` if no run is finished."""
    labels, walls, sps = [], [], []
    for label, runs in groups.items():
        w = [r.summary["wall_time_s"] for r in runs if r.summary and r.summary.get("wall_time_s")]
        s = [r.summary["steps_per_s"] for r in runs if r.summary and r.summary.get("steps_per_s")]
        if w:
            labels.append(label)
            walls.append(np.asarray(w, dtype=float))
            sps.append(np.asarray(s or [np.nan], dtype=float))
    if not labels:
        return None
    fig, axes = _figure(1, 2, size=(max(4.0, 1.2 * len(labels) + 2), 4.0))
    x = np.arange(len(labels))
    for ax, data, ylabel in (
        (axes[0, 0], walls, "wall time per run (s)"),
        (axes[0, 1], sps, "steps / s (incl. evaluation)"),
    ):
        means = np.array([d.mean() for d in data])
        err = np.zeros((2, len(data)))
        for i, d in enumerate(data):
            if d.size >= 2 and np.isfinite(d).all():
                lo, hi = bootstrap_ci(d, confidence=ci, n_resamples=n_resamples)
                err[:, i] = [means[i] - lo, hi - means[i]]
        ax.bar(x, means, yerr=np.clip(err, 0, None), color=_colors(len(labels)), capsize=4)
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def zonotope_vertices_2d(center: np.ndarray, generators: np.ndarray) -> np.ndarray:
    """Vertices ``(2p, 2)`` (counter-clockwise) of the 2-D zonotope ``{c + G b : |b| <= 1}``
    with ``G (2, p)``; the first two state coordinates when ``c`` is longer."""
    c = np.asarray(center, dtype=np.float64).reshape(-1)[:2]
    G = np.asarray(generators, dtype=np.float64)[:2]
    G = G[:, np.linalg.norm(G, axis=0) > 0]
    if G.shape[1] == 0:
        return c[None, :]
    G = np.where(G[1] < 0, -G, G)  # upper half plane
    G = np.where((G[1] == 0) & (G[0] < 0), -G, G)
    order = np.argsort(np.arctan2(G[1], G[0]))
    G = G[:, order]
    start = c - G.sum(axis=1)
    pts = [start]
    for g in (2 * G).T:
        pts.append(pts[-1] + g)
    for g in (2 * G).T:
        pts.append(pts[-1] - g)
    return np.asarray(pts[:-1])


def plot_trajectories(
    data: str | Path | Mapping[str, Any],
    path: str | Path,
    dims: tuple[int, int] = (0, 1),
    labels: tuple[str, str] | None = None,
    max_episodes: int = 10,
) -> Path | None:
    """States of the evaluation episodes (``trajectories.npz`` or its dict) in two state
    coordinates, over the safe set (RCI zonotope, 2-D tasks) or the obstacles and goal
    (reach-avoid).  ``None`` if there are no states."""
    if not isinstance(data, Mapping):
        with np.load(data, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    keys = sorted((k for k in data if k.startswith("states_")), key=lambda k: int(k[7:]))
    if not keys:
        return None
    first = np.asarray(data[keys[0]])
    if first.ndim != 2 or first.shape[1] < 2:
        return None
    from matplotlib.patches import Circle, Polygon

    fig, axes = _figure(size=(5.5, 5.0))
    ax = axes[0, 0]
    i, j = dims
    if "safe_set_center" in data and np.asarray(data["safe_set_center"]).size == first.shape[1]:
        c = np.asarray(data["safe_set_center"])[[i, j]]
        G = np.asarray(data["safe_set_generators"])[[i, j]]
        verts = zonotope_vertices_2d(c, G)
        ax.add_patch(
            Polygon(
                verts,
                closed=True,
                facecolor="tab:green",
                alpha=0.15,
                edgecolor="tab:green",
                label="safe set (RCI)",
            )
        )
    if "obstacle_centers" in data:
        cs = np.asarray(data["obstacle_centers"]).reshape(-1, 2)
        rs = np.asarray(data["obstacle_radii"]).reshape(-1)
        for k, (cc, rr) in enumerate(zip(cs, rs)):
            ax.add_patch(
                Circle(cc, rr, color="tab:red", alpha=0.35, label="obstacles" if k == 0 else None)
            )
    if "goal" in data:
        g = np.asarray(data["goal"]).reshape(-1)[:2]
        r = float(np.asarray(data.get("goal_radius", 0.1)))
        ax.add_patch(Circle(g, r, color="tab:green", alpha=0.5, label="goal"))
    colors = _colors(min(len(keys), max_episodes))
    for k, color in zip(keys[:max_episodes], colors):
        s = np.asarray(data[k])
        ax.plot(s[:, i], s[:, j], color=color, linewidth=1.0)
        ax.plot(s[0, i], s[0, j], "o", color=color, markersize=4)
    ax.autoscale_view()
    ax.set_aspect("equal" if "obstacle_centers" in data else "auto")
    if labels is None:
        env = str(np.asarray(data.get("env", "")))
        labels = (r"$\theta$", r"$\dot\theta$") if "Pendulum" in env else (f"x[{i}]", f"x[{j}]")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title("evaluation trajectories (o: start)")
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """The plots of one run into ``RUN_DIR/plots`` (or ``out_dir``): ``learning_curve.png``
    (evaluation return and training reward), ``safety_margins.png`` and ``trajectories.png``
    where the data exist.  Returns the written paths."""
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.path / "plots"
    written = []
    fig, axes = _figure()
    ax = axes[0, 0]
    s, v = run.curve("eval_return")
    if s.size:
        ax.plot(s, v, marker="o", markersize=3, color="tab:blue", label="evaluation return")
    ts, tv = run.curve("train_reward")
    if ts.size:
        ax2 = ax.twinx()
        ax2.plot(ts, tv, color="tab:gray", alpha=0.6, linewidth=0.9, label="train reward/step")
        ax2.set_ylabel("mean training reward per step", color="tab:gray")
    ax.set_xlabel("interactions (env steps summed over envs)")
    ax.set_ylabel("evaluation return (episode)")
    viol = run.summary.get("safety_violations") if run.summary else None
    title = run.name if viol is None else f"{run.name}\n{viol} safety violations in training"
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if s.size:
        ax.legend(loc="lower right", fontsize=8)
    written.append(_save(fig, out / "learning_curve.png"))
    groups = {run.name: [run]}
    p = plot_safety_margins(groups, out / "safety_margins.png")
    if p is not None:
        written.append(p)
    traj = run.path / "trajectories.npz"
    if traj.is_file():
        p = plot_trajectories(traj, out / "trajectories.png")
        if p is not None:
            written.append(p)
    return written


def plot_runs(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    by: Sequence[str] | None = None,
    ci: float = 0.95,
    n_resamples: int = 1000,
) -> list[Path]:
    """Across-seed figures of many runs into ``out_dir``: ``learning_curves.png``,
    ``safety_margins.png``, ``interventions.png``, ``timing.png`` (those with data)."""
    runs = load_runs(paths)
    groups = group_runs(runs, by)
    out = Path(out_dir)
    written = [
        plot_learning_curves(groups, out / "learning_curves.png", ci=ci, n_resamples=n_resamples)
    ]
    for fn, name in (
        (plot_safety_margins, "safety_margins.png"),
        (plot_intervention_rates, "interventions.png"),
        (plot_timing, "timing.png"),
    ):
        p = fn(groups, out / name, ci=ci, n_resamples=n_resamples)
        if p is not None:
            written.append(p)
    return written
