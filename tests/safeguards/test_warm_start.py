"""Speed paths that must not change results: the ray mask's warm-started centre QPs
(:class:`~safegrad.safeguards._geometry.CentreWarmStart`) and the fused 2-D boundary projection
on raw rows (:func:`~safegrad.safeguards._geometry.project_polytope_2d`).  Each is compared
with the path it replaces (cold centre QPs; the pruned-region projection), values and
gradients, on sequences of nearby sets, wrong hints and degenerate rows."""

from __future__ import annotations

import pytest
import torch
from sgref import F64, cvxpy_project, max_residual, random_actions

from safegrad.safeguards import BoundaryProjection, RayMask
from safegrad.safeguards._geometry import cutting_fraction
from safegrad.sets import HPolytope

ONE = torch.ones(2, dtype=F64)


def _uses_fast_path(C, d, low=-ONE, high=ONE):
    """The raw 2-D paths run when at least half of the sets have a row cutting the box."""
    return cutting_fraction(C, d, low, high, 1e-9, 2.0) >= 0.5


def quad_like(B: int, k: int, seed: int, axis: int = 2):
    """Many general 2-D rows around a point near 0 (like the quadrotor's RCI facets), some rows
    cutting the box, most redundant, plus ``axis`` rows acting on one coordinate."""
    g = torch.Generator().manual_seed(seed)
    C = torch.randn(B, k, 2, generator=g, dtype=F64)
    if axis:
        C[:, :axis, 1] = 0.0
    x0 = (torch.rand(B, 2, generator=g, dtype=F64) * 2 - 1) * 0.2
    slack = 0.1 + 2.0 * torch.rand(B, k, generator=g, dtype=F64) ** 2
    d = (C @ x0.unsqueeze(-1)).squeeze(-1) + slack * C.norm(dim=-1)
    return C, d


def _call(mod, a, C, d, w, **kw):
    a, C, d = (t.detach().clone().requires_grad_(True) for t in (a, C, d))
    out, info = mod(a, HPolytope(C, d, validate=False), **kw)
    (out * w).sum().backward()
    return out.detach(), info, (a.grad, C.grad, d.grad)


@pytest.mark.parametrize("centre", ["zonotope", "chebyshev"])
@pytest.mark.parametrize("map_", ["linear", "tanh"])
def test_warm_started_centres_equal_cold_along_a_trajectory(centre, map_):
    """Nearby sets call after call (the hint is right or one facet off): the same outputs and
    gradients as the cold solve, and the hints are accepted."""
    B, k = 10, 40
    C0, d0 = quad_like(B, k, seed=1)
    assert _uses_fast_path(C0, d0)
    g = torch.Generator().manual_seed(2)
    warm, cold = RayMask(map_, centre), RayMask(map_, centre, warm_start=False)
    accepted = []
    for t in range(6):
        C = C0 + 0.03 * t * torch.randn(C0.shape, generator=g, dtype=F64)
        d = d0 + 0.05 * t
        a = random_actions(B, 2, seed=10 + t, scale=1.3)
        w = torch.randn(B, 2, generator=g, dtype=F64)
        o1, i1, g1 = _call(warm, a, C, d, w)
        o0, i0, g0 = _call(cold, a, C, d, w)
        accepted.append(warm.warm_start.accepted.clone())
        assert not i1["fallback"].any()
        torch.testing.assert_close(o1, o0, atol=1e-12, rtol=0)
        torch.testing.assert_close(i1["centre"], i0["centre"], atol=1e-10, rtol=0)
        for u, v in zip(g1, g0, strict=True):
            torch.testing.assert_close(u, v, atol=1e-8, rtol=1e-7)
    assert torch.stack(accepted).all()  # the dual active-set repair fixes the wrong hints


def test_warm_start_is_bitwise_reproducible_and_keyed_by_shape():
    C, d = quad_like(6, 30, seed=3)
    a = random_actions(6, 2, seed=4, scale=1.2)
    rm = RayMask()
    o1, i1 = rm(a, HPolytope(C, d))  # no hint yet (the dual active-set method from scratch)
    o2, i2 = rm(a, HPolytope(C, d))  # hinted with the first call's active sets
    assert torch.equal(o1, o2) and torch.equal(i1["centre"], i2["centre"])
    # another batch size is another key: both stay cached and correct
    C3, d3 = quad_like(3, 30, seed=5)
    a3 = random_actions(3, 2, seed=6)
    o3, _ = rm(a3, HPolytope(C3, d3))
    ref3, _ = RayMask(warm_start=False)(a3, HPolytope(C3, d3))
    torch.testing.assert_close(o3, ref3, atol=1e-12, rtol=0)
    assert len(rm.warm_start._store) == 2
    o4, _ = rm(a, HPolytope(C, d))
    assert torch.equal(o4, o1)


def test_wrong_hints_from_other_sets_are_caught():
    """The cache holds the active sets of very different sets with the same shape: the result
    is still the cold one."""
    rm, cold = RayMask(), RayMask(warm_start=False)
    w = torch.randn(8, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    for seed in range(4):
        C, d = quad_like(8, 25, seed=20 + seed)
        a = random_actions(8, 2, seed=30 + seed, scale=1.5)
        o1, i1, g1 = _call(rm, a, C, d, w)
        o0, i0, g0 = _call(cold, a, C, d, w)
        torch.testing.assert_close(o1, o0, atol=1e-12, rtol=0)
        for u, v in zip(g1, g0, strict=True):
            torch.testing.assert_close(u, v, atol=1e-8, rtol=1e-7)


def test_warm_start_gradcheck():
    C, d = quad_like(3, 12, seed=7, axis=0)
    a = torch.tensor([[0.9, -0.8], [-1.2, 0.3], [0.2, 1.1]], dtype=F64, requires_grad=True)
    rm = RayMask("tanh")
    rm(a.detach(), HPolytope(C, d))  # fill the cache
    C.requires_grad_(True)
    d.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a_, C_, d_: rm(a_, HPolytope(C_, d_))[0], (a, C, d))
    assert rm.warm_start.accepted.all()


def test_warm_start_option_validation():
    with pytest.raises(TypeError, match="warm_start"):
        RayMask(warm_start=1)
    assert RayMask(warm_start=False).warm_start is None


# ---------------------------------------------------------------------------------------------
# the fused 2-D boundary projection (raw rows) vs the pruned-region path
# ---------------------------------------------------------------------------------------------


def _general_path(bp, a, C, d, w):
    """The same projection through the general (Region) path: an extra batch dim skips the
    2-D fast path."""
    a, C, d = (t.detach().clone().requires_grad_(True) for t in (a, C, d))
    out, info = bp(a.unsqueeze(0), HPolytope(C.unsqueeze(0), d.unsqueeze(0), validate=False))
    (out[0] * w).sum().backward()
    return out[0].detach(), {k: v[0] for k, v in info.items()}, (a.grad, C.grad, d.grad)


@pytest.mark.parametrize("k,axis", [(60, 2), (8, 0), (128, 6)])
def test_fused_2d_projection_equals_the_general_path_and_cvxpy(k, axis):
    B = 24
    C, d = quad_like(B, k, seed=k, axis=axis)
    a = random_actions(B, 2, seed=k + 1, scale=1.5)
    a[: B // 3] *= 0.05  # some inside
    assert _uses_fast_path(C, d)
    w = torch.randn(B, 2, dtype=F64, generator=torch.Generator().manual_seed(k))
    bp = BoundaryProjection()
    o1, i1, g1 = _call(bp, a, C, d, w)
    o0, i0, g0 = _general_path(bp, a, C, d, w)
    assert i1["raw_unsafe"].any() and (~i1["raw_unsafe"]).any()
    assert not i1["fallback"].any()
    torch.testing.assert_close(o1, o0, atol=1e-12, rtol=0)
    torch.testing.assert_close(o1, cvxpy_project(C, d, a), atol=1e-8, rtol=0)
    assert (max_residual(C, d, o1) <= 1e-9).all()
    assert torch.equal(o1[~i1["raw_unsafe"]], a[~i1["raw_unsafe"]])  # safe: returned exactly
    for key in ("intervened", "raw_unsafe", "fallback"):
        assert torch.equal(i1[key], i0[key]), key
    for u, v in zip(g1, g0, strict=True):
        torch.testing.assert_close(u, v, atol=1e-9, rtol=1e-8)


def test_fused_2d_projection_gradcheck_with_box():
    C, d = quad_like(4, 10, seed=9, axis=0)  # (exact zeros get no gradient: none here)
    a = torch.tensor([[1.3, 0.2], [-0.9, -1.4], [0.05, 0.0], [0.7, 0.9]], dtype=F64)
    low = torch.tensor([-0.9, -0.8], dtype=F64, requires_grad=True)
    high = torch.tensor([0.8, 0.9], dtype=F64, requires_grad=True)
    assert _uses_fast_path(C, d, low.detach(), high.detach())
    args = (a.requires_grad_(True), C.requires_grad_(True), d.requires_grad_(True), low, high)

    def f(a_, C_, d_, lo, hi):
        return BoundaryProjection(action_box=(lo, hi))(a_, HPolytope(C_, d_))[0]

    assert torch.autograd.gradcheck(f, args)


def test_fused_2d_projection_hands_hard_elements_to_the_general_path():
    """An empty set (a zero row with d < 0), a duplicated active row at a vertex, a zero row
    with d >= 0 and a NaN row: the flagged elements equal the general path's (fallback for the
    empty one), the others are unaffected."""
    C, d = quad_like(5, 12, seed=11, axis=0)
    C[0, 3] = 0.0
    d[0, 3] = -1.0  # empty
    C[1, 4], d[1, 4] = C[1, 5], d[1, 5]  # duplicated row
    C[2, 6], d[2, 6] = 0.0, 0.5  # inert zero row
    C[3, 7, 0] = float("nan")
    a = torch.tensor([[1.5, 1.5], [1.5, -1.5], [-1.5, 1.5], [1.0, 1.0], [0.0, 1.6]], dtype=F64)
    assert _uses_fast_path(C, d)
    w = torch.ones(5, 2, dtype=F64)
    bp = BoundaryProjection()
    o1, i1, g1 = _call(bp, a, C, d, w)
    o0, i0, g0 = _general_path(bp, a, C, d, w)
    assert i1["fallback"].tolist() == i0["fallback"].tolist()
    assert bool(i1["fallback"][0]) and bool(i1["fallback"][3])
    assert torch.isfinite(o1).all()
    torch.testing.assert_close(o1, o0, atol=1e-12, rtol=0)
    ok = ~i1["fallback"]
    for u, v in zip(g1, g0, strict=True):
        torch.testing.assert_close(u[ok], v[ok], atol=1e-9, rtol=1e-8)


@pytest.mark.parametrize("centre", ["zonotope", "chebyshev"])
@pytest.mark.parametrize("map_", ["linear", "tanh"])
def test_raw_region_ray_mask_equals_the_pruned_region(centre, map_):
    """``Region.build_raw`` (every row kept, no box part) gives the pruned region's ray mask:
    the same centre, output and gradients (redundant rows are never active)."""
    B, k = 12, 50
    C, d = quad_like(B, k, seed=40, axis=3)
    assert _uses_fast_path(C, d)
    a = random_actions(B, 2, seed=41, scale=1.4)
    w = torch.randn(B, 2, dtype=F64, generator=torch.Generator().manual_seed(42))
    rm = RayMask(map_, centre, warm_start=False)
    o1, i1, g1 = _call(rm, a, C, d, w)
    o0, i0, g0 = _general_path(rm, a, C, d, w)
    assert not i1["fallback"].any()
    torch.testing.assert_close(i1["centre"], i0["centre"], atol=1e-9, rtol=0)
    torch.testing.assert_close(o1, o0, atol=1e-9, rtol=0)
    assert (max_residual(C, d, o1) <= 1e-9).all()
    for u, v in zip(g1, g0, strict=True):
        torch.testing.assert_close(u, v, atol=1e-7, rtol=1e-6)
