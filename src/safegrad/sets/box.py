"""Axis-aligned boxes ``{y : low <= y <= high}`` (spec A §2.1 feasible sets, §2.2 interval hull).

Every operation is closed form, batched and differentiable where the map is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from safegrad.sets._base import (
    ConvexSet,
    _as_float_tensor,
    _broadcast_batch,
    _check_same_kind,
    _ray_exit,
)

if TYPE_CHECKING:
    from safegrad.sets.hpolytope import HPolytope
    from safegrad.sets.zonotope import Zonotope

__all__ = ["Box"]


class Box(ConvexSet):
    """Batch of boxes ``[low, high] ⊂ R^n``.

    Args:
        low: ``(*batch, n)`` lower bounds.
        high: ``(*batch, n)`` upper bounds (broadcast against ``low``).
        validate: check (one host sync) that the bounds are finite and ``low <= high``.
            Zero-width boxes (``low == high`` in some or all coordinates) are allowed.

    Raises:
        ValueError: shapes that do not fit, non-finite bounds, or ``low > high``.
    """

    _fields = ("low", "high")
    _core_dims = (1, 1)

    def __init__(self, low: Tensor, high: Tensor, *, validate: bool = True):
        low = _as_float_tensor(low, "low")
        high = _as_float_tensor(high, "high", like=low)
        _check_same_kind({"low": low, "high": high}, "Box")
        batch = _broadcast_batch("Box", ("low", low, 1), ("high", high, 1))
        if low.shape[-1] != high.shape[-1]:
            raise ValueError(
                f"Box: low has dimension {low.shape[-1]} but high has dimension {high.shape[-1]}"
            )
        n = low.shape[-1]
        self.low = low.expand(*batch, n)
        self.high = high.expand(*batch, n)
        if validate:
            if not bool(torch.isfinite(self.low).all() & torch.isfinite(self.high).all()):
                raise ValueError(
                    "Box: low and high must be finite (use HPolytope for unbounded sets)"
                )
            bad = self.low > self.high
            if bool(bad.any()):
                idx = tuple(bad.nonzero()[0].tolist())
                raise ValueError(
                    f"Box: low > high at index {idx} (low={self.low[idx].item()}, "
                    f"high={self.high[idx].item()}); an empty box is not allowed"
                )

    @classmethod
    def from_center(cls, center: Tensor, half_width: Tensor, *, validate: bool = True) -> Box:
        """Box ``center ± half_width``; ``center (*batch, n)``, ``half_width (*batch, n) >= 0``."""
        center = _as_float_tensor(center, "center")
        half_width = _as_float_tensor(half_width, "half_width", like=center)
        if validate and bool((half_width < 0).any()):
            raise ValueError("Box.from_center: half_width must be >= 0")
        return cls(center - half_width, center + half_width, validate=validate)

    # -- properties --------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self.low.shape[-1]

    @property
    def center(self) -> Tensor:
        """``(*batch, n)`` midpoint."""
        return 0.5 * (self.low + self.high)

    @property
    def half_width(self) -> Tensor:
        """``(*batch, n)`` half widths (``>= 0``)."""
        return 0.5 * (self.high - self.low)

    # -- geometry ----------------------------------------------------------------------------

    def contains(self, x: Tensor, tol: float = 1e-9) -> Tensor:
        """``(*batch,)`` bool: ``low - tol <= x <= high + tol`` for all coordinates of ``x``."""
        x = self._point(x)
        return ((x >= self.low - tol) & (x <= self.high + tol)).all(-1)

    def support(self, direction: Tensor) -> Tensor:
        """Support function ``<center, v> + <half_width, |v|>`` (closed form), ``(*batch,)``.

        Differentiable in ``direction`` (gradient = the maximising vertex; at ``v_i = 0`` the
        midpoint coordinate, a valid subgradient) and in the bounds.
        """
        v = self._point(direction, "direction")
        return (self.center * v).sum(-1) + (self.half_width * v.abs()).sum(-1)

    def ray_distance(self, origin: Tensor, direction: Tensor, tol: float = 1e-9) -> Tensor:
        """Largest ``t >= 0`` with ``origin + t direction`` in the box (spec A §3.3, ``λ_A``).

        Closed form ``min_j {(high_j - o_j)/v_j if v_j > 0, (low_j - o_j)/v_j if v_j < 0}``.
        Origin outside the box (beyond ``tol``): the exit parameter if the ray enters the box,
        ``-inf`` if it misses.  Zero direction: ``+inf`` for an origin inside, else ``-inf``.
        See :func:`safegrad.sets._base._ray_exit`.

        Args:
            origin: ``(*pbatch, n)``; direction: ``(*pbatch, n)`` (need not be normalised; ``t``
                is in units of ``direction``).

        Returns:
            ``(*batch,)``, differentiable in origin, direction and bounds.
        """
        o = self._point(origin, "origin")
        v = self._point(direction, "direction")
        low, high, o, v = torch.broadcast_tensors(self.low, self.high, o, v)
        a = torch.cat([v, -v], -1)
        s = torch.cat([high - o, o - low], -1)
        return _ray_exit(a, s, tol)

    def project(self, x: Tensor) -> Tensor:
        """Euclidean projection ``clamp(x, low, high)`` (closed form), ``(*batch, n)``.

        Differentiable almost everywhere (Jacobian ``diag(low < x < high)``), also in the bounds.
        """
        x = self._point(x)
        return torch.maximum(torch.minimum(x, self.high), self.low)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n, *batch, dim)`` points drawn uniformly from the box (``low + (high-low) U``)."""
        n = self._num_samples(n)
        u = torch.rand(
            (n, *self.batch_shape, self.dim),
            generator=self._generator(generator),
            dtype=self.dtype,
            device=self.device,
        )
        return self.low + (self.high - self.low) * u

    def interval_hull(self) -> Box:
        """The box itself."""
        return self

    def linear_map(self, M: Tensor, offset: Tensor | None = None) -> Zonotope:
        """Image ``{M y + offset}`` as a :class:`Zonotope` ``<M c + offset, M diag(r)>``.

        ``M: (*batch, k, n)``; ``offset: (*batch, k)``.
        """
        return self.to_zonotope().linear_map(M, offset)

    def minkowski_sum(self, other) -> ConvexSet:
        """Minkowski sum with a :class:`Box` (a Box), a :class:`Zonotope` (a Zonotope) or a
        point ``(*batch, n)`` tensor (a translated Box)."""
        from safegrad.sets.zonotope import Zonotope

        if isinstance(other, Box):
            if other.dim != self.dim:
                raise ValueError(
                    f"Box.minkowski_sum: dimensions differ ({self.dim} vs {other.dim})"
                )
            return Box(self.low + other.low, self.high + other.high, validate=False)
        if isinstance(other, Zonotope):
            return self.to_zonotope().minkowski_sum(other)
        if isinstance(other, Tensor):
            p = self._point(other, "other")
            return Box(self.low + p, self.high + p, validate=False)
        raise TypeError(
            "Box.minkowski_sum: expected a Box, Zonotope or point tensor, "
            f"got {type(other).__name__}"
        )

    def to_zonotope(self) -> Zonotope:
        """``<center, diag(half_width)>`` (spec A §2.2: a box is a zonotope with diagonal G)."""
        from safegrad.sets.zonotope import Zonotope

        return Zonotope(self.center, torch.diag_embed(self.half_width), validate=False)

    def to_hpolytope(self) -> HPolytope:
        """``[I; -I] y <= [high; -low]`` as an :class:`HPolytope` (2n rows)."""
        from safegrad.sets.hpolytope import HPolytope

        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        C = torch.cat([eye, -eye], 0).expand(*self.batch_shape, 2 * self.dim, self.dim)
        d = torch.cat([self.high, -self.low], -1)
        return HPolytope(C, d, validate=False)

    def vertices(self) -> Tensor:
        """``(*batch, 2^n, n)`` corner points (``n <= 16``)."""
        if self.dim > 16:
            raise ValueError(f"Box.vertices: 2^{self.dim} corners is too many (dim must be <= 16)")
        n = self.dim
        bits = (
            torch.arange(2**n, device=self.device).unsqueeze(-1)
            >> torch.arange(n, device=self.device)
        ) & 1
        bits = bits.to(torch.bool)
        return torch.where(bits, self.high.unsqueeze(-2), self.low.unsqueeze(-2))
