"""Markdown tables from run directories, in the format of spec A Tables 2-5:
``# Step mean [95 % CI] | Return mean [95 % CI] | # Stuck``, plus what the paper did not
archive (training safety violations, intervention rate, wall time).

Definitions (spec A §6): per run, the final return is the last evaluation's return and
"# Step" is the first evaluation step reaching 95 % of it (:func:`steps_to_threshold`); stuck
runs (:func:`stuck_runs`) are excluded from the means and CIs and counted as ``k/n``; CIs are
basic bootstraps of the mean over the kept runs (1 000 resamples).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from safegrad.analysis.runs import Run, group_runs, load_runs
from safegrad.analysis.stats import bootstrap_ci, steps_to_threshold, stuck_runs

__all__ = ["GroupStats", "group_stats", "markdown_report", "report", "format_number"]


@dataclass
class GroupStats:
    """The numbers of one configuration across its seeds."""

    label: str
    env: str
    algo: str
    safeguard: str
    n: int
    n_stuck: int
    unfinished: int
    return_mean: float
    return_ci: tuple[float, float]
    steps_mean: float
    steps_ci: tuple[float, float]
    violations_mean: float
    violations_total: int
    intervention_rate: float
    wall_time_mean: float
    runs: list[dict[str, Any]] = field(default_factory=list)


def format_number(x: float | None, integer: bool | None = None) -> str:
    """``12 800`` style (spaces as thousands separators, as the paper); 1 decimal below 100
    in magnitude unless ``integer``; ``-`` for missing values."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if integer is None:
        integer = abs(x) >= 100
    if integer:
        return f"{x:,.0f}".replace(",", " ")
    return f"{x:.1f}" if abs(x) >= 1 else f"{x:.3g}"


def _ci_text(mean: float, ci: tuple[float, float], integer: bool | None = None) -> str:
    m = format_number(mean, integer)
    if not all(math.isfinite(v) for v in ci):
        return m
    return f"{m} [{format_number(ci[0], integer)}, {format_number(ci[1], integer)}]"


def group_stats(
    label: str,
    runs: Sequence[Run],
    stuck_fraction: float = 0.5,
    stuck_threshold: float | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> GroupStats:
    """:class:`GroupStats` of one group; unfinished runs (no ``summary.json``) are left out
    and counted in ``unfinished``."""
    done = [r for r in runs if r.finished and r.curve()[0].size]
    cfg = (done or list(runs))[0].config
    finals = np.array([r.final_return for r in done])
    initials = np.array([r.initial_return for r in done])
    steps95 = np.array([steps_to_threshold(*r.curve()) for r in done]) if done else np.empty(0)
    stuck = (
        stuck_runs(finals, initials, stuck_fraction, stuck_threshold)
        if done
        else np.zeros(0, dtype=bool)
    )
    kept = ~stuck
    nan2 = (math.nan, math.nan)

    def mean_ci(x: np.ndarray) -> tuple[float, tuple[float, float]]:
        if x.size == 0:
            return math.nan, nan2
        lo, hi = bootstrap_ci(x, confidence, n_resamples, "basic", seed)
        return float(x.mean()), (float(lo), float(hi))

    rm, rci = mean_ci(finals[kept])
    sm, sci = mean_ci(steps95[kept])
    viol = np.array([r.summary.get("safety_violations", 0) for r in done], dtype=float)
    rates = np.array([r.summary.get("intervention_rate", math.nan) or 0.0 for r in done])
    walls = np.array([r.summary.get("wall_time_s", math.nan) for r in done], dtype=float)
    per_run = [
        {
            "name": r.name,
            "path": str(r.path),
            "seed": r.seed,
            "final_return": float(f),
            "best_return": r.summary.get("best_return"),
            "steps_to_95": float(s),
            "stuck": bool(st),
            "safety_violations": r.summary.get("safety_violations"),
            "interventions": r.summary.get("interventions"),
            "wall_time_s": r.summary.get("wall_time_s"),
        }
        for r, f, s, st in zip(done, finals, steps95, stuck)
    ]
    sg = cfg.get("safeguard") or "none"
    if cfg.get("safeguard") and cfg.get("safeguard_side") == "policy":
        sg += " (policy)"
    return GroupStats(
        label=label,
        env=str(cfg.get("env")),
        algo=str(cfg.get("algo")),
        safeguard=sg,
        n=len(done),
        n_stuck=int(stuck.sum()),
        unfinished=len(runs) - len(done),
        return_mean=rm,
        return_ci=rci,
        steps_mean=sm,
        steps_ci=sci,
        violations_mean=float(viol.mean()) if viol.size else math.nan,
        violations_total=int(viol.sum()) if viol.size else 0,
        intervention_rate=float(np.nanmean(rates)) if rates.size else math.nan,
        wall_time_mean=float(np.nanmean(walls)) if walls.size else math.nan,
        runs=per_run,
    )


def markdown_report(
    groups: Mapping[str, Sequence[Run]],
    stuck_fraction: float = 0.5,
    stuck_threshold: float | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    per_run: bool = True,
) -> str:
    """The markdown report of ``groups`` (label -> runs): the summary table, then (if
    ``per_run``) one table of every run."""
    stats = [
        group_stats(label, runs, stuck_fraction, stuck_threshold, n_resamples, confidence)
        for label, runs in groups.items()
    ]
    pct = f"{confidence * 100:g} %"
    lines = [
        "# safegrad report",
        "",
        f"{sum(s.n for s in stats)} finished runs in {len(stats)} configurations. Return: final "
        f"evaluation return (undiscounted episode return of the deterministic policy); "
        f"# Step: first evaluation step reaching 95 % of the final return; means and {pct} "
        f"basic-bootstrap CIs ({n_resamples} resamples) over the runs that are not stuck "
        "(spec A §6). Violations: safety-monitor violations during training (mean per run); "
        "interventions: safeguard interventions per training transition.",
        "",
        f"| Configuration | Env | Safeguard | Alg | # Step mean [{pct} CI] | "
        f"Return mean [{pct} CI] | # Stuck | Violations | Interventions / step | "
        "Wall time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in stats:
        stuck = f"{s.n_stuck}/{s.n}"
        if s.unfinished:
            stuck += f" ({s.unfinished} unfinished)"
        lines.append(
            f"| {s.label} | {s.env} | {s.safeguard} | {s.algo.upper()} | "
            f"{_ci_text(s.steps_mean, s.steps_ci, True)} | "
            f"{_ci_text(s.return_mean, s.return_ci)} | {stuck} | "
            f"{format_number(s.violations_mean)} | "
            f"{'-' if not math.isfinite(s.intervention_rate) else f'{s.intervention_rate:.3f}'}"
            f" | {format_number(s.wall_time_mean)} |"
        )
    if per_run:
        lines += [
            "",
            "## Runs",
            "",
            "| Configuration | Run | Seed | Final return | Best return | # Step | Stuck | "
            "Violations | Interventions | Wall time (s) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in stats:
            for r in s.runs:
                lines.append(
                    f"| {s.label} | {r['name']} | {r['seed']} | "
                    f"{format_number(r['final_return'])} | {format_number(r['best_return'])} | "
                    f"{format_number(r['steps_to_95'], True)} | {'yes' if r['stuck'] else ''} | "
                    f"{r['safety_violations']} | {r['interventions']} | "
                    f"{format_number(r['wall_time_s'])} |"
                )
    return "\n".join(lines) + "\n"


def report(
    paths: Sequence[str | Path],
    out: str | Path | None = None,
    by: Sequence[str] | None = None,
    **kwargs: Any,
) -> str:
    """:func:`markdown_report` of the runs under ``paths`` (written to ``out`` if given)."""
    groups = group_runs(load_runs(paths), by)
    text = markdown_report(groups, **kwargs)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
    return text
