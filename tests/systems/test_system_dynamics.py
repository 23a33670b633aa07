"""safegrad.systems: one-step values, Jacobians, control-affine form, rollout gradients."""

from __future__ import annotations

import math

import pytest
import torch

from safegrad.systems import (
    CartPole,
    ControlSystem,
    HouseholdEnergy,
    Pendulum,
    PlanarQuadrotor,
    SingleIntegrator,
    wrap_angle,
)

F64 = torch.float64
SYSTEMS = {
    "pendulum": Pendulum,
    "cartpole": CartPole,
    "quadrotor": PlanarQuadrotor,
    "household": HouseholdEnergy,
    "single_integrator": SingleIntegrator,
    "navigate_seeker": SingleIntegrator.navigate_seeker,
}


def make(name: str) -> ControlSystem:
    return SYSTEMS[name]()


def interior_states(sys: ControlSystem, shape, gen, frac=0.5, dtype=F64) -> torch.Tensor:
    """States in the central ``frac`` of S."""
    c = 0.5 * (sys.state_low + sys.state_high)
    h = 0.5 * (sys.state_high - sys.state_low) * frac
    r = torch.rand((*shape, sys.state_dim), generator=gen, dtype=F64) * 2 - 1
    return (c + h * r).to(dtype)


def rand_actions(sys, shape, gen, scale=1.0, dtype=F64):
    return (scale * (torch.rand((*shape, sys.action_dim), generator=gen, dtype=F64) * 2 - 1)).to(
        dtype
    )


# --------------------------------------------------------------------------- hand-computed values
# Numbers computed from the spec equations with Python's math module (see the comments); they are
# literals so that the implementation is checked against the equations, not against itself.
HAND = [
    # Pendulum (spec A §5.1): thdd = 14.715 sin(th) + 90 u + w; thd' = thd + 0.05 thdd;
    # th' = wrap(th + 0.05 thd').  Second case wraps: -3.6768 -> +2.6064.
    ("pendulum", [0.5, 1.0], [0.2], [0.05], [0.6127618670014021, 2.2552373400280423]),
    ("pendulum", [-3.1, -7.0], [-1.0], [-0.1], [2.6064056585603215, -11.535592972385293]),
    # Cart-pole (spec A §5.4 constants, Barto et al. equations, semi-implicit, w on theta_ddot).
    (
        "cartpole",
        [0.3, 0.2, -0.5, 1.5],
        [0.7],
        [0.08],
        [0.29267685031920865, 0.22726493836746497, -0.3661574840395681, 1.3632469183732447],
    ),
    (
        "cartpole",
        [-1.0, 3.0, 2.0, 4.0],
        [-0.4],
        [-0.1],
        [-0.9614746974537106, 3.078599876526498, 1.9262651273144684, 3.929993826324903],
    ),
    # Quadrotor (spec A §5.2): T = 6/7 a0 + g, phi_cmd = pi/12 a1, K0=70, K1=17, K2=55.
    (
        "quadrotor",
        [0.1, -0.2, 0.1, 0.3, -0.4, 0.5],
        [0.6, -0.3],
        [0.05, -0.02],
        [
            0.11770177179323796,
            -0.21889323177691325,
            0.07545077525328509,
            0.35403543586475905,
            -0.3778646355382648,
            -0.4909844949342983,
        ],
    ),
    (
        "quadrotor",
        [1.0, 2.0, -0.2, -0.5, 0.8, -1.2],
        [-1.0, 1.0],
        [-0.1, 0.1],
        [
            0.970303354656812,
            2.037660990154754,
            -0.13800258417761696,
            -0.5939329068637607,
            0.7532198030950759,
            1.2399483164476608,
        ],
    ),
    # Household (spec A §5.3): P_ess = 2 a0, P_hp = 2.5 a1 + 2.5, dt = 1 h, w = T_out.
    (
        "household",
        [5.0, 21.0, 55.0],
        [0.5, -0.2],
        [3.0],
        [6.0, 21.524358974358975, 28.006451612903227],
    ),
    (
        "household",
        [9.5, 18.5, 30.0],
        [-1.0, 1.0],
        [-8.0],
        [7.5, 18.592307692307692, 32.064516129032256],
    ),
    # Single integrator: p' = p + dt gain u + w (ReachAvoid dt = 0.05; NavigateSeeker 0.1 a + w).
    ("single_integrator", [1.0, 2.0], [0.5, -1.0], [0.0, 0.0], [1.025, 1.95]),
    ("navigate_seeker", [-3.0, 4.0], [1.0, 0.2], [0.05, -0.05], [-2.85, 3.97]),
]


@pytest.mark.parametrize("name,x,u,w,expected", HAND)
def test_step_matches_hand_computed_values(name, x, u, w, expected):
    sys = make(name)
    t = lambda v: torch.tensor(v, dtype=F64)
    out = sys.step(t(x), t(u), t(w))
    torch.testing.assert_close(out, t(expected), rtol=0, atol=1e-12)
    # batched, float32
    xb, ub, wb = (t(v).float().expand(3, -1) for v in (x, u, w))
    out32 = sys.step(xb, ub, wb)
    assert out32.dtype == torch.float32 and out32.shape == (3, len(x))
    torch.testing.assert_close(out32, t(expected).float().expand(3, -1), rtol=1e-5, atol=1e-5)


def test_wrap_angle_range_and_identity_inside():
    th = torch.linspace(-20, 20, 10001, dtype=F64)
    y = wrap_angle(th)
    assert (y >= -math.pi).all() and (y < math.pi).all()
    torch.testing.assert_close(torch.sin(y), torch.sin(th))
    torch.testing.assert_close(torch.cos(y), torch.cos(th))
    inside = th.abs() < math.pi - 1e-9
    torch.testing.assert_close(y[inside], th[inside])
    assert wrap_angle(torch.tensor(math.pi, dtype=F64)).item() == pytest.approx(-math.pi)
    assert wrap_angle(torch.tensor(-1e-300, dtype=F64)).item() < math.pi


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_step_batch_shapes_broadcast_and_default_disturbance(name):
    sys = make(name)
    g = torch.Generator().manual_seed(0)
    x = interior_states(sys, (4, 3), g)
    u = rand_actions(sys, (4, 3), g)
    out = sys.step(x, u, None)
    assert out.shape == (4, 3, sys.state_dim)
    wc = sys.disturbance_centre.expand(4, 3, -1)
    torch.testing.assert_close(out, sys.step(x, u, wc))
    # broadcasting a single action / disturbance over the batch
    out_b = sys.step(x, u[0, 0], sys.disturbance_centre)
    torch.testing.assert_close(out_b, sys.step(x, u[0, 0].expand(4, 3, -1), wc))
    # unbatched
    assert sys.step(x[0, 0], u[0, 0], None).shape == (sys.state_dim,)


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_step_does_not_clamp_and_clamp_state_does(name):
    sys = make(name)
    span = sys.state_high - sys.state_low
    x = (sys.state_high + 0.3 * span).unsqueeze(0)  # outside S
    x[..., list(sys.angle_indices)] = 0.0
    out = sys.step(x, torch.zeros(1, sys.action_dim, dtype=F64), None)
    comps = [i for i in range(sys.state_dim) if i not in sys.angle_indices]
    # at least one non-angle component remains outside S after one step (no clamp in step)
    assert (out[0, comps] > sys.state_high[comps]).any()
    xc = sys.clamp_state(x.requires_grad_())
    assert (xc >= sys.state_low).all() and (xc <= sys.state_high).all()
    g = torch.Generator().manual_seed(1)
    xi = interior_states(sys, (5,), g)
    torch.testing.assert_close(sys.clamp_state(xi), xi)
    xi.requires_grad_()
    sys.clamp_state(xi).sum().backward()
    torch.testing.assert_close(xi.grad, torch.ones_like(xi))


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_step_gradcheck(name):
    sys = make(name)
    g = torch.Generator().manual_seed(2)
    x = interior_states(sys, (3,), g, frac=0.3).requires_grad_()
    u = rand_actions(sys, (3,), g).requires_grad_()
    w = sys.sample_disturbance((3,), g, dtype=F64).requires_grad_()
    assert torch.autograd.gradcheck(sys.step, (x, u, w))


def _fd_jacobians(sys, x, u, w, h=1e-6):
    """Central finite differences of step w.r.t. x, u, w at one point (float64)."""
    out = []
    for k, v in enumerate((x, u, w)):
        cols = []
        for i in range(v.shape[-1]):
            e = torch.zeros_like(v)
            e[i] = h
            args_p = [x, u, w]
            args_m = [x, u, w]
            args_p[k] = v + e
            args_m[k] = v - e
            cols.append((sys.step(*args_p) - sys.step(*args_m)) / (2 * h))
        out.append(torch.stack(cols, dim=-1))
    return out


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_linearize_matches_central_finite_differences(name):
    sys = make(name)
    g = torch.Generator().manual_seed(3)
    x = interior_states(sys, (5,), g, frac=0.6)
    u = rand_actions(sys, (5,), g)
    w = sys.sample_disturbance((5,), g, dtype=F64)
    A, B, E = sys.linearize(x, u, w)
    assert A.shape == (5, sys.state_dim, sys.state_dim)
    assert B.shape == (5, sys.state_dim, sys.action_dim)
    assert E.shape == (5, sys.state_dim, sys.disturbance_dim)
    for b in range(5):
        # the FD points must not cross the angle wrap
        assert (sys.step(x[b], u[b], w[b])[list(sys.angle_indices)].abs() < 3.0).all()
        Af, Bf, Ef = _fd_jacobians(sys, x[b], u[b], w[b])
        torch.testing.assert_close(A[b], Af, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(B[b], Bf, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(E[b], Ef, rtol=1e-6, atol=1e-7)
    # unbatched and multi-batch shapes agree
    A0, B0, E0 = sys.linearize(x[0], u[0], w[0])
    torch.testing.assert_close(A0, A[0])
    A2, B2, E2 = sys.linearize(x.reshape(5, 1, -1), u.reshape(5, 1, -1), w.reshape(5, 1, -1))
    torch.testing.assert_close(B2[:, 0], B)
    # step is exactly affine in (u, w) at fixed x (spec A §2.3: the HEAD model is exact)
    u2 = rand_actions(sys, (5,), g)
    w2 = sys.sample_disturbance((5,), g, dtype=F64)
    pred = sys.step(x, u, w) + (B @ (u2 - u).unsqueeze(-1)).squeeze(-1)
    pred = pred + (E @ (w2 - w).unsqueeze(-1)).squeeze(-1)
    keep = [i for i in range(sys.state_dim) if i not in sys.angle_indices]
    torch.testing.assert_close(sys.step(x, u2, w2)[:, keep], pred[:, keep], rtol=1e-10, atol=1e-10)


def test_linearize_is_differentiable_in_the_state():
    """B of the quadrotor depends on phi; d(sum B)/dx from autograd equals finite differences."""
    sys = PlanarQuadrotor()
    x = torch.tensor([0.1, -0.2, 0.15, 0.3, -0.4, 0.5], dtype=F64, requires_grad=True)
    u = torch.tensor([0.2, -0.1], dtype=F64)
    wts = torch.arange(12, dtype=F64).reshape(6, 2)
    (grad,) = torch.autograd.grad((sys.linearize(x, u)[1] * wts).sum(), x)
    h = 1e-6
    fd = torch.zeros(6, dtype=F64)
    for i in range(6):
        e = torch.zeros(6, dtype=F64)
        e[i] = h
        bp = sys.linearize((x + e).detach(), u)[1]
        bm = sys.linearize((x - e).detach(), u)[1]
        fd[i] = ((bp - bm) * wts).sum() / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8)
    assert grad[2].abs() > 0.01  # phi matters


def test_linearize_float32_and_empty_batch():
    sys = Pendulum()
    x = torch.zeros(0, 2)
    A, B, E = sys.linearize(x, torch.zeros(0, 1), torch.zeros(0, 1))
    assert A.shape == (0, 2, 2) and B.shape == (0, 2, 1) and E.shape == (0, 2, 1)
    A, B, E = sys.linearize(torch.zeros(2, 2), torch.zeros(2, 1), None)
    assert A.dtype == torch.float32
    expect = torch.tensor([[1 + 0.05**2 * 14.715, 0.05], [0.05 * 14.715, 1.0]])
    torch.testing.assert_close(A[0], expect)
    torch.testing.assert_close(B[1], torch.tensor([[0.05**2 * 90], [0.05 * 90]]))
    torch.testing.assert_close(E[1], torch.tensor([[0.05**2], [0.05]]))


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_control_affine_consistent_with_step(name):
    sys = make(name)
    assert sys.is_control_affine
    g = torch.Generator().manual_seed(4)
    x = interior_states(sys, (6,), g, frac=0.6)
    u = rand_actions(sys, (6,), g)
    f, gm = sys.control_affine(x)
    assert f.shape == (6, sys.state_dim) and gm.shape == (6, sys.state_dim, sys.action_dim)
    xdot = f + (gm @ u.unsqueeze(-1)).squeeze(-1)
    nxt = sys.step(x, u, None)  # w at the centre of W
    dt = sys.dt
    if sys.integrator == "explicit_euler":
        torch.testing.assert_close(nxt, x + dt * xdot, rtol=1e-12, atol=1e-12)
    else:
        assert sys.integrator == "semi_implicit_euler"
        p, v = list(sys.position_indices), list(sys.velocity_indices)
        assert sorted(p + v) == list(range(sys.state_dim))
        # velocities: v' = v + dt (f_v + g_v u); positions: p' = p + dt v', with f_p = v, g_p = 0
        torch.testing.assert_close(nxt[:, v], x[:, v] + dt * xdot[:, v], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(f[:, p], x[:, v])
        assert (gm[:, p] == 0).all()
        torch.testing.assert_close(nxt[:, p], x[:, p] + dt * nxt[:, v], rtol=1e-12, atol=1e-12)
    # discrete B equals the continuous g through the integrator
    _, B, _ = sys.linearize(x, u, None)
    if sys.integrator == "explicit_euler":
        torch.testing.assert_close(B, dt * gm)
    else:
        torch.testing.assert_close(B[:, v], dt * gm[:, v])
        torch.testing.assert_close(B[:, p], dt * dt * gm[:, v])


# --------------------------------------------------------------------------- rollout gradients
def _nominal_actions(sys: ControlSystem, x0, steps):
    """Stabilising-ish feedback so that 64-step rollouts stay away from the angle wrap."""
    xs, us = x0.clone(), []
    for _ in range(steps):
        if isinstance(sys, Pendulum):
            u = (-(0.4 * xs[..., :1] + 0.1 * xs[..., 1:])).clamp(-1, 1)
        elif isinstance(sys, CartPole):
            u = (2.0 * xs[..., 1:2] + 0.5 * xs[..., 3:4] + 0.05 * xs[..., 2:3]).clamp(-1, 1)
        elif isinstance(sys, PlanarQuadrotor):
            u = torch.stack((-0.5 * xs[..., 4], 0.5 * xs[..., 3]), -1).clamp(-1, 1)
        else:
            u = torch.zeros(*xs.shape[:-1], sys.action_dim, dtype=xs.dtype)
        us.append(u)
        xs = sys.step(xs, u, None)
    return torch.stack(us)


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_rollout_gradient_matches_finite_differences(name):
    sys = make(name)
    steps, nb = 64, 3
    g = torch.Generator().manual_seed(5)
    x0 = interior_states(sys, (nb,), g, frac=0.1)
    ws = sys.sample_disturbance((steps, nb), g, dtype=F64)
    u_nom = _nominal_actions(sys, x0, steps)
    du = 0.05 * (torch.rand(u_nom.shape, generator=g, dtype=F64) * 2 - 1)
    actions = (u_nom + du).requires_grad_()
    centre = 0.5 * (sys.state_low + sys.state_high)
    scale = 2.0 / (sys.state_high - sys.state_low)
    ang = list(sys.angle_indices)
    lin = [i for i in range(sys.state_dim) if i not in ang]

    def cost(acts):
        # quadratic in the scaled state, 2 (1 - cos) for angles (continuous across the wrap)
        x, total = x0, 0.0
        for t in range(steps):
            x = sys.step(x, acts[t], ws[t])
            total = total + (((x[..., lin] - centre[lin]) * scale[lin]) ** 2).sum()
            total = total + 2.0 * (1.0 - torch.cos(x[..., ang])).sum()
        return total

    (grad,) = torch.autograd.grad(cost(actions), actions)
    assert grad.abs().max() > 0
    h = 1e-6
    with torch.no_grad():
        for k in range(3):
            v = torch.randn(actions.shape, generator=g, dtype=F64)
            fd = (cost(actions + h * v) - cost(actions - h * v)) / (2 * h)
            ad = (grad * v).sum()
            assert abs(fd - ad) <= 1e-6 * abs(ad) + 1e-7, (k, float(fd), float(ad))


# --------------------------------------------------------------------------- disturbances
@pytest.mark.parametrize("name", list(SYSTEMS))
def test_sample_disturbance_uniform_in_W(name):
    sys = make(name)
    g = torch.Generator().manual_seed(6)
    w = sys.sample_disturbance((20000,), g, dtype=F64)
    assert w.shape == (20000, sys.disturbance_dim)
    lo, hi = sys.disturbance_low, sys.disturbance_high
    assert (w >= lo).all() and (w <= hi).all()
    torch.testing.assert_close(
        w.mean(0), 0.5 * (lo + hi), rtol=0, atol=0.02 * (hi - lo).max() + 1e-12
    )
    torch.testing.assert_close(w.std(0), (hi - lo) / math.sqrt(12), rtol=0.02, atol=1e-12)
    w32 = sys.sample_disturbance((2, 3), torch.Generator().manual_seed(0), dtype=torch.float32)
    assert w32.dtype == torch.float32 and w32.shape == (2, 3, sys.disturbance_dim)
    again = sys.sample_disturbance((2, 3), torch.Generator().manual_seed(0), dtype=torch.float32)
    torch.testing.assert_close(w32, again)


def test_cartpole_noise_is_applied_to_the_declared_component():
    """Spec A §9 P4: the declared W moves theta_ddot; next-state spread matches E G_W."""
    sys = CartPole()
    assert sys.disturbance_names == ("theta_ddot",)
    assert float(sys.disturbance_halfwidth[0]) == pytest.approx(0.1)
    n = 20000
    g = torch.Generator().manual_seed(7)
    x = torch.tensor([0.2, 0.1, -0.3, 0.4], dtype=F64).expand(n, -1)
    u = torch.full((n, 1), 0.3, dtype=F64)
    w = sys.sample_disturbance((n,), g, dtype=F64)
    nxt = sys.step(x, u, w)
    dev = nxt - sys.step(x, u, None)
    _, _, E = sys.linearize(x[:1], u[:1], None)
    half = E[0].abs() @ sys.disturbance_halfwidth  # interval hull of E G_W
    torch.testing.assert_close(half, torch.tensor([0.0, 0.02**2 * 0.1, 0.0, 0.02 * 0.1], dtype=F64))
    assert (dev.abs() <= half + 1e-15).all()
    # spread actually reaches the bound and has the uniform std
    for i in (1, 3):
        assert dev[:, i].abs().max() > 0.99 * half[i]
        assert dev[:, i].std() == pytest.approx(float(half[i]) / math.sqrt(3), rel=0.03)
    assert (dev[:, [0, 2]] == 0).all()


def test_quadrotor_and_pendulum_noise_spread_matches_E_G_W():
    for sys in (PlanarQuadrotor(), Pendulum()):
        n = 20000
        g = torch.Generator().manual_seed(8)
        x = torch.zeros(n, sys.state_dim, dtype=F64)
        u = torch.zeros(n, sys.action_dim, dtype=F64)
        dev = sys.step(x, u, sys.sample_disturbance((n,), g, dtype=F64)) - sys.step(x, u, None)
        E = sys.linearize(x[0], u[0], None)[2]
        half = E.abs() @ sys.disturbance_halfwidth
        assert (dev.abs() <= half + 1e-15).all()
        torch.testing.assert_close(dev.abs().max(0).values, half, rtol=0.01, atol=1e-15)


# --------------------------------------------------------------------------- boxes and metadata
@pytest.mark.parametrize("name", list(SYSTEMS))
def test_metadata_and_boxes(name):
    sys = make(name)
    n, m, q = sys.state_dim, sys.action_dim, sys.disturbance_dim
    assert len(sys.state_names) == n and len(sys.action_names) == m
    assert len(sys.disturbance_names) == q
    for t, d in (
        (sys.state_low, n), (sys.state_high, n), (sys.action_low, m), (sys.action_high, m),
        (sys.disturbance_low, q), (sys.disturbance_high, q),
    ):  # fmt: skip
        assert t.shape == (d,) and t.dtype == F64 and t.device.type == "cpu"
    assert (sys.action_low == -1).all() and (sys.action_high == 1).all()
    assert (sys.state_low < sys.state_high).all()
    for i in sys.angle_indices:
        assert sys.state_high[i] <= math.pi + 1e-12


def test_boxes_as_sets():
    sets = pytest.importorskip("safegrad.sets")
    if not hasattr(sets, "Box"):
        pytest.skip("safegrad.sets.Box not available yet")
    sys = PlanarQuadrotor()
    for box, (lo, hi) in (
        (sys.state_box(), (sys.state_low, sys.state_high)),
        (sys.action_box(), (sys.action_low, sys.action_high)),
        (sys.disturbance_box(), (sys.disturbance_low, sys.disturbance_high)),
    ):
        torch.testing.assert_close(box.low, lo)
        torch.testing.assert_close(box.high, hi)


def test_spec_constants_and_boxes():
    p = Pendulum()
    torch.testing.assert_close(p.state_high, torch.tensor([math.pi, 8.0], dtype=F64))
    torch.testing.assert_close(p.disturbance_high, torch.tensor([0.1], dtype=F64))
    q = PlanarQuadrotor()
    torch.testing.assert_close(
        q.state_high,
        torch.tensor([8, 8, math.pi / 12, 0.8, 1.0, math.pi / 2], dtype=F64),
    )
    torch.testing.assert_close(q.disturbance_high, torch.tensor([0.1, 0.1], dtype=F64))
    torch.testing.assert_close(
        q.physical_action(torch.tensor([1.0, -1.0], dtype=F64)),
        torch.tensor([9.81 + 6 / 7, -math.pi / 12], dtype=F64),
    )
    c = CartPole()
    torch.testing.assert_close(c.state_high, torch.tensor([10, math.pi, 10, 10], dtype=F64))
    h = HouseholdEnergy()
    torch.testing.assert_close(h.state_low, torch.tensor([0, 18, 10], dtype=F64))
    torch.testing.assert_close(h.state_high, torch.tensor([10, 24, 100], dtype=F64))
    torch.testing.assert_close(h.disturbance_centre, torch.tensor([10.8985], dtype=F64))
    torch.testing.assert_close(h.disturbance_halfwidth, torch.tensor([20.1985], dtype=F64))
    torch.testing.assert_close(
        h.physical_action(torch.tensor([[1.0, -1.0], [-0.5, 1.0]], dtype=F64)),
        torch.tensor([[2.0, 0.0], [-1.0, 5.0]], dtype=F64),
    )
    assert h.c0 == pytest.approx(1.36 / 62.4) and h.c4 == pytest.approx(3.01 / 1.1625)
    # HEAD variant: P_hp = 2.5 a1
    hh = HouseholdEnergy(p_hp_min=-2.5, p_hp_max=2.5)
    assert float(hh.physical_action(torch.tensor([0.0, -1.0]))[1]) == pytest.approx(-2.5)
    si = SingleIntegrator.reach_avoid()
    assert si.dt == 0.05 and si.gain == 1.0 and (si.disturbance_high == 0).all()
    ns = SingleIntegrator.navigate_seeker()
    assert ns.dt * ns.gain == pytest.approx(0.1)
    torch.testing.assert_close(ns.disturbance_high, torch.tensor([0.05, 0.05], dtype=F64))
    torch.testing.assert_close(ns.state_high, torch.tensor([8.0, 8.0], dtype=F64))
    # constructor keywords change the dynamics
    p2 = Pendulum(g=0.0, max_torque=1.0)
    out = p2.step(torch.tensor([0.5, 0.0]), torch.tensor([1.0]), torch.tensor([0.0]))
    torch.testing.assert_close(out, torch.tensor([0.5 + 0.05**2 * 3, 0.05 * 3]))


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", list(SYSTEMS))
def test_wrong_shapes_raise_clear_errors(name):
    sys = make(name)
    n, m, q = sys.state_dim, sys.action_dim, sys.disturbance_dim
    x, u, w = torch.zeros(4, n), torch.zeros(4, m), torch.zeros(4, q)
    with pytest.raises(ValueError, match=rf"x \(state\) must have shape \(\*batch, {n}\)"):
        sys.step(torch.zeros(4, n + 1), u, w)
    with pytest.raises(
        ValueError, match=rf"u \(normalised action\) must have shape \(\*batch, {m}\)"
    ):
        sys.step(x, torch.zeros(4, m + 1), w)
    with pytest.raises(ValueError, match=rf"w \(disturbance\) must have shape \(\*batch, {q}\)"):
        sys.step(x, u, torch.zeros(4, q + 1))
    with pytest.raises(ValueError, match="must have shape"):
        sys.step(torch.tensor(1.0), u, w)
    with pytest.raises(ValueError, match="do not broadcast"):
        sys.step(x, torch.zeros(3, m), w)
    with pytest.raises(TypeError, match="share a dtype"):
        sys.step(x, u.double(), w)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        sys.step([0.0] * n, u, w)
    with pytest.raises(TypeError, match="floating point"):
        sys.step(x.long(), u, w)
    with pytest.raises(ValueError, match="must have shape"):
        sys.linearize(x, torch.zeros(4, m + 2), w)
    with pytest.raises(ValueError, match="must have shape"):
        sys.control_affine(torch.zeros(4, n + 1))
    with pytest.raises(ValueError, match="must have shape"):
        sys.clamp_state(torch.zeros(4, n + 1))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="dt must be > 0"):
        Pendulum(dt=0.0)
    with pytest.raises(ValueError, match="w_max must be >= 0"):
        CartPole(w_max=-0.1)
    with pytest.raises(ValueError, match="state_bound"):
        PlanarQuadrotor(state_bound=(1.0, 2.0))
    with pytest.raises(ValueError, match="p_hp_max > p_hp_min"):
        HouseholdEnergy(p_hp_min=5.0, p_hp_max=0.0)
    with pytest.raises(ValueError, match="gain must be > 0"):
        SingleIntegrator(gain=-1.0)
    with pytest.raises(TypeError):
        SingleIntegrator.navigate_seeker(bogus=1.0)


def test_not_control_affine_base_raises():
    class Dummy(ControlSystem):
        name = "dummy"
        state_dim = action_dim = disturbance_dim = 1
        dt = 0.1
        state_names = ("x",)
        action_names = ("u",)
        disturbance_names = ("w",)

        def __init__(self):
            self._init_boxes((-1.0,), (1.0,), (0.0,), (0.0,))

        def _next_state(self, x, u, w, wrap):
            return x + self.dt * torch.tanh(x * u) + w

    d = Dummy()
    with pytest.raises(NotImplementedError, match="not control-affine"):
        d.control_affine(torch.zeros(1))
    A, B, E = d.linearize(torch.tensor([[0.5]]), torch.tensor([[2.0]]), None)
    sech2 = 1 / math.cosh(1.0) ** 2
    torch.testing.assert_close(A[0, 0, 0], torch.tensor(1 + 0.1 * 2 * sech2))
    torch.testing.assert_close(B[0, 0, 0], torch.tensor(0.1 * 0.5 * sech2))
    torch.testing.assert_close(E[0, 0, 0], torch.tensor(1.0))


# --------------------------------------------------------------------------- devices
def _devices():
    devs = ["meta"]  # shape-only device: catches tensors created on the CPU behind the user's back
    if torch.cuda.is_available():
        devs.append("cuda")
    return devs


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("name", list(SYSTEMS))
def test_follows_input_device(name, device):
    sys = make(name)
    x = torch.zeros(5, sys.state_dim, device=device)
    u = torch.zeros(5, sys.action_dim, device=device)
    w = sys.sample_disturbance((5,), dtype=torch.float32, device=device)
    assert w.device.type == device and w.shape == (5, sys.disturbance_dim)
    for out in (
        sys.step(x, u, w),
        sys.step(x, u, None),
        sys.clamp_state(x),
        *sys.control_affine(x),
    ):
        assert out.device.type == device and out.dtype == torch.float32
    if device != "meta":
        for out in sys.linearize(x, u, w):
            assert out.device.type == device
