"""Inverted pendulum ("BalancePendulum", spec A §5.1)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from safegrad.systems.base import ControlSystem, wrap_angle

__all__ = ["Pendulum"]


class Pendulum(ControlSystem):
    """Torque-controlled inverted pendulum, ``theta = 0`` upright (spec A §5.1).

    State ``x = (theta [rad], theta_dot [rad/s])``, action ``u in [-1, 1]``, torque
    ``tau = max_torque * u``, disturbance ``w in [-w_max, w_max]`` [rad/s^2] on the angular
    acceleration (the paper's ``W = <0, diag(0, 0.1)>``, stored here as its non-zero component,
    ``q = 1``).  Semi-implicit Euler::

        theta_ddot = (3 g / (2 l)) sin(theta) + (3 / (m l^2)) tau + w
        theta_dot' = theta_dot + dt theta_ddot
        theta'     = wrap(theta + dt theta_dot')

    ``S = [-pi, pi] x [-8, 8]``.  Control-affine: ``f = (theta_dot, (3g/2l) sin theta + c_W)``,
    ``g = (0, 3 max_torque / (m l^2))``.

    Args:
        dt: step [s] (0.05).  g: gravity [m/s^2] (9.81).  length: l [m] (1).  mass: m [kg] (1).
        max_torque: torque per unit action [N m] (30).  w_max: half-width of W (0.1).
        max_speed: bound on ``|theta_dot|`` in S (8).
    """

    name = "pendulum"
    state_dim = 2
    action_dim = 1
    disturbance_dim = 1
    state_names = ("theta", "theta_dot")
    action_names = ("torque",)
    disturbance_names = ("theta_ddot",)
    angle_indices = (0,)
    integrator = "semi_implicit_euler"
    position_indices = (0,)
    velocity_indices = (1,)
    is_control_affine = True

    def __init__(
        self,
        *,
        dt: float = 0.05,
        g: float = 9.81,
        length: float = 1.0,
        mass: float = 1.0,
        max_torque: float = 30.0,
        w_max: float = 0.1,
        max_speed: float = 8.0,
    ) -> None:
        for k, v in dict(dt=dt, length=length, mass=mass, max_speed=max_speed).items():
            if not v > 0:
                raise ValueError(f"Pendulum: {k} must be > 0, got {v}")
        if not w_max >= 0:
            raise ValueError(f"Pendulum: w_max must be >= 0, got {w_max}")
        self.dt = float(dt)
        self.g = float(g)
        self.length = float(length)
        self.mass = float(mass)
        self.max_torque = float(max_torque)
        # Python-float coefficients for the hot path.
        self._c_sin = 3.0 * self.g / (2.0 * self.length)
        self._c_u = 3.0 * self.max_torque / (self.mass * self.length**2)
        self._init_boxes(
            (-math.pi, -max_speed), (math.pi, max_speed), (-float(w_max),), (float(w_max),)
        )

    def _next_state(self, x: Tensor, u: Tensor, w: Tensor, wrap: bool) -> Tensor:
        th = x[..., 0]
        thdd = torch.add(
            torch.add(self._c_sin * torch.sin(th), u[..., 0], alpha=self._c_u), w[..., 0]
        )
        thd_n = torch.add(x[..., 1], thdd, alpha=self.dt)
        th_n = torch.add(th, thd_n, alpha=self.dt)
        if wrap:
            th_n = wrap_angle(th_n)
        return torch.stack((th_n, thd_n), dim=-1)

    def control_affine(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``xdot = f(x) + g(x) u`` at ``w = c_W`` (spec A §5.1); ``f (*B,2)``, ``g (*B,2,1)``."""
        x = self._check(x, self.state_dim, "x (state)")
        f = torch.stack((x[..., 1], self._c_sin * torch.sin(x[..., 0]) + self._w_centre[0]), dim=-1)
        g = self._consts(x.device, x.dtype)["g"].expand(*x.shape[:-1], 2, 1)
        return f, g

    def _extra_consts(self, device: torch.device, dtype: torch.dtype) -> dict[str, Tensor]:
        return {"g": torch.tensor([[0.0], [self._c_u]], dtype=dtype, device=device)}

    def physical_action(self, u: Tensor) -> Tensor:
        """Torque ``tau = max_torque * u`` [N m], ``(*batch, 1)``."""
        return self._check(u, self.action_dim, "u (normalised action)") * self.max_torque
