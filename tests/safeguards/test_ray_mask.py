"""RayMask: spec A §3.3 (with the λ_As factor, P3), Eq. 32, §3.4 centres (P5), guards (P14)."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import torch
from sgref import F64, batch_jacobian, max_residual, random_actions, random_polytope

from safegrad.safeguards import RayMask, default_directions, ray_profile
from safegrad.sets import Box, HPolytope, Zonotope

ALL = [(mp, c) for mp in ("linear", "tanh") for c in ("zonotope", "chebyshev", "orthogonal")]


@pytest.mark.parametrize("map_,centre", ALL)
@pytest.mark.parametrize("m,k", [(2, 5), (3, 6)])
def test_outputs_in_safe_set_and_box(map_, centre, m, k):
    B = 32
    C, d = random_polytope(B, m, k, seed=100 + m)
    a = random_actions(B, m, seed=200 + m)
    out, info = RayMask(map_, centre)(a, HPolytope(C, d))
    assert torch.isfinite(out).all()
    assert (max_residual(C, d, out) <= 1e-9).all()  # P3: the λ_As factor keeps outputs safe
    assert not info["fallback"].any()
    if centre == "orthogonal":  # safe raw actions are left unchanged
        safe = ~info["raw_unsafe"]
        assert torch.equal(out[safe], a[safe])


@pytest.mark.parametrize("map_", ["linear", "tanh"])
def test_box_zonotope_and_interval_sets(map_):
    B = 16
    g = torch.Generator().manual_seed(5)
    lo = torch.rand(B, 2, generator=g, dtype=F64) - 0.9
    hi = lo + 0.2 + torch.rand(B, 2, generator=g, dtype=F64)
    a = random_actions(B, 2, seed=6)
    for centre in ("zonotope", "chebyshev", "orthogonal"):
        out, _ = RayMask(map_, centre)(a, Box(lo, hi))
        assert ((out >= lo.clamp_min(-1) - 1e-12) & (out <= hi.clamp_max(1) + 1e-12)).all()
    Z = Zonotope(
        (torch.rand(B, 2, generator=g, dtype=F64) - 0.5) * 0.3,
        torch.rand(B, 2, 3, generator=g, dtype=F64) * 0.3,
    )
    out, _ = RayMask(map_)(a, Z)
    assert Z.contains(out, tol=1e-9).all()
    C1, d1 = random_polytope(B, 1, 3, seed=7)
    a1 = random_actions(B, 1, seed=8)
    out1, info1 = RayMask(map_)(a1, HPolytope(C1, d1))
    assert (max_residual(C1, d1, out1) <= 1e-12).all()
    # 1-D: all centres coincide with the interval midpoint
    out1o, _ = RayMask(map_, "orthogonal")(a1, HPolytope(C1, d1))
    unsafe = info1["raw_unsafe"]
    assert torch.allclose(out1o[unsafe], out1[unsafe], atol=1e-12)


@pytest.mark.parametrize("map_", ["linear", "tanh"])
@pytest.mark.parametrize("centre", ["zonotope", "chebyshev"])
def test_segment_maps_bijectively_onto_safe_segment(map_, centre):
    """[c, c + λ_A d] -> [c, c + λ_As d], ρ(0) = 0, ρ(λ_A) = λ_As, strictly increasing."""
    m, k = 3, 6
    C, d = random_polytope(1, m, k, seed=300)
    P = HPolytope(C[0], d[0])
    rm = RayMask(map_, centre)
    _, info = rm(torch.zeros(1, m, dtype=F64), P)
    c = info["centre"][0]
    g = torch.Generator().manual_seed(301)
    for _ in range(5):
        dirn = torch.randn(m, generator=g, dtype=F64)
        dirn = dirn / dirn.norm()
        lam_A = torch.min(torch.where(dirn > 0, (1 - c) / dirn, (-1 - c) / dirn))
        t = torch.linspace(0, 1, 41, dtype=F64) * lam_A
        a = c + t.unsqueeze(-1) * dirn
        out, inf = rm(a, P)
        rho = ((out - c) * dirn).sum(-1)
        assert torch.allclose(out, c + rho.unsqueeze(-1) * dirn, atol=1e-12)  # on the ray
        assert abs(rho[0].item()) <= 1e-14
        assert (rho.diff() > 0).all()  # strictly increasing: injective, no aliasing
        lam_As = inf["lambda_as"][-1]
        assert torch.allclose(rho[-1], lam_As, atol=1e-12)  # ρ(λ_A) = λ_As
        assert torch.allclose(inf["lambda_as"][1:], lam_As.expand(40), atol=1e-12)
        # c + λ_As d is on the boundary of the safe set (P3)
        res = max_residual(C[0], d[0], (c + lam_As * dirn).unsqueeze(0))
        assert abs(res.item()) <= 1e-12


@pytest.mark.parametrize("map_,centre", ALL)
def test_jacobian_full_rank(map_, centre):
    m, k, B = 3, 6, 16
    C, d = random_polytope(B, m, k, seed=400)
    a = random_actions(B, m, seed=401, scale=0.95)
    rm = RayMask(map_, centre)
    out, info = rm(a, HPolytope(C, d))
    J = batch_jacobian(lambda x: rm(x, HPolytope(C, d))[0], a)
    sv = torch.linalg.svdvals(J).amin(-1)
    assert torch.isfinite(J).all()
    # tanh compresses strongly near the boundary (1 - tanh^2 is tiny), yet never vanishes
    bound = 1e-6 if map_ == "linear" else 1e-12
    ok = info["lambda_as"] > 0
    if centre == "orthogonal":
        # the paper's orthogonal centre degenerates where p = BP(a) is on an edge/vertex whose
        # normal direction u = (p - a)/|p - a| does not point into the set: μ* = 0, a_s = p
        ok = ok | ~info["raw_unsafe"]
        from safegrad.safeguards import BoundaryProjection

        p, _ = BoundaryProjection()(a, HPolytope(C, d))
        assert torch.allclose(out[~ok], p[~ok], atol=1e-12)
        assert ok.sum() >= B // 2
    else:
        assert ok.all()
    assert (sv[ok] > bound).all(), sv


def test_eq32_tanh_derivative_against_autograd():
    g = torch.Generator().manual_seed(9)
    lam_As = torch.rand(50, generator=g, dtype=F64) * 0.8 + 0.05
    lam_A = lam_As + torch.rand(50, generator=g, dtype=F64) * 1.5
    lam_a = (torch.rand(50, generator=g, dtype=F64) * lam_A).requires_grad_(True)
    omega = ray_profile(lam_a, lam_As, lam_A, "tanh") / lam_As
    (dw,) = torch.autograd.grad(omega.sum(), lam_a)
    eq32 = (1 - torch.tanh(lam_a / lam_As) ** 2) / (lam_As * torch.tanh(lam_A / lam_As))
    assert torch.allclose(dw, eq32, rtol=1e-8, atol=0)  # 1 - tanh^2 cancellation
    # the same derivative through the whole safeguard, along a ray from the centre
    C, d = random_polytope(1, 2, 5, seed=10)
    rm = RayMask("tanh", "chebyshev")
    _, info = rm(torch.zeros(1, 2, dtype=F64), HPolytope(C[0], d[0]))
    c = info["centre"][0]
    dirn = torch.tensor([0.6, 0.8], dtype=F64)
    t = torch.tensor([0.1, 0.3], dtype=F64, requires_grad=True)
    out, inf = rm(c + t.unsqueeze(-1) * dirn, HPolytope(C[0], d[0]))
    rho = ((out - c) * dirn).sum(-1)
    (drho,) = torch.autograd.grad(rho.sum(), t)
    lS, lA = inf["lambda_as"], inf["lambda_A"]
    eq32 = lS * (1 - torch.tanh(t.detach() / lS) ** 2) / (lS * torch.tanh(lA / lS))
    assert torch.allclose(drho, eq32, rtol=1e-9)


@pytest.mark.parametrize("map_", ["linear", "tanh"])
def test_action_at_centre_returns_centre_with_finite_gradient(map_):
    C, d = random_polytope(4, 2, 5, seed=11)
    P = HPolytope(C, d)
    rm = RayMask(map_, "chebyshev")
    _, info = rm(torch.zeros(4, 2, dtype=F64), P)
    c = info["centre"].clone().requires_grad_(True)
    out, _ = rm(c, P)
    assert torch.equal(out, c.detach())
    J = batch_jacobian(lambda x: rm(x, P)[0], c)
    assert torch.isfinite(J).all()
    assert (torch.linalg.svdvals(J).amin(-1) > 0).all()  # scalar multiple of I, non-zero
    # and a symmetric safe set with a zero action (a zero-initialised policy) at the centre
    out0, _ = rm(
        torch.zeros(1, 2, dtype=F64, requires_grad=True),
        Box(-torch.ones(2, dtype=F64) * 0.5, torch.ones(2, dtype=F64) * 0.5),
    )
    assert torch.equal(out0.detach(), torch.zeros(1, 2, dtype=F64))


def test_deterministic_directions_and_outputs():
    """P5: fixed generator directions, identical outputs on repeated calls."""
    D = default_directions(2)
    s = 2**-0.5
    assert torch.allclose(D, torch.tensor([[1.0, 0.0, s, s], [0.0, 1.0, s, -s]], dtype=F64))
    assert default_directions(1).shape == (1, 1)
    D3 = default_directions(3, 12)
    assert torch.allclose(D3.norm(dim=0), torch.ones(12, dtype=F64))
    assert torch.equal(D3, default_directions(3, 12))
    C, d = random_polytope(8, 3, 6, seed=12)
    a = random_actions(8, 3, seed=13)
    o1, _ = RayMask()(a, HPolytope(C, d))
    o2, _ = RayMask()(a, HPolytope(C, d))
    assert torch.equal(o1, o2)


def _cvxpy_centre_qp(Ci, di, D, reg, kind):
    """Same regularised centre programme as safegrad (reference, Clarabel)."""
    m = Ci.shape[1]
    N = np.vstack([Ci / np.linalg.norm(Ci, axis=1, keepdims=True), np.eye(m), -np.eye(m)])
    e = np.concatenate([di / np.linalg.norm(Ci, axis=1), np.ones(2 * m)])
    c = cp.Variable(m)
    if kind == "chebyshev":
        r = cp.Variable()
        obj = -r + reg / 2 * (cp.sum_squares(c) + cp.square(r))
        cons = [N @ c + r <= e, r >= 0]
        cp.Problem(cp.Minimize(obj), cons).solve(solver=cp.CLARABEL)
        return c.value, r.value
    n_g = D.shape[1]
    lv, t = cp.Variable(n_g), cp.Variable()
    obj = -(t + cp.sum(lv) / n_g) / 2 + reg / 2 * (
        cp.sum_squares(c) + cp.sum_squares(lv) + cp.square(t)
    )
    cons = [N @ c + np.abs(N @ D) @ lv <= e, t <= lv, t >= 0]
    cp.Problem(cp.Minimize(obj), cons).solve(solver=cp.CLARABEL)
    return c.value, lv.value


@pytest.mark.parametrize("kind", ["chebyshev", "zonotope"])
def test_centres_match_cvxpy_and_inner_zonotope_is_contained(kind):
    B, m, k = 6, 3, 6
    C, d = random_polytope(B, m, k, seed=500)
    rm = RayMask(centre=kind)
    _, info = rm(torch.zeros(B, m, dtype=F64), HPolytope(C, d))
    D = default_directions(m)
    for i in range(B):
        c_ref, x_ref = _cvxpy_centre_qp(C[i].numpy(), d[i].numpy(), D.numpy(), 1e-4, kind)
        assert np.allclose(info["centre"][i].numpy(), c_ref, atol=1e-6)
        if kind == "chebyshev":
            assert abs(info["radius"][i].item() - x_ref) <= 1e-6
        else:
            assert np.allclose(info["generator_lengths"][i].numpy(), x_ref, atol=1e-6)
    if kind == "zonotope":
        Z = Zonotope(info["centre"], D * info["generator_lengths"].unsqueeze(-2))
        # the inner zonotope lies in the safe set: support function test per row
        sup = Z.support(C.transpose(0, 1)).T  # (B, k)
        assert (sup <= d + 1e-9).all()
        assert (Z.interval_hull().high <= 1 + 1e-9).all()


def test_orthogonal_centre_geometry():
    """c = p + μ*/2 u lies on the inward normal at p = BP(a); λ_a = ||a - p|| + μ*/2."""
    C = torch.tensor([[1.0, 0.0]], dtype=F64)
    d = torch.tensor([0.2], dtype=F64)
    a = torch.tensor([[0.8, 0.3]], dtype=F64)
    out, info = RayMask("linear", "orthogonal")(a, HPolytope(C, d))
    # p = (0.2, 0.3), u = (-1, 0), μ* = 1.2 (to x = -1), c = (-0.4, 0.3), λ_As = 0.6
    assert torch.allclose(info["centre"], torch.tensor([[-0.4, 0.3]], dtype=F64))
    assert torch.allclose(info["lambda_as"], torch.tensor([0.6], dtype=F64))
    assert torch.allclose(info["lambda_a"], torch.tensor([1.2], dtype=F64))
    # λ_A from c along +x: 1.4; ρ = 0.6 * 1.2 / 1.4
    assert torch.allclose(out, torch.tensor([[-0.4 + 0.6 * 1.2 / 1.4, 0.3]], dtype=F64))


@pytest.mark.parametrize("map_,centre", ALL)
def test_gradcheck(map_, centre):
    B, m, k = 3, 2, 4
    C, d = random_polytope(B, m, k, seed=600)
    a = random_actions(B, m, seed=601, scale=0.9)
    rm = RayMask(map_, centre)
    a.requires_grad_(True)
    C.requires_grad_(True)
    d.requires_grad_(True)
    P = HPolytope(C.detach(), d.detach())
    assert torch.autograd.gradcheck(lambda a_: rm(a_, P)[0], (a,), atol=1e-5)
    # set parameters (the SHAC state path): random-projection gradcheck, cheaper
    assert torch.autograd.gradcheck(
        lambda a_, C_, d_: rm(a_, HPolytope(C_, d_))[0], (a, C, d), atol=1e-5, fast_mode=True
    )


def test_explicit_centre_and_empty_set_fallback():
    C, d = random_polytope(2, 2, 4, seed=700)
    a = random_actions(2, 2, seed=701)
    rm = RayMask()
    _, info = rm(a, HPolytope(C, d))
    out, info2 = rm(a, HPolytope(C, d), centre=info["centre"])
    assert (max_residual(C, d, out) <= 1e-9).all() and not info2["fallback"].any()
    _, info3 = rm(a, HPolytope(C, d), centre=torch.full((2, 2), 5.0, dtype=F64))
    assert info3["fallback"].all()  # a centre outside the set is refused
    Ce = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=F64)
    de = torch.tensor([-0.5, -0.5], dtype=F64)
    for centre in ("zonotope", "chebyshev", "orthogonal"):
        x = torch.zeros(1, 2, dtype=F64, requires_grad=True)
        out, info = RayMask(centre=centre)(x, HPolytope(Ce, de))
        assert info["fallback"].all() and torch.isfinite(out).all()
        out.sum().backward()
        assert torch.isfinite(x.grad).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="map must be one of"):
        RayMask("cubic")
    with pytest.raises(ValueError, match="centre must be one of"):
        RayMask(centre="middle")
    with pytest.raises(ValueError, match="n_g"):
        RayMask(n_g=0)
    with pytest.raises(ValueError, match="zero columns"):
        RayMask(directions=torch.zeros(2, 2, dtype=F64))
