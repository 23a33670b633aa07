"""Gradient modes (spec A §3.5, P13) and the regularisation term (spec A §3.6, Eq. 17)."""

from __future__ import annotations

import pytest
import torch
from sgref import F64, batch_jacobian, random_actions, random_polytope

from safegrad.safeguards import (
    CBFQP,
    BoundaryProjection,
    CBFConstraints,
    CompositeCBF,
    RayMask,
    regularisation_loss,
)
from safegrad.sets import HPolytope


def _cases():
    C, d = random_polytope(6, 2, 4, seed=1)
    a = random_actions(6, 2, seed=2)
    g = torch.Generator().manual_seed(3)
    cons = CBFConstraints(
        torch.rand(6, 3, generator=g, dtype=F64),
        torch.randn(6, 3, generator=g, dtype=F64),
        torch.randn(6, 3, 2, generator=g, dtype=F64),
    )
    poly = lambda C_, d_: HPolytope(C_, d_)  # noqa: E731
    cbf = lambda C_, d_: cons  # noqa: E731
    return [
        (BoundaryProjection, {}, poly, C, d, a),
        (RayMask, {"map": "linear"}, poly, C, d, a),
        (RayMask, {"map": "tanh", "centre": "orthogonal"}, poly, C, d, a),
        (RayMask, {"map": "tanh", "centre": "chebyshev"}, poly, C, d, a),
        (CompositeCBF, {}, cbf, C, d, a * 3),
        (CBFQP, {}, cbf, C, d, a * 3),
    ]


@pytest.mark.parametrize("case", range(6))
def test_passthrough_is_exact_identity_and_none_detaches(case):
    cls, kw, mk, C, d, a = _cases()[case]
    exact, _ = cls(**kw)(a, mk(C, d))
    x = a.clone().requires_grad_(True)
    Cg = C.clone().requires_grad_(True)
    out, info = cls(**kw, grad_mode="passthrough")(x, mk(Cg, d))
    assert torch.equal(out, exact)  # forward is the full safeguard, bit for bit
    upstream = torch.randn(out.shape, dtype=F64, generator=torch.Generator().manual_seed(4))
    out.backward(upstream)
    assert torch.equal(x.grad, upstream)  # backward is exactly the identity
    assert Cg.grad is None  # scope "action": no gradient into the safe-set parameters (P13)
    out_n, _ = cls(**kw, grad_mode="none")(a.clone().requires_grad_(True), mk(C, d))
    assert not out_n.requires_grad and torch.equal(out_n, exact)


@pytest.mark.parametrize("case", [0, 1, 3])
def test_passthrough_scope_action_plus_set(case):
    cls, kw, mk, C, d, a = _cases()[case]
    x = a.clone().requires_grad_(True)
    Cg, dg = C.clone().requires_grad_(True), d.clone().requires_grad_(True)
    out, _ = cls(**kw, grad_mode="passthrough", passthrough_scope="action+set")(x, mk(Cg, dg))
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    # the set gradient equals the exact one at the (detached) action
    Ce, de = C.clone().requires_grad_(True), d.clone().requires_grad_(True)
    cls(**kw)(a, mk(Ce, de))[0].sum().backward()
    assert torch.allclose(Cg.grad, Ce.grad, atol=1e-12)
    assert torch.allclose(dg.grad, de.grad, atol=1e-12)


@pytest.mark.parametrize("case", [0, 1, 2, 4])
def test_eq17_regularised_gradient_against_autograd(case):
    """∇_a [c ||a_s - a||^2] = 2 c (∂a_s/∂a - I)^T (a_s - a)  (per sample; / B for the mean)."""
    cls, kw, mk, C, d, a = _cases()[case]
    sg = cls(**kw)
    coef = 0.1
    x = a.clone().requires_grad_(True)
    out, _ = sg(x, mk(C, d))
    (grad,) = torch.autograd.grad(regularisation_loss(x, out, coef), x)
    J = batch_jacobian(lambda y: sg(y, mk(C, d))[0], a)
    eye = torch.eye(a.shape[-1], dtype=F64)
    diff = (out - a).detach()
    eq17 = 2 * coef / a.shape[0] * ((J - eye).mT @ diff.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(grad, eq17, atol=1e-12)
    if case == 0:  # BP: the regulariser restores the normal component Theorem 1 removes
        unsafe = diff.norm(dim=-1) > 0
        assert (grad[unsafe].norm(dim=-1) > 0).all()
    # passthrough: ∂a_s/∂a := I, so the regularisation gradient vanishes exactly
    x2 = a.clone().requires_grad_(True)
    out2, _ = cls(**kw, grad_mode="passthrough")(x2, mk(C, d))
    (g2,) = torch.autograd.grad(regularisation_loss(x2, out2, coef), x2)
    assert torch.equal(g2, torch.zeros_like(g2))
    # none: a pull towards the (detached) safe action
    x3 = a.clone().requires_grad_(True)
    out3, _ = cls(**kw, grad_mode="none")(x3, mk(C, d))
    (g3,) = torch.autograd.grad(regularisation_loss(x3, out3, coef), x3)
    assert torch.allclose(g3, -2 * coef / a.shape[0] * diff, atol=1e-15)


def test_regularisation_reductions_and_errors():
    a = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=F64)
    s = torch.tensor([[1.0, 0.0], [1.0, 3.0]], dtype=F64)
    assert regularisation_loss(a, s, 0.5).item() == pytest.approx(0.5 * (1 + 4) / 2)
    assert regularisation_loss(a, s, 0.5, "sum").item() == pytest.approx(2.5)
    assert torch.equal(regularisation_loss(a, s, 1.0, "none"), torch.tensor([1.0, 4.0], dtype=F64))
    assert regularisation_loss(a, s, 1.0, "mse").item() == pytest.approx(
        torch.nn.functional.mse_loss(s, a).item()
    )
    with pytest.raises(ValueError, match="coef"):
        regularisation_loss(a, s, -1.0)
    with pytest.raises(ValueError, match="reduction"):
        regularisation_loss(a, s, 1.0, "max")
    with pytest.raises(ValueError, match="same shape"):
        regularisation_loss(a, s[:1], 1.0)
    with pytest.raises(ValueError, match="passthrough_scope"):
        BoundaryProjection(grad_mode="passthrough", passthrough_scope="state")


def test_float32_and_nd_batch_all_safeguards():
    C, d = random_polytope(32, 3, 6, seed=1, dtype=torch.float32)
    a = random_actions(32, 3, seed=2, dtype=torch.float32).requires_grad_(True)
    P = HPolytope(C.reshape(4, 8, 6, 3), d.reshape(4, 8, 6))
    for sg in (
        BoundaryProjection(),
        RayMask(),
        RayMask("tanh", "chebyshev"),
        RayMask(centre="orthogonal"),
    ):
        out, info = sg(a.reshape(4, 8, 3), P)
        assert out.dtype == torch.float32 and out.shape == (4, 8, 3)
        assert info["fallback"].shape == (4, 8) and not info["fallback"].any()
        res = ((C @ out.reshape(32, 3, 1)).squeeze(-1) - d).amax()
        assert res <= 1e-5
        (g,) = torch.autograd.grad(out.sum(), a)
        assert torch.isfinite(g).all()
    g = torch.Generator().manual_seed(5)
    cons = CBFConstraints(
        torch.rand(4, 8, 3, generator=g),
        torch.randn(4, 8, 3, generator=g),
        torch.randn(4, 8, 3, 2, generator=g),
    )
    u = torch.randn(4, 8, 2, generator=g)
    for sg in (CBFQP(), CompositeCBF(), CompositeCBF(action_box=(-1.0, 1.0))):
        out, info = sg(u, cons)
        assert out.shape == (4, 8, 2) and out.dtype == torch.float32 and torch.isfinite(out).all()
    out, _ = CBFQP()(u, cons)
    slack = cons.lf_h + (cons.lg_h @ out.unsqueeze(-1)).squeeze(-1) + 5.0 * cons.h
    assert (slack >= -1e-4).all()
