"""Zonotope: H-representation, containment, rays, projection, sampling (spec A §2.2, §3.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from setsref import (
    F64,
    corner_points,
    cvx_project_zono,
    cvx_ray_zono,
    cvx_support_zono,
    cvx_zono_norm,
    np_,
    random_zonotope,
)

from safegrad.sets import Box, Zonotope

# ----------------------------------------------------------------------- H-representation


@pytest.mark.parametrize("n,m", [(1, 3), (2, 5), (3, 6), (4, 7), (5, 7), (6, 8)])
def test_hrep_vertices_on_facets(n, m):
    """Every vertex satisfies the H-rep, with equality on some facet; the H-rep is tight."""
    gen = torch.Generator().manual_seed(n * 10 + m)
    z = random_zonotope(n, m, batch=(3,), gen=gen)
    P = z.to_hpolytope()
    assert P.C.shape == (3, 2 * math.comb(m, n - 1), n)
    V = z.vertices()
    res = P.residual(V.movedim(-2, 0))  # (V, 3, rows)
    assert (res.amax(-1) <= 1e-9).all()  # inside
    assert (res.amax(-1) >= -1e-9).all()  # on some facet
    # each facet offset is attained by a corner point (supporting, not loose)
    corners = corner_points(z)
    att = (P.C @ corners.transpose(-1, -2)).amax(-1) - P.d
    assert (att.abs() <= 1e-9).all()


@pytest.mark.parametrize("n,m", [(2, 4), (3, 5), (4, 6)])
def test_hrep_containment_matches_lp(n, m):
    gen = torch.Generator().manual_seed(100 + n)
    z = random_zonotope(n, m, gen=gen)
    beta = torch.sign(torch.randn(40, m, generator=gen, dtype=F64))  # corner points ...
    scale = 0.5 + torch.rand(40, 1, generator=gen, dtype=F64)  # ... scaled in [0.5, 1.5]
    x = z.center + scale * (beta @ z.generators.T)
    norms = torch.tensor([cvx_zono_norm(z.center, z.generators, xi) for xi in x], dtype=F64)
    clear = (norms - 1).abs() > 1e-6
    want = norms <= 1
    assert clear.sum() > 30 and want.any() and (~want).any()
    for method in ("hrep", "lp"):
        got = z.contains(x, method=method)
        assert torch.equal(got[clear], want[clear]), method
    # the LP zonotope norm itself
    torch.testing.assert_close(z._zonotope_norm_lp(x), norms, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "G",
    [
        torch.zeros(3, 0),  # a point
        torch.tensor([[1.0, 0.5], [0.0, 1.0], [0.0, 0.0]]),  # flat in 3-D (m < n)
        torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),  # zero-width box
        torch.tensor([[1.0, 2.0, 1.0], [1.0, 2.0, 0.0], [1.0, 2.0, -1.0]]),  # parallel generators
    ],
)
@pytest.mark.filterwarnings("ignore:Solution may be inaccurate")
def test_degenerate_zonotopes_exact(G):
    G = G.to(F64)
    z = Zonotope(torch.zeros(3, dtype=F64), G)
    gen = torch.Generator().manual_seed(7)
    inside = z.sample(30, generator=gen)
    assert z.contains(inside, method="hrep").all()
    off = torch.randn(30, 3, generator=gen, dtype=F64)
    cand = torch.cat([inside + 1e-3 * off, inside + off, 2 * inside])
    norms = torch.tensor([cvx_zono_norm(z.center, z.generators, xi) for xi in cand], dtype=F64)
    clear = (norms - 1).abs() > 1e-6
    want = norms <= 1
    assert torch.equal(z.contains(cand, method="hrep")[clear], want[clear])
    assert torch.equal(z.contains(cand, method="lp")[clear], want[clear])


def test_hrep_limit_and_auto_dispatch():
    z = Zonotope(torch.zeros(6, dtype=F64), torch.randn(6, 40, dtype=F64))
    assert z.num_facet_subsets() == math.comb(40, 5)
    with pytest.raises(ValueError, match="max_subsets"):
        z.to_hpolytope()
    assert not z._use_hrep("auto")
    assert Zonotope(torch.zeros(3), torch.randn(3, 30))._use_hrep("auto")
    assert not Zonotope(torch.zeros(3), torch.randn(3, 31))._use_hrep("auto")
    assert Zonotope(torch.zeros(6), torch.randn(6, 8))._use_hrep("auto")
    assert not Zonotope(torch.zeros(6), torch.randn(6, 9))._use_hrep("auto")
    with pytest.raises(ValueError, match="method"):
        z.contains(torch.zeros(6, dtype=F64), method="exact")


# ------------------------------------------------------------------------ support, maps


def test_support_matches_vertices_and_cvxpy():
    gen = torch.Generator().manual_seed(1)
    z = random_zonotope(3, 5, batch=(4,), gen=gen)
    v = torch.randn(4, 3, generator=gen, dtype=F64)
    s = z.support(v)
    brute = (corner_points(z) @ v.unsqueeze(-1)).squeeze(-1).amax(-1)
    torch.testing.assert_close(s, brute)
    for i in range(2):
        assert s[i].item() == pytest.approx(
            cvx_support_zono(z.center[i], z.generators[i], v[i]), abs=1e-7
        )


def test_linear_map_minkowski_interval_hull():
    gen = torch.Generator().manual_seed(2)
    z1 = random_zonotope(3, 4, batch=(5,), gen=gen)
    z2 = random_zonotope(3, 2, gen=gen)  # broadcast against batch (5,)
    v = torch.randn(5, 3, generator=gen, dtype=F64)
    torch.testing.assert_close(z1.minkowski_sum(z2).support(v), z1.support(v) + z2.support(v))
    M = torch.randn(2, 3, generator=gen, dtype=F64)
    w = torch.randn(5, 2, generator=gen, dtype=F64)
    img = z1.linear_map(M, torch.ones(2, dtype=F64))
    torch.testing.assert_close(img.support(w), z1.support(w @ M) + w.sum(-1))
    hull = z1.interval_hull()
    eye = torch.eye(3, dtype=F64).unsqueeze(1)
    torch.testing.assert_close(hull.high, z1.support(eye).T)
    torch.testing.assert_close(hull.low, -z1.support(-eye).T)
    box = Box(-torch.ones(3, dtype=F64), torch.ones(3, dtype=F64))
    torch.testing.assert_close(z1.minkowski_sum(box).support(v), z1.support(v) + box.support(v))


# ---------------------------------------------------------------------------- ray distance


@pytest.mark.parametrize("n,m", [(2, 4), (3, 6)])
def test_ray_distance_boundary_and_methods_agree(n, m):
    gen = torch.Generator().manual_seed(3)
    z = random_zonotope(n, m, batch=(16,), gen=gen)
    o = z.sample(1, generator=gen)[0]
    v = torch.randn(16, n, generator=gen, dtype=F64)
    t = z.ray_distance(o, v, method="hrep")
    t_lp = z.ray_distance(o, v, method="lp")
    torch.testing.assert_close(t, t_lp, atol=1e-7, rtol=1e-7)
    p = o + t.unsqueeze(-1) * v
    assert z.contains(p, tol=1e-9).all()
    assert not z.contains(o + (t * 1.001).unsqueeze(-1) * v, tol=0, method="lp").any()
    for i in range(3):
        ref = cvx_ray_zono(z.center[i], z.generators[i], o[i], v[i])
        assert t[i].item() == pytest.approx(ref, abs=1e-6)


def test_ray_distance_outside_and_zero_direction():
    z = Zonotope(torch.zeros(2, dtype=F64), torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=F64))
    o = torch.tensor([[-5.0, 0.0], [5.0, 0.0], [0.0, 0.0], [5.0, 5.0]], dtype=F64)
    v = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype=F64)
    want = [6.0, -math.inf, math.inf, -math.inf]  # on y = 0: enters at x=-1, exits at x=1
    for method in ("hrep", "lp"):
        got = z.ray_distance(o, v, method=method)
        np.testing.assert_allclose(got.tolist(), want, atol=1e-7)


# ------------------------------------------------------------------------------ projection


@pytest.mark.parametrize("method", ["hrep", "qp"])
def test_project_in_set_idempotent_matches_cvxpy(method):
    gen = torch.Generator().manual_seed(4)
    z = random_zonotope(3, 5, batch=(4,), gen=gen)
    x = z.center + 2 * torch.randn(4, 3, generator=gen, dtype=F64)
    p = z.project(x, method=method)
    assert z.contains(p, tol=1e-7).all()
    for i in range(4):
        ref = cvx_project_zono(z.center[i], z.generators[i], x[i])
        np.testing.assert_allclose(np_(p[i]), ref, atol=1e-6)
    # idempotent; the generator-space QP is degenerate for boundary points (docstring)
    atol = 1e-9 if method == "hrep" else 1e-3
    torch.testing.assert_close(z.project(p, method=method), p, atol=atol, rtol=0)


def test_project_jacobian_is_inactive_generator_projector():
    """Spec A Eq. 71: d a_s / d a = G_I (G_I^T G_I)^+ G_I^T (projector onto inactive generators)."""
    gen = torch.Generator().manual_seed(5)
    d = 3
    G = 0.5 * torch.rand(d, 2 * d, generator=gen, dtype=F64)
    z = Zonotope(torch.zeros(d, dtype=F64), G)
    checked = 0
    for _ in range(10):
        a = 2.0 * torch.randn(d, generator=gen, dtype=F64)
        J = torch.autograd.functional.jacobian(lambda x: z.project(x), a)
        # recover gamma of the projection through the QP variables
        p = z.project(a)
        norms = z._zonotope_norm_lp(p)
        if norms.item() < 0.999:  # interior: identity
            torch.testing.assert_close(J, torch.eye(d, dtype=F64), atol=1e-6, rtol=0)
            checked += 1
            continue
        # the face of p: generators with |<nu, g>| = 0 for the active facet normals
        P = z.to_hpolytope()
        act = P.residual(p).abs() <= 1e-7
        Nact = P.C[act]
        span_free = torch.linalg.matrix_rank(Nact) if len(Nact) else 0
        # projector onto the orthogonal complement of the active normals (the face's direction)
        if span_free == d:
            torch.testing.assert_close(J, torch.zeros(d, d, dtype=F64), atol=1e-6, rtol=0)
        else:
            U, S, _ = torch.linalg.svd(Nact.T)
            Nb = U[:, : int(span_free)]
            Pface = torch.eye(d, dtype=F64) - Nb @ Nb.T
            torch.testing.assert_close(J, Pface, atol=1e-6, rtol=0)
        checked += 1
    assert checked == 10


def test_project_gradcheck():
    gen = torch.Generator().manual_seed(6)
    z = random_zonotope(2, 3, gen=gen)
    x = (z.center + torch.tensor([3.0, 0.3], dtype=F64)).requires_grad_()
    c = z.center.clone().requires_grad_()
    G = z.generators.clone().requires_grad_()
    for method in ("hrep", "qp"):
        assert torch.autograd.gradcheck(
            lambda c, G, x, method=method: Zonotope(c, G).project(x, method=method),
            (c, G, x),
            atol=1e-6,
            rtol=1e-4,
        )


def test_support_and_ray_gradcheck():
    gen = torch.Generator().manual_seed(7)
    z = random_zonotope(3, 5, batch=(2,), gen=gen)
    c = z.center.clone().requires_grad_()
    G = z.generators.clone().requires_grad_()
    v = torch.randn(2, 3, generator=gen, dtype=F64).requires_grad_()
    o = (z.center + 0.05).requires_grad_()
    assert torch.autograd.gradcheck(lambda c, G, v: Zonotope(c, G).support(v), (c, G, v))
    assert torch.autograd.gradcheck(
        lambda c, G, o, v: Zonotope(c, G).ray_distance(o, v, method="hrep"), (c, G, o, v)
    )
    assert torch.autograd.gradcheck(
        lambda c, G, o, v: Zonotope(c, G).ray_distance(o, v, method="lp"),
        (c, G, o, v),
        atol=1e-6,
        rtol=1e-4,
    )


# ------------------------------------------------------------------------------- sampling


def test_sample_generators_and_uniform():
    gen = torch.Generator().manual_seed(8)
    z = Zonotope(
        torch.ones(2, dtype=F64), torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]], dtype=F64)
    )
    s_gen = z.sample(4000, generator=gen)
    s_uni = z.sample(4000, generator=gen, method="uniform")
    for s in (s_gen, s_uni):
        assert s.shape == (4000, 2) and z.contains(s, tol=1e-9).all()
        torch.testing.assert_close(s.mean(0), z.center, atol=0.05, rtol=0)
    # uniform: mass of the inner copy scaled by 1/2 is 1/4; beta-sampling concentrates (> 1/4)
    inner = Zonotope(z.center, 0.5 * z.generators)
    frac_uni = inner.contains(s_uni).double().mean().item()
    frac_gen = inner.contains(s_gen).double().mean().item()
    assert frac_uni == pytest.approx(0.25, abs=0.03)
    assert frac_gen > 0.3
    zb = random_zonotope(3, 4, batch=(2, 3), gen=gen)
    s = zb.sample(5, generator=gen, method="uniform")
    assert s.shape == (5, 2, 3, 3) and zb.contains(s).all()


# -------------------------------------------------------------------------- vertices


def test_vertices_2d_ordered_polygon():
    G = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=F64)
    z = Zonotope(torch.zeros(2, dtype=F64), G)
    V = z.vertices()
    assert V.shape == (6, 2)
    # counter-clockwise: all cross products of consecutive edges are positive
    e = torch.roll(V, -1, 0) - V
    cross = e[:, 0] * torch.roll(e, -1, 0)[:, 1] - e[:, 1] * torch.roll(e, -1, 0)[:, 0]
    assert (cross > 0).all()
    # polygon area (shoelace) = zonotope area = 4 * sum_{i<j} |det(g_i, g_j)| = 4 * 3
    area = 0.5 * (V[:, 0] * torch.roll(V, -1, 0)[:, 1] - torch.roll(V, -1, 0)[:, 0] * V[:, 1]).sum()
    assert area.item() == pytest.approx(12.0)


@pytest.mark.parametrize(
    "G",
    [
        torch.randn(3, 5, generator=torch.Generator().manual_seed(0), dtype=F64),  # general
        torch.tensor(
            [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
        ),  # coplanar
        torch.tensor(
            [[1.0, 0.0, 0.0, 2.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
        ),  # parallel
        torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]),  # flat
    ],
)
def test_vertices_3d_span_the_zonotope(G):
    """The returned points lie in Z and attain the support function in every direction."""
    z = Zonotope(torch.ones(3, dtype=F64), G.to(F64))
    V = z.vertices()
    assert z.contains(V.movedim(-2, 0), tol=1e-9).all()
    dirs = torch.randn(50, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    torch.testing.assert_close((dirs @ V.T).amax(-1), z.support(dirs))


def test_gradients_finite_with_zero_and_parallel_generators():
    """Zero / parallel generators give rank-deficient subsets: gradients stay finite and correct."""
    G = torch.tensor([[1.0, 0.0, 2.0, 0.5], [0.0, 0.0, 0.0, 1.0]], dtype=F64, requires_grad=True)
    c = torch.zeros(2, dtype=F64, requires_grad=True)
    v = torch.tensor([1.0, 0.3], dtype=F64)
    t = Zonotope(c, G).ray_distance(torch.zeros(2, dtype=F64), v, method="hrep")
    t.backward()
    assert torch.isfinite(G.grad).all() and torch.isfinite(c.grad).all()
    t_lp = Zonotope(c.detach(), G.detach()).ray_distance(torch.zeros(2, dtype=F64), v, method="lp")
    assert t.item() == pytest.approx(t_lp.item(), abs=1e-8)
    # finite differences w.r.t. the centre
    e = 1e-6
    tp = Zonotope(c.detach() + torch.tensor([e, 0.0], dtype=F64), G.detach()).ray_distance(
        torch.zeros(2, dtype=F64), v
    )
    assert c.grad[0].item() == pytest.approx((tp.item() - t.item()) / e, abs=1e-4)
