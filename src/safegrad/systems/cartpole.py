"""Cart-pole (spec A §5.4; noise applied as declared, spec A §9 P4)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from safegrad.systems.base import ControlSystem, wrap_angle

__all__ = ["CartPole"]


class CartPole(ControlSystem):
    """Cart-pole with a force-controlled cart, ``theta = 0`` upright (spec A §5.4).

    State ``x = (x [m], theta [rad], x_dot [m/s], theta_dot [rad/s])``, action ``u in [-1, 1]``,
    force ``F = force_mag * u``.  Classic cart-pole equations (Barto, Sutton & Anderson 1983, as in
    Gymnasium's ``CartPole``; ``l`` is the pole *half*-length, ``M = m_c + m_p``)::

        temp        = (F + m_p l theta_dot^2 sin theta) / M
        theta_ddot0 = (g sin theta - cos theta * temp) / (l (4/3 - m_p cos^2 theta / M))
        x_ddot      = temp - m_p l theta_ddot0 cos theta / M
        theta_ddot  = theta_ddot0 + w

    integrated with semi-implicit Euler (spec A §5 common semantics): velocities first, then
    positions with the new velocities, ``theta`` wrapped.  ``S = [±10] x [±pi] x [±10] x [±10]``.

    Disturbance (spec A §9 P4; the spec gives no magnitude, so this is our choice): ``w`` is an
    additive angular-acceleration disturbance ``w in [-w_max, w_max]`` [rad/s^2] on
    ``theta_ddot`` (``q = 1``), default ``w_max = 0.1`` as for the pendulum.  It is *actually
    applied* to ``theta_ddot`` (the reference code read a zero-width component); it does not feed
    back into ``x_ddot`` within the step.  ``w_max = 0`` gives the noise-free paper-era setting.

    Control-affine: ``temp`` and hence both accelerations are affine in ``F``.

    Args:
        dt: step [s] (0.02).  g: gravity (9.8).  pole_half_length: l [m] (0.5).
        cart_mass: m_c [kg] (1.0).  pole_mass: m_p [kg] (0.1).  force_mag: force per unit action
        [N] (10).  w_max: half-width of W on theta_ddot (0.1).  position_bound (10),
        velocity_bound (10), angular_velocity_bound (10): the box S.
    """

    name = "cartpole"
    state_dim = 4
    action_dim = 1
    disturbance_dim = 1
    state_names = ("x", "theta", "x_dot", "theta_dot")
    action_names = ("force",)
    disturbance_names = ("theta_ddot",)
    angle_indices = (1,)
    integrator = "semi_implicit_euler"
    position_indices = (0, 1)
    velocity_indices = (2, 3)
    is_control_affine = True

    def __init__(
        self,
        *,
        dt: float = 0.02,
        g: float = 9.8,
        pole_half_length: float = 0.5,
        cart_mass: float = 1.0,
        pole_mass: float = 0.1,
        force_mag: float = 10.0,
        w_max: float = 0.1,
        position_bound: float = 10.0,
        velocity_bound: float = 10.0,
        angular_velocity_bound: float = 10.0,
    ) -> None:
        pos = dict(
            dt=dt,
            pole_half_length=pole_half_length,
            cart_mass=cart_mass,
            pole_mass=pole_mass,
            position_bound=position_bound,
            velocity_bound=velocity_bound,
            angular_velocity_bound=angular_velocity_bound,
        )
        for k, v in pos.items():
            if not v > 0:
                raise ValueError(f"CartPole: {k} must be > 0, got {v}")
        if not w_max >= 0:
            raise ValueError(f"CartPole: w_max must be >= 0, got {w_max}")
        self.dt = float(dt)
        self.g = float(g)
        self.pole_half_length = float(pole_half_length)
        self.cart_mass = float(cart_mass)
        self.pole_mass = float(pole_mass)
        self.force_mag = float(force_mag)
        total = self.cart_mass + self.pole_mass
        self._c_force = self.force_mag / total  # temp per unit action
        self._c_pml = self.pole_mass * self.pole_half_length / total  # m_p l / M
        self._c_mp = self.pole_mass / total  # m_p / M
        self._l = self.pole_half_length
        hi = (float(position_bound), math.pi, float(velocity_bound), float(angular_velocity_bound))
        self._init_boxes(tuple(-v for v in hi), hi, (-float(w_max),), (float(w_max),))

    def _drift_and_gain(self, th: Tensor, thd: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Accelerations ``x_ddot = ax + bx u``, ``theta_ddot0 = at + bt u`` (all ``(*batch,)``)."""
        s, c = torch.sin(th), torch.cos(th)
        t0 = self._c_pml * thd * thd * s
        den = self._l * (4.0 / 3.0 - self._c_mp * c * c)
        at = (self.g * s - c * t0) / den
        bt = (-self._c_force) * c / den
        ax = t0 - self._c_pml * c * at
        bx = self._c_force - self._c_pml * c * bt
        return ax, bx, at, bt

    def _next_state(self, x: Tensor, u: Tensor, w: Tensor, wrap: bool) -> Tensor:
        th, thd = x[..., 1], x[..., 3]
        s, c = torch.sin(th), torch.cos(th)
        temp = torch.add(self._c_pml * thd * thd * s, u[..., 0], alpha=self._c_force)
        thdd0 = (self.g * s - c * temp) / (self._l * (4.0 / 3.0 - self._c_mp * c * c))
        xdd = temp - self._c_pml * c * thdd0
        xd_n = torch.add(x[..., 2], xdd, alpha=self.dt)
        thd_n = torch.add(thd, thdd0 + w[..., 0], alpha=self.dt)
        x_n = torch.add(x[..., 0], xd_n, alpha=self.dt)
        th_n = torch.add(th, thd_n, alpha=self.dt)
        if wrap:
            th_n = wrap_angle(th_n)
        return torch.stack((x_n, th_n, xd_n, thd_n), dim=-1)

    def control_affine(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``xdot = f(x) + g(x) u`` with ``w = c_W``; ``f (*B, 4)``, ``g (*B, 4, 1)``."""
        x = self._check(x, self.state_dim, "x (state)")
        ax, bx, at, bt = self._drift_and_gain(x[..., 1], x[..., 3])
        f = torch.stack((x[..., 2], x[..., 3], ax, at + self._w_centre[0]), dim=-1)
        zero = torch.zeros_like(bx)
        g = torch.stack((zero, zero, bx, bt), dim=-1).unsqueeze(-1)
        return f, g

    def physical_action(self, u: Tensor) -> Tensor:
        """Force ``F = force_mag * u`` [N], ``(*batch, 1)``."""
        return self._check(u, self.action_dim, "u (normalised action)") * self.force_mag
