"""HPolytope: closed-form ray distances and solver-based operations against cvxpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from setsref import (
    F64,
    cvx_chebyshev,
    cvx_project_hpoly,
    cvx_support_hpoly,
    np_,
    random_hpolytope,
)

from safegrad.sets import Box, HPolytope


def test_contains_and_residual():
    gen = torch.Generator().manual_seed(0)
    P, x0 = random_hpolytope(3, 5, batch=(4,), gen=gen)
    x = x0 + 2 * torch.randn(10, 4, 3, generator=gen, dtype=F64)
    want = ((P.C @ x.unsqueeze(-1)).squeeze(-1) <= P.d).all(-1)
    assert torch.equal(P.contains(x, tol=0), want)
    assert P.contains(x0).all()
    # no constraints: everything is inside
    free = HPolytope(torch.zeros(0, 2, dtype=F64), torch.zeros(0, dtype=F64))
    assert free.contains(torch.randn(5, 2, dtype=F64)).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ray_distance_lands_on_boundary(dtype):
    gen = torch.Generator().manual_seed(1)
    P, x0 = random_hpolytope(3, 6, batch=(64,), gen=gen, dtype=dtype)
    v = torch.randn(64, 3, generator=gen, dtype=dtype)
    t = P.ray_distance(x0, v)
    assert t.dtype == dtype and torch.isfinite(t).all() and (t > 0).all()
    p = x0 + t.unsqueeze(-1) * v
    res = P.residual(p).amax(-1)
    eps = 1e-5 if dtype == torch.float32 else 1e-12
    assert (res.abs() <= eps).all()  # on the boundary
    assert not P.contains(x0 + (t * 1.001).unsqueeze(-1) * v, tol=0).any()


def test_ray_distance_unbounded_outside_empty():
    # half-plane y <= 1
    half = HPolytope(torch.tensor([[0.0, 1.0]], dtype=F64), torch.tensor([1.0], dtype=F64))
    o = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 3.0], [0.0, 3.0]], dtype=F64)
    v = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, -1.0], [0.0, 1.0]], dtype=F64)
    assert half.ray_distance(o, v).tolist() == [math.inf, 0.5, math.inf, -math.inf]
    empty = HPolytope(
        torch.tensor([[1.0], [-1.0]], dtype=F64), torch.tensor([-1.0, -1.0], dtype=F64)
    )
    o = torch.zeros(2, 1, dtype=F64)
    v = torch.tensor([[1.0], [-1.0]], dtype=F64)
    assert empty.ray_distance(o, v).tolist() == [-math.inf, -math.inf]


def test_support_matches_cvxpy():
    gen = torch.Generator().manual_seed(2)
    P, _ = random_hpolytope(3, 5, batch=(4,), gen=gen)
    v = torch.randn(4, 3, generator=gen, dtype=F64)
    s = P.support(v)
    for i in range(4):
        assert s[i].item() == pytest.approx(cvx_support_hpoly(P.C[i], P.d[i], v[i]), abs=1e-6)
    # unbounded and empty
    half = HPolytope(torch.tensor([[0.0, 1.0]], dtype=F64), torch.tensor([1.0], dtype=F64))
    assert half.support(torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=F64)).tolist() == [
        1.0,
        math.inf,
    ]
    empty = HPolytope(
        torch.tensor([[1.0], [-1.0]], dtype=F64), torch.tensor([-1.0, -1.0], dtype=F64)
    )
    assert empty.support(torch.ones(1, dtype=F64)).item() == -math.inf


def test_project_idempotent_in_set_matches_cvxpy():
    gen = torch.Generator().manual_seed(3)
    P, x0 = random_hpolytope(3, 5, batch=(5,), gen=gen)
    x = x0 + 2 * torch.randn(5, 3, generator=gen, dtype=F64)
    p = P.project(x)
    assert P.contains(p, tol=1e-8).all()
    torch.testing.assert_close(P.project(p), p, atol=1e-8, rtol=0)
    for i in range(5):
        np.testing.assert_allclose(np_(p[i]), cvx_project_hpoly(P.C[i], P.d[i], x[i]), atol=1e-6)


def test_empty_polytope_reported():
    empty = HPolytope(
        torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=F64), torch.tensor([-1.0, -1.0], dtype=F64)
    )
    P, _ = random_hpolytope(2, 3, gen=torch.Generator().manual_seed(4))
    assert empty.is_empty().item() and not P.is_empty().item()
    assert not empty.contains(torch.zeros(2, dtype=F64))
    with pytest.raises(RuntimeError, match="empty polytope"):
        empty.project(torch.zeros(2, dtype=F64))
    assert torch.isnan(empty.project(torch.zeros(2, dtype=F64), check=False)).all()
    with pytest.raises(ValueError, match="empty"):
        empty.chebyshev_center()


def test_chebyshev_center_matches_cvxpy():
    gen = torch.Generator().manual_seed(5)
    P, _ = random_hpolytope(3, 4, batch=(3,), gen=gen)
    c, r = P.chebyshev_center()
    for i in range(3):
        _, r_ref = cvx_chebyshev(P.C[i], P.d[i])
        assert r[i].item() == pytest.approx(r_ref, abs=1e-6)
    # the ball lies inside: every row has slack >= r ||C_i||
    slack = P.d - (P.C @ c.unsqueeze(-1)).squeeze(-1)
    assert (slack >= r.unsqueeze(-1) * P.C.norm(dim=-1) - 1e-7).all()
    unit = Box(torch.zeros(2, dtype=F64), torch.tensor([2.0, 1.0], dtype=F64)).to_hpolytope()
    _, r = unit.chebyshev_center()
    assert r.item() == pytest.approx(0.5, abs=1e-8)
    half = HPolytope(torch.tensor([[0.0, 1.0]], dtype=F64), torch.tensor([1.0], dtype=F64))
    assert half.chebyshev_center()[1].item() == math.inf


def test_interval_hull_sample_linear_map():
    gen = torch.Generator().manual_seed(6)
    P, _ = random_hpolytope(2, 4, batch=(3,), gen=gen)
    hull = P.interval_hull()
    for i in range(3):
        for j in range(2):
            e = torch.zeros(2, dtype=F64)
            e[j] = 1.0
            assert hull.high[i, j].item() == pytest.approx(
                cvx_support_hpoly(P.C[i], P.d[i], e), abs=1e-6
            )
            assert -hull.low[i, j].item() == pytest.approx(
                cvx_support_hpoly(P.C[i], P.d[i], -e), abs=1e-6
            )
    s = P.sample(500, generator=gen)
    assert s.shape == (500, 3, 2) and P.contains(s).all()
    M = torch.tensor([[2.0, 1.0], [0.0, 1.0]], dtype=F64)
    b = torch.tensor([1.0, -1.0], dtype=F64)
    Q = P.linear_map(M, b)
    y = (M @ s.unsqueeze(-1)).squeeze(-1) + b
    assert Q.contains(y, tol=1e-9).all()
    out = P.sample(1, generator=gen)[0] + 10.0  # outside P -> image outside Q
    assert not Q.contains((M @ out.unsqueeze(-1)).squeeze(-1) + b).any()
    with pytest.raises(ValueError, match="square"):
        P.linear_map(torch.ones(3, 2, dtype=F64))


def test_intersection_and_normalized():
    box = Box(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64))
    diag = HPolytope(torch.tensor([[2.0, 2.0]], dtype=F64), torch.tensor([2.0], dtype=F64))
    inter = diag.intersection(box)
    pts = torch.tensor([[0.2, 0.2], [0.9, 0.9], [1.5, -0.1]], dtype=F64)
    assert inter.contains(pts).tolist() == [True, False, False]
    nrm = diag.normalized()
    torch.testing.assert_close(nrm.C.norm(dim=-1), torch.ones(1, dtype=F64))
    assert torch.equal(nrm.contains(pts), diag.contains(pts))


def test_gradcheck_ray_distance_support_project():
    gen = torch.Generator().manual_seed(7)
    P, x0 = random_hpolytope(2, 3, batch=(2,), gen=gen)
    C = P.C.clone().requires_grad_()
    d = P.d.clone().requires_grad_()
    o = x0.clone().requires_grad_()
    v = torch.randn(2, 2, generator=gen, dtype=F64).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda C, d, o, v: HPolytope(C, d).ray_distance(o, v), (C, d, o, v)
    )
    # support: LP value, gradient = maximising vertex (w.r.t. v) and dual (w.r.t. d)
    assert torch.autograd.gradcheck(
        lambda d, v: HPolytope(P.C, d).support(v), (d, v), atol=1e-6, rtol=1e-4
    )
    x = (x0 + 3 * torch.randn(2, 2, generator=gen, dtype=F64)).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda d, x: HPolytope(P.C, d).project(x), (d, x), atol=1e-6, rtol=1e-4
    )
