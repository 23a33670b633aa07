"""safegrad.analysis: statistics, plots and markdown reports from run directories
(spec A §6-§7; ``docs/cli.md``).

* :mod:`~safegrad.analysis.stats` -- :func:`bootstrap_ci`, :func:`steps_to_threshold`
  (steps to 95 % of the final return), :func:`stuck_runs`;
* :mod:`~safegrad.analysis.runs` -- :func:`load_runs`, :func:`group_runs` (seeds of one
  configuration);
* :mod:`~safegrad.analysis.plots` -- learning curves with CI bands, safety margins,
  trajectories, intervention rates, timing bars (Agg canvas, never a window);
* :mod:`~safegrad.analysis.report` -- markdown tables in the papers' format.

Reads run directories only; it never imports :mod:`safegrad.experiments`.
"""

from __future__ import annotations

from safegrad.analysis.runs import Run, find_run_dirs, group_runs, load_run, load_runs
from safegrad.analysis.stats import bootstrap_ci, final_threshold, steps_to_threshold, stuck_runs

__all__ = [
    "Run",
    "load_run",
    "load_runs",
    "find_run_dirs",
    "group_runs",
    "bootstrap_ci",
    "final_threshold",
    "steps_to_threshold",
    "stuck_runs",
]
