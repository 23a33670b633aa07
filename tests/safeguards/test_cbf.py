"""CompositeCBF (spec B §4-§6) and CBFQP (spec B Eq. 6, §10)."""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import pytest
import torch
from sgref import F64, batch_jacobian

from safegrad.safeguards import (
    CBFQP,
    CBFConstraints,
    CompositeCBF,
    SafeguardInfeasibleError,
    composite_barrier,
    project_halfspace_box,
)


def obstacles(B: int, n_obs: int, seed: int, dtype=F64):
    """Single integrator (f = 0, g = I), h_i = |p - p_i|^2 - r_i^2 (spec B Eq. 25)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(B, 2, generator=g, dtype=F64) * 4
    centres = torch.rand(n_obs, 2, generator=g, dtype=F64) * 4
    r = 0.1 + 0.2 * torch.rand(n_obs, generator=g, dtype=F64)
    diff = p.unsqueeze(1) - centres
    h = (diff**2).sum(-1) - r**2
    lf = torch.zeros_like(h)
    lg = 2 * diff
    u = (torch.rand(B, 2, generator=g, dtype=F64) * 2 - 1) * 2
    return CBFConstraints(h.to(dtype), lf.to(dtype), lg.to(dtype)), u.to(dtype)


def random_constraints(B, n_c, m, seed):
    g = torch.Generator().manual_seed(seed)
    h = torch.rand(B, n_c, generator=g, dtype=F64) * 2
    lf = torch.randn(B, n_c, generator=g, dtype=F64)
    lg = torch.randn(B, n_c, m, generator=g, dtype=F64)
    u = torch.randn(B, m, generator=g, dtype=F64)
    return CBFConstraints(h, lf, lg), u


@pytest.mark.parametrize("n_obs", [3, 10, 30])
def test_composite_lse_bounds_and_softmax_weights(n_obs):
    cons, _ = obstacles(256, n_obs, seed=n_obs)
    kappa = 2.0
    h, lam = composite_barrier(cons.h, kappa)
    hmin = cons.h.amin(-1)
    assert (h <= hmin + 1e-12).all()
    assert (h >= hmin - math.log(n_obs) / kappa - 1e-12).all()
    assert torch.allclose(lam.sum(-1), torch.ones(256, dtype=F64))
    assert torch.allclose(lam, torch.softmax(-kappa * cons.h, -1))
    # large h_i: the naive exp(-κ h_i) underflows to 0 and log 0 = -inf; ours stays exact
    big = cons.h + 400.0
    h_big, _ = composite_barrier(big, kappa)
    assert torch.isfinite(h_big).all()
    assert torch.allclose(h_big, h + 400.0, atol=1e-9)


def test_closed_form_sign_by_hand():
    # one constraint: h = 1, L_f h = 0, L_g h = (1, 0), α = 5 h -> need u_x >= -5
    cons = CBFConstraints(
        torch.tensor([[1.0]], dtype=F64),
        torch.zeros(1, 1, dtype=F64),
        torch.tensor([[[1.0, 0.0]]], dtype=F64),
    )
    u = torch.tensor([[-7.0, 0.3]], dtype=F64)
    out, info = CompositeCBF(kappa=2.0, alpha=5.0)(u, cons)
    assert torch.allclose(out, torch.tensor([[-5.0, 0.3]], dtype=F64))
    assert info["intervened"].item() and abs(info["eta"].item() - 2.0) < 1e-12
    out, info = CompositeCBF()(torch.tensor([[-3.0, 0.3]], dtype=F64), cons)
    assert torch.equal(out, torch.tensor([[-3.0, 0.3]], dtype=F64))
    assert not info["intervened"].item()


def test_closed_form_equals_one_constraint_qp():
    cons, u = random_constraints(64, 1, 3, seed=1)
    out_c, info_c = CompositeCBF(kappa=2.0, alpha=5.0)(u, cons)
    out_q, info_q = CBFQP(alpha=5.0)(u, cons)
    assert torch.allclose(out_c, out_q, atol=1e-9)
    assert info_c["raw_unsafe"].any() and (~info_c["raw_unsafe"]).any()
    assert torch.equal(info_c["intervened"], info_q["intervened"])
    # the same as the cvxpy reference
    J_c = batch_jacobian(lambda x: CompositeCBF()(x, cons)[0], u)
    J_q = batch_jacobian(lambda x: CBFQP()(x, cons)[0], u)
    assert torch.allclose(J_c, J_q, atol=1e-8)
    # Jacobian I - 1[η>0] ĝĝ^T (spec B §5.3)
    g = cons.lg_h[:, 0] / cons.lg_h[:, 0].norm(dim=-1, keepdim=True)
    act = info_c["eta"] > 0
    P = torch.eye(3, dtype=F64) - act.to(F64)[:, None, None] * g.unsqueeze(-1) * g.unsqueeze(-2)
    assert torch.allclose(J_c, P, atol=1e-12)


def _cvxpy_cbf_qp(cons, u, alpha, low=None, high=None):
    out = []
    for h, lf, lg, ub in zip(cons.h.numpy(), cons.lf_h.numpy(), cons.lg_h.numpy(), u.numpy()):
        x = cp.Variable(ub.shape[0])
        con = [lf + lg @ x >= -alpha * h]
        if low is not None:
            con += [x >= low, x <= high]
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - ub)), con)
        try:
            prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
        except cp.error.SolverError:  # Clarabel occasionally stalls at tight tolerances
            prob.solve(solver=cp.CLARABEL)
        out.append(x.value if x.value is not None else np.full(ub.shape[0], np.nan))
    return torch.tensor(np.array(out), dtype=F64)


@pytest.mark.parametrize("n_obs", [3, 10])
def test_cbfqp_matches_cvxpy_and_satisfies_every_constraint(n_obs):
    cons, u = obstacles(32, n_obs, seed=40 + n_obs)
    out, info = CBFQP(alpha=5.0)(u, cons)
    ref = _cvxpy_cbf_qp(cons, u, 5.0)
    assert torch.allclose(out, ref, atol=1e-7)
    slack = cons.lf_h + (cons.lg_h @ out.unsqueeze(-1)).squeeze(-1) + 5.0 * cons.h
    assert (slack >= -1e-9).all()
    assert not info["fallback"].any()
    # the composite layer satisfies its own (composite) condition exactly
    outc, infoc = CompositeCBF(2.0, 5.0)(u, cons)
    h, lam = composite_barrier(cons.h, 2.0)
    lg = (lam.unsqueeze(-1) * cons.lg_h).sum(-2)
    lf = (lam * cons.lf_h).sum(-1)
    assert ((lf + (lg * outc).sum(-1) + 5.0 * h) >= -1e-9).all()


def test_lgh_zero_returns_nominal_with_finite_gradients():
    """Spec B §5.2: obstacles at (±2, 0), r = 1, κ = 2; at the origin ∇h = 0 exactly."""
    p = torch.tensor([[0.0, 0.0], [1e-7, 0.0], [0.3, 0.1]], dtype=F64, requires_grad=True)
    centres = torch.tensor([[2.0, 0.0], [-2.0, 0.0]], dtype=F64)
    diff = p.unsqueeze(1) - centres
    cons = CBFConstraints((diff**2).sum(-1) - 1.0, torch.zeros(3, 2, dtype=F64), 2 * diff)
    u = torch.tensor([[1.0, 0.0], [-5.0, 0.0], [1.0, 1.0]], dtype=F64, requires_grad=True)
    out, info = CompositeCBF(kappa=2.0, alpha=5.0)(u, cons)
    assert info["lgh_zero"].tolist() == [True, True, False]
    assert abs(info["h"][0].item() - (3 - math.log(2) / 2)) < 1e-12
    assert torch.equal(out[:2], u[:2].detach())
    assert not info["fallback"].any()  # f = 0: α(h) >= 0 holds, ū is correct there
    (out**2).sum().backward()
    assert torch.isfinite(u.grad).all() and torch.isfinite(p.grad).all()
    assert p.grad.abs().max() < 1e3  # no huge gradients next to the mask
    # with drift making the condition unsatisfiable: flagged fallback, never NaN
    cons2 = CBFConstraints(
        cons.h.detach(), torch.full((3, 2), -100.0, dtype=F64), cons.lg_h.detach()
    )
    out2, info2 = CompositeCBF()(u.detach(), cons2)
    assert info2["fallback"].tolist()[:2] == [True, True]
    assert torch.isfinite(out2).all()
    with pytest.raises(SafeguardInfeasibleError):
        CompositeCBF(strict=True)(u.detach(), cons2)


def test_halfspace_box_projection_matches_cvxpy():
    g = torch.Generator().manual_seed(5)
    B, m = 64, 3
    ub = torch.randn(B, m, generator=g, dtype=F64)
    gv = torch.randn(B, m, generator=g, dtype=F64)
    gv[:8, 0] = 0.0  # zero components
    tau = torch.randn(B, generator=g, dtype=F64) * 1.5
    low, high = -torch.ones(B, m, dtype=F64), torch.ones(B, m, dtype=F64)
    u, feas = project_halfspace_box(ub, gv, tau, low, high)
    sup = gv.abs().sum(-1)
    assert torch.equal(feas, sup >= tau)
    for i in range(B):
        if not feas[i]:
            continue
        x = cp.Variable(m)
        cp.Problem(
            cp.Minimize(cp.sum_squares(x - ub[i].numpy())),
            [gv[i].numpy() @ x >= tau[i].item(), x >= -1, x <= 1],
        ).solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
        assert np.allclose(u[i].numpy(), x.value, atol=1e-7), i
    # infeasible: the box point maximising g'u
    inf_idx = (~feas).nonzero().flatten()
    assert len(inf_idx) > 0
    assert torch.allclose((gv * u).sum(-1)[inf_idx], sup[inf_idx])


def test_bounded_composite_layer_and_clip_mode():
    cons, u = obstacles(64, 3, seed=7)
    box = (-1.0, 1.0)
    out, info = CompositeCBF(action_box=box)(u, cons)
    assert ((out >= -1 - 1e-12) & (out <= 1 + 1e-12)).all()
    h, lam = composite_barrier(cons.h, 2.0)
    lg = (lam.unsqueeze(-1) * cons.lg_h).sum(-2)
    slack = (lg * out).sum(-1) + 5.0 * h
    ok = ~info["fallback"]
    assert (slack[ok] >= -1e-9).all()
    ref = _cvxpy_cbf_qp(
        CBFConstraints(h.unsqueeze(-1), torch.zeros_like(h).unsqueeze(-1), lg.unsqueeze(-2)),
        u,
        5.0,
        -1.0,
        1.0,
    )
    assert torch.allclose(out[ok], ref[ok], atol=1e-7)
    outc, infoc = CompositeCBF(action_box=box, bound_mode="clip")(u, cons)
    assert ((outc >= -1) & (outc <= 1)).all()
    slack_c = (lg * outc).sum(-1) + 5.0 * h
    assert torch.equal(infoc["fallback"], slack_c < -1e-9 * (1 + (5.0 * h).abs()))


def test_cbfqp_infeasible_fallback():
    # two contradictory constraints u >= 1 and u <= -1 (1-D)
    cons = CBFConstraints(
        torch.zeros(2, 2, dtype=F64),
        torch.tensor([[-1.0, -1.0], [0.0, 0.0]], dtype=F64),
        torch.tensor([[[1.0], [-1.0]], [[1.0], [-1.0]]], dtype=F64),
    )
    u = torch.tensor([[0.5], [0.5]], dtype=F64, requires_grad=True)
    out, info = CBFQP()(u, cons)
    assert info["fallback"].tolist() == [True, False]
    assert torch.isfinite(out).all()
    assert out[0].item() == 0.5  # unbounded: the nominal action
    out.sum().backward()
    assert torch.isfinite(u.grad).all()
    outb, infob = CBFQP(action_box=(-2.0, 2.0))(u.detach(), cons)
    assert infob["fallback"][0].item() and abs(outb[0].item()) < 1e-7  # least violating


def test_gradcheck_cbf_layers():
    cons, u = random_constraints(4, 3, 2, seed=11)
    h = cons.h.clone().requires_grad_(True)
    lf = cons.lf_h.clone().requires_grad_(True)
    lg = cons.lg_h.clone().requires_grad_(True)
    u.requires_grad_(True)
    for layer in (
        CompositeCBF(2.0, 5.0),
        CompositeCBF(2.0, 5.0, action_box=(-3.0, 3.0)),
        CBFQP(5.0),
    ):
        assert torch.autograd.gradcheck(lambda u_, layer=layer: layer(u_, cons)[0], (u,))
        assert torch.autograd.gradcheck(
            lambda u_, h_, lf_, lg_, layer=layer: layer(u_, CBFConstraints(h_, lf_, lg_))[0],
            (u, h, lf, lg),
            atol=1e-6,
            fast_mode=True,
        )


def test_float32_and_bad_inputs():
    cons, u = obstacles(16, 3, seed=3, dtype=torch.float32)
    out, info = CompositeCBF()(u, cons)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    out64, _ = CompositeCBF()(
        u.double(), CBFConstraints(cons.h.double(), cons.lf_h.double(), cons.lg_h.double())
    )
    assert torch.allclose(out.double(), out64, atol=1e-3, rtol=1e-4)
    with pytest.raises(ValueError, match="kappa"):
        CompositeCBF(kappa=0.0)
    with pytest.raises(ValueError, match="alpha"):
        CBFQP(alpha=-1.0)
    with pytest.raises(ValueError, match="agree on I"):
        CBFConstraints(torch.zeros(2, 3), torch.zeros(2, 2), torch.zeros(2, 3, 2))
    with pytest.raises(TypeError, match="CBFConstraints"):
        CompositeCBF()(torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="bound_mode"):
        CompositeCBF(bound_mode="squash")
