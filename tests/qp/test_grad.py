"""Backward of solve_qp: gradcheck at non-degenerate points, the min-norm generalised Jacobian at
degenerate ones, zero gradient through infeasible problems."""

from __future__ import annotations

import pytest
import torch

from safegrad.qp import QPStatus, random_qp, solve_qp

F64 = torch.float64
NAMES = ("Q", "p", "G", "h", "A", "b")


@pytest.mark.parametrize(
    "n,m,k,lp",
    [(3, 5, 0, False), (4, 6, 2, False), (3, 6, 0, True), (4, 7, 1, True), (3, 0, 1, False)],
)
def test_gradcheck(n, m, k, lp):
    P = random_qp(2, n, max(m, 1), k, lp=lp, seed=4)
    if m == 0:
        P["G"] = P["h"] = None
    inputs = [P[k].clone().requires_grad_(True) if P[k] is not None else None for k in NAMES]
    assert torch.autograd.gradcheck(lambda *a: solve_qp(*a), inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_unbatched_broadcast():
    P = random_qp(3, 3, 4, seed=9)
    Q = P["Q"][0].clone().requires_grad_()
    G = P["G"][0].clone().requires_grad_()
    p = P["p"].clone().requires_grad_()
    h = P["h"][0].clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda Q, p, G, h: solve_qp(Q, p, G, h), (Q, p, G, h), eps=1e-6, atol=1e-6, rtol=1e-5
    )


def test_duplicate_constraint_gives_min_norm_split():
    """A duplicated active row: x depends on min(h1, h2), not differentiable at h1 = h2. The
    returned gradient is the min-norm element: half of the single-row gradient to each copy,
    which is the average of the two one-sided derivatives (a generalised Jacobian element)."""
    P = random_qp((), 3, 4, seed=1)
    i = int(P["active"].float().argmax())
    G2 = torch.cat([P["G"], P["G"][i : i + 1]], 0)
    h1 = P["h"].clone().requires_grad_()
    h2 = torch.cat([P["h"], P["h"][i : i + 1]], 0).requires_grad_()
    w = torch.tensor([0.3, -1.0, 0.7], dtype=F64)
    (solve_qp(P["Q"], P["p"], P["G"], h1) @ w).backward()
    (solve_qp(P["Q"], P["p"], G2, h2) @ w).backward()
    single = h1.grad[i]
    assert single.abs() > 1e-3
    torch.testing.assert_close(h2.grad[i], single / 2, atol=1e-6, rtol=0)
    torch.testing.assert_close(h2.grad[-1], single / 2, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        h2.grad[:4].sum() + h2.grad[4] - h2.grad[i] / 1,
        h1.grad.sum() - single / 2,
        atol=1e-6,
        rtol=0,
    )
    # one-sided finite differences bracket the returned value
    eps = 1e-6
    x0 = solve_qp(P["Q"], P["p"], G2, h2.detach()) @ w
    e = torch.zeros(5, dtype=F64)
    e[-1] = eps
    up = (solve_qp(P["Q"], P["p"], G2, h2.detach() + e) @ w - x0) / eps
    down = (x0 - solve_qp(P["Q"], P["p"], G2, h2.detach() - e) @ w) / eps
    lo, hi = sorted([float(up), float(down)])
    assert lo - 1e-5 <= float(h2.grad[-1]) <= hi + 1e-5


def test_zero_gradient_through_infeasible_element():
    P = random_qp(2, 2, 3, seed=0)
    G = torch.cat([P["G"], torch.zeros(2, 1, 2, dtype=F64)], 1)
    h = torch.cat([P["h"], torch.tensor([[1.0], [-1.0]], dtype=F64)], 1).requires_grad_()
    p = P["p"].clone().requires_grad_()
    x, info = solve_qp(P["Q"], p, G, h, return_info=True)
    assert info.status.tolist() == [QPStatus.SOLVED, QPStatus.PRIMAL_INFEASIBLE]
    x.sum().backward()
    assert (p.grad[1] == 0).all() and (h.grad[1] == 0).all()
    assert p.grad[0].abs().sum() > 0
    assert torch.isfinite(p.grad).all()
