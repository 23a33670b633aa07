"""Common machinery of the batched convex sets: the :class:`ConvexSet` base class, input
validation, batch broadcasting and the shared closed-form ray/slab formula.

Batch semantics (used by every set, see ``docs/sets.md``): a set holds a batch of sets with
``batch_shape = (*batch,)``; its defining tensors are broadcast against each other at construction
(as views, no copies).  Points and directions passed to a method have shape ``(*pbatch, n)`` and are
broadcast against the set batch with the usual right-aligned torch rules, so a set of batch
``(B,)`` and points ``(K, B, n)`` give a result ``(K, B)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

__all__ = ["ConvexSet"]


# ---------------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------------


def _as_float_tensor(value: Any, name: str, like: Tensor | None = None) -> Tensor:
    """Return ``value`` as a floating-point tensor.

    Tensors keep their dtype and device (integer tensors are promoted to ``like``'s dtype or the
    torch default float dtype); array-likes are converted with ``like``'s dtype/device if given.
    """
    if isinstance(value, Tensor):
        t = value
    else:
        try:
            t = torch.as_tensor(
                value,
                dtype=None if like is None else like.dtype,
                device=None if like is None else like.device,
            )
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(
                f"{name} must be a tensor or array-like of numbers, got {value!r}"
            ) from exc
    if not (t.is_floating_point()):
        if t.is_complex():
            raise TypeError(f"{name} must be real, got dtype {t.dtype}")
        t = t.to(like.dtype if like is not None else torch.get_default_dtype())
    return t


def _check_same_kind(tensors: dict[str, Tensor], cls: str) -> None:
    """Raise if the defining tensors of a set do not share dtype and device."""
    items = list(tensors.items())
    name0, t0 = items[0]
    for name, t in items[1:]:
        if t.dtype != t0.dtype:
            raise TypeError(
                f"{cls}: {name} has dtype {t.dtype} but {name0} has dtype {t0.dtype}; "
                "convert both to the same floating dtype"
            )
        if t.device != t0.device:
            raise TypeError(
                f"{cls}: {name} is on {t.device} but {name0} is on {t0.device}; "
                "move both to the same device"
            )


def _broadcast_batch(cls: str, *specs: tuple[str, Tensor, int]) -> torch.Size:
    """Broadcast the batch shapes of tensors whose last ``core`` dims are non-batch dims."""
    shapes = []
    for name, t, core in specs:
        if t.dim() < core:
            raise ValueError(
                f"{cls}: {name} must have at least {core} dimension(s), got shape {tuple(t.shape)}"
            )
        shapes.append(t.shape[: t.dim() - core])
    if all(s == shapes[0] for s in shapes[1:]):  # the common case, without broadcast_shapes
        return shapes[0]
    try:
        return torch.broadcast_shapes(*shapes)
    except RuntimeError as exc:
        desc = ", ".join(f"{n} batch {tuple(s)}" for (n, _, _), s in zip(specs, shapes))
        raise ValueError(f"{cls}: batch shapes do not broadcast ({desc})") from exc


def _isfinite_all(t: Tensor) -> bool:
    return bool(torch.isfinite(t).all())


# ---------------------------------------------------------------------------------------------
# closed-form ray / slab formula shared by Box, HPolytope and the zonotope H-representation
# ---------------------------------------------------------------------------------------------


def _ray_exit(a: Tensor, s: Tensor, tol: float) -> Tensor:
    """Largest ``t >= 0`` with ``a_i t <= s_i`` for all rows ``i`` (spec A §3.3, closed form).

    For a polytope ``{y : C y <= d}``, origin ``o`` and direction ``v``: ``a = C v`` and
    ``s = d - C o``.  The exit parameter is ``min_{i: a_i > 0} s_i / a_i`` (``+inf`` without
    positive rows).  The result is that exit parameter clamped at 0 if the ray point there satisfies
    every row up to ``tol`` (residual ``a t - s <= tol``), and ``-inf`` if the ray misses the set
    (no ``t >= 0`` works).  Hence an origin inside gives the usual ray distance, an origin within
    ``tol`` of the set gives ``>= 0``, and an origin outside gives the exit parameter of the ray
    if the ray enters the set and ``-inf`` otherwise.  A zero direction gives ``+inf`` (origin in
    the set up to ``tol``) or ``-inf``.

    Args:
        a: ``(*batch, k)`` rate of change of each constraint along the ray.
        s: ``(*batch, k)`` slack of each constraint at the origin.
        tol: feasibility tolerance on the residual.

    Returns:
        ``(*batch,)`` differentiable in ``a`` and ``s`` (through the active row).
    """
    inf = torch.full((), math.inf, dtype=a.dtype, device=a.device)  # no host copy
    batch = torch.broadcast_shapes(a.shape, s.shape)[:-1]
    if a.shape[-1] == 0:  # no constraints: the whole space
        return inf.expand(batch).clone()
    pos = a > 0
    safe_a = torch.where(pos, a, torch.ones_like(a))
    t_exit = torch.where(pos, s / safe_a, inf).amin(-1)
    t_star = t_exit.clamp_min(0.0)
    # Feasibility of the returned point.  Rows with a_i > 0 hold at t_exit >= 0 by construction
    # (no rounding test needed); if t_exit < 0 the point is the origin and their residual is -s_i.
    # Rows with a_i <= 0 are evaluated at t_star (at t = +inf: a_i < 0 holds, a_i = 0 needs
    # s_i >= 0).
    with torch.no_grad():
        finite = torch.isfinite(t_star).unsqueeze(-1)
        t_eval = torch.where(finite, t_star.unsqueeze(-1), torch.zeros_like(a))
        at = a * t_eval
        res_nonpos = torch.where(finite, at - s, torch.where(a < 0, -inf, -s))
        res_pos = torch.where((t_exit >= 0).unsqueeze(-1), -inf, -s)
        res = torch.where(pos, res_pos, res_nonpos)
        eps = torch.finfo(a.dtype).eps
        slack = tol + 8 * eps * (at.abs() + s.abs())
        feasible = (res <= slack).all(-1)
    return torch.where(feasible, t_star, -inf)


# ---------------------------------------------------------------------------------------------
# base class
# ---------------------------------------------------------------------------------------------


class ConvexSet(ABC):
    """A batch of closed convex sets in ``R^n`` (``batch_shape`` sets of dimension ``dim``).

    Subclasses store their defining tensors broadcast to a common batch shape and implement the
    operations that make sense for them.  All operations broadcast points/directions
    ``(*pbatch, n)`` against ``batch_shape``; see the module docstring and ``docs/sets.md``.
    """

    #: names of the defining tensors, in constructor order
    _fields: tuple[str, ...] = ()
    #: number of trailing non-batch dimensions of each defining tensor
    _core_dims: tuple[int, ...] = ()

    # -- basic properties ------------------------------------------------------------------

    @property
    @abstractmethod
    def dim(self) -> int:
        """Ambient dimension ``n``."""

    @property
    def batch_shape(self) -> torch.Size:
        """Batch shape ``(*batch,)`` of the set."""
        t = getattr(self, self._fields[0])
        return t.shape[: t.dim() - self._core_dims[0]]

    @property
    def dtype(self) -> torch.dtype:
        return getattr(self, self._fields[0]).dtype

    @property
    def device(self) -> torch.device:
        return getattr(self, self._fields[0]).device

    def _tensors(self) -> tuple[Tensor, ...]:
        return tuple(getattr(self, f) for f in self._fields)

    def _rebuild(self, *tensors: Tensor) -> ConvexSet:
        """New set of the same class from defining tensors (no value validation)."""
        return type(self)(*tensors, validate=False)  # type: ignore[call-arg]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """Copy of the set with all defining tensors moved/cast (like ``Tensor.to``)."""
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating dtype, got {dtype}")
        return self._rebuild(*(t.to(device=device, dtype=dtype) for t in self._tensors()))

    def __getitem__(self, index) -> ConvexSet:
        """Index the batch dimensions, e.g. ``s[0]`` or ``s[mask]``."""
        if len(self.batch_shape) == 0:
            raise IndexError(f"cannot index an unbatched {type(self).__name__}")
        if not isinstance(index, tuple):
            index = (index,)
        out = []
        for t, core in zip(self._tensors(), self._core_dims):
            out.append(t[index + (slice(None),) * core])
        return self._rebuild(*out)

    def expand(self, *batch_shape: int) -> ConvexSet:
        """View of the set broadcast to ``batch_shape`` (like ``Tensor.expand``)."""
        if len(batch_shape) == 1 and isinstance(batch_shape[0], (tuple, list, torch.Size)):
            batch_shape = tuple(batch_shape[0])
        out = []
        for t, core in zip(self._tensors(), self._core_dims):
            out.append(t.expand(*batch_shape, *t.shape[t.dim() - core :]))
        return self._rebuild(*out)

    def detach(self) -> ConvexSet:
        """Copy of the set whose tensors are detached from the autograd graph."""
        return self._rebuild(*(t.detach() for t in self._tensors()))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dim={self.dim}, batch_shape={tuple(self.batch_shape)}, "
            f"dtype={self.dtype}, device={self.device})"
        )

    # -- argument checks for methods (cheap, no host sync) -----------------------------------

    def _point(self, x: Any, name: str = "x") -> Tensor:
        """Check/convert a point-like argument ``(*pbatch, n)``."""
        if not isinstance(x, Tensor):
            x = _as_float_tensor(x, name, like=getattr(self, self._fields[0]))
        if x.dim() == 0 or x.shape[-1] != self.dim:
            raise ValueError(
                f"{type(self).__name__}: {name} must have shape (*batch, {self.dim}), "
                f"got {tuple(x.shape)}"
            )
        if x.dtype != self.dtype:
            raise TypeError(
                f"{type(self).__name__}: {name} has dtype {x.dtype} but the set has dtype "
                f"{self.dtype}; convert one of them"
            )
        if x.device != self.device:
            raise TypeError(
                f"{type(self).__name__}: {name} is on {x.device} but the set is on {self.device}"
            )
        try:
            torch.broadcast_shapes(x.shape[:-1], self.batch_shape)
        except RuntimeError as exc:
            raise ValueError(
                f"{type(self).__name__}: {name} batch shape {tuple(x.shape[:-1])} does not "
                f"broadcast with the set batch shape {tuple(self.batch_shape)}"
            ) from exc
        return x

    def _generator(self, generator: torch.Generator | None) -> torch.Generator | None:
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
        return generator

    @staticmethod
    def _num_samples(n: Any) -> int:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"number of samples must be a non-negative int, got {n!r}")
        return n

    # -- the interface -------------------------------------------------------------------------

    @abstractmethod
    def contains(self, x: Tensor, tol: float = 1e-9) -> Tensor:
        """``(*batch,)`` bool: whether ``x (*pbatch, n)`` lies in the set up to ``tol``."""

    @abstractmethod
    def support(self, direction: Tensor) -> Tensor:
        """``(*batch,)`` support function ``max_{y in S} <direction, y>``."""

    @abstractmethod
    def ray_distance(self, origin: Tensor, direction: Tensor) -> Tensor:
        """``(*batch,)`` largest ``t >= 0`` with ``origin + t * direction`` in the set."""

    @abstractmethod
    def project(self, x: Tensor) -> Tensor:
        """``(*batch, n)`` Euclidean projection of ``x`` onto the set."""

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n, *batch, dim)`` random points of the set."""

    @abstractmethod
    def interval_hull(self):
        """Smallest axis-aligned :class:`~safegrad.sets.Box` containing the set."""

    @abstractmethod
    def linear_map(self, M: Tensor, offset: Tensor | None = None) -> ConvexSet:
        """Image ``{M y + offset : y in S}``."""


def _rejection_sample(
    hull_low: Tensor,
    hull_high: Tensor,
    contains,
    n: int,
    generator: torch.Generator | None,
    max_draws: int = 10_000_000,
) -> Tensor:
    """Uniform samples of a set by rejection from its interval hull.

    Batched over the set batch: each round draws candidates for every set and keeps the first
    accepted ones per set (loop over rounds only, with one host sync per round).

    Args:
        hull_low, hull_high: ``(*batch, dim)`` interval hull.
        contains: callable ``(K, *batch, dim) -> (K, *batch)`` bool.
        n: samples per set.

    Returns:
        ``(n, *batch, dim)``.
    """
    batch = hull_low.shape[:-1]
    dim = hull_low.shape[-1]
    nb = math.prod(batch)
    out = hull_low.new_empty((n, nb, dim))
    if n == 0 or nb == 0:
        return out.reshape(n, *batch, dim)
    low = hull_low.detach().reshape(nb, dim)
    width = (hull_high - hull_low).detach().reshape(nb, dim)
    count = torch.zeros(nb, dtype=torch.long, device=low.device)
    k = max(2 * n, 16)
    drawn = 0
    while True:
        u = torch.rand((k, nb, dim), generator=generator, dtype=low.dtype, device=low.device)
        cand = low + width * u
        acc = contains(cand.reshape(k, *batch, dim)).reshape(k, nb)
        pos = count.unsqueeze(0) + torch.cumsum(acc.long(), 0) - 1
        keep = acc & (pos < n)
        ki, bi = keep.nonzero(as_tuple=True)
        out[pos[ki, bi], bi] = cand[ki, bi]
        count = count + keep.long().sum(0)
        drawn += k * nb
        low_count = int(count.min())
        if low_count >= n:
            return out.reshape(n, *batch, dim)
        if drawn > max_draws:
            raise RuntimeError(
                f"rejection sampling from the interval hull accepted only {low_count} of {n} "
                f"samples for some set after {drawn} draws; the set is (nearly) flat or a tiny "
                "fraction of its interval hull (use the other sampling method)"
            )
        # grow the batch of candidates according to the worst observed acceptance rate
        rate = max(float(count.min()) / max(drawn / nb, 1.0), 1e-4)
        k = int(min(max(2 * (n - low_count) / rate, 16), 1_000_000 // max(nb, 1) + 16))
