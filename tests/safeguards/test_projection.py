"""BoundaryProjection: spec A Eq. 12, Theorem 1 (Eq. 71 in polytope form), fallback contract."""

from __future__ import annotations

import pytest
import torch
from sgref import (
    F64,
    batch_jacobian,
    cvxpy_project,
    inactive_projector,
    max_residual,
    random_actions,
    random_polytope,
)

from safegrad.safeguards import BoundaryProjection, SafeguardInfeasibleError
from safegrad.sets import Box, HPolytope, Zonotope


@pytest.mark.parametrize("m,k", [(2, 4), (3, 6), (4, 8)])
def test_projection_in_set_matches_cvxpy_and_is_idempotent(m, k):
    B = 24
    C, d = random_polytope(B, m, k, seed=m)
    a = random_actions(B, m, seed=10 + m, scale=1.3)  # some actions outside the box too
    bp = BoundaryProjection()
    out, info = bp(a, HPolytope(C, d))
    assert torch.isfinite(out).all()
    assert (max_residual(C, d, out) <= 1e-9).all()
    ref = cvxpy_project(C, d, a)
    assert torch.allclose(out, ref, atol=1e-7, rtol=0)
    out2, info2 = bp(out, HPolytope(C, d))
    assert torch.equal(out2, out)  # safe inputs are returned exactly: idempotent
    assert not info2["intervened"].any()
    assert not info["fallback"].any()
    assert info["raw_unsafe"].any()
    assert torch.equal(info["intervened"], info["raw_unsafe"])
    assert torch.allclose(info["distance"], (out - a).norm(dim=-1))


def test_box_and_interval_closed_form_match_cvxpy():
    B = 20
    g = torch.Generator().manual_seed(3)
    lo = torch.rand(B, 2, generator=g, dtype=F64) - 0.8
    hi = lo + torch.rand(B, 2, generator=g, dtype=F64) + 0.1
    a = random_actions(B, 2, seed=4, scale=1.5)
    out, _ = BoundaryProjection()(a, Box(lo, hi))
    C = torch.cat([torch.eye(2, dtype=F64), -torch.eye(2, dtype=F64)]).expand(B, 4, 2)
    d = torch.cat([hi, -lo], -1)
    assert torch.allclose(out, cvxpy_project(C, d, a), atol=1e-9)
    # 1-D H-polytope (an interval, the pendulum case): closed form, equals the QP reference
    C1, d1 = random_polytope(B, 1, 3, seed=5)
    a1 = random_actions(B, 1, seed=6)
    out1, info1 = BoundaryProjection()(a1, HPolytope(C1, d1))
    assert torch.allclose(out1, cvxpy_project(C1, d1, a1), atol=1e-9)
    # Theorem 1 for d = 1: Jacobian 0 whenever BP intervenes, 1 otherwise
    J = batch_jacobian(lambda x: BoundaryProjection()(x, HPolytope(C1, d1))[0], a1)[:, 0, 0]
    assert torch.equal(J, (~info1["raw_unsafe"]).to(F64))


def test_zonotope_safe_set_uses_exact_hrep():
    g = torch.Generator().manual_seed(7)
    B = 10
    G = torch.rand(B, 2, 4, generator=g, dtype=F64) * 0.4
    c = (torch.rand(B, 2, generator=g, dtype=F64) - 0.5) * 0.4
    Z = Zonotope(c, G)
    a = random_actions(B, 2, seed=8)
    out, _ = BoundaryProjection()(a, Z)
    H = Z.to_hpolytope()
    assert torch.allclose(out, cvxpy_project(H.C, H.d, a), atol=1e-7)


@pytest.mark.parametrize("m,k", [(2, 5), (3, 6), (5, 10)])
def test_jacobian_is_projector_onto_inactive_constraints(m, k):
    """Theorem 1 (Eq. 71) generalised: dBP/da = I - N_act^T (N_act N_act^T)^+ N_act."""
    B = 16
    C, d = random_polytope(B, m, k, seed=20 + m)
    a = random_actions(B, m, seed=30 + m, scale=1.2)
    bp = BoundaryProjection()
    out, info = bp(a, HPolytope(C, d))
    J = batch_jacobian(lambda x: bp(x, HPolytope(C, d))[0], a)
    eye = torch.eye(m, dtype=F64)
    Nn = torch.cat(
        [C / C.norm(dim=-1, keepdim=True), torch.cat([eye, -eye]).expand(B, 2 * m, m)], 1
    )
    e = torch.cat([d / C.norm(dim=-1), torch.ones(B, 2 * m, dtype=F64)], 1)
    res = (Nn @ out.unsqueeze(-1)).squeeze(-1) - e
    n_checked = 0
    for i in range(B):
        act = res[i] > -1e-9
        P = inactive_projector(Nn[i][act])
        assert torch.allclose(J[i], P, atol=1e-8), (i, J[i], P)
        n_checked += int(act.sum() > 0)
    assert n_checked >= B // 3  # the check covered faces, not only interior points


def test_jacobian_zero_at_vertex_and_identity_inside():
    # safe set x <= 0.5, y <= 0.3 inside the unit box; a far in the normal cone of the vertex
    C = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=F64)
    d = torch.tensor([0.5, 0.3], dtype=F64)
    a = torch.tensor([[0.9, 0.8], [0.0, 0.0], [0.9, 0.0]], dtype=F64)
    bp = BoundaryProjection()
    out, _ = bp(a, HPolytope(C, d))
    assert torch.allclose(out[0], torch.tensor([0.5, 0.3], dtype=F64), atol=1e-12)
    J = batch_jacobian(lambda x: bp(x, HPolytope(C, d))[0], a)
    assert J[0].abs().max() <= 1e-9  # vertex: no inactive direction left
    assert torch.equal(J[1], torch.eye(2, dtype=F64))  # inside: identity
    assert torch.allclose(J[2], torch.tensor([[0.0, 0.0], [0.0, 1.0]], dtype=F64), atol=1e-9)


def test_gradcheck_action_and_set_parameters():
    B, m, k = 4, 2, 4
    C, d = random_polytope(B, m, k, seed=41)
    a = random_actions(B, m, seed=42, scale=1.1)
    bp = BoundaryProjection()
    # away from kinks: every element well inside a face's region (checked by FD agreement)
    C.requires_grad_(True)
    d.requires_grad_(True)
    a.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a_: bp(a_, HPolytope(C.detach(), d.detach()))[0], (a,), atol=1e-6
    )
    assert torch.autograd.gradcheck(
        lambda a_, C_, d_: bp(a_, HPolytope(C_, d_))[0], (a, C, d), atol=1e-6, fast_mode=True
    )
    # 1-D closed form through C and d
    C1, d1 = random_polytope(3, 1, 3, seed=43)
    a1 = torch.tensor([[0.95], [-0.95], [0.0]], dtype=F64, requires_grad=True)
    C1.requires_grad_(True)
    d1.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a_, C_, d_: bp(a_, HPolytope(C_, d_))[0], (a1, C1, d1), atol=1e-6
    )


def test_empty_set_returns_flagged_finite_fallback_and_strict_raises():
    # element 0: x >= 0.5 and x <= -0.5 (empty); element 1: fine
    C = torch.tensor([[[-1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]], dtype=F64)
    d = torch.tensor([[-0.5, -0.5], [0.2, 0.2]], dtype=F64)
    a = torch.tensor([[0.3, 0.9], [0.9, 0.9]], dtype=F64, requires_grad=True)
    out, info = BoundaryProjection()(a, HPolytope(C, d))
    assert torch.isfinite(out).all()
    assert info["fallback"].tolist() == [True, False]
    # least-violating point: x = 0 balances both violations (0.5 each)
    assert abs(out[0, 0].item()) <= 1e-7
    assert torch.allclose(out[1], torch.tensor([0.2, 0.2], dtype=F64), atol=1e-9)
    out.sum().backward()
    assert torch.isfinite(a.grad).all()
    # caller-supplied fallback
    fb = torch.tensor([[0.1, 0.1], [0.0, 0.0]], dtype=F64)
    out_fb, _ = BoundaryProjection()(a, HPolytope(C, d), fallback=fb)
    assert torch.equal(out_fb[0], fb[0])
    with pytest.raises(SafeguardInfeasibleError, match="1 of 2"):
        BoundaryProjection(strict=True)(a, HPolytope(C, d))
    # empty 1-D interval and empty Box: closed-form fallback (midpoint of the crossed bounds)
    out1, info1 = BoundaryProjection()(
        torch.tensor([[0.0]], dtype=F64),
        HPolytope(torch.tensor([[-1.0], [1.0]], dtype=F64), torch.tensor([-0.6, 0.2], dtype=F64)),
    )
    assert info1["fallback"].item() and abs(out1.item() - 0.4) <= 1e-12
    outb, infob = BoundaryProjection()(
        torch.zeros(1, 2, dtype=F64),
        Box(
            torch.tensor([0.5, 2.0], dtype=F64).expand(1, 2) * 1,
            torch.tensor([0.7, 3.0], dtype=F64).expand(1, 2) * 1,
        ),
    )
    assert infob["fallback"].item()
    assert torch.allclose(outb, torch.tensor([[0.6, 1.0]], dtype=F64))


def test_nan_action_gives_fallback_not_nan():
    C, d = random_polytope(3, 2, 4, seed=50)
    a = torch.tensor([[float("nan"), 0.0], [0.9, 0.9], [0.0, 0.0]], dtype=F64)
    out, info = BoundaryProjection()(a, HPolytope(C, d))
    assert torch.isfinite(out).all()
    assert info["fallback"][0].item() and not info["fallback"][1:].any()


def test_batch_broadcasting_and_float32():
    C, d = random_polytope(1, 2, 5, seed=60)
    P = HPolytope(C[0], d[0])  # unbatched set
    a = random_actions(12, 2, seed=61).reshape(3, 4, 2)
    out, info = BoundaryProjection()(a, P)
    assert out.shape == (3, 4, 2) and info["fallback"].shape == (3, 4)
    flat, _ = BoundaryProjection()(a.reshape(12, 2), P.expand(12))
    assert torch.allclose(out.reshape(12, 2), flat, atol=1e-12)
    out32, _ = BoundaryProjection()(a.float(), HPolytope(C[0].float(), d[0].float()))
    assert out32.dtype == torch.float32
    assert torch.allclose(out32.double(), out, atol=1e-4)


def test_bad_inputs_raise_clear_errors():
    C, d = random_polytope(2, 2, 3, seed=70)
    bp = BoundaryProjection()
    with pytest.raises(ValueError, match="dimension 2 but the action has dimension 3"):
        bp(torch.zeros(2, 3, dtype=F64), HPolytope(C, d))
    with pytest.raises(TypeError, match="HPolytope, Box or Zonotope"):
        bp(torch.zeros(2, 2, dtype=F64), "not a set")
    with pytest.raises(TypeError, match="dtype"):
        bp(torch.zeros(2, 2, dtype=torch.float32), HPolytope(C, d))
    with pytest.raises(ValueError, match="grad_mode"):
        BoundaryProjection(grad_mode="straight")
    with pytest.raises(ValueError, match="low <= high"):
        BoundaryProjection(action_box=(1.0, -1.0))(torch.zeros(2, 2, dtype=F64), HPolytope(C, d))
