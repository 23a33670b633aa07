"""Every task's ``safe_action_set`` against a cvxpy reference that solves the containment
problem directly (issue 4 acceptance), non-emptiness inside the RCI sets, clear reporting
outside, dtype/device handling and errors."""

import itertools
import math

import cvxpy as cp
import numpy as np
import pytest
import torch

import safegrad
from safegrad.invariance import action_set_empty
from safegrad.sets import Zonotope

F64 = torch.float64
RCI_TASKS = ["BalancePendulum-v0", "BalanceQuadrotor-v0", "BalanceCartPole-v0"]


def _w_vertices(system):
    lo, hi = system.disturbance_low.numpy(), system.disturbance_high.numpy()
    return np.array(list(itertools.product(*zip(lo, hi))))


def _solve(prob):
    """Clarabel with tight tolerances, relaxed step by step if it stalls."""
    for tol in (1e-12, 1e-10, 1e-9):
        try:
            prob.solve(solver=cp.CLARABEL, tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol)
            return
        except cp.error.SolverError:
            continue
    prob.solve(solver=cp.CLARABEL)


def _ref_project(A_rows, b_rows, a_raw, m):
    """min ||a - a_raw||^2 s.t. A_rows a <= b_rows, |a| <= 1 (cvxpy + Clarabel, tight tol)."""
    a = cp.Variable(m)
    cons = [A_rows @ a <= b_rows, a <= 1, a >= -1]
    prob = cp.Problem(cp.Minimize(cp.sum_squares(a - a_raw)), cons)
    _solve(prob)
    if prob.status in ("infeasible", "infeasible_inaccurate"):
        return None
    assert prob.status == "optimal", prob.status
    return np.asarray(a.value)


def _rci_reference_rows(env, x):
    """Containment of the next-state set in the RCI zonotope, written independently: facets from
    safegrad.sets (torch facet enumeration), one-step model from system.step + linearize, the
    disturbance set by its vertices."""
    system = env.system
    Z = Zonotope(torch.tensor(env.rci.center), torch.tensor(env.rci.generators))
    P = Z.to_hpolytope()
    C, d = P.C.numpy(), P.d.numpy()
    xt = torch.tensor(x)[None]
    u0 = torch.zeros(1, system.action_dim, dtype=F64)
    f0 = system.step(xt, u0, None)[0].numpy()
    _, B, E = system.linearize(xt[0], u0[0])
    B, E = B.numpy(), E.numpy()
    wc = system.disturbance_centre.numpy()
    rows, rhs = [], []
    for wv in _w_vertices(system):
        y0 = f0 + E @ (wv - wc)
        rows.append(C @ B)
        rhs.append(d - C @ y0)
    return np.concatenate(rows), np.concatenate(rhs)


def _states(env, num, gen):
    rci = env.rci
    inside = rci.sample(num, gen)
    sig = (torch.rand(num, rci.num_generators, generator=gen, dtype=F64) < 0.5).to(F64) * 2 - 1
    verts = torch.tensor(rci.center) + sig @ torch.tensor(rci.generators).T
    outside = torch.tensor(rci.center) + 1.4 * (rci.sample(num, gen) - torch.tensor(rci.center))
    lo, hi = env.system.state_low.to(F64), env.system.state_high.to(F64)
    outside = torch.minimum(torch.maximum(outside, lo), hi)
    return torch.cat([inside, verts, outside])


@pytest.mark.parametrize("env_id", RCI_TASKS)
def test_rci_safe_action_set_matches_cvxpy_reference(env_id):
    env = safegrad.make(env_id, num_envs=1, seed=0, dtype=F64)
    gen = torch.Generator().manual_seed(1)
    n_each = 4 if env_id == "BalanceQuadrotor-v0" else 6
    X = _states(env, n_each, gen)
    P, info = env.safe_action_set(X, return_info=True)
    raw = 2.5 * torch.rand(X.shape[0], env.action_dim, generator=gen, dtype=F64) - 1.25
    feasible = ~info["empty"]
    proj = P[feasible].project(raw[feasible])
    k = 0
    n_feasible_ref = 0
    for i in range(X.shape[0]):
        A_rows, b_rows = _rci_reference_rows(env, X[i].numpy())
        ref = _ref_project(A_rows, b_rows, raw[i].numpy(), env.action_dim)
        assert (ref is None) == bool(info["empty"][i]), (i, X[i])
        if ref is not None:
            n_feasible_ref += 1
            np.testing.assert_allclose(proj[k].numpy(), ref, atol=1e-7, rtol=0)
            k += 1
    assert n_feasible_ref >= 2 * n_each  # every state inside the set has a safe action
    # non-emptiness on samples and vertices inside the set; info says the state is safe
    assert not info["empty"][: 2 * n_each].any()
    assert info["state_safe"][: 2 * n_each].all()


@pytest.mark.parametrize("env_id", RCI_TASKS)
def test_nonempty_inside_and_reported_outside(env_id):
    env = safegrad.make(env_id, num_envs=1, seed=0, dtype=F64)
    gen = torch.Generator().manual_seed(3)
    rci = env.rci
    n = 200 if env_id != "BalanceQuadrotor-v0" else 60
    sig = (torch.rand(n, rci.num_generators, generator=gen, dtype=F64) < 0.5).to(F64) * 2 - 1
    X = torch.cat(
        [rci.sample(n, gen), torch.tensor(rci.center) + sig @ torch.tensor(rci.generators).T]
    )
    _, info = env.safe_action_set(X, return_info=True)
    assert not info["empty"].any()
    # far outside (the corner of S): no safe action, and the state is flagged unsafe
    corner = torch.minimum(
        env.system.state_high.to(F64),
        torch.tensor(rci.center) + 2.0 * torch.tensor(rci.hull_halfwidth),
    )
    P, info = env.safe_action_set(corner[None], return_info=True)
    assert bool(info["empty"][0]) and not bool(info["state_safe"][0])


@pytest.mark.parametrize("env_id", RCI_TASKS)
def test_safe_actions_keep_the_simulator_in_the_set(env_id):
    """Vertices of A_s with worst-case disturbances: the nonlinear next state stays inside."""
    env = safegrad.make(env_id, num_envs=1, seed=0, dtype=F64)
    gen = torch.Generator().manual_seed(5)
    X = env.rci.sample(64, gen)
    P = env.safe_action_set(X)
    direction = torch.randn(64, env.action_dim, generator=gen, dtype=F64)
    a = safegrad.qp.solve_lp(-direction, P.C, P.d)
    for wv in _w_vertices(env.system):
        w = torch.tensor(wv).expand(64, -1)
        xn = env.system.step(X, a, w)
        assert (env.rci.margin(xn) >= -1e-9).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("env_id", safegrad.list_envs())
def test_safe_action_set_shapes_dtype_and_gradient(env_id, dtype):
    env = safegrad.make(env_id, num_envs=3, seed=0, dtype=dtype)
    env.reset()
    state = env.state.clone().requires_grad_(True)
    P = env.safe_action_set(state)
    assert P.batch_shape == (3,) and P.dim == env.action_dim
    assert P.C.dtype == dtype and P.d.device == env.device
    P.d.sum().backward()  # the set's parameters depend on the state (SHAC's state path)
    assert state.grad is not None and torch.isfinite(state.grad).all()
    P0 = env.safe_action_set()  # default: the current state
    assert torch.allclose(P0.d, P.d.detach())
    _, info = env.safe_action_set(return_info=True)
    assert info["empty"].shape == (3,) and info["state_safe"].dtype == torch.bool
    with pytest.raises(ValueError, match="safe_action_set: state must be"):
        env.safe_action_set(torch.zeros(3, env.state_dim + 1, dtype=dtype))


def _box_reference(system, x, low, high, dims, a_raw):
    xt = torch.tensor(x)[None]
    u0 = torch.zeros(1, system.action_dim, dtype=F64)
    f0 = system._next_state(xt, u0, system.disturbance_centre[None].to(F64), False)[0].numpy()
    _, B, E = system.linearize(xt[0], u0[0])
    B, E = B.numpy()[dims], E.numpy()[dims]
    wc = system.disturbance_centre.numpy()
    rows, rhs = [], []
    for wv in _w_vertices(system):
        y0 = f0[dims] + E @ (wv - wc)
        rows += [B, -B]
        rhs += [high[dims] - y0, y0 - low[dims]]
    return _ref_project(np.concatenate(rows), np.concatenate(rhs), a_raw, system.action_dim)


def test_household_safe_box_formula_and_reference():
    env = safegrad.make("ManageHousehold-v0", num_envs=64, seed=0, dtype=F64, safe_set="paper")
    env.reset()
    for _ in range(3):
        env.step(torch.zeros(64, 2, dtype=F64))
    x = env.state
    low, high = env.safe_state_box(x)
    sysm = env.system
    # hand computation of the spec's formula for one state (spec A §5.3)
    ca, cb, cc, k = 1 - sysm.c0, sysm.c1, sysm.c2, sysm.c4
    t_in, t_ret = float(x[0, 1]), float(x[0, 2])
    to, to1 = float(env._t_out[env._t, 0]), float(env._t_out[env._t + 1, 0])
    den = ca * ca + cb * cc
    common = t_ret * (ca * cb + cb * (1 - cc)) + to * ca / 240 + to1 / 240
    assert math.isclose(float(low[0, 1]), max(18.0, (18 - common) / den), rel_tol=1e-12)
    assert math.isclose(
        float(high[0, 1]), min(24.0, (24 - cb * k * 5 - common) / den), rel_tol=1e-12
    )
    assert math.isclose(
        float(high[0, 2]), min(100.0, (100 - cc * t_in - k * 5) / (1 - cc)), rel_tol=1e-12
    )
    P, info = env.safe_action_set(return_info=True)
    gen = torch.Generator().manual_seed(0)
    raw = 2.4 * torch.rand(64, 2, generator=gen, dtype=F64) - 1.2
    ok = ~info["empty"]
    proj = P[ok].project(raw[ok])
    k = 0
    for i in range(16):
        ref = _box_reference(
            sysm, x[i].numpy(), low[i].numpy(), high[i].numpy(), [0, 1, 2], raw[i].numpy()
        )
        assert (ref is None) == bool(info["empty"][i])
        if ref is not None:
            np.testing.assert_allclose(proj[int(ok[:i].sum())].numpy(), ref, atol=1e-7)
            k += 1
    assert k > 0


def test_swingup_safe_set_is_one_step_S_and_matches_reference():
    env = safegrad.make("SwingUpCartPole-v0", num_envs=32, seed=0, dtype=F64)
    gen = torch.Generator().manual_seed(0)
    lo, hi = env.system.state_low.to(F64), env.system.state_high.to(F64)
    X = lo + (hi - lo) * torch.rand(32, 4, generator=gen, dtype=F64)
    X[:8, 2] = 9.99  # near the velocity bound: possibly empty
    P, info = env.safe_action_set(X, return_info=True)
    raw = 2.4 * torch.rand(32, 1, generator=gen, dtype=F64) - 1.2
    ok = ~info["empty"]
    proj = P[ok].project(raw[ok])
    for i in range(32):
        ref = _box_reference(
            env.system, X[i].numpy(), lo.numpy(), hi.numpy(), [0, 2, 3], raw[i].numpy()
        )
        assert (ref is None) == bool(info["empty"][i])
        if ref is not None:
            np.testing.assert_allclose(proj[int(ok[:i].sum())].numpy(), ref, atol=1e-7)
    assert info["empty"].any() and (~info["empty"]).any()


def test_navigate_seeker_halfspace_is_sound_and_matches_reference():
    env = safegrad.make("NavigateSeeker-v0", num_envs=64, seed=0, dtype=F64)
    env.reset()
    p = env.episode_params
    gen = torch.Generator().manual_seed(0)
    # states close to the obstacle (and some inside it: empty)
    ang = 2 * math.pi * torch.rand(64, generator=gen, dtype=F64)
    rad = p["obstacle_radius"] + 0.3 * torch.rand(64, generator=gen, dtype=F64) - 0.1
    X = p["obstacle_center"] + rad[:, None] * torch.stack([ang.cos(), ang.sin()], -1)
    P, info = env.safe_action_set(X, return_info=True)
    raw = 2.4 * torch.rand(64, 2, generator=gen, dtype=F64) - 1.2
    ok = ~info["empty"]
    proj = P[ok].project(raw[ok])
    for i in range(64):
        x = X[i].numpy()
        c, r = p["obstacle_center"][i].numpy(), float(p["obstacle_radius"][i])
        nvec = (x - c) / np.linalg.norm(x - c)
        a = cp.Variable(2)
        cons = [a <= 1, a >= -1]
        for wv in _w_vertices(env.system):
            y = x + 0.1 * a + wv
            cons += [nvec @ (y - c) >= r, y <= 8, y >= -8]
        prob = cp.Problem(cp.Minimize(cp.sum_squares(a - raw[i].numpy())), cons)
        _solve(prob)
        assert (prob.status == "infeasible") == bool(info["empty"][i])
        if prob.status == "optimal":
            np.testing.assert_allclose(proj[int(ok[:i].sum())].numpy(), a.value, atol=1e-7)
    # outside the obstacle the set is never empty (u = n-direction vertex works)
    outside = (X - p["obstacle_center"]).norm(dim=-1) >= p["obstacle_radius"]
    assert not info["empty"][outside].any() and info["empty"].any()
    # soundness: every next position from a safe action clears the obstacle for any w
    a = proj
    Xo = X[ok]
    for wv in _w_vertices(env.system):
        xn = env.system.step(Xo, a, torch.tensor(wv).expand(len(a), -1))
        d = (xn - p["obstacle_center"][ok]).norm(dim=-1) - p["obstacle_radius"][ok]
        assert (d >= -1e-9).all()


def test_reachavoid_cbf_rows():
    env = safegrad.make("ReachAvoid-v0", num_envs=8, seed=0, dtype=F64)
    env.reset()
    gen = torch.Generator().manual_seed(0)
    X = 5 * torch.rand(8, 2, generator=gen, dtype=F64) - 0.5
    X.requires_grad_(True)
    h, lf_h, lg_h = env.cbf_constraints(X)
    # autograd: grad h_i . (f + g a) = L_f h + L_g h a
    f, g = env.system.control_affine(X)
    for i in range(env.num_obstacles):
        (gh,) = torch.autograd.grad(h[:, i].sum(), X, retain_graph=True)
        torch.testing.assert_close(lf_h[:, i], (gh * f).sum(-1))
        torch.testing.assert_close(lg_h[:, i], (gh.unsqueeze(-2) @ g).squeeze(-2))
    P = env.safe_action_set(X.detach())
    torch.testing.assert_close(P.C, -lg_h.detach())
    torch.testing.assert_close(P.d, (lf_h + 5.0 * h).detach())
    env2 = safegrad.make("ReachAvoid-v0", num_envs=8, seed=0, dtype=F64, cbf_action_box=True)
    assert env2.safe_action_set(X.detach()).num_constraints == env.num_obstacles + 4
    with pytest.raises(ValueError, match="cbf_alpha"):
        safegrad.make("ReachAvoid-v0", cbf_alpha=-1.0)


def test_action_set_empty_closed_form_1d():
    from safegrad.sets import HPolytope

    C = torch.tensor(
        [[[1.0], [-1.0], [0.0]], [[1.0], [-1.0], [0.0]], [[1.0], [-1.0], [0.0]]], dtype=F64
    )
    d = torch.tensor([[0.5, 0.2, 1.0], [0.1, -0.3, 1.0], [0.5, 0.5, -1.0]], dtype=F64)
    assert action_set_empty(HPolytope(C, d)).tolist() == [False, True, True]


@pytest.mark.parametrize("env_id", RCI_TASKS)
def test_cached_constant_products_give_the_same_set_and_gradient(env_id):
    """The env's hot path folds the RCI facets' constant products once (``cache=``); the set
    and its gradient w.r.t. the state equal the generic construction's to rounding."""
    from safegrad.invariance import polytope_safe_action_set

    env = safegrad.make(env_id, num_envs=1, seed=0, dtype=F64)
    gen = torch.Generator().manual_seed(3)
    X = _states(env, 4, gen)
    t = env.rci.tensors("cpu", F64)
    wC = torch.randn(
        X.shape[0], t["C"].shape[0] + 2 * env.action_dim, env.action_dim, generator=gen, dtype=F64
    )
    wd = torch.randn(X.shape[0], t["C"].shape[0] + 2 * env.action_dim, generator=gen, dtype=F64)
    cache: dict = {}
    grads, sets = [], []
    for c in (None, cache, cache):  # generic, cache filled, cache hit
        x = X.clone().requires_grad_(True)
        P = polytope_safe_action_set(env.system, x, t["C"], t["d"], cache=c)
        ((P.C * wC).sum() + (P.d * wd).sum()).backward()
        sets.append((P.C.detach(), P.d.detach()))
        grads.append(x.grad)
    assert len(cache) == 1
    for (C1, d1), g1 in zip(sets[1:], grads[1:], strict=True):
        torch.testing.assert_close(C1, sets[0][0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(d1, sets[0][1], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(g1, grads[0], rtol=1e-10, atol=1e-10)
    # a target that needs gradients is never cached
    C = t["C"].clone().requires_grad_(True)
    polytope_safe_action_set(env.system, X, C, t["d"], cache=(fresh := {}))
    assert fresh == {}
