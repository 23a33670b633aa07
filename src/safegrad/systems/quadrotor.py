"""Planar (2-D longitudinal) quadrotor ("BalanceQuadrotor", spec A §5.2)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from safegrad.systems.base import ControlSystem, wrap_angle

__all__ = ["PlanarQuadrotor"]


class PlanarQuadrotor(ControlSystem):
    """Planar quadrotor after Mitchell et al. (HSCC 2019), spec A §5.2.

    State ``x = (x, z, phi, x_dot, z_dot, phi_dot)`` [m, m, rad, m/s, m/s, rad/s]; action
    ``u = (thrust, roll command) in [-1, 1]^2`` with ``T = thrust_gain u_0 + g`` (mass-normalised
    thrust [m/s^2]) and ``phi_cmd = roll_gain u_1`` [rad]; disturbance ``w = (w_x, w_z)`` [m/s^2]
    in ``[-w_max, w_max]^2`` on the translational accelerations.  Semi-implicit Euler::

        x_ddot   = T sin(phi) + w_x
        z_ddot   = T cos(phi) - g + w_z
        phi_ddot = K2 phi_cmd - K0 phi - K1 phi_dot
        v' = v + dt * a;   p' = p + dt * v'   (p = (x, z, phi), v = (x_dot, z_dot, phi_dot))

    ``phi`` is wrapped to ``[-pi, pi)`` (never active inside S).
    ``S = [±8] x [±8] x [±pi/12] x [±0.8] x [±1.0] x [±pi/2]``.  Control-affine with
    ``g(x)`` depending on ``phi`` (the reason the safeguard must re-linearise per state, P6).

    Args:
        dt (0.05), g (9.81), k0 (70), k1 (17), k2 (55), thrust_gain (6/7), roll_gain (pi/12),
        w_max (0.1), state_bound: half-widths of S (defaults above).
    """

    name = "quadrotor"
    state_dim = 6
    action_dim = 2
    disturbance_dim = 2
    state_names = ("x", "z", "phi", "x_dot", "z_dot", "phi_dot")
    action_names = ("thrust", "roll_cmd")
    disturbance_names = ("x_ddot", "z_ddot")
    angle_indices = (2,)
    integrator = "semi_implicit_euler"
    position_indices = (0, 1, 2)
    velocity_indices = (3, 4, 5)
    is_control_affine = True

    def __init__(
        self,
        *,
        dt: float = 0.05,
        g: float = 9.81,
        k0: float = 70.0,
        k1: float = 17.0,
        k2: float = 55.0,
        thrust_gain: float = 6.0 / 7.0,
        roll_gain: float = math.pi / 12.0,
        w_max: float = 0.1,
        state_bound: tuple[float, ...] = (8.0, 8.0, math.pi / 12.0, 0.8, 1.0, math.pi / 2.0),
    ) -> None:
        if not dt > 0:
            raise ValueError(f"PlanarQuadrotor: dt must be > 0, got {dt}")
        if not w_max >= 0:
            raise ValueError(f"PlanarQuadrotor: w_max must be >= 0, got {w_max}")
        hi = tuple(float(v) for v in state_bound)
        if len(hi) != 6 or not all(v > 0 for v in hi):
            raise ValueError(
                f"PlanarQuadrotor: state_bound must be 6 positive half-widths, got {state_bound!r}"
            )
        self.dt = float(dt)
        self.g = float(g)
        self.k0, self.k1, self.k2 = float(k0), float(k1), float(k2)
        self.thrust_gain = float(thrust_gain)
        self.roll_gain = float(roll_gain)
        self._c_roll = self.k2 * self.roll_gain  # phi_ddot per unit u_1
        wm = float(w_max)
        self._init_boxes(tuple(-v for v in hi), hi, (-wm, -wm), (wm, wm))

    def _next_state(self, x: Tensor, u: Tensor, w: Tensor, wrap: bool) -> Tensor:
        dt = self.dt
        phi, phid = x[..., 2], x[..., 5]
        thrust = self.thrust_gain * u[..., 0] + self.g
        xdd = torch.addcmul(w[..., 0], thrust, torch.sin(phi))
        zdd = torch.addcmul(w[..., 1] - self.g, thrust, torch.cos(phi))
        phidd = self._c_roll * u[..., 1] - self.k0 * phi - self.k1 * phid
        xd_n = torch.add(x[..., 3], xdd, alpha=dt)
        zd_n = torch.add(x[..., 4], zdd, alpha=dt)
        phid_n = torch.add(phid, phidd, alpha=dt)
        phi_n = torch.add(phi, phid_n, alpha=dt)
        if wrap:
            phi_n = wrap_angle(phi_n)
        return torch.stack(
            (
                torch.add(x[..., 0], xd_n, alpha=dt),
                torch.add(x[..., 1], zd_n, alpha=dt),
                phi_n,
                xd_n,
                zd_n,
                phid_n,
            ),
            dim=-1,
        )

    def control_affine(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``xdot = f(x) + g(x) u`` with ``w = c_W``; ``f (*B, 6)``, ``g (*B, 6, 2)``."""
        x = self._check(x, self.state_dim, "x (state)")
        phi, phid = x[..., 2], x[..., 5]
        s, c = torch.sin(phi), torch.cos(phi)
        wx, wz = self._w_centre
        f = torch.stack(
            (
                x[..., 3],
                x[..., 4],
                phid,
                self.g * s + wx,
                self.g * c - self.g + wz,
                -self.k0 * phi - self.k1 * phid,
            ),
            dim=-1,
        )
        g = x.new_zeros(*x.shape[:-1], 6, 2)
        g[..., 3, 0] = self.thrust_gain * s
        g[..., 4, 0] = self.thrust_gain * c
        g[..., 5, 1] = self._c_roll
        return f, g

    def physical_action(self, u: Tensor) -> Tensor:
        """``(T [m/s^2], phi_cmd [rad])``, ``(*batch, 2)``."""
        u = self._check(u, self.action_dim, "u (normalised action)")
        return torch.stack((self.thrust_gain * u[..., 0] + self.g, self.roll_gain * u[..., 1]), -1)
