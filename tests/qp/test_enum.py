"""method="enum" (batched active-set enumeration) against method="ipm": same x, duals, status and
gradients on random, degenerate, equality-constrained and infeasible problems; gradcheck;
automatic method choice and per-problem fallback to the IPM."""

from __future__ import annotations

import pytest
import torch

from safegrad.qp import QPStatus, random_qp, solve_lp, solve_qp

F64 = torch.float64
NAMES = ("Q", "p", "G", "h", "A", "b")


def _solve_both(args, w):
    """x, info and gradients w.r.t. every given input, for method enum and ipm."""
    out = {}
    for method in ("enum", "ipm"):
        inp = [a.clone().requires_grad_() if a is not None else None for a in args]
        x, info = solve_qp(*inp, return_info=True, method=method)
        (x * w).sum().backward()
        grads = [a.grad if a is not None else None for a in inp]
        out[method] = (x.detach(), info, grads)
    return out


def _assert_agree(out, names=NAMES, atol_x=1e-9, atol_g=1e-6, duals=True):
    xe, ie, ge = out["enum"]
    xi, ii, gi = out["ipm"]
    assert ie.status.tolist() == ii.status.tolist()
    torch.testing.assert_close(xe, xi, atol=atol_x, rtol=0)
    if duals:
        torch.testing.assert_close(ie.z, ii.z, atol=1e-7, rtol=0)
        torch.testing.assert_close(ie.y, ii.y, atol=1e-7, rtol=0)
    for name, a, b in zip(NAMES, ge, gi):
        if a is not None and name in names:
            torch.testing.assert_close(a, b, atol=atol_g, rtol=0, msg=name)


@pytest.mark.parametrize(
    "n,m,k",
    [(1, 4, 0), (2, 4, 0), (2, 8, 0), (3, 8, 0), (4, 4, 0), (8, 4, 0), (4, 6, 1), (5, 7, 2)],
)
def test_random_problems_agree_with_ipm(n, m, k):
    P = random_qp(16, n, m, k, seed=10 * n + m)
    args = [P[key] for key in NAMES]
    w = torch.randn(16, n, dtype=F64, generator=torch.Generator().manual_seed(0))
    out = _solve_both(args, w)
    _assert_agree(out)
    xe, ie, _ = out["enum"]
    assert (ie.status == QPStatus.SOLVED).all() and (ie.iterations == 0).all()  # enumerated
    torch.testing.assert_close(xe, P["x"], atol=1e-10, rtol=0)
    torch.testing.assert_close(ie.z, P["z"], atol=1e-9, rtol=0)


def _degenerate(weak: bool, B=6, n=3, seed=5):
    """Each problem: a random QP with n active rows (a vertex) plus an exact duplicate and a
    scaled copy of an active row and the sum of two active rows (tight, can carry a
    multiplier), so the optimum has more than n tight rows, dependent active rows and non-unique
    multipliers. If ``weak``, also a random row through the optimum (tight with zero multiplier
    in every dual solution: no strict complementarity)."""
    P = random_qp(B, n, 5, seed=seed, n_active=n)
    G, h, x = P["G"], P["h"], P["x"]
    ar = torch.arange(B)
    act = torch.sort(P["active"].float(), dim=-1, descending=True, stable=True).indices
    i, j = act[:, 0], act[:, 1]
    gi, hi = G[ar, i][:, None], h[ar, i][:, None]
    gs, hs = gi + G[ar, j][:, None], hi + h[ar, j][:, None]
    rows, rhs = [G, gi, 2.5 * gi, gs], [h, hi, 2.5 * hi, hs]
    if weak:
        wk = torch.randn(B, 1, n, dtype=F64, generator=torch.Generator().manual_seed(seed))
        rows.append(wk)
        rhs.append((wk.squeeze(1) * x).sum(-1, keepdim=True))
    return P, (P["Q"], P["p"], torch.cat(rows, 1), torch.cat(rhs, 1), None, None)


@pytest.mark.parametrize("weak", [False, True])
def test_degenerate_vertex_duplicates_parallel_weakly_active(weak):
    P, args = _degenerate(weak)
    w = torch.randn(6, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    out = _solve_both(args, w)
    xe, ie, ge = out["enum"]
    assert (ie.iterations == 0).all()  # handled by the enumeration, not the fallback
    torch.testing.assert_close(xe, P["x"], atol=1e-10, rtol=0)
    # a valid multiplier: stationarity and z >= 0
    Q, p, G, h = args[:4]
    r = (Q @ xe.unsqueeze(-1)).squeeze(-1) + p + (G.mT @ ie.z.unsqueeze(-1)).squeeze(-1)
    assert r.abs().max() < 1e-9 and (ie.z >= 0).all()
    if weak:
        # x is not differentiable at a weakly active row; each method returns a one-sided
        # derivative (the IPM's guess z_i > s_i may or may not include the row): only x agrees
        _assert_agree(out, names=(), duals=False)
    else:
        # multipliers are not unique: x, status and the gradients w.r.t. Q, p, h (which depend
        # only on the active set) agree; dG also depends on the multiplier choice
        _assert_agree(out, names=("Q", "p", "h"), duals=False)


def test_duplicate_row_gradient_split_matches_ipm():
    """Exact duplicate of an active row: both methods split dL/dh equally between the copies."""
    P = random_qp(4, 3, 4, seed=2)
    i = P["active"].float().argmax(-1)
    ar = torch.arange(4)
    G = torch.cat([P["G"], P["G"][ar, i][:, None]], 1)
    h = torch.cat([P["h"], P["h"][ar, i][:, None]], 1)
    w = torch.randn(4, 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    out = _solve_both((P["Q"], P["p"], G, h, None, None), w)
    _assert_agree(out, names=("Q", "p", "h"), duals=False)
    gh = out["enum"][2][3]
    torch.testing.assert_close(gh[ar, i], gh[:, -1], atol=1e-6, rtol=0)
    # the multiplier of the copies is split differently (enum: on one copy; IPM: shared), so
    # dL/dG of each copy differs, but their sum (the gradient w.r.t. the row) agrees
    (ge, gi), other = (out["enum"][2][2], out["ipm"][2][2]), torch.ones(4, 5, dtype=torch.bool)
    torch.testing.assert_close(ge[ar, i] + ge[:, -1], gi[ar, i] + gi[:, -1], atol=1e-6, rtol=0)
    other[ar, i] = False
    other[:, -1] = False
    torch.testing.assert_close(ge[other], gi[other], atol=1e-6, rtol=0)
    assert (out["enum"][1].iterations == 0).all()


def test_infeasible_and_non_pd_fall_back_per_element():
    P = random_qp(5, 2, 4, seed=6)
    G = torch.cat([P["G"], torch.zeros(5, 1, 2, dtype=F64)], 1)
    h = torch.cat([P["h"], torch.ones(5, 1, dtype=F64)], 1)
    h[1, -1] = -1.0  # 0 x <= -1: infeasible
    Q = P["Q"].clone()
    Q[3] = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=F64)  # PSD, singular: not enumerable
    w = torch.ones(5, 2, dtype=F64)
    out = _solve_both((Q, P["p"], G, h, None, None), w)
    _assert_agree(out, atol_x=1e-8, atol_g=1e-5)
    ie = out["enum"][1]
    assert ie.status.tolist() == [0, 1, 0, 0, 0]
    it = ie.iterations.tolist()
    assert it[1] > 0 and it[3] > 0 and it[0] == it[2] == it[4] == 0
    gp = out["enum"][2][1]
    assert (gp[1] == 0).all() and torch.isfinite(gp).all()


def test_equality_constrained_and_redundant_equalities():
    P = random_qp(6, 4, 5, 2, seed=8)
    A2 = torch.cat([P["A"], P["A"][:, :1] + P["A"][:, 1:]], 1)  # redundant row: falls back
    b2 = torch.cat([P["b"], P["b"][:, :1] + P["b"][:, 1:]], 1)
    w = torch.randn(6, 4, dtype=F64, generator=torch.Generator().manual_seed(4))
    out = _solve_both((P["Q"], P["p"], P["G"], P["h"], A2, b2), w)
    _assert_agree(out, names=("Q", "p", "G", "h"), duals=False)
    torch.testing.assert_close(out["enum"][0], P["x"], atol=1e-9, rtol=0)


def test_gradcheck_enum():
    P = random_qp(2, 3, 6, 1, seed=4)
    inputs = [P[key].clone().requires_grad_() for key in NAMES]
    assert torch.autograd.gradcheck(
        lambda *a: solve_qp(*a, method="enum"), inputs, eps=1e-6, atol=1e-6, rtol=1e-5
    )


def test_auto_choice_and_float32():
    P = random_qp(8, 2, 4, seed=1, dtype=torch.float32)
    x, info = solve_qp(P["Q"], P["p"], P["G"], P["h"], return_info=True)
    assert (info.iterations == 0).all()  # small strictly convex QP: enumerated
    torch.testing.assert_close(x, P["x"], atol=1e-5, rtol=0)
    L = random_qp(4, 2, 4, lp=True, seed=1)
    _, info = solve_lp(L["p"], L["G"], L["h"], return_info=True)
    assert (info.iterations > 0).all()  # an LP always uses the IPM
    with pytest.raises(ValueError, match="method must be one of"):
        solve_qp(P["Q"], P["p"], P["G"], P["h"], method="simplex")
