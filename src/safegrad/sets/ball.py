"""Euclidean balls ``{y : ||y - center|| <= radius}``.

Every operation is closed form, batched and differentiable where the map is.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from safegrad.sets._base import ConvexSet, _as_float_tensor, _broadcast_batch, _check_same_kind
from safegrad.sets.box import Box

__all__ = ["Ball"]


class Ball(ConvexSet):
    """Batch of closed Euclidean balls.

    Args:
        center: ``(*batch, n)``.
        radius: ``(*batch,)`` (broadcast against ``center``'s batch), ``>= 0``; radius 0 is a point.
        validate: check (one host sync) that the radius is finite and non-negative.
    """

    _fields = ("center", "radius")
    _core_dims = (1, 0)

    def __init__(self, center: Tensor, radius: Tensor, *, validate: bool = True):
        center = _as_float_tensor(center, "center")
        radius = _as_float_tensor(radius, "radius", like=center)
        _check_same_kind({"center": center, "radius": radius}, "Ball")
        batch = _broadcast_batch("Ball", ("center", center, 1), ("radius", radius, 0))
        self.center = center.expand(*batch, center.shape[-1])
        self.radius = radius.expand(batch)
        if validate:
            if not bool(torch.isfinite(self.radius).all() & torch.isfinite(self.center).all()):
                raise ValueError("Ball: center and radius must be finite")
            if bool((self.radius < 0).any()):
                raise ValueError(f"Ball: radius must be >= 0, got min {self.radius.min().item()}")

    @property
    def dim(self) -> int:
        return self.center.shape[-1]

    def contains(self, x: Tensor, tol: float = 1e-9) -> Tensor:
        """``(*batch,)`` bool: ``||x - center|| <= radius + tol``."""
        x = self._point(x)
        return torch.linalg.vector_norm(x - self.center, dim=-1) <= self.radius + tol

    def support(self, direction: Tensor) -> Tensor:
        """``<center, v> + radius ||v||`` (closed form, differentiable; subgradient 0 at v = 0)."""
        v = self._point(direction, "direction")
        return (self.center * v).sum(-1) + self.radius * torch.linalg.vector_norm(v, dim=-1)

    def ray_distance(self, origin: Tensor, direction: Tensor, tol: float = 1e-9) -> Tensor:
        """Largest ``t >= 0`` with ``||o + t v - c|| <= r`` (closed form, larger root).

        With ``w = o - c``: ``t = (-<v,w> + sqrt(<v,w>^2 - |v|^2 (|w|^2 - r^2))) / |v|^2``,
        evaluated in the cancellation-free form.  Same conventions as :meth:`Box.ray_distance`:
        an origin outside (beyond ``tol``) gives the exit parameter if the ray meets the ball and
        ``-inf`` otherwise; a zero direction gives ``+inf`` (origin inside) or ``-inf``.

        Returns:
            ``(*batch,)``, differentiable in origin, direction, center and radius (except at
            tangency).
        """
        o = self._point(origin, "origin")
        v = self._point(direction, "direction")
        w = o - self.center
        vv = (v * v).sum(-1)
        vw = (v * w).sum(-1)
        gap = self.radius**2 - (w * w).sum(-1)  # r^2 - |w|^2, > 0 inside
        disc = vw**2 + vv * gap
        sq = torch.sqrt(disc.clamp_min(0.0))
        inf = torch.full((), math.inf, dtype=self.dtype, device=self.device)
        # larger root: (-vw + sq)/vv, or gap/(vw + sq) when vw > 0 (no cancellation)
        pos = vw > 0
        den1 = torch.where(vv > 0, vv, torch.ones_like(vv))
        den2 = torch.where(pos & (vw + sq > 0), vw + sq, torch.ones_like(vw))
        t = torch.where(pos, gap / den2, (sq - vw) / den1)
        t = torch.where(vv > 0, t, inf)
        t_star = t.clamp_min(0.0)
        # feasibility of the returned point (or of the origin for a zero direction)
        finite = torch.isfinite(t_star)
        with torch.no_grad():
            t_eval = torch.where(finite, t_star, torch.zeros_like(t_star))
            p = w + t_eval.unsqueeze(-1) * v
            eps = torch.finfo(self.dtype).eps
            scale = self.radius + torch.linalg.vector_norm(w, dim=-1) + t_eval * vv.sqrt()
            ok = torch.linalg.vector_norm(p, dim=-1) <= self.radius + tol + 8 * eps * scale
        return torch.where(ok, t_star, -inf)

    def project(self, x: Tensor) -> Tensor:
        """``c + (x - c) min(1, r / ||x - c||)`` (closed form, differentiable a.e.)."""
        x = self._point(x)
        w = x - self.center
        nrm = torch.linalg.vector_norm(w, dim=-1)
        outside = nrm > self.radius
        scale = torch.where(
            outside, self.radius / torch.where(outside, nrm, torch.ones_like(nrm)), 1.0
        )
        return self.center + scale.unsqueeze(-1) * w

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n, *batch, dim)`` points uniform in the ball (Gaussian direction, radius
        ``r U^{1/dim}``)."""
        n = self._num_samples(n)
        g = self._generator(generator)
        shape = (n, *self.batch_shape, self.dim)
        z = torch.randn(shape, generator=g, dtype=self.dtype, device=self.device)
        z = z / torch.linalg.vector_norm(z, dim=-1, keepdim=True).clamp_min(
            torch.finfo(self.dtype).tiny
        )
        u = torch.rand(shape[:-1], generator=g, dtype=self.dtype, device=self.device)
        rad = self.radius * u ** (1.0 / self.dim)
        return self.center + rad.unsqueeze(-1) * z

    def interval_hull(self) -> Box:
        """``center ± radius`` (closed form)."""
        r = self.radius.unsqueeze(-1)
        return Box(self.center - r, self.center + r, validate=False)

    def linear_map(self, M: Tensor, offset: Tensor | None = None) -> Ball:
        """Image under a *scalar* map ``y -> M y + offset`` (``M: (*batch,)`` or a number).

        A general matrix maps a ball to an ellipsoid, which is not a :class:`Ball`; such ``M``
        raise ``ValueError``.  The radius becomes ``|M| r``.
        """
        M = _as_float_tensor(M, "M", like=self.center)
        if M.dim() >= 2 and M.shape[-2:] != (1, 1):
            raise ValueError(
                f"Ball.linear_map: only scalar maps keep a ball a ball; got M of shape "
                f"{tuple(M.shape)} (expected (*batch,) scalars)"
            )
        if M.dim() >= 2:
            M = M[..., 0, 0]
        c = M.unsqueeze(-1) * self.center
        if offset is not None:
            c = c + self._point(offset, "offset")
        return Ball(c, M.abs() * self.radius, validate=False)

    def to(self, device=None, dtype=None) -> Ball:
        return super().to(device=device, dtype=dtype)  # type: ignore[return-value]
