"""ManageHousehold's certified safe set (issue 5): the maximal robust control invariant set of
the linear dynamics, the safe action set that keeps the next state in it, and the outcome under
every safeguard (no fallback, no violation); the paper's look-ahead box stays available."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import safegrad
from safegrad.invariance.household import household_invariant_set, thermal_model
from safegrad.systems.household import HouseholdEnergy

F64 = torch.float64


def _sample_in_omega(env, n: int, seed: int) -> torch.Tensor:
    """States uniform in Ω (rejection from S), plus Ω's vertices (SoC at its bounds)."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = env.system.state_low.to(F64), env.system.state_high.to(F64)
    X = lo + (hi - lo) * torch.rand(20 * n, 3, generator=g, dtype=F64)
    X = X[env.in_invariant_set(X)][:n]
    V = torch.tensor(env.invariant_set.vertices, dtype=F64)
    soc = torch.tensor([0.0, 10.0], dtype=F64).repeat_interleave(len(V))
    Xv = torch.cat([soc.unsqueeze(-1), V.repeat(2, 1)], 1)
    return torch.cat([X, Xv])


def test_invariant_set_is_robust_control_invariant_and_maximal_on_its_edges():
    env = safegrad.make("ManageHousehold-v0", num_envs=1, seed=0, dtype=F64)
    S = env.invariant_set
    assert S is not None and S.min_input_slack > 0
    X = _sample_in_omega(env, 300, seed=1)
    P, info = env.safe_action_set(X, return_info=True)
    assert not info["empty"].any()
    # every action of the safe action set keeps the state in Ω for every recorded T_out
    from safegrad.safeguards._geometry import Region

    region = Region.build(P, -torch.ones(2, dtype=F64), torch.ones(2, dtype=F64), (len(X),))
    lo, hi = region.lo, region.hi
    assert (lo <= hi).all() and region.gidx is None  # a box in action space
    g = torch.Generator().manual_seed(2)
    w_lo, w_hi = env._w_range
    for _ in range(4):
        t = torch.rand(len(X), 2, generator=g, dtype=F64)
        t[: len(X) // 4] = t[: len(X) // 4].round()  # corners of the box
        a = lo + (hi - lo) * t
        for w in (w_lo, w_hi, 0.5 * (w_lo + w_hi)):
            x_next = env.system.step(X, a, torch.full((len(X), 1), w, dtype=F64))
            assert env.in_invariant_set(x_next, tol=1e-9).all()
    # maximality on the lower-left edge: just outside it T_in' < 18 whatever the action
    m = thermal_model(env.system)
    H, h = S.H, S.h
    edge = np.nonzero((H[:, 0] < -1e-6) & (H[:, 1] < -1e-6))[0]
    assert len(edge) == 1
    V = S.vertices[np.isclose(S.vertices @ H[edge[0]], h[edge[0]])]
    mid = V.mean(0) + 1e-3 * H[edge[0]]  # outside Ω (outward normal), inside S
    t_in_next = m.A[0] @ mid + m.e[0] * S.w_bounds[0]
    assert t_in_next < 18.0


@pytest.mark.parametrize("safeguard", ["boundary-projection", "ray-mask", "ray-mask-tanh"])
def test_no_fallback_no_violation_under_every_safeguard(safeguard):
    """16 environments x 720 steps (11 520 transitions) of uniformly random raw actions in
    [-1.2, 1.2]^2 (outside the box too), one full episode."""
    env = safegrad.make(
        "ManageHousehold-v0",
        num_envs=16,
        seed=3,
        dtype=F64,
        safeguard=safeguard,
        safeguard_kwargs={"grad_mode": "none"},
    )
    obs, _ = env.reset()
    assert env.in_invariant_set(env.state).all()
    g = torch.Generator().manual_seed(4)
    for _ in range(720):
        env.step(2.4 * torch.rand(16, 2, generator=g, dtype=F64) - 1.2)
    tot = env.totals()
    assert tot["transitions"] == 16 * 720
    assert tot["fallbacks"] == 0 and tot["violations"] == 0
    assert tot["raw_unsafe"] > 1000  # the safeguard had work to do
    assert env.in_invariant_set(env.state).all()


def test_paper_variant_still_available_and_not_invariant():
    env = safegrad.make(
        "ManageHousehold-v0",
        num_envs=16,
        seed=3,
        dtype=F64,
        safe_set="paper",
        safeguard="boundary-projection",
        safeguard_kwargs={"grad_mode": "none"},
    )
    assert env.invariant_set is None
    env.reset()
    g = torch.Generator().manual_seed(4)
    for _ in range(100):
        env.step(2.4 * torch.rand(16, 2, generator=g, dtype=F64) - 1.2)
    assert env.totals()["violations"] > 0  # the look-ahead box is not invariant


def test_resets_inside_the_invariant_set_and_errors():
    env = safegrad.make("ManageHousehold-v0", num_envs=256, seed=5, dtype=F64)
    for s in range(3):
        env.reset(seed=s)
        assert env.in_invariant_set(env.state).all()
    lo, hi = env.reset_box
    assert (env.state >= lo.to(F64)).all() and (env.state <= hi.to(F64)).all()
    # a summer window: the outside temperature exceeds what a heating-only heat pump holds
    with pytest.raises(ValueError, match="safe_set='paper'"):
        safegrad.make("ManageHousehold-v0", start_index=3000)
    env_p = safegrad.make("ManageHousehold-v0", start_index=3000, safe_set="paper")
    env_p.reset()
    with pytest.raises(ValueError, match="safe_set"):
        safegrad.make("ManageHousehold-v0", safe_set="box")
    with pytest.raises(ValueError, match="t_out_margin"):
        safegrad.make("ManageHousehold-v0", t_out_margin=-1.0)


def test_invariant_set_function_bounds_and_errors():
    sysm = HouseholdEnergy()
    S = household_invariant_set(sysm, -6.0, 9.7)
    C, d = S.state_rows()
    assert C.shape == (len(S.h) + 2, 3)
    # Ω ⊆ S and its vertices are on S's T_in bounds where the comfort constraints bind
    assert (S.vertices[:, 0] >= 18 - 1e-9).all() and (S.vertices[:, 0] <= 24 + 1e-9).all()
    assert S.contains(np.array([[5.0, 21.0, 55.0]])).all()
    assert not S.contains(np.array([[5.0, 18.0, 10.0]])).any()  # too cold to recover
    assert not S.contains(np.array([[5.0, 24.0, 100.0]])).any()  # too much heat stored
    with pytest.raises(ValueError, match="can only heat"):
        household_invariant_set(sysm, 0.0, 25.0)
    with pytest.raises(ValueError, match="w_low <= w_high"):
        household_invariant_set(sysm, 5.0, 1.0)
