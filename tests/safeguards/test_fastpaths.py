"""The closed-form and exact 2-D paths of the safeguards (issue 5, speed): axis-row ("box part")
sets with fused autograd functions, row pruning, the exact polygon projection, mixed batches.
Each is checked against an independent reference (cvxpy, the QP solver, the generic map)."""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import pytest
import torch
from sgref import F64, batch_jacobian, cvxpy_project, max_residual, random_actions, random_polytope

from safegrad.qp import solve_qp
from safegrad.safeguards import BoundaryProjection, RayMask, default_directions
from safegrad.safeguards._geometry import _RayMap, project_polygon
from safegrad.safeguards.projection import prepare_region
from safegrad.sets import HPolytope


def axis_polytope(B: int, m: int, k: int, seed: int, zero_rows: int = 0):
    """Random sets whose rows each act on one coordinate (plus zero rows with ``d >= 0``): a
    box inside ``[-1, 1]^m`` after intersection, non-empty, bounds from rows and from the box."""
    g = torch.Generator().manual_seed(seed)
    coord = torch.randint(0, m, (B, k), generator=g)
    scale = (torch.rand(B, k, generator=g, dtype=F64) + 0.2) * torch.where(
        torch.rand(B, k, generator=g) < 0.5, -1.0, 1.0
    ).to(F64)
    C = torch.zeros(B, k, m, dtype=F64).scatter_(2, coord.unsqueeze(-1), scale.unsqueeze(-1))
    x0 = (torch.rand(B, m, generator=g, dtype=F64) * 2 - 1) * 0.3
    d = (C @ x0.unsqueeze(-1)).squeeze(-1) + 0.05 + 0.9 * torch.rand(B, k, generator=g, dtype=F64)
    if zero_rows:
        C = torch.cat([C, torch.zeros(B, zero_rows, m, dtype=F64)], 1)
        d = torch.cat([d, torch.rand(B, zero_rows, generator=g, dtype=F64)], 1)
    return C, d


# ---------------------------------------------------------------------------------------------
# box part (axis rows): boundary projection
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 2, 3])
def test_axis_rows_bp_matches_cvxpy_idempotent_and_jacobian(m):
    B = 24
    C, d = axis_polytope(B, m, 3 * m, seed=m, zero_rows=2)
    a = random_actions(B, m, seed=5 + m, scale=1.4)
    bp = BoundaryProjection()
    out, info = bp(a, HPolytope(C, d))
    assert not info["fallback"].any() and info["raw_unsafe"].any()
    assert torch.allclose(out, cvxpy_project(C, d, a), atol=1e-8)
    assert (max_residual(C, d, out) <= 1e-12).all()
    out2, info2 = bp(out, HPolytope(C, d))
    assert torch.equal(out2, out) and not info2["intervened"].any()
    # Theorem 1 on a box: diag(free coordinates)
    J = batch_jacobian(lambda x: bp(x, HPolytope(C, d))[0], a)
    free = (out == a).to(F64)
    assert torch.equal(J, torch.diag_embed(free))


def _structural(C: torch.Tensor):
    """Axis rows are structural: gradients flow to their non-zero entries (docs).  Returns the
    non-zero values as a leaf and a function rebuilding ``C`` from them."""
    mask = C != 0
    vals = C[mask].clone().requires_grad_(True)
    return vals, lambda v: torch.zeros_like(C).index_put((mask.nonzero(as_tuple=True)), v)


def test_axis_rows_bp_gradcheck_through_rows_and_box():
    B, m = 4, 2
    C, d = axis_polytope(B, m, 5, seed=11)
    a = torch.tensor([[1.3, 0.1], [-1.2, 0.9], [0.05, -0.02], [0.7, -1.5]], dtype=F64)
    a.requires_grad_(True)
    d.requires_grad_(True)
    vals, make = _structural(C)
    bp = BoundaryProjection()
    assert torch.autograd.gradcheck(
        lambda a_, v_, d_: bp(a_, HPolytope(make(v_), d_))[0], (a, vals, d)
    )
    low = torch.full((m,), -0.8, dtype=F64, requires_grad=True)
    high = torch.full((m,), 0.9, dtype=F64, requires_grad=True)

    def f(a_, lo_, hi_):
        return BoundaryProjection(action_box=(lo_, hi_))(a_, HPolytope(C.detach(), d))[0]

    assert torch.autograd.gradcheck(f, (a, low, high))


def test_zero_rows_and_infinite_offsets():
    C = torch.tensor([[[0.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [1.0, 0.0]]], dtype=F64)
    d = torch.tensor([[0.5, 0.2], [-0.1, 0.2]], dtype=F64)  # elem 1: 0 <= -0.1, empty
    a = torch.tensor([[0.9, 0.0], [0.9, 0.0]], dtype=F64)
    out, info = BoundaryProjection()(a, HPolytope(C, d))
    assert info["fallback"].tolist() == [False, True]
    assert torch.allclose(out[0], torch.tensor([0.2, 0.0], dtype=F64))
    assert torch.isfinite(out).all()
    # +inf offsets are no constraint, -inf makes the set empty (axis and general rows)
    C2 = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=F64).expand(3, 2, 2)
    d2 = torch.tensor([[math.inf, math.inf], [0.3, -math.inf], [-math.inf, 5.0]], dtype=F64)
    a2 = torch.full((3, 2), 0.6, dtype=F64)
    for sg in (BoundaryProjection(), RayMask()):
        out2, info2 = sg(a2, HPolytope(C2, d2, validate=False))
        assert info2["fallback"].tolist() == [False, True, True]
        assert torch.isfinite(out2).all()
    # NaN anywhere in the set: fallback, never NaN
    for bad in ((0, 0, 0), (1, 1, 1)):
        Cn = C2.clone()
        Cn[bad] = float("nan")
        dn = torch.full((3, 2), 0.5, dtype=F64)
        for sg in (BoundaryProjection(), RayMask()):
            out3, info3 = sg(a2, HPolytope(Cn, dn, validate=False))
            assert info3["fallback"][bad[0]] and torch.isfinite(out3).all()


# ---------------------------------------------------------------------------------------------
# box part: the fused ray mask equals the generic map
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("map_", ["linear", "tanh"])
@pytest.mark.parametrize("m", [1, 2, 3])
def test_fused_box_ray_mask_equals_generic_map(map_, m):
    B = 32
    C, d = axis_polytope(B, m, 2 * m + 1, seed=20 + m, zero_rows=1)
    a = random_actions(B, m, seed=30 + m, scale=1.2)
    a[0] = 0.0  # possibly at the centre
    rm = RayMask(map_)
    out, info = rm(a, HPolytope(C, d))
    assert not info["fallback"].any()
    assert (max_residual(C, d, out) <= 1e-12).all()
    assert torch.equal(info["generator_lengths"], torch.zeros(B, 2 * m if m > 1 else 1, dtype=F64))
    # the generic path: the same centre given explicitly, the map of _RayMap on the region rows
    c = info["centre"]
    out_g, info_g = rm(a, HPolytope(C, d), centre=c)
    assert torch.allclose(out, out_g, atol=1e-13, rtol=0)
    for k in ("lambda_a", "lambda_as", "lambda_A"):
        assert torch.allclose(info[k], info_g[k], atol=1e-13, rtol=0)
    # the midpoint is the zonotope QP's centre for a box (axes among the directions)
    region, af, _ = prepare_region(a, HPolytope(C, d), None, 1e-9)
    lo, hi = region.lo, region.hi
    assert torch.allclose(c, 0.5 * (lo + hi), atol=1e-15)


# the proximal term (reg = 1e-4) alone fixes the centre along a long box: tight tolerances
TIGHT = dict(tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, tol_ktratio=1e-10)


def _cvxpy_zonotope_centre(N, e, D, reg):
    m, n_g = D.shape
    c, lv, t = cp.Variable(m), cp.Variable(n_g), cp.Variable()
    obj = -(t + cp.sum(lv) / n_g) / 2 + reg / 2 * (
        cp.sum_squares(c) + cp.sum_squares(lv) + cp.square(t)
    )
    cons = [N @ c + np.abs(N @ D) @ lv <= e, t <= lv, t >= 0]
    cp.Problem(cp.Minimize(obj), cons).solve(solver=cp.CLARABEL, **TIGHT)
    return c.value


def _cvxpy_chebyshev_centre(N, e, reg):
    m = N.shape[1]
    c, r = cp.Variable(m), cp.Variable()
    obj = -r + reg / 2 * (cp.sum_squares(c) + cp.square(r))
    cp.Problem(cp.Minimize(obj), [N @ c + r <= e, r >= 0]).solve(solver=cp.CLARABEL, **TIGHT)
    return c.value, r.value


@pytest.mark.parametrize("kind", ["zonotope", "chebyshev"])
def test_box_centres_in_closed_form_equal_the_centre_qps(kind):
    B, m = 5, 2
    C, d = axis_polytope(B, m, 4, seed=40)
    _, info = RayMask(centre=kind)(torch.zeros(B, m, dtype=F64), HPolytope(C, d))
    region, _, _ = prepare_region(torch.zeros(B, m, dtype=F64), HPolytope(C, d), None, 1e-9)
    eye = np.eye(m)
    D = default_directions(m).numpy()
    for i in range(B):
        lo, hi = region.lo[i].numpy(), region.hi[i].numpy()
        N = np.vstack([eye, -eye])
        e = np.concatenate([hi, -lo])
        if kind == "zonotope":
            ref = _cvxpy_zonotope_centre(N, e, D, 1e-4)
        else:
            ref, r = _cvxpy_chebyshev_centre(N, e, 1e-4)
            assert abs(info["radius"][i].item() - r) <= 1e-6
        assert np.allclose(info["centre"][i].numpy(), ref, atol=1e-6)


@pytest.mark.parametrize("map_", ["linear", "tanh"])
def test_fused_box_ray_mask_gradcheck(map_):
    B, m = 4, 2
    C, d = axis_polytope(B, m, 5, seed=50, zero_rows=1)
    a = torch.tensor([[0.9, 0.1], [-1.3, 0.4], [0.05, -0.02], [0.3, -0.6]], dtype=F64)
    a.requires_grad_(True)
    d.requires_grad_(True)
    vals, make = _structural(C)
    rm = RayMask(map_)
    assert torch.autograd.gradcheck(
        lambda a_, v_, d_: rm(a_, HPolytope(make(v_), d_))[0], (a, vals, d)
    )
    low = torch.full((m,), -0.9, dtype=F64, requires_grad=True)
    high = torch.full((m,), 0.8, dtype=F64, requires_grad=True)

    def f(a_, lo_, hi_):
        return RayMask(map_, action_box=(lo_, hi_))(a_, HPolytope(C.detach(), d))[0]

    assert torch.autograd.gradcheck(f, (a, low, high))


@pytest.mark.parametrize("map_", ["linear", "tanh"])
def test_ray_map_function_matches_autograd_composition(map_):
    """The hand-written backward of the generic map equals autograd through the same maths
    (the reference implementation ``_ray_map`` of the ray-mask module)."""
    from safegrad.safeguards.ray_mask import _ray_map

    B, m, k = 16, 3, 6
    C, d = random_polytope(B, m, k, seed=60)
    a = random_actions(B, m, seed=61, scale=1.2)
    rm = RayMask(map_, "chebyshev")
    _, info = rm(a, HPolytope(C, d))
    c = info["centre"]
    region, _, _ = prepare_region(a, HPolytope(C, d), None, 1e-9)
    N, e = region.rows
    w = torch.randn(B, m, dtype=F64, generator=torch.Generator().manual_seed(62))
    grads = []
    for fn in ("custom", "autograd"):
        x = a.clone().requires_grad_(True)
        cc = c.clone().requires_grad_(True)
        ee = e.detach().clone().requires_grad_(True)
        NN = N.detach().clone().requires_grad_(True)
        if fn == "custom":
            out = _RayMap.apply(x, cc, NN, ee, region.low, region.high, map_ == "linear")[0]
        else:
            from safegrad.safeguards._geometry import Region

            reg = Region(region.low, region.high, region.scale)
            reg.GN, reg.Ge = NN[:, : NN.shape[1] - 2 * m], ee[:, : ee.shape[1] - 2 * m]
            reg._set_bounds(-ee[:, -m:], ee[:, -2 * m : -m], region.empty, False, None)
            out = _ray_map(x, cc, reg, map_)[0]
        (out * w).sum().backward()
        # (the reference's box part comes from e only: compare N's general rows)
        grads.append((out.detach(), x.grad, cc.grad, NN.grad[:, : NN.shape[1] - 2 * m], ee.grad))
    for u, v in zip(*grads):
        assert torch.allclose(u, v, atol=1e-10, rtol=1e-8)


# ---------------------------------------------------------------------------------------------
# general rows: pruning, the exact polygon projection, mixed batches
# ---------------------------------------------------------------------------------------------


def quad_like_polytope(B: int, k: int, seed: int):
    """Many general 2-D rows (like the quadrotor's RCI facets): ``C`` random, the polygon
    around a point near 0 with offsets spread so that some rows cut the box, most do not."""
    g = torch.Generator().manual_seed(seed)
    C = torch.randn(B, k, 2, generator=g, dtype=F64)
    x0 = (torch.rand(B, 2, generator=g, dtype=F64) * 2 - 1) * 0.2
    slack = 0.1 + 2.0 * torch.rand(B, k, generator=g, dtype=F64) ** 2
    d = (C @ x0.unsqueeze(-1)).squeeze(-1) + slack * C.norm(dim=-1)
    return C, d


def test_polygon_projection_many_rows_matches_cvxpy_and_qp_gradients():
    B, k = 32, 60
    C, d = quad_like_polytope(B, k, seed=70)
    a = random_actions(B, 2, seed=71, scale=1.5)
    bp = BoundaryProjection()
    out, info = bp(a, HPolytope(C, d))
    assert not info["fallback"].any() and info["raw_unsafe"].sum() >= B // 2
    assert torch.allclose(out, cvxpy_project(C, d, a), atol=1e-8)
    assert (max_residual(C, d, out) <= 1e-9).all()
    # the exact 2-D projection (unit rows, the box included) against the QP: value and all
    # gradients (the QP's implicit differentiation is an independent backward)
    region, af, _ = prepare_region(a, HPolytope(C, d), None, 1e-9)
    N, e = region.rows
    sel = region.residual(af) > 1e-9
    x, Ns, es = af[sel], N[sel].detach(), e[sel].detach()
    w = torch.randn(x.shape, dtype=F64, generator=torch.Generator().manual_seed(72))
    res = []
    for which in ("polygon", "qp"):
        xx, NN, ee = (t.clone().requires_grad_(True) for t in (x, Ns, es))
        if which == "polygon":
            y, ok = project_polygon(xx, NN, ee, 1e-9)
            assert ok.all()
        else:
            y = solve_qp(torch.eye(2, dtype=F64), -xx, NN, ee)
        (y * w).sum().backward()
        res.append((y.detach(), xx.grad, NN.grad, ee.grad))
    for u, v in zip(*res):
        assert torch.allclose(u, v, atol=1e-8, rtol=1e-7)


def test_polygon_projection_degenerate_rows():
    """Duplicated rows, parallel rows, three lines through one vertex, a point-like segment,
    an unbounded polygon and an empty one."""
    s = 2**-0.5
    N = torch.tensor(
        [
            [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]],  # duplicate row
            [[1.0, 0.0], [0.0, 1.0], [s, s], [-1.0, 0.0], [0.0, -1.0]],  # 3 lines, 1 vertex
            [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [0.0, -1.0]],  # a segment
            [[1.0, 0.0], [0.0, 1.0], [s, s], [s, s], [1.0, 0.0]],  # unbounded
            [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [s, s]],  # empty
        ],
        dtype=F64,
    )
    e = torch.tensor(
        [
            [0.5, 0.5, 0.5, 0.5, 0.5],
            [0.5, 0.5, s, 0.5, 0.5],
            [0.3, -0.3, 0.5, 0.5, 0.5],
            [0.5, 0.5, 0.2, 0.3, 0.7],
            [0.5, 0.5, 0.5, 0.5, -1.0],
        ],
        dtype=F64,
    )
    x = torch.tensor([[0.9, 0.2], [1.0, 1.0], [0.9, 0.9], [1.0, 1.0], [0.0, 0.0]], dtype=F64)
    y, ok = project_polygon(x, N, e, 1e-9)
    assert ok.tolist() == [True, True, True, True, False]
    expect = [[0.5, 0.2], [0.5, 0.5], [0.3, 0.5], [0.1 / s - 0.5 * 0.2 / s, 0.0], None]
    exp3 = x[3] - ((x[3] * N[3, 2]).sum() - 0.2) * N[3, 2]  # onto the tightest diagonal
    expect[3] = exp3.tolist()
    for i in range(4):
        assert torch.allclose(y[i], torch.tensor(expect[i], dtype=F64), atol=1e-12), i


def test_pruned_rows_do_not_change_the_safeguards():
    """Rows redundant on the box part are dropped: the same outputs and gradients as the set
    without them, for BP and every ray-mask centre."""
    B, m = 12, 2
    C, d = random_polytope(B, m, 4, seed=80)
    g = torch.Generator().manual_seed(81)
    Cr = torch.randn(B, 20, m, generator=g, dtype=F64)
    dr = Cr.abs().sum(-1) + 0.1 + torch.rand(B, 20, generator=g, dtype=F64)  # never bind
    Cf, df = torch.cat([C, Cr], 1), torch.cat([d, dr], 1)
    a = random_actions(B, m, seed=82, scale=1.3)
    mods = [BoundaryProjection()] + [
        RayMask(mp, c) for mp in ("linear", "tanh") for c in ("zonotope", "chebyshev")
    ]
    for mod in mods:
        res = []
        for CC, dd in ((C, d), (Cf, df)):
            x = a.clone().requires_grad_(True)
            out, _ = mod(x, HPolytope(CC, dd))
            out.sum().backward()
            res.append((out.detach(), x.grad))
        assert torch.allclose(res[0][0], res[1][0], atol=1e-9), mod
        assert torch.allclose(res[0][1], res[1][1], atol=1e-7), mod


def test_mixed_batch_box_and_general_elements():
    """Elements with and without general rows in one batch equal their one-by-one results."""
    B, m = 10, 2
    Cb, db = axis_polytope(B, m, 4, seed=90)
    Cg, dg = random_polytope(B, m, 4, seed=91)
    general = torch.arange(B) % 3 == 0
    C = torch.where(general.view(B, 1, 1), Cg, Cb)
    d = torch.where(general.view(B, 1), dg, db)
    a = random_actions(B, m, seed=92, scale=1.3)
    for mod in (BoundaryProjection(), RayMask("tanh")):
        x = a.clone().requires_grad_(True)
        out, info = mod(x, HPolytope(C, d))
        J = batch_jacobian(lambda z, mod=mod: mod(z, HPolytope(C, d))[0], a)
        for i in range(B):
            oi, _ = mod(a[i : i + 1], HPolytope(C[i : i + 1], d[i : i + 1]))
            Ji = batch_jacobian(
                lambda z, i=i, mod=mod: mod(z, HPolytope(C[i : i + 1], d[i : i + 1]))[0],
                a[i : i + 1],
            )
            assert torch.allclose(out[i], oi[0], atol=1e-12)
            assert torch.allclose(J[i], Ji[0], atol=1e-9)


def test_float32_fast_paths():
    C, d = axis_polytope(8, 2, 4, seed=95)
    Cq, dq = quad_like_polytope(8, 30, seed=96)
    a = random_actions(8, 2, seed=97, scale=1.3)
    for CC, dd in ((C, d), (Cq, dq)):
        for mod in (BoundaryProjection(), RayMask(), RayMask("tanh")):
            o64, _ = mod(a, HPolytope(CC, dd))
            o32, info = mod(a.float(), HPolytope(CC.float(), dd.float()))
            assert o32.dtype == torch.float32 and not info["fallback"].any()
            # (the ray mask's centre QP on general rows is only accurate to ~1e-3 in float32)
            tol = 2e-4 if CC is C or isinstance(mod, BoundaryProjection) else 5e-3
            assert torch.allclose(o32.double(), o64, atol=tol)


# ---------------------------------------------------------------------------------------------
# CBF layers: the fused composite layer and the 2-D CBF-QP
# ---------------------------------------------------------------------------------------------


def test_fused_composite_cbf_equals_autograd_composition():
    """``alpha`` a float: one autograd function; a callable: plain autograd.  Same outputs,
    same gradients w.r.t. the action and every constraint tensor, masked elements included."""
    from safegrad.safeguards import CBFConstraints, CompositeCBF

    g = torch.Generator().manual_seed(100)
    B, n_c, m = 16, 4, 2
    h = torch.rand(B, n_c, generator=g, dtype=F64) * 2
    lf = torch.randn(B, n_c, generator=g, dtype=F64)
    lg = torch.randn(B, n_c, m, generator=g, dtype=F64)
    lg[:2] = 0.0  # L_g h = 0: the guarded branch
    lf[0] = -5.0  # ... uncertifiable there
    u = torch.randn(B, m, generator=g, dtype=F64) * 2
    w = torch.randn(B, m, generator=g, dtype=F64)
    res = []
    for alpha in (5.0, lambda x: 5.0 * x):
        leaves = [t.clone().requires_grad_(True) for t in (u, h, lf, lg)]
        out, info = CompositeCBF(2.0, alpha)(leaves[0], CBFConstraints(*leaves[1:]))
        (out * w).sum().backward()
        res.append([out.detach(), info["fallback"], info["eta"]] + [t.grad for t in leaves])
    assert res[0][1].tolist() == res[1][1].tolist() and res[0][1][0]
    for x, y in zip(res[0], res[1]):
        assert torch.allclose(x.double(), y.double(), atol=1e-12, rtol=1e-10)


def test_cbfqp_two_dimensional_path_matches_the_qp_with_gradients():
    from safegrad.safeguards import CBFQP, CBFConstraints

    g = torch.Generator().manual_seed(101)
    B, n_c = 24, 5
    h = torch.rand(B, n_c, generator=g, dtype=F64)
    lf = torch.randn(B, n_c, generator=g, dtype=F64)
    lg = torch.randn(B, n_c, 2, generator=g, dtype=F64)
    lg[0, 1] = 0.0  # a zero row: handled by the QP
    u = torch.randn(B, 2, generator=g, dtype=F64) * 3
    w = torch.randn(B, 2, generator=g, dtype=F64)
    leaves = [t.clone().requires_grad_(True) for t in (u, h, lf, lg)]
    out, info = CBFQP(5.0)(leaves[0], CBFConstraints(*leaves[1:]))
    (out * w).sum().backward()
    ok = ~info["fallback"]
    assert info["raw_unsafe"].sum() >= B // 2 and ok.sum() >= B // 2
    # the same problem through the batched QP directly (implicit-differentiation backward)
    ref_leaves = [t.clone().requires_grad_(True) for t in (u, h, lf, lg)]
    uu, hh, ff, gg = ref_leaves
    x = solve_qp(torch.eye(2, dtype=F64), -uu, -gg, ff + 5.0 * hh)
    safe = ((-gg @ uu.unsqueeze(-1)).squeeze(-1) - (ff + 5.0 * hh) <= 0).all(-1)
    x = torch.where(safe.unsqueeze(-1), uu, x)
    (x * w).sum().backward()
    assert torch.allclose(out[ok], x[ok].detach(), atol=1e-9)
    for a_, b_ in zip(leaves, ref_leaves):
        assert torch.allclose(a_.grad[ok], b_.grad[ok], atol=1e-7)
