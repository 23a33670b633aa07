"""Box and Ball: closed-form operations against brute force, cvxpy and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from setsref import F64, cvx_project_hpoly, np_

from safegrad.sets import Ball, Box, Zonotope


def _rand_box(batch, n, gen, dtype=F64):
    low = torch.randn(*batch, n, generator=gen, dtype=dtype)
    w = torch.rand(*batch, n, generator=gen, dtype=dtype) + 0.1
    return Box(low, low + w)


# ------------------------------------------------------------------------------------------- Box


def test_box_contains_matches_bruteforce_and_broadcasts():
    gen = torch.Generator().manual_seed(0)
    box = _rand_box((4,), 3, gen)
    x = 3 * torch.randn(7, 4, 3, generator=gen, dtype=F64)
    got = box.contains(x)
    assert got.shape == (7, 4)
    want = torch.tensor(
        [
            [all(box.low[j, i] <= x[k, j, i] <= box.high[j, i] for i in range(3)) for j in range(4)]
            for k in range(7)
        ]
    )
    assert torch.equal(got, want)
    # set batch (4, 1) against points (5, 3) -> (4, 5)
    b2 = Box(box.low.unsqueeze(1), box.high.unsqueeze(1))
    assert b2.contains(x[:5, 0]).shape == (4, 5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_box_project_idempotent_in_set_matches_cvxpy(dtype):
    gen = torch.Generator().manual_seed(1)
    box = _rand_box((6,), 3, gen, dtype)
    x = 3 * torch.randn(6, 3, generator=gen, dtype=dtype)
    p = box.project(x)
    assert p.dtype == dtype
    assert box.contains(p, tol=0).all()
    torch.testing.assert_close(box.project(p), p)
    H = box.to_hpolytope()
    for i in range(3):
        ref = cvx_project_hpoly(H.C[i], H.d[i], x[i])
        np.testing.assert_allclose(np_(p[i]), ref, atol=1e-5 if dtype == torch.float32 else 1e-7)


def test_box_support_matches_vertices():
    gen = torch.Generator().manual_seed(2)
    box = _rand_box((5,), 3, gen)
    v = torch.randn(5, 3, generator=gen, dtype=F64)
    brute = (box.vertices() @ v.unsqueeze(-1)).squeeze(-1).amax(-1)
    torch.testing.assert_close(box.support(v), brute)


def test_box_ray_distance_lands_on_boundary():
    gen = torch.Generator().manual_seed(3)
    box = _rand_box((50,), 4, gen)
    o = box.sample(1, generator=gen)[0]
    v = torch.randn(50, 4, generator=gen, dtype=F64)
    t = box.ray_distance(o, v)
    assert (t > 0).all() and torch.isfinite(t).all()
    p = o + t.unsqueeze(-1) * v
    assert box.contains(p, tol=1e-12).all()
    assert not box.contains(o + (t + 1e-6).unsqueeze(-1) * v, tol=0).any()
    # hand-computed: unit box from its centre along (1, 0.5): distance 0.5
    unit = Box(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64))
    t = unit.ray_distance(torch.full((2,), 0.5, dtype=F64), torch.tensor([1.0, 0.5], dtype=F64))
    assert t.item() == pytest.approx(0.5)


def test_box_ray_distance_outside_and_zero_direction():
    unit = Box(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64))
    o = torch.tensor([[-1.0, 0.5], [-1.0, 0.5], [-1.0, 3.0], [0.5, 0.5], [2.0, 2.0]], dtype=F64)
    v = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype=F64)
    t = unit.ray_distance(o, v)
    # enters at 1, leaves at 2 | points away | misses | zero dir inside | zero dir outside
    assert t.tolist() == [2.0, -math.inf, -math.inf, math.inf, -math.inf]


def test_box_zero_width():
    box = Box(torch.tensor([0.0, 1.0], dtype=F64), torch.tensor([1.0, 1.0], dtype=F64))
    assert box.contains(torch.tensor([0.5, 1.0], dtype=F64))
    assert not box.contains(torch.tensor([0.5, 1.01], dtype=F64))
    torch.testing.assert_close(
        box.project(torch.tensor([2.0, 3.0], dtype=F64)), torch.tensor([1.0, 1.0], dtype=F64)
    )
    o = torch.tensor([0.5, 1.0], dtype=F64)
    assert box.ray_distance(o, torch.tensor([1.0, 0.0], dtype=F64)).item() == pytest.approx(0.5)
    assert box.ray_distance(o, torch.tensor([1.0, 1.0], dtype=F64)).item() == 0.0
    s = box.sample(10)
    assert (s[:, 1] == 1.0).all()


def test_box_sample_uniform_moments():
    gen = torch.Generator().manual_seed(4)
    box = Box(torch.tensor([-1.0, 0.0], dtype=F64), torch.tensor([1.0, 4.0], dtype=F64))
    s = box.sample(20000, generator=gen)
    assert s.shape == (20000, 2) and box.contains(s).all()
    torch.testing.assert_close(s.mean(0), box.center, atol=0.05, rtol=0)
    torch.testing.assert_close(s.var(0), (box.high - box.low) ** 2 / 12, atol=0.05, rtol=0.03)
    # same generator seed -> same samples
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(box.sample(5, g1), box.sample(5, g2))


def test_box_conversions_agree():
    gen = torch.Generator().manual_seed(5)
    box = _rand_box((3,), 3, gen)
    z, h = box.to_zonotope(), box.to_hpolytope()
    x = 2 * torch.randn(200, 3, 3, generator=gen, dtype=F64)
    assert torch.equal(box.contains(x), h.contains(x))
    assert torch.equal(box.contains(x), z.contains(x))
    v = torch.randn(3, 3, generator=gen, dtype=F64)
    torch.testing.assert_close(z.support(v), box.support(v))
    torch.testing.assert_close(z.interval_hull().low, box.low)
    # linear map of a box is the zonotope image: support h_{MB}(v) = h_B(M^T v)
    M = torch.randn(3, 2, 3, generator=gen, dtype=F64)
    img = box.linear_map(M, torch.ones(2, dtype=F64))
    w = torch.randn(3, 2, generator=gen, dtype=F64)
    want = box.support((M.transpose(-1, -2) @ w.unsqueeze(-1)).squeeze(-1)) + w.sum(-1)
    torch.testing.assert_close(img.support(w), want)
    s = box.minkowski_sum(box)
    torch.testing.assert_close(s.high, 2 * box.high)
    assert isinstance(box.minkowski_sum(z), Zonotope)


def test_box_gradcheck():
    gen = torch.Generator().manual_seed(6)
    low = torch.randn(3, 2, generator=gen, dtype=F64).requires_grad_()
    high = (low.detach() + 1.0 + torch.rand(3, 2, generator=gen, dtype=F64)).requires_grad_()
    x = (low.detach() - 0.3 + 2.0 * torch.rand(3, 2, generator=gen, dtype=F64)).requires_grad_()
    v = torch.randn(3, 2, generator=gen, dtype=F64).requires_grad_()
    o = (0.5 * (low + high)).detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda lo, hi, x: Box(lo, hi).project(x), (low, high, x))
    assert torch.autograd.gradcheck(lambda lo, hi, v: Box(lo, hi).support(v), (low, high, v))
    assert torch.autograd.gradcheck(
        lambda lo, hi, o, v: Box(lo, hi, validate=False).ray_distance(o, v), (low, high, o, v)
    )


# ------------------------------------------------------------------------------------------ Ball


def test_ball_contains_project_support():
    gen = torch.Generator().manual_seed(7)
    c = torch.randn(5, 3, generator=gen, dtype=F64)
    r = torch.rand(5, generator=gen, dtype=F64) + 0.5
    ball = Ball(c, r)
    x = c + 2 * torch.randn(5, 3, generator=gen, dtype=F64)
    assert torch.equal(ball.contains(x), (x - c).norm(dim=-1) <= r)
    p = ball.project(x)
    assert ball.contains(p, tol=1e-12).all()
    torch.testing.assert_close(ball.project(p), p)
    # projection is the nearest point: compare with the minimum over many samples
    s = ball.sample(4000, generator=gen)
    brute = (s - x).norm(dim=-1).amin(0)
    assert ((p - x).norm(dim=-1) <= brute + 1e-12).all()
    v = torch.randn(5, 3, generator=gen, dtype=F64)
    torch.testing.assert_close(ball.support(v), (c * v).sum(-1) + r * v.norm(dim=-1))
    assert ((s * v).sum(-1) <= ball.support(v) + 1e-12).all()
    hull = ball.interval_hull()
    torch.testing.assert_close(hull.high, c + r.unsqueeze(-1))


def test_ball_ray_distance():
    gen = torch.Generator().manual_seed(8)
    ball = Ball(torch.randn(20, 3, generator=gen, dtype=F64), torch.ones(20, dtype=F64))
    o = ball.sample(1, generator=gen)[0]
    v = torch.randn(20, 3, generator=gen, dtype=F64)
    t = ball.ray_distance(o, v)
    p = o + t.unsqueeze(-1) * v
    torch.testing.assert_close((p - ball.center).norm(dim=-1), ball.radius)
    assert not ball.contains(o + (t + 1e-6).unsqueeze(-1) * v, tol=0).any()
    unit = Ball(torch.zeros(2, dtype=F64), torch.tensor(1.0, dtype=F64))
    o = torch.tensor([[-2.0, 0.0], [-2.0, 0.0], [-2.0, 2.0], [0.0, 0.0], [3.0, 0.0]], dtype=F64)
    v = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype=F64)
    assert unit.ray_distance(o, v).tolist() == [3.0, -math.inf, -math.inf, math.inf, -math.inf]


def test_ball_sample_uniform():
    gen = torch.Generator().manual_seed(10)
    ball = Ball(torch.zeros(3, dtype=F64), torch.tensor(2.0, dtype=F64))
    s = ball.sample(20000, generator=gen)
    assert ball.contains(s).all()
    frac = ((s.norm(dim=-1) <= 1.0).double().mean()).item()
    assert frac == pytest.approx(1 / 8, abs=0.01)  # volume ratio (1/2)^3


def test_ball_linear_map_and_zero_radius():
    ball = Ball(torch.ones(2, dtype=F64), torch.tensor(0.5, dtype=F64))
    img = ball.linear_map(torch.tensor(-2.0, dtype=F64), torch.tensor([1.0, 0.0], dtype=F64))
    torch.testing.assert_close(img.center, torch.tensor([-1.0, -2.0], dtype=F64))
    assert img.radius.item() == 1.0
    with pytest.raises(ValueError, match="scalar"):
        ball.linear_map(torch.eye(2, dtype=F64))
    pt = Ball(torch.zeros(2, dtype=F64), torch.tensor(0.0, dtype=F64))
    torch.testing.assert_close(pt.project(torch.ones(2, dtype=F64)), torch.zeros(2, dtype=F64))
    assert pt.ray_distance(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64)).item() == 0.0


def test_ball_gradcheck():
    gen = torch.Generator().manual_seed(11)
    c = torch.randn(3, 2, generator=gen, dtype=F64).requires_grad_()
    r = (torch.rand(3, generator=gen, dtype=F64) + 0.5).requires_grad_()
    x = (c.detach() + 2 * torch.randn(3, 2, generator=gen, dtype=F64)).requires_grad_()
    v = torch.randn(3, 2, generator=gen, dtype=F64).requires_grad_()
    o = (c.detach() + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda c, r, x: Ball(c, r, validate=False).project(x), (c, r, x)
    )
    assert torch.autograd.gradcheck(
        lambda c, r, v: Ball(c, r, validate=False).support(v), (c, r, v)
    )
    assert torch.autograd.gradcheck(
        lambda c, r, o, v: Ball(c, r, validate=False).ray_distance(o, v), (c, r, o, v)
    )
