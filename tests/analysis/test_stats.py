"""Bootstrap CIs, steps-to-95 %, stuck-run detection on data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from safegrad.analysis import bootstrap_ci, final_threshold, steps_to_threshold, stuck_runs


def test_bootstrap_constant_data_has_a_zero_width_interval():
    assert bootstrap_ci([-8.0] * 5) == pytest.approx((-8.0, -8.0))


def test_bootstrap_basic_is_the_reflected_percentile_interval():
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 3.0])
    lo_p, hi_p = bootstrap_ci(x, method="percentile", seed=7)
    lo_b, hi_b = bootstrap_ci(x, method="basic", seed=7)
    m = x.mean()
    assert lo_b == pytest.approx(2 * m - hi_p) and hi_b == pytest.approx(2 * m - lo_p)
    # right-skewed data: the basic interval sits lower than the percentile one
    assert lo_b < lo_p and hi_b < hi_p


def test_bootstrap_matches_scipy_and_normal_theory():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=200)
    lo, hi = bootstrap_ci(x, n_resamples=20_000)
    ref = scipy_stats.bootstrap(
        (x,), np.mean, method="basic", n_resamples=20_000, random_state=1
    ).confidence_interval
    width = hi - lo
    assert lo == pytest.approx(ref.low, abs=0.03 * width)
    assert hi == pytest.approx(ref.high, abs=0.03 * width)
    # normal theory: mean +- 1.96 s / sqrt(n)
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert width / 2 == pytest.approx(half, rel=0.06)


def test_bootstrap_columns_are_independent_calls_with_one_resampling():
    x = np.array([[1.0, 10.0], [2.0, 30.0], [4.0, 20.0], [3.0, 50.0]])
    lo, hi = bootstrap_ci(x, seed=3)
    for j in range(2):
        lj, hj = bootstrap_ci(x[:, j], seed=3)
        assert (lo[j], hi[j]) == pytest.approx((lj, hj))


def test_bootstrap_edge_cases():
    assert all(np.isnan(bootstrap_ci([1.0])))
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, np.nan])
    with pytest.raises(ValueError, match="method"):
        bootstrap_ci([1.0, 2.0], method="bca")


def test_steps_to_95_percent_on_hand_made_curves():
    steps = [0, 10, 20, 30, 40]
    # positive final return 100: threshold 95; 96 at step 20 is the first
    assert steps_to_threshold(steps, [0, 50, 96, 90, 100]) == 20
    # negative final return -10: threshold 1.05 * -10 = -10.5; -12 fails, -10.4 passes
    assert final_threshold(-10.0) == pytest.approx(-10.5)
    assert steps_to_threshold(steps, [-500, -12, -10.4, -11, -10]) == 20
    # reached only at the end
    assert steps_to_threshold(steps, [-500, -400, -300, -200, -10]) == 40
    # explicit final return and fraction
    assert steps_to_threshold(steps, [0, 50, 96, 90, 100], fraction=0.5, final_return=100) == 10
    with pytest.raises(ValueError, match="equal length"):
        steps_to_threshold([0, 1], [1.0])


def test_stuck_runs():
    finals = [-8.4, -8.5, -8.6, -2000.0, -53.0]
    initials = [-3000.0] * 5
    # median final -53... -8.6; a run covering < 50 % of the median improvement is stuck
    assert stuck_runs(finals, initials).tolist() == [False, False, False, True, False]
    assert stuck_runs(finals, initials, fraction=0.999).tolist() == [
        False,
        False,
        False,
        True,
        True,
    ]
    assert stuck_runs(finals, threshold=-100).tolist() == [False, False, False, True, False]
    # nothing learned: no run is judged stuck; no initial returns: none either
    assert not stuck_runs([-3000.0, -3100.0], [-2000.0, -2000.0]).any()
    assert not stuck_runs(finals).any()
