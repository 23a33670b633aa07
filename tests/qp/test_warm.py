"""solve_qp(..., active_hint=): the warm start (hinted active-set KKT solve, dual active-set
repair, cold fallback) returns the same optimum and gradients as a cold solve, whatever the
hint (docs/qp.md, "Warm start")."""

from __future__ import annotations

import pytest
import torch

from safegrad.qp import QPStatus, random_qp, solve_lp, solve_qp
from safegrad.qp._dual import dual_active_set

F64 = torch.float64
NAMES = ("Q", "p", "G", "h", "A", "b")


def _args(P):
    return [P[k] for k in NAMES]


def _grads(P, hint, w, method="auto"):
    ts = [None if P[k] is None else P[k].clone().requires_grad_(True) for k in NAMES]
    x, info = solve_qp(*ts, return_info=True, active_hint=hint, method=method)
    (x * w).sum().backward()
    return x.detach(), info, [None if t is None else t.grad for t in ts]


def _random_hint(shape, seed, p=0.3):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) < p


@pytest.mark.parametrize("n,m,k", [(2, 8, 0), (4, 16, 0), (7, 38, 0), (5, 12, 2), (6, 30, 1)])
def test_right_hint_is_used_and_equals_cold_solve(n, m, k):
    P = random_qp(16, n, m, k, seed=n * 10 + m)
    w = torch.randn(16, n, dtype=F64, generator=torch.Generator().manual_seed(1))
    x0, info0, g0 = _grads(P, None, w, method="ipm")
    assert (info0.status == QPStatus.SOLVED).all() and not info0.warm.any()
    x1, info1, g1 = _grads(P, info0.active, w)
    assert info1.warm.all() and (info1.iterations == 0).all()
    assert torch.equal(info1.active, info0.active)
    torch.testing.assert_close(x1, P["x"], atol=1e-10, rtol=0)
    torch.testing.assert_close(x1, x0, atol=1e-12, rtol=0)
    torch.testing.assert_close(info1.z, info0.z, atol=1e-10, rtol=0)
    for a, b in zip(g0, g1, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n,m,k", [(3, 10, 0), (7, 38, 0), (5, 20, 2)])
def test_wrong_hints_are_caught_and_give_the_same_optimum(n, m, k, seed):
    """Random, empty and all-rows hints: the result is the optimum (known by construction) and
    the gradient the cold one; the dual active-set method repairs the strictly convex ones."""
    P = random_qp(12, n, m, k, seed=100 + seed)
    w = torch.randn(12, n, dtype=F64, generator=torch.Generator().manual_seed(seed))
    x0, info0, g0 = _grads(P, None, w, method="ipm")
    for hint in (
        _random_hint((12, m), seed),
        torch.zeros(12, m, dtype=torch.bool),
        torch.ones(12, m, dtype=torch.bool),
    ):
        x1, info1, g1 = _grads(P, hint, w)
        assert (info1.status == QPStatus.SOLVED).all()
        torch.testing.assert_close(x1, P["x"], atol=1e-10, rtol=0)
        torch.testing.assert_close(x1, x0, atol=1e-10, rtol=0)
        assert torch.equal(info1.active, info0.active)
        assert info1.warm.all()  # strictly convex: the dual active-set method finds them
        for a, b in zip(g0, g1, strict=True):
            torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-8)


def test_hinted_result_depends_only_on_the_active_set():
    """A repaired (or from-scratch) solve and a later call hinted with its active set give
    bitwise the same x: the final step is the same KKT solve on the whole batch."""
    P = random_qp(10, 7, 38, seed=5)
    x1, info1 = solve_qp(*_args(P), return_info=True, active_hint=_random_hint((10, 38), 3))
    x2, info2 = solve_qp(*_args(P), return_info=True, active_hint=info1.active)
    assert info2.warm.all()
    assert torch.equal(x1, x2) and torch.equal(info1.z, info2.z)


def test_lp_with_wrong_hint_falls_back_to_the_ipm():
    P = random_qp(8, 4, 12, lp=True, seed=9)
    x0, info0 = solve_lp(P["p"], P["G"], P["h"], return_info=True)
    hint = info0.active.clone()
    hint[:4] = ~hint[:4]  # wrong for the first four
    x1, info1 = solve_lp(P["p"], P["G"], P["h"], return_info=True, active_hint=hint)
    assert not info1.warm[:4].any() and info1.warm[4:].all()
    assert (info1.iterations[:4] > 0).all()
    torch.testing.assert_close(x1, x0, atol=1e-10, rtol=0)
    torch.testing.assert_close(x1, P["x"], atol=1e-9, rtol=0)


def test_degenerate_hint_with_duplicate_rows():
    """A hint with a duplicated active row (dependent rows: the KKT matrix is singular) is still
    solved exactly, with the min-norm split of the multiplier between the copies."""
    P = random_qp(6, 4, 8, seed=21, n_active=2)
    G = torch.cat([P["G"], P["G"][:, :1]], 1)
    h = torch.cat([P["h"], P["h"][:, :1]], 1)
    x0, info0 = solve_qp(P["Q"], P["p"], G, h, return_info=True, method="ipm")
    x1, info1 = solve_qp(P["Q"], P["p"], G, h, return_info=True, active_hint=info0.active)
    torch.testing.assert_close(x1, P["x"], atol=1e-10, rtol=0)
    torch.testing.assert_close(x1, x0, atol=1e-10, rtol=0)
    assert (info1.z >= 0).all()
    torch.testing.assert_close(info1.z[:, 0] + info1.z[:, -1], P["z"][:, 0], atol=1e-9, rtol=0)


def test_infeasible_problems_keep_their_status_with_a_hint():
    P = random_qp(4, 3, 6, seed=2)
    G = torch.cat([P["G"], P["G"][:, :1], -P["G"][:, :1]], 1)
    h = torch.cat([P["h"], P["h"][:, :1] - 1.0, -P["h"][:, :1] - 1.0], 1)  # g'x <= c-1, >= c+1
    hint = torch.zeros(4, 8, dtype=torch.bool)
    x, info = solve_qp(P["Q"], P["p"], G, h, return_info=True, active_hint=hint)
    assert (info.status == QPStatus.PRIMAL_INFEASIBLE).all()
    assert not info.warm.any() and torch.isfinite(x).all() and (x == 0).all()


def test_gradcheck_with_a_hint():
    P = random_qp(3, 3, 6, 1, seed=4)
    _, info = solve_qp(*_args(P), return_info=True)
    ts = [P[k].clone().requires_grad_(True) for k in NAMES]
    assert torch.autograd.gradcheck(
        lambda *a: solve_qp(*a, active_hint=info.active), ts, atol=1e-6, rtol=1e-5
    )


def test_float32_and_broadcast_hint():
    P = random_qp((2, 3), 4, 10, seed=8, dtype=torch.float32)
    x0, info0 = solve_qp(*_args(P), return_info=True)
    x1, info1 = solve_qp(*_args(P), return_info=True, active_hint=info0.active)
    assert info1.warm.shape == (2, 3) and info1.active.shape == (2, 3, 10) and info1.warm.all()
    torch.testing.assert_close(x1, x0, atol=1e-5, rtol=0)
    # one (m,) hint for the whole batch
    x2, info2 = solve_qp(*_args(P), return_info=True, active_hint=info0.active[0, 0])
    torch.testing.assert_close(x2, x0, atol=1e-5, rtol=0)


def test_hint_validation():
    P = random_qp(4, 3, 6, seed=1)
    with pytest.raises(TypeError, match="bool"):
        solve_qp(*_args(P), active_hint=torch.zeros(4, 6))
    with pytest.raises(ValueError, match=r"\(\*batch, 6\)"):
        solve_qp(*_args(P), active_hint=torch.zeros(4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="broadcast"):
        solve_qp(*_args(P), active_hint=torch.zeros(3, 6, dtype=torch.bool))


def test_dual_active_set_from_scratch_matches_the_constructed_optimum():
    """The dual active-set method alone (empty start) on random strictly convex QPs."""
    for n, m, k in [(2, 8, 0), (7, 40, 0), (5, 20, 2)]:
        P = random_qp(32, n, m, k, seed=n + m)
        nu = P["G"].norm(dim=-1, keepdim=True)
        Gs, hs = P["G"] / nu, P["h"].unsqueeze(-1) / nu
        if k:
            na = P["A"].norm(dim=-1, keepdim=True)
            As, bs = P["A"] / na, P["b"].unsqueeze(-1) / na
        else:
            As, bs = torch.zeros(32, 0, n, dtype=F64), torch.zeros(32, 0, 1, dtype=F64)
        tol = torch.full((32, 1), 1e-9, dtype=F64)
        x, z, y, act, done = dual_active_set(
            P["Q"], P["p"].unsqueeze(-1), Gs, hs, As, bs, tol, tol,
            torch.zeros(32, m, dtype=torch.bool), delta=1e-10, max_steps=4 * n + 20,
        )  # fmt: skip
        assert done.all()
        torch.testing.assert_close(x.squeeze(-1), P["x"], atol=1e-8, rtol=0)
        torch.testing.assert_close((z.squeeze(-1) / nu.squeeze(-1)), P["z"], atol=1e-7, rtol=0)
