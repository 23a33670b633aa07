"""2-D single integrator (spec B §7 reach-avoid; spec A §5.4 NavigateSeeker)."""

from __future__ import annotations

import torch
from torch import Tensor

from safegrad.systems.base import ControlSystem

__all__ = ["SingleIntegrator"]


class SingleIntegrator(ControlSystem):
    """Planar single integrator ``p_dot = gain * u`` with explicit Euler and additive noise.

    State ``p = (p_x, p_y)`` [m], action ``u in [-1, 1]^2`` (``gain`` = ``u_max`` [m/s]),
    disturbance ``w in [-w_max, w_max]^2`` [m] added to the position once per step::

        p' = p + dt * gain * u + w

    * ReachAvoid (spec B §7, recommended values): ``dt = 0.05``, ``gain = u_max = 1``, no noise
      (``w_max = 0``): :meth:`reach_avoid`.
    * NavigateSeeker (spec A §5.4): ``s' = s + 0.1 a + w``, ``w in [±0.05]^2``, ``S = [±8]^2``,
      i.e. ``dt * gain = 0.1``: :meth:`navigate_seeker` (``dt = 0.1``, ``gain = 1``).

    Linear in ``(p, u, w)``: ``A = I``, ``B = dt gain I``, ``E = I``.  Control-affine
    (continuous time, ``w`` at the centre ``c_W`` of W, which is a per-step displacement):
    ``f = c_W / dt`` (zero for the symmetric default), ``g = gain I`` (spec B §7: ``f = 0``,
    ``g = I_2`` for ``u_max = 1``).

    Args:
        dt: step [s] (0.05).  gain: speed per unit action ``u_max`` [m/s] (1).  w_max: half-width
        of W [m] (0).  state_bound: half-width of the square S (8).
    """

    name = "single_integrator"
    state_dim = 2
    action_dim = 2
    disturbance_dim = 2
    state_names = ("p_x", "p_y")
    action_names = ("v_x", "v_y")
    disturbance_names = ("dp_x", "dp_y")
    angle_indices = ()
    integrator = "explicit_euler"
    is_control_affine = True

    def __init__(
        self,
        *,
        dt: float = 0.05,
        gain: float = 1.0,
        w_max: float = 0.0,
        state_bound: float = 8.0,
    ) -> None:
        if not dt > 0:
            raise ValueError(f"SingleIntegrator: dt must be > 0, got {dt}")
        if not gain > 0:
            raise ValueError(f"SingleIntegrator: gain must be > 0, got {gain}")
        if not w_max >= 0:
            raise ValueError(f"SingleIntegrator: w_max must be >= 0, got {w_max}")
        if not state_bound > 0:
            raise ValueError(f"SingleIntegrator: state_bound must be > 0, got {state_bound}")
        self.dt = float(dt)
        self.gain = float(gain)
        self._c_u = self.dt * self.gain
        sb, wm = float(state_bound), float(w_max)
        self._init_boxes((-sb, -sb), (sb, sb), (-wm, -wm), (wm, wm))

    @classmethod
    def reach_avoid(cls, **overrides: float) -> SingleIntegrator:
        """Spec B §7 (recommended): ``dt = 0.05``, ``u_max = 1``, noise-free."""
        kw = dict(dt=0.05, gain=1.0, w_max=0.0, state_bound=8.0)
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def navigate_seeker(cls, **overrides: float) -> SingleIntegrator:
        """Spec A §5.4: ``s' = s + 0.1 a + w``, ``w in [±0.05]^2``, ``S = [±8]^2``."""
        kw = dict(dt=0.1, gain=1.0, w_max=0.05, state_bound=8.0)
        kw.update(overrides)
        return cls(**kw)

    def _next_state(self, x: Tensor, u: Tensor, w: Tensor, wrap: bool) -> Tensor:
        return torch.add(x + w, u, alpha=self._c_u)

    def control_affine(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``f = c_W / dt`` ``(*B, 2)``, ``g = gain I`` ``(*B, 2, 2)``."""
        x = self._check(x, self.state_dim, "x (state)")
        c = self._consts(x.device, x.dtype)
        f = (c["dist_centre"] / self.dt).expand(*x.shape[:-1], 2)
        return f, c["g"].expand(*x.shape[:-1], 2, 2)

    def _extra_consts(self, device: torch.device, dtype: torch.dtype) -> dict[str, Tensor]:
        return {"g": self.gain * torch.eye(2, dtype=dtype, device=device)}

    def physical_action(self, u: Tensor) -> Tensor:
        """Velocity ``gain * u`` [m/s], ``(*batch, 2)``."""
        return self._check(u, self.action_dim, "u (normalised action)") * self.gain
