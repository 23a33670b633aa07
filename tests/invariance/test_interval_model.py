"""Interval arithmetic, acceleration models and the certified remainder (spec A §11.1)."""

import math

import numpy as np
import pytest
import torch

from safegrad.invariance.interval import Dual, Interval, cos, sin, sqr
from safegrad.invariance.model import accel_model, fit_linear_model
from safegrad.systems import CartPole, Pendulum, PlanarQuadrotor

RNG = np.random.default_rng(0)


def _rand_interval(n, scale=3.0):
    a, b = RNG.uniform(-scale, scale, (2, n))
    return Interval(np.minimum(a, b), np.maximum(a, b))


def _points(iv, k=64):
    u = RNG.uniform(0, 1, (k, iv.lo.shape[0]))
    return iv.lo + u * (iv.hi - iv.lo)


@pytest.mark.parametrize(
    "op",
    [
        lambda x, y: x + y,
        lambda x, y: x - y,
        lambda x, y: x * y,
        lambda x, y: sqr(x) - 2.0 * y,
        lambda x, y: sin(x) * cos(y),
        lambda x, y: x / (sqr(y) + 1.0),
    ],
)
def test_interval_ops_enclose_sampled_values(op):
    X, Y = _rand_interval(500, 7.0), _rand_interval(500, 7.0)
    out = op(X, Y)
    px, py = _points(X), _points(Y)
    vals = op(px, py)
    assert (out.lo <= vals).all() and (vals <= out.hi).all()
    # endpoints are attained up to rounding for monotone pieces (tightness of sin/cos)
    s = sin(Interval(np.array([0.0, 1.0]), np.array([math.pi, 1.2])))
    np.testing.assert_allclose(s.hi, [1.0, math.sin(1.2)], rtol=1e-14)
    np.testing.assert_allclose(s.lo, [0.0, math.sin(1.0)], atol=1e-15, rtol=1e-14)


def test_interval_errors():
    with pytest.raises(ValueError, match="lo <= hi"):
        Interval(1.0, 0.0)
    with pytest.raises(ZeroDivisionError):
        Interval(1.0) / Interval(-1.0, 1.0)


def test_dual_gradient_encloses_finite_differences():
    lo = RNG.uniform(-2, 2, 200)
    cell = Interval(lo, lo + 0.3)
    xd = Dual.variable(cell, 0, 1)
    f = sin(xd) * xd + sqr(xd) / (cos(xd) * cos(xd) + 1.0)
    x = _points(cell, 16)
    h = 1e-6

    def fn(v):
        return np.sin(v) * v + v * v / (np.cos(v) ** 2 + 1.0)

    fd = (fn(x + h) - fn(x - h)) / (2 * h)
    g = f.grad[0]
    assert (g.lo - 1e-6 <= fd).all() and (fd <= g.hi + 1e-6).all()


@pytest.mark.parametrize("system", [Pendulum(), PlanarQuadrotor(), CartPole()])
def test_accel_model_reproduces_the_simulator(system):
    model = accel_model(system)
    lo, hi = system.state_low.numpy(), system.state_high.numpy()
    n, m, q = system.state_dim, system.action_dim, system.disturbance_dim
    x = RNG.uniform(lo, hi, (256, n))
    u = RNG.uniform(-1, 1, (256, m))
    w = RNG.uniform(system.disturbance_low.numpy(), system.disturbance_high.numpy(), (256, q))
    ref = system._next_state(torch.tensor(x), torch.tensor(u), torch.tensor(w), False).numpy()
    np.testing.assert_allclose(model.step_numpy(x, u, w), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "system, lo, hi",
    [
        (Pendulum(), [-2.64, -8.0], [2.64, 8.0]),
        (PlanarQuadrotor(), [-8, -8, -0.15, -0.8, -1, -1.5], [8, 8, 0.15, 0.8, 1, 1.5]),
        (CartPole(), [-10, -0.3, -10, -2.0], [10, 0.3, 10, 2.0]),
    ],
)
def test_remainder_box_is_certified_and_tight(system, lo, hi):
    model = accel_model(system)
    lm = fit_linear_model(model, lo, hi, cell_budget=20_000, fit_points=15)
    n, m, q = system.state_dim, system.action_dim, system.disturbance_dim
    N = 20_000
    x = RNG.uniform(lo, hi, (N, n))
    u = RNG.uniform(-1, 1, (N, m))
    w = RNG.uniform(system.disturbance_low.numpy(), system.disturbance_high.numpy(), (N, q))
    nxt = system._next_state(torch.tensor(x), torch.tensor(u), torch.tensor(w), False).numpy()
    # x' - (A x + B u + f0 + E (w - c_W)) must be M_a rho with rho in the certified box
    wc = system.disturbance_centre.numpy()
    res = nxt - (x @ lm.A.T + u @ lm.B.T + lm.f0 + (w - wc) @ lm.E.T)
    rho_mid = 0.5 * (lm.rho_lo + lm.rho_hi)
    rho = np.linalg.lstsq(model.M_a, res.T, rcond=None)[0].T + rho_mid
    assert (rho >= lm.rho_lo - 1e-9).all() and (rho <= lm.rho_hi + 1e-9).all()
    np.testing.assert_allclose(model.M_a @ (rho - rho_mid).T, res.T, atol=1e-10)
    # tight: the sampled remainder reaches most of the certified width where it is non-trivial
    width = lm.rho_hi - lm.rho_lo
    sampled = rho.max(0) - rho.min(0)
    big = width > 1e-6
    assert (sampled[big] >= 0.8 * width[big]).all()


def test_fit_linear_model_errors():
    model = accel_model(Pendulum())
    with pytest.raises(ValueError, match="shapes"):
        fit_linear_model(model, [0.0], [1.0])
    with pytest.raises(ValueError, match="exceed"):
        fit_linear_model(model, [1.0, 0.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="fit must be"):
        fit_linear_model(model, [-1.0, -1.0], [1.0, 1.0], fit="spline")
