"""H-polytopes ``{y : C y <= d}`` (the workhorse safe-set representation, ARCHITECTURE principle 4).

Closed form: ``contains``, ``ray_distance`` (spec A §3.3).  Solver based (through
:mod:`safegrad.qp`, differentiable by implicit differentiation): ``support`` and ``interval_hull``
(LPs), ``project`` (QP), ``chebyshev_center`` and ``is_empty`` (LPs).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from safegrad.sets import _solvers
from safegrad.sets._base import (
    ConvexSet,
    _as_float_tensor,
    _broadcast_batch,
    _check_same_kind,
    _ray_exit,
    _rejection_sample,
)
from safegrad.sets.box import Box

__all__ = ["HPolytope"]


def _matvec(M: Tensor, x: Tensor) -> Tensor:
    """``(*b, k, n) @ (*b', n) -> (*broadcast, k)``."""
    return (M @ x.unsqueeze(-1)).squeeze(-1)


class HPolytope(ConvexSet):
    """Batch of H-polytopes (possibly unbounded polyhedra) ``{y in R^n : C y <= d}``.

    Args:
        C: ``(*batch, k, n)`` constraint normals (rows need not be normalised; zero rows are
            allowed and mean ``0 <= d_i``).
        d: ``(*batch, k)`` offsets (``+inf`` entries are allowed and mean "no constraint").
        validate: check (one host sync) that ``C`` is finite and ``d`` has no NaN / ``-inf``.

    Emptiness is *not* checked at construction (it needs an LP): use :meth:`is_empty`.  Methods on
    an empty polytope: ``contains`` is False, ``ray_distance`` and ``support`` are ``-inf``,
    ``project``/``chebyshev_center``/``interval_hull`` raise (``check=True``) or return NaN.
    """

    _fields = ("C", "d")
    _core_dims = (2, 1)

    def __init__(self, C: Tensor, d: Tensor, *, validate: bool = True):
        C = _as_float_tensor(C, "C")
        d = _as_float_tensor(d, "d", like=C)
        _check_same_kind({"C": C, "d": d}, "HPolytope")
        batch = _broadcast_batch("HPolytope", ("C", C, 2), ("d", d, 1))
        if C.shape[-2] != d.shape[-1]:
            raise ValueError(
                f"HPolytope: C has {C.shape[-2]} rows (shape {tuple(C.shape)}) but d has "
                f"{d.shape[-1]} entries (shape {tuple(d.shape)})"
            )
        if C.shape[-1] == 0:
            raise ValueError("HPolytope: dimension n = C.shape[-1] must be >= 1")
        # no expand (a view node in the autograd graph) where the shape already matches
        self.C = C if C.shape[:-2] == batch else C.expand(*batch, *C.shape[-2:])
        self.d = d if d.shape[:-1] == batch else d.expand(*batch, d.shape[-1])
        if validate:
            if not bool(torch.isfinite(self.C).all()):
                raise ValueError("HPolytope: C must be finite")
            if bool((torch.isnan(self.d) | (self.d == -math.inf)).any()):
                raise ValueError("HPolytope: d must not contain NaN or -inf")

    @property
    def dim(self) -> int:
        return self.C.shape[-1]

    @property
    def num_constraints(self) -> int:
        """Number of rows ``k``."""
        return self.C.shape[-2]

    # -- closed form ------------------------------------------------------------------------

    def residual(self, x: Tensor) -> Tensor:
        """``(*batch, k)`` constraint residuals ``C x - d`` (``<= 0`` inside)."""
        x = self._point(x)
        return _matvec(self.C, x) - self.d

    def contains(self, x: Tensor, tol: float = 1e-9) -> Tensor:
        """``(*batch,)`` bool: ``max_i (C x - d)_i <= tol``.

        ``tol`` is an absolute bound on the residual of the rows as given (use
        :meth:`normalized` first for a Euclidean tolerance).
        """
        r = self.residual(x)
        if r.shape[-1] == 0:
            return torch.ones(r.shape[:-1], dtype=torch.bool, device=r.device)
        return r.amax(-1) <= tol

    def ray_distance(self, origin: Tensor, direction: Tensor, tol: float = 1e-9) -> Tensor:
        """Largest ``t >= 0`` with ``C (o + t v) <= d`` (closed form, spec A §3.3).

        ``t = min_{i : (Cv)_i > 0} (d - C o)_i / (C v)_i`` (``+inf`` if no row increases along
        ``v``: unbounded direction).  Origin outside (residual beyond ``tol``): the exit parameter
        if the ray enters the polytope, ``-inf`` if it misses (also for an empty polytope).  Zero
        direction: ``+inf`` (origin inside) or ``-inf``.

        Args:
            origin: ``(*pbatch, n)``; direction: ``(*pbatch, n)`` (``t`` is in units of it).

        Returns:
            ``(*batch,)``, differentiable in origin, direction, C and d (through the active row).
        """
        o = self._point(origin, "origin")
        v = self._point(direction, "direction")
        a = _matvec(self.C, v)
        s = self.d - _matvec(self.C, o)
        a, s = torch.broadcast_tensors(a, s)
        return _ray_exit(a, s, tol)

    def normalized(self) -> HPolytope:
        """Same set with unit-norm rows (zero rows are kept as they are)."""
        nrm = torch.linalg.vector_norm(self.C, dim=-1)
        safe = torch.where(nrm > 0, nrm, torch.ones_like(nrm))
        return HPolytope(self.C / safe.unsqueeze(-1), self.d / safe, validate=False)

    def intersection(self, other: ConvexSet) -> HPolytope:
        """Intersection with another :class:`HPolytope` or a :class:`Box` (rows concatenated)."""
        if isinstance(other, Box):
            other = other.to_hpolytope()
        if not isinstance(other, HPolytope):
            raise TypeError(
                f"HPolytope.intersection: expected an HPolytope or Box, got {type(other).__name__}"
            )
        if other.dim != self.dim:
            raise ValueError(
                f"HPolytope.intersection: dimensions differ ({self.dim} vs {other.dim})"
            )
        batch = torch.broadcast_shapes(self.batch_shape, other.batch_shape)
        C = torch.cat(
            [
                self.C.expand(*batch, *self.C.shape[-2:]),
                other.C.expand(*batch, *other.C.shape[-2:]),
            ],
            -2,
        )
        d = torch.cat([self.d.expand(*batch, -1), other.d.expand(*batch, -1)], -1)
        return HPolytope(C, d, validate=False)

    def linear_map(self, M: Tensor, offset: Tensor | None = None) -> HPolytope:
        """Image under an *invertible* square map:
        ``{M y + b} = {z : C M^{-1} z <= d + C M^{-1} b}``.

        ``M: (*batch, n, n)`` (singular ``M`` raise torch's error), ``offset: (*batch, n)``.
        Non-square maps would need a projection (Fourier-Motzkin) and raise ``ValueError``.
        """
        M = _as_float_tensor(M, "M", like=self.C)
        if M.dim() < 2 or M.shape[-2:] != (self.dim, self.dim):
            raise ValueError(
                f"HPolytope.linear_map: M must have shape (*batch, {self.dim}, {self.dim}) "
                f"(square, invertible), got {tuple(M.shape)}"
            )
        CMinv = torch.linalg.solve(M, self.C, left=False)  # C M^{-1}
        d = self.d
        if offset is not None:
            d = d + _matvec(CMinv, self._point(offset, "offset"))
        return HPolytope(CMinv, d, validate=False)

    # -- solver based -----------------------------------------------------------------------

    def support(self, direction: Tensor, check: bool = True) -> Tensor:
        """Support function ``max_{C y <= d} <v, y>`` by an LP (``safegrad.qp.solve_lp``).

        Returns ``(*batch,)``: ``+inf`` where unbounded, ``-inf`` where the polytope is empty.
        Differentiable (implicit differentiation of the LP).  ``check=True`` raises
        ``RuntimeError`` if the solver stops without a certificate (one host sync); with
        ``check=False`` such entries are NaN and there is no sync.
        """
        v = self._point(direction, "direction")
        if self.num_constraints == 0:
            zero = (v == 0).all(-1)
            inf = torch.full_like(zero, math.inf, dtype=self.dtype)
            return torch.where(zero, torch.zeros_like(inf), inf).expand(
                torch.broadcast_shapes(zero.shape, self.batch_shape)
            )
        y, status = _solvers.solve_lp(-v, self.C, self.d)
        if check:
            _solvers.check_status(
                status,
                "HPolytope.support",
                (_solvers.SOLVED, _solvers.PRIMAL_INFEASIBLE, _solvers.DUAL_INFEASIBLE),
            )
        val = (v * y).sum(-1)
        nan = torch.full_like(val, math.nan)
        val = torch.where(status == _solvers.SOLVED, val, nan)
        val = torch.where(status == _solvers.DUAL_INFEASIBLE, math.inf, val)
        return torch.where(status == _solvers.PRIMAL_INFEASIBLE, -math.inf, val)

    def project(self, x: Tensor, check: bool = True) -> Tensor:
        """Euclidean projection ``argmin_{C y <= d} ||y - x||^2`` by a QP (``safegrad.qp``).

        Differentiable (implicit differentiation of the KKT system).  ``check=True`` raises
        ``RuntimeError`` for an empty polytope or a solver failure (one host sync); with
        ``check=False`` such entries are NaN.
        """
        x = self._point(x)
        if self.num_constraints == 0:
            return x.expand(*torch.broadcast_shapes(x.shape[:-1], self.batch_shape), self.dim)
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        y, status = _solvers.solve_qp(eye, -x, self.C, self.d)
        if check:
            _solvers.check_status(status, "HPolytope.project (empty polytope?)")
        return torch.where((status == _solvers.SOLVED).unsqueeze(-1), y, math.nan)

    def chebyshev_center(self, check: bool = True) -> tuple[Tensor, Tensor]:
        """Centre and radius of the largest inscribed ball (LP):
        ``max r  s.t.  C_i y + ||C_i|| r <= d_i,  r >= 0``.

        Returns ``center (*batch, n)``, ``radius (*batch,)`` (differentiable).  An unbounded
        radius (e.g. a half-space) gives ``radius = inf`` and a NaN centre; an empty polytope
        raises ``ValueError`` with ``check=True`` (else NaN).  Other solver failures raise
        ``RuntimeError`` with ``check=True``.
        """
        n = self.dim
        nrm = torch.linalg.vector_norm(self.C, dim=-1, keepdim=True)
        G = torch.cat([self.C, nrm], -1)  # (*b, k, n+1)
        row_r = torch.zeros(n + 1, dtype=self.dtype, device=self.device)
        row_r[-1] = -1.0
        G = torch.cat([G, row_r.expand(*self.batch_shape, 1, n + 1)], -2)
        h = torch.cat([self.d, self.d.new_zeros((*self.batch_shape, 1))], -1)
        c = torch.zeros(n + 1, dtype=self.dtype, device=self.device)
        c[-1] = -1.0
        z, status = _solvers.solve_lp(c, G, h)
        if check:
            if bool((status == _solvers.PRIMAL_INFEASIBLE).any()):
                idx = tuple((status == _solvers.PRIMAL_INFEASIBLE).nonzero()[0].tolist())
                raise ValueError(
                    "HPolytope.chebyshev_center: the polytope is empty "
                    f"(first at batch index {idx})"
                )
            _solvers.check_status(
                status, "HPolytope.chebyshev_center", (_solvers.SOLVED, _solvers.DUAL_INFEASIBLE)
            )
        solved = status == _solvers.SOLVED
        center = torch.where(solved.unsqueeze(-1), z[..., :n], math.nan)
        radius = torch.where(solved, z[..., n], math.nan)
        radius = torch.where(status == _solvers.DUAL_INFEASIBLE, math.inf, radius)
        return center, radius

    def is_empty(self, tol: float = 1e-9) -> Tensor:
        """``(*batch,)`` bool: whether ``{C y <= d}`` is empty (up to ``tol``), by one LP.

        Solves ``max r  s.t.  C_i y + ||C_i|| r <= d_i,  r <= 1`` (``r`` free, so always feasible
        unless a zero row has ``d_i < 0``); empty iff infeasible or ``r* < -tol``.  Host-sync free.
        """
        n = self.dim
        if self.num_constraints == 0:
            return torch.zeros(self.batch_shape, dtype=torch.bool, device=self.device)
        nrm = torch.linalg.vector_norm(self.C, dim=-1, keepdim=True)
        G = torch.cat([self.C, nrm], -1)
        row_r = torch.zeros(n + 1, dtype=self.dtype, device=self.device)
        row_r[-1] = 1.0
        G = torch.cat([G, row_r.expand(*self.batch_shape, 1, n + 1)], -2)
        h = torch.cat([self.d, self.d.new_ones((*self.batch_shape, 1))], -1)
        c = torch.zeros(n + 1, dtype=self.dtype, device=self.device)
        c[-1] = -1.0
        with torch.no_grad():
            z, status = _solvers.solve_lp(c, G, h)
        return (status == _solvers.PRIMAL_INFEASIBLE) | (
            (status == _solvers.SOLVED) & (z[..., n] < -tol)
        )

    def interval_hull(self, check: bool = True) -> Box:
        """Interval hull by ``2n`` support LPs in the directions ``±e_i`` (one batched call).

        Raises ``ValueError`` (``check=True``) if the polytope is unbounded or empty.
        """
        n = self.dim
        eye = torch.eye(n, dtype=self.dtype, device=self.device)
        dirs = torch.cat([eye, -eye], 0).reshape(2 * n, *([1] * len(self.batch_shape)), n)
        sup = self.support(dirs, check=check)  # (2n, *batch)
        high = sup[:n].movedim(0, -1)
        low = -sup[n:].movedim(0, -1)
        if check and not bool(torch.isfinite(high).all() & torch.isfinite(low).all()):
            raise ValueError(
                "HPolytope.interval_hull: the polytope is unbounded or empty (infinite support)"
            )
        return Box(low, high, validate=False)

    def sample(
        self, n: int, generator: torch.Generator | None = None, max_draws: int = 10_000_000
    ) -> Tensor:
        """``(n, *batch, dim)`` points uniform in the (bounded, full-dimensional) polytope, by
        rejection sampling from the interval hull (LPs).  Host syncs per rejection round; raises
        ``RuntimeError`` if the acceptance rate is too low for ``max_draws`` draws."""
        n = self._num_samples(n)
        with torch.no_grad():
            hull = self.interval_hull()
            return _rejection_sample(
                hull.low,
                hull.high,
                lambda y: self.contains(y, 0.0),
                n,
                self._generator(generator),
                max_draws,
            )
