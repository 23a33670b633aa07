"""safegrad.qp.solve_qp / solve_lp: agreement with cvxpy + Clarabel, degenerate and infeasible
problems, broadcasting, dtypes and input validation."""

from __future__ import annotations

import pytest
import torch

from safegrad.qp import QPInfeasibleError, QPStatus, random_qp, solve_lp, solve_qp

cp = pytest.importorskip("cvxpy")
from safegrad.bench.qp import reference_solve  # noqa: E402

F64 = torch.float64
NAMES = ("Q", "p", "G", "h", "A", "b")


def _args(P):
    return [P[k] for k in NAMES]


@pytest.mark.parametrize(
    "n,m,k,lp",
    [
        (2, 4, 0, False),
        (4, 16, 0, False),
        (8, 64, 0, False),
        (5, 12, 2, False),
        (4, 10, 0, True),
        (6, 20, 2, True),
        (3, 0, 0, False),
    ],
)
def test_random_problems_match_reference(n, m, k, lp):
    if m == 0:  # unconstrained / equality-only QP
        P = random_qp(6, n, 1, k, seed=3)
        P["G"] = P["h"] = None
        P["p"] = torch.randn(6, n, dtype=F64, generator=torch.Generator().manual_seed(0))
    else:
        P = random_qp(6, n, m, k, lp=lp, seed=n * 100 + m)
    x, info = solve_qp(*_args(P), return_info=True)
    xr, stat = reference_solve(*_args(P))
    assert all(s == "optimal" for s in stat)
    assert (info.status == QPStatus.SOLVED).all()
    torch.testing.assert_close(x, xr, atol=1e-7, rtol=0)
    if m:
        torch.testing.assert_close(x, P["x"], atol=1e-9, rtol=0)
        torch.testing.assert_close(info.z, P["z"], atol=1e-7, rtol=0)
    if k:
        torch.testing.assert_close(info.y, P["y"], atol=1e-7, rtol=0)


def _degenerate_problem(weak: bool, slab: bool):
    """Duplicated rows, a positively scaled copy, a redundant consistent equality; if ``weak`` a
    weakly active row (tight, zero multiplier: no strict complementarity); if ``slab`` the opposite
    row ``-g'x <= -c`` that turns an active row into a zero-width slab (no interior)."""
    g = torch.Generator().manual_seed(7)
    B, n = 5, 4
    P = random_qp(B, n, 6, 2, seed=11)
    G, h = P["G"], P["h"]
    i = P["active"].float().argmax(-1)  # an active row per problem
    gi, hi = G[torch.arange(B), i][:, None], h[torch.arange(B), i][:, None]
    w = torch.randn(B, 1, n, dtype=F64, generator=g)
    rows = [G, gi, 3.0 * gi] + ([w] if weak else []) + ([-gi] if slab else [])
    rhs = [h, hi, 3.0 * hi] + ([(w.squeeze(1) * P["x"]).sum(-1, keepdim=True)] if weak else [])
    rhs += [-hi] if slab else []
    A, b = P["A"], P["b"]
    A2 = torch.cat([A, A[:, :1] + A[:, 1:2]], 1)
    b2 = torch.cat([b, b[:, :1] + b[:, 1:2]], 1)
    return P, (P["Q"], P["p"], torch.cat(rows, 1), torch.cat(rhs, 1), A2, b2)


def test_degenerate_redundant_and_parallel_constraints():
    P, args = _degenerate_problem(weak=False, slab=False)
    x, info = solve_qp(*args, return_info=True)
    xr, stat = reference_solve(*args)
    assert all(s == "optimal" for s in stat)
    assert (info.status == QPStatus.SOLVED).all()
    torch.testing.assert_close(x, xr, atol=1e-7, rtol=0)
    torch.testing.assert_close(x, P["x"], atol=1e-9, rtol=0)
    assert (info.z >= 0).all()


@pytest.mark.parametrize("weak,slab", [(True, False), (False, True), (True, True)])
def test_weakly_active_and_zero_width_slab(weak, slab):
    """Ours is exact (the constructed optimum is known). With a weakly active row Clarabel's
    answer at tolerance 1e-12 is itself ~2e-6 away from the optimum (IPMs without polishing reach
    only ~sqrt(tol) without strict complementarity), so it is checked to 1e-5 only."""
    P, args = _degenerate_problem(weak=weak, slab=slab)
    x, info = solve_qp(*args, return_info=True)
    assert (info.status == QPStatus.SOLVED).all()
    torch.testing.assert_close(x, P["x"], atol=1e-9, rtol=0)
    xr, _ = reference_solve(*args)
    torch.testing.assert_close(x, xr, atol=1e-5, rtol=0)
    assert (info.z >= 0).all()


def test_degenerate_lp_vertex():
    """LP whose optimal vertex has more tight constraints than variables."""
    c = torch.tensor([[-1.0, -1.0], [-1.0, -2.0]], dtype=F64)
    G = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], dtype=F64)
    h = torch.tensor([1.0, 1.0, 2.0, 0.0, 0.0], dtype=F64)
    x, info = solve_lp(c, G, h, return_info=True)
    torch.testing.assert_close(x, torch.ones(2, 2, dtype=F64), atol=1e-9, rtol=0)
    assert (info.status == QPStatus.SOLVED).all()


def test_infeasible_and_unbounded_detected_per_element():
    P = random_qp(6, 3, 5, seed=5)
    G, h = P["G"].clone(), P["h"].clone()
    # element 1: G_0 x <= h_0 and -G_0 x <= -h_0 - 1 (empty slab); element 4: 0 x <= -1
    G = torch.cat([G, torch.zeros(6, 1, 3, dtype=F64)], 1)
    h = torch.cat([h, torch.ones(6, 1, dtype=F64)], 1)
    G[1, -1] = -G[1, 0]
    h[1, -1] = -h[1, 0] - 1.0
    h[4, -1] = -1.0
    x, info = solve_qp(P["Q"], P["p"], G, h, return_info=True)
    expected = torch.tensor([0, 1, 0, 0, 1, 0])
    assert info.status.tolist() == expected.tolist()
    assert torch.isfinite(x).all() and (x[expected == 1] == 0).all()
    ok = expected == 0
    torch.testing.assert_close(x[ok], P["x"][ok], atol=1e-8, rtol=0)
    # the Farkas certificate: z >= 0, G'z ~ 0, h'z < 0
    z = info.z[1]
    assert (z >= 0).all()
    assert (G[1].T @ z).abs().max() < 1e-3 and (h[1] @ z) < -1e-3
    with pytest.raises(QPInfeasibleError, match="2 of 6 problems"):
        solve_qp(P["Q"], P["p"], G, h, raise_on_infeasible=True)


def test_infeasible_equalities_and_unbounded_lp():
    c = torch.tensor([[1.0, 1.0], [-1.0, 0.0], [1.0, 0.0]], dtype=F64)
    G = torch.tensor([[-1.0, 0.0], [0.0, -1.0]], dtype=F64)  # x >= 0
    h = torch.zeros(2, dtype=F64)
    A = torch.tensor([[[1.0, 1.0]], [[0.0, 1.0]], [[1.0, 1.0]]], dtype=F64)
    b = torch.tensor([[1.0], [1.0], [-1.0]], dtype=F64)  # row 2: x1 + x2 = -1 with x >= 0
    x, info = solve_lp(c, G, h, A, b, return_info=True)
    assert info.status.tolist() == [0, 2, 1]  # solved, unbounded (x1 -> inf), infeasible
    torch.testing.assert_close(x[0], torch.tensor([0.5, 0.5], dtype=F64), atol=1e-8, rtol=0)
    assert torch.isfinite(x).all()


def test_equality_only_infeasible_and_unbounded():
    Q = torch.zeros(2, 2, dtype=F64)
    p = torch.tensor([1.0, 0.0], dtype=F64)
    A = torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]]], dtype=F64)
    b = torch.tensor([[2.0], [3.0]], dtype=F64)
    x, info = solve_qp(Q, p, A=A, b=b, return_info=True)
    assert info.status.tolist() == [2, 0]  # min x1 with only x2 fixed: unbounded
    torch.testing.assert_close(x[1], torch.tensor([3.0, 0.0], dtype=F64))
    A_bad = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=F64)
    b_bad = torch.tensor([0.0, 1.0], dtype=F64)
    _, info = solve_qp(torch.eye(2, dtype=F64), p, A=A_bad, b=b_bad, return_info=True)
    assert info.status.item() == QPStatus.PRIMAL_INFEASIBLE


def test_broadcasting_and_shapes():
    P = random_qp(3, 3, 5, seed=1)
    Q0, G0, h0 = P["Q"][0], P["G"][0], P["h"][0]
    x = solve_qp(Q0, P["p"], G0, h0)  # only p batched
    assert x.shape == (3, 3)
    for i in range(3):
        xi = solve_qp(Q0, P["p"][i], G0, h0)
        assert xi.shape == (3,)
        torch.testing.assert_close(x[i], xi, atol=1e-10, rtol=0)
    x2 = solve_qp(Q0, P["p"].reshape(3, 1, 3).expand(3, 2, 3), G0, h0)
    assert x2.shape == (3, 2, 3)
    torch.testing.assert_close(x2[:, 1], x, atol=1e-10, rtol=0)


def test_float32():
    P = random_qp(32, 4, 16, 1, seed=2, dtype=torch.float32)
    x, info = solve_qp(*_args(P), return_info=True)
    assert x.dtype == torch.float32
    assert (info.status == QPStatus.SOLVED).all()
    torch.testing.assert_close(x, P["x"], atol=2e-4, rtol=0)


def test_input_validation():
    p = torch.zeros(3, dtype=F64)
    with pytest.raises(ValueError, match="G has shape"):
        solve_qp(
            torch.eye(3, dtype=F64), p, torch.zeros(2, 4, dtype=F64), torch.zeros(2, dtype=F64)
        )
    with pytest.raises(ValueError, match="G and h must be given together"):
        solve_qp(torch.eye(3, dtype=F64), p, torch.zeros(2, 3, dtype=F64))
    with pytest.raises(TypeError, match="dtype"):
        solve_qp(torch.eye(3), p)
    with pytest.raises(TypeError, match="float32 or float64"):
        solve_qp(None, torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="do not broadcast"):
        solve_qp(torch.eye(3, dtype=F64).expand(2, 3, 3), torch.zeros(4, 3, dtype=F64))
    with pytest.raises(ValueError, match="tol"):
        solve_qp(torch.eye(3, dtype=F64), p, tol=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        solve_qp(torch.eye(3, dtype=F64), p, max_iter=0)
