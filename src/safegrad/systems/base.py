"""Base class for batched, differentiable discrete-time dynamics ``x' = F(x, u, w)``.

Conventions (spec A §2.1, §5 "common simulator semantics"):

* ``x`` is the state ``(*batch, n)``, ``u`` the **normalised** action ``(*batch, m)`` in
  ``A = [-1, 1]^m`` (every system rescales internally to physical units), ``w`` the disturbance
  ``(*batch, q)`` in the box ``W``.
* :meth:`ControlSystem.step` applies the spec's integrator (semi-implicit Euler where the spec says
  so) and wraps angle components to ``[-pi, pi)``.  It does **not** clamp to the feasible state box
  ``S``; that is :meth:`ControlSystem.clamp_state`, which the environment calls.
* :meth:`ControlSystem.linearize` returns the Jacobians ``A = dF/dx``, ``B = dF/du``,
  ``E = dF/dw`` of the unwrapped step (spec A §2.3, current-state linearisation), computed with
  ``torch.func.jacrev`` under ``torch.func.vmap``.  The result is differentiable with respect to
  the linearisation point (gradients flow into ``x`` through ``B(x)``).
* :meth:`ControlSystem.control_affine` gives the continuous-time control-affine form
  ``xdot = f(x) + g(x) u`` with ``w`` at the centre of ``W`` (used by CBF safeguards).

Everything is batched over arbitrary leading dimensions, follows the dtype and device of the
inputs, and works in float32 and float64.  The boxes are stored once as float64 CPU tensors; copies
per ``(device, dtype)`` are cached so the hot path creates no tensors from Python numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["ControlSystem", "wrap_angle"]

_PI = math.pi
_TWO_PI = 2.0 * math.pi


def wrap_angle(theta: Tensor) -> Tensor:
    """Wrap angles to ``[-pi, pi)`` (spec A §5: angles wrapped after every step).

    ``remainder(theta + pi, 2 pi) - pi``: two kernels, derivative 1 everywhere (as for the
    reference code's ``atan2(sin, cos)``, whose range is ``(-pi, pi]`` instead).  Angles a few ulp
    below ``-pi`` wrap to the correctly rounded value, which can be ``pi`` itself.

    Args:
        theta: ``(*batch,)`` angles [rad].

    Returns:
        ``(*batch,)`` wrapped angles.
    """
    return torch.remainder(theta + _PI, _TWO_PI) - _PI


def _as_bound(values: Sequence[float] | Tensor, dim: int, what: str) -> Tensor:
    t = torch.as_tensor(values, dtype=torch.float64).detach().clone().reshape(-1)
    if t.numel() != dim:
        raise ValueError(f"{what} must have {dim} entries, got {t.numel()}: {values!r}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{what} must be finite, got {t.tolist()}")
    return t


class ControlSystem:
    """Batched differentiable dynamics ``x' = F(x, u, w)`` (spec A §2.1, §2.3, §5).

    Subclasses set the class attributes below, call :meth:`_init_boxes` in ``__init__`` and
    implement :meth:`_next_state` (and :meth:`control_affine` if control-affine).

    Attributes:
        name: short identifier, e.g. ``"pendulum"``.
        state_dim, action_dim, disturbance_dim: ``n``, ``m``, ``q``.
        dt: integration step [s] (the household uses hours).
        state_names, action_names, disturbance_names: component names.
        angle_indices: state components wrapped to ``[-pi, pi)`` by :meth:`step`.
        integrator: ``"semi_implicit_euler"`` or ``"explicit_euler"``.
        position_indices, velocity_indices: for semi-implicit Euler, position
            ``position_indices[k]`` is integrated with the *new* velocity ``velocity_indices[k]``
            (``p' = p + dt v'``); empty for explicit Euler.
        state_low, state_high: ``(n,)`` float64 CPU, the feasible state box ``S``.
        action_low, action_high: ``(m,)`` float64 CPU, the normalised action box ``[-1, 1]^m``.
        disturbance_low, disturbance_high: ``(q,)`` float64 CPU, the disturbance box ``W``.
        is_control_affine: whether :meth:`control_affine` is available.
    """

    name: str = "system"
    state_dim: int
    action_dim: int
    disturbance_dim: int
    dt: float
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    disturbance_names: tuple[str, ...]
    angle_indices: tuple[int, ...] = ()
    integrator: str = "explicit_euler"
    position_indices: tuple[int, ...] = ()
    velocity_indices: tuple[int, ...] = ()
    is_control_affine: bool = False

    state_low: Tensor
    state_high: Tensor
    action_low: Tensor
    action_high: Tensor
    disturbance_low: Tensor
    disturbance_high: Tensor

    # ------------------------------------------------------------------ construction helpers
    def _init_boxes(
        self,
        state_low: Sequence[float] | Tensor,
        state_high: Sequence[float] | Tensor,
        disturbance_low: Sequence[float] | Tensor,
        disturbance_high: Sequence[float] | Tensor,
    ) -> None:
        """Store ``S``, ``A = [-1, 1]^m`` and ``W`` as float64 CPU tensors and validate them."""
        n, m, q = self.state_dim, self.action_dim, self.disturbance_dim
        self.state_low = _as_bound(state_low, n, f"{type(self).__name__} state_low")
        self.state_high = _as_bound(state_high, n, f"{type(self).__name__} state_high")
        self.action_low = -torch.ones(m, dtype=torch.float64)
        self.action_high = torch.ones(m, dtype=torch.float64)
        self.disturbance_low = _as_bound(disturbance_low, q, f"{type(self).__name__} W low")
        self.disturbance_high = _as_bound(disturbance_high, q, f"{type(self).__name__} W high")
        if (self.state_low >= self.state_high).any():
            raise ValueError(
                f"{type(self).__name__}: state box needs low < high, got low="
                f"{self.state_low.tolist()}, high={self.state_high.tolist()}"
            )
        if (self.disturbance_low > self.disturbance_high).any():
            raise ValueError(
                f"{type(self).__name__}: disturbance box needs low <= high, got low="
                f"{self.disturbance_low.tolist()}, high={self.disturbance_high.tolist()}"
            )
        # Python floats for hot paths (no ``.item()`` per call).
        self._w_centre: tuple[float, ...] = tuple(
            0.5 * (lo + hi)
            for lo, hi in zip(self.disturbance_low.tolist(), self.disturbance_high.tolist())
        )
        self._cache: dict[tuple[torch.device, torch.dtype], dict[str, Tensor]] = {}

    def _consts(self, device: torch.device, dtype: torch.dtype) -> dict[str, Tensor]:
        """Boxes converted to ``(device, dtype)``, cached (no tensor creation on the hot path)."""
        key = (device, dtype)
        c = self._cache.get(key)
        if c is None:
            c = {
                "state_low": self.state_low.to(device=device, dtype=dtype),
                "state_high": self.state_high.to(device=device, dtype=dtype),
                "dist_low": self.disturbance_low.to(device=device, dtype=dtype),
                "dist_high": self.disturbance_high.to(device=device, dtype=dtype),
                "dist_centre": (0.5 * (self.disturbance_low + self.disturbance_high)).to(
                    device=device, dtype=dtype
                ),
                "dist_width": (self.disturbance_high - self.disturbance_low).to(
                    device=device, dtype=dtype
                ),
            }
            c.update(self._extra_consts(device, dtype))
            self._cache[key] = c
        return c

    def _extra_consts(self, device: torch.device, dtype: torch.dtype) -> dict[str, Tensor]:
        """Subclass hook: further constant tensors to cache per ``(device, dtype)``."""
        return {}

    # ------------------------------------------------------------------ derived properties
    @property
    def disturbance_centre(self) -> Tensor:
        """``(q,)`` float64 CPU centre ``c_W`` of the disturbance box."""
        return 0.5 * (self.disturbance_low + self.disturbance_high)

    @property
    def disturbance_halfwidth(self) -> Tensor:
        """``(q,)`` float64 CPU half-widths of ``W`` (the diagonal of ``G_W``)."""
        return 0.5 * (self.disturbance_high - self.disturbance_low)

    # ------------------------------------------------------------------ validation
    def _check(self, t: object, dim: int, what: str) -> Tensor:
        if not isinstance(t, Tensor):
            raise TypeError(f"{self.name}: {what} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim == 0 or t.shape[-1] != dim:
            raise ValueError(
                f"{self.name}: {what} must have shape (*batch, {dim}), got {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise TypeError(f"{self.name}: {what} must be floating point, got {t.dtype}")
        return t

    def _prepare(self, x: Tensor, u: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Validate shapes/dtypes; ``w=None`` means the centre of ``W``; broadcast batch dims."""
        x = self._check(x, self.state_dim, "x (state)")
        u = self._check(u, self.action_dim, "u (normalised action)")
        if w is None:
            # (q,) broadcasts against any batch in the elementwise dynamics; expanded only if
            # x and u need broadcasting anyway (or by linearize, for vmap).
            w = self._consts(x.device, x.dtype)["dist_centre"]
            bw = x.shape[:-1]
        else:
            w = self._check(w, self.disturbance_dim, "w (disturbance)")
            bw = w.shape[:-1]
        if u.dtype != x.dtype or w.dtype != x.dtype:
            raise TypeError(
                f"{self.name}: x, u, w must share a dtype, got {x.dtype}, {u.dtype}, {w.dtype}"
            )
        bx, bu = x.shape[:-1], u.shape[:-1]
        if not (bx == bu == bw):
            try:
                b = torch.broadcast_shapes(bx, bu, bw)
            except RuntimeError as err:
                raise ValueError(
                    f"{self.name}: batch shapes of x {tuple(x.shape)}, u {tuple(u.shape)} and "
                    f"w {tuple(w.shape)} do not broadcast"
                ) from err
            x = x.expand(*b, self.state_dim)
            u = u.expand(*b, self.action_dim)
            w = w.expand(*b, self.disturbance_dim)
        return x, u, w

    # ------------------------------------------------------------------ dynamics
    def _next_state(self, x: Tensor, u: Tensor, w: Tensor, wrap: bool) -> Tensor:
        """The one-step map on already validated inputs of equal batch shape.

        Must also work on unbatched ``(n,)``, ``(m,)``, ``(q,)`` inputs (used under ``vmap``).
        """
        raise NotImplementedError

    def step(self, x: Tensor, u: Tensor, w: Tensor | None) -> Tensor:
        """One integrator step ``x' = F(x, u, w)`` (spec A §5), angles wrapped, not clamped to S.

        Args:
            x: ``(*batch, n)`` state.
            u: ``(*batch, m)`` normalised action in ``[-1, 1]^m`` (not clipped here).
            w: ``(*batch, q)`` disturbance (``None``: the centre of ``W``).

        Returns:
            ``(*batch, n)`` next state (batch dims broadcast).
        """
        x, u, w = self._prepare(x, u, w)
        return self._next_state(x, u, w, True)

    __call__ = step

    def clamp_state(self, x: Tensor) -> Tensor:
        """Clamp ``x`` ``(*batch, n)`` to the feasible state box ``S`` (spec A §5).

        Differentiable with unit derivative inside ``S``, zero derivative outside.
        """
        x = self._check(x, self.state_dim, "x (state)")
        c = self._consts(x.device, x.dtype)
        return torch.clamp(x, c["state_low"], c["state_high"])

    def linearize(
        self, x: Tensor, u: Tensor, w: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Jacobians of the (unwrapped) step at ``(x, u, w)`` (spec A §2.3, HEAD model).

        ``F(x + dx, u + du, w + dw) ≈ F(x, u, w) + A dx + B du + E dw``.  Computed with
        ``torch.func.vmap(torch.func.jacrev(...))``; differentiable w.r.t. ``x, u, w``.

        Args:
            x: ``(*batch, n)``; u: ``(*batch, m)``; w: ``(*batch, q)`` or ``None`` (centre of W).

        Returns:
            ``A (*batch, n, n)``, ``B (*batch, n, m)``, ``E (*batch, n, q)``.
        """
        x, u, w = self._prepare(x, u, w)
        n, m, q = self.state_dim, self.action_dim, self.disturbance_dim
        batch = x.shape[:-1]
        w = w.expand(*batch, q)

        def f(xs: Tensor, us: Tensor, ws: Tensor) -> Tensor:
            return self._next_state(xs, us, ws, False)

        jac = torch.func.jacrev(f, argnums=(0, 1, 2))
        if len(batch) == 0:
            return jac(x, u, w)
        nb = math.prod(batch)
        if nb == 0:
            z = x.new_zeros
            return z(*batch, n, n), z(*batch, n, m), z(*batch, n, q)
        a, b, e = torch.func.vmap(jac)(x.reshape(nb, n), u.reshape(nb, m), w.reshape(nb, q))
        return a.reshape(*batch, n, n), b.reshape(*batch, n, m), e.reshape(*batch, n, q)

    def control_affine(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Continuous-time control-affine form ``xdot = f(x) + g(x) u`` at ``w = c_W``.

        Args:
            x: ``(*batch, n)``.

        Returns:
            ``f (*batch, n)``, ``g (*batch, n, m)`` (``u`` normalised).

        Raises:
            NotImplementedError: if the system is not control-affine.
        """
        raise NotImplementedError(f"{self.name} is not control-affine")

    def physical_action(self, u: Tensor) -> Tensor:
        """Map the normalised action ``(*batch, m)`` to physical units (identity by default)."""
        return self._check(u, self.action_dim, "u (normalised action)")

    # ------------------------------------------------------------------ disturbances and sets
    def sample_disturbance(
        self,
        shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw ``w ~ U(W)`` i.i.d. per component (spec A §5: noise ``w ~ U(W)`` per step).

        Args:
            shape: batch shape; the result has shape ``(*shape, q)``.
            generator: optional ``torch.Generator`` on ``device``.

        Returns:
            ``(*shape, q)`` samples in ``W``.
        """
        if isinstance(shape, int):
            shape = (shape,)
        device = torch.device(device) if device is not None else torch.device("cpu")
        c = self._consts(device, dtype)
        r = torch.rand(
            (*shape, self.disturbance_dim), generator=generator, dtype=dtype, device=device
        )
        return torch.addcmul(c["dist_low"], r, c["dist_width"])

    def state_box(self):
        """The feasible state box ``S`` as a :class:`safegrad.sets.Box` (float64, CPU)."""
        from safegrad.sets import Box

        return Box(self.state_low, self.state_high)

    def action_box(self):
        """The normalised action box ``[-1, 1]^m`` as a :class:`safegrad.sets.Box`."""
        from safegrad.sets import Box

        return Box(self.action_low, self.action_high)

    def disturbance_box(self):
        """The disturbance box ``W`` as a :class:`safegrad.sets.Box`."""
        from safegrad.sets import Box

        return Box(self.disturbance_low, self.disturbance_high)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={self.state_dim}, m={self.action_dim}, "
            f"q={self.disturbance_dim}, dt={self.dt})"
        )
