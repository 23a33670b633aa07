"""Statistics of spec A §6 / §7: bootstrap confidence intervals, steps to 95 % of the final
return, and non-convergent ("stuck") run detection.

All functions take plain sequences / numpy arrays and return floats or numpy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["bootstrap_ci", "steps_to_threshold", "stuck_runs", "final_threshold"]

_METHODS = ("basic", "percentile")


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    method: str = "basic",
    seed: int | None = 0,
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Bootstrap confidence interval of the mean over the first axis (the runs).

    Spec A §6: ``scipy.stats.bootstrap(..., method="basic", n_resamples=1000)`` over the kept
    runs.  ``basic`` (reverse percentile): ``[2 m - q_{1-a/2}, 2 m - q_{a/2}]`` with ``m`` the
    sample mean and ``q`` the quantiles of the resampled means; ``percentile``:
    ``[q_{a/2}, q_{1-a/2}]``.  Quantiles use linear interpolation (``numpy.quantile``), as
    scipy does; the resampling RNG differs from scipy's, so intervals agree up to Monte-Carlo
    error.

    Args:
        values: ``(n, *rest)``; one row per run (NaN not allowed).
        confidence: e.g. 0.95.
        n_resamples: bootstrap resamples.
        method: ``basic`` or ``percentile``.
        seed: RNG seed (deterministic by default).

    Returns:
        ``(low, high)``, floats for 1-D input, arrays of shape ``rest`` otherwise; NaN when
        ``n < 2``.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("values must have at least one dimension (the runs)")
    if method not in _METHODS:
        raise ValueError(f"method={method!r}; expected one of {_METHODS}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence} must be in (0, 1)")
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples} must be >= 1")
    if np.isnan(x).any():
        raise ValueError("values contain NaN")
    n = x.shape[0]
    rest = x.shape[1:]
    if n < 2:
        nan = np.full(rest, np.nan)
        return (float(nan), float(nan)) if not rest else (nan, nan.copy())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    means = x[idx].mean(axis=1)  # (B, *rest)
    a = (1.0 - confidence) / 2.0
    q_lo, q_hi = np.quantile(means, [a, 1.0 - a], axis=0)
    if method == "percentile":
        lo, hi = q_lo, q_hi
    else:
        m = x.mean(axis=0)
        lo, hi = 2.0 * m - q_hi, 2.0 * m - q_lo
    if not rest:
        return float(lo), float(hi)
    return np.asarray(lo), np.asarray(hi)


def final_threshold(final_return: float, fraction: float = 0.95) -> float:
    """Spec A §6: ``fraction * R_final`` if ``R_final > 0`` else ``(2 - fraction) * R_final``
    (``1.05 R_final`` for 95 %)."""
    r = float(final_return)
    return fraction * r if r > 0 else (2.0 - fraction) * r


def steps_to_threshold(
    steps: Sequence[float] | np.ndarray,
    returns: Sequence[float] | np.ndarray,
    fraction: float = 0.95,
    final_return: float | None = None,
) -> float:
    """Spec A §6 "# Step": the first evaluation step whose return is ``>=`` the threshold
    :func:`final_threshold` of the final return (the last evaluation unless ``final_return``
    is given); the last step if none is.

    Args:
        steps, returns: the evaluation curve (same length, in step order).
        fraction: 0.95 for steps-to-95 %.
        final_return: override of ``R_final``.
    """
    s = np.asarray(steps, dtype=np.float64)
    r = np.asarray(returns, dtype=np.float64)
    if s.shape != r.shape or s.ndim != 1:
        raise ValueError(f"steps {s.shape} and returns {r.shape} must be 1-D of equal length")
    if s.size == 0:
        raise ValueError("empty evaluation curve")
    rf = float(r[-1]) if final_return is None else float(final_return)
    thr = final_threshold(rf, fraction)
    hit = np.flatnonzero(r >= thr)
    return float(s[hit[0]] if hit.size else s[-1])


def stuck_runs(
    final_returns: Sequence[float] | np.ndarray,
    initial_returns: Sequence[float] | np.ndarray | None = None,
    fraction: float = 0.5,
    threshold: float | None = None,
) -> np.ndarray:
    """Flag non-convergent ("stuck") runs of one configuration (spec A §6, §7.3).

    The paper excludes stuck runs by manual judgement and does not state the criterion.  Ours,
    documented in ``docs/cli.md``:

    * with an explicit ``threshold``: a run is stuck when its final return is below it;
    * otherwise a run is stuck when it covered less than ``fraction`` of the group's typical
      improvement: ``(R_final - R_start) / (median(R_final) - R_start) < fraction`` with
      ``R_start`` the median first-evaluation return of the group.  If the group's median
      does not improve on ``R_start`` (nothing learns), or without ``initial_returns``, no run
      is flagged.

    Returns a boolean array (one per run).
    """
    f = np.asarray(final_returns, dtype=np.float64)
    if f.ndim != 1:
        raise ValueError(f"final_returns must be 1-D, got shape {f.shape}")
    if threshold is not None:
        return f < float(threshold)
    if f.size < 2:
        return np.zeros(f.shape, dtype=bool)
    if initial_returns is None:
        return np.zeros(f.shape, dtype=bool)
    i = np.asarray(initial_returns, dtype=np.float64)
    if i.shape != f.shape:
        raise ValueError(f"initial_returns {i.shape} and final_returns {f.shape} differ")
    start = float(np.median(i))
    gain = float(np.median(f)) - start
    if not gain > 0:
        return np.zeros(f.shape, dtype=bool)
    return (f - start) / gain < fraction
