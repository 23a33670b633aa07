"""Zonotopes ``<c, G> = {c + G beta : ||beta||_inf <= 1}`` (spec A §2.2).

Closed form: ``support``, ``interval_hull``, ``linear_map``, ``minkowski_sum``, sampling of
``beta``.  Via the exact H-representation (facet enumeration, :mod:`safegrad.sets._facets`) in low
dimension: ``contains``, ``ray_distance``, exact zonotope containment.  Via LPs/QPs in
:mod:`safegrad.qp` otherwise: point containment (Kulmburg & Althoff), ray distance, projection
(spec A Eq. 44/45) and the Sadraddini & Tedrake containment condition.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from safegrad.sets import _facets, _solvers
from safegrad.sets._base import (
    ConvexSet,
    _as_float_tensor,
    _broadcast_batch,
    _check_same_kind,
    _ray_exit,
    _rejection_sample,
)
from safegrad.sets.box import Box
from safegrad.sets.hpolytope import HPolytope, _matvec

__all__ = ["Zonotope", "HREP_AUTO_MAX_DIM", "HREP_AUTO_BUDGET"]

#: ``method="auto"`` uses the H-representation up to this dimension ...
HREP_AUTO_MAX_DIM = 6
#: ... and while ``C(max(m, n), n-1) * n^2 <= HREP_AUTO_BUDGET`` (else LPs): n = 2: m <= 1024,
#: n = 3: m <= 30, n = 4: m <= 12, n = 5: m <= 9, n = 6: m <= 8.  Measured on CPU (batch 256,
#: float64, one thread, new zonotope per call) H-rep vs LP ray distance: n=4, m=12: 19 vs 41 ms;
#: n=5, m=10: 34 vs 32 ms; n=6, m=9: 37 vs 28 ms; n=6, m=12: 512 vs 43 ms (docs/sets.md).
HREP_AUTO_BUDGET = 4096

Method = Literal["auto", "hrep", "lp"]


class Zonotope(ConvexSet):
    """Batch of zonotopes ``<c, G> = {c + G beta : ||beta||_inf <= 1}`` (spec A §2.2).

    Args:
        center: ``(*batch, n)``.
        generators: ``(*batch, n, m)``; ``m = 0`` (a point) and zero / parallel generators are
            allowed (degenerate zonotopes are handled exactly by every method).
        validate: check (one host sync) that all entries are finite.
    """

    _fields = ("center", "generators")
    _core_dims = (1, 2)

    def __init__(self, center: Tensor, generators: Tensor, *, validate: bool = True):
        center = _as_float_tensor(center, "center")
        generators = _as_float_tensor(generators, "generators", like=center)
        _check_same_kind({"center": center, "generators": generators}, "Zonotope")
        batch = _broadcast_batch("Zonotope", ("center", center, 1), ("generators", generators, 2))
        if generators.shape[-2] != center.shape[-1]:
            raise ValueError(
                f"Zonotope: generators must have shape (*batch, n, m) with n = {center.shape[-1]} "
                f"(from center {tuple(center.shape)}), got {tuple(generators.shape)}"
            )
        if center.shape[-1] == 0:
            raise ValueError("Zonotope: dimension n must be >= 1")
        self.center = center.expand(*batch, center.shape[-1])
        self.generators = generators.expand(*batch, *generators.shape[-2:])
        self._hrep_cache: tuple[Tensor, Tensor] | None = None
        if validate and not bool(
            torch.isfinite(self.center).all() & torch.isfinite(self.generators).all()
        ):
            raise ValueError("Zonotope: center and generators must be finite")

    # -- properties --------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self.center.shape[-1]

    @property
    def num_generators(self) -> int:
        """Number of generators ``m``."""
        return self.generators.shape[-1]

    @property
    def radius_vector(self) -> Tensor:
        """``(*batch, n)`` half widths of the interval hull, ``sum_j |G_ij|``."""
        return self.generators.abs().sum(-1)

    # -- H-representation ----------------------------------------------------------------------

    def num_facet_subsets(self) -> int:
        """``C(m, n-1)``: subsets enumerated by :meth:`to_hpolytope` (before degenerate
        directions are added; the H-representation has twice as many rows)."""
        return _facets.num_subsets(self.dim, self.num_generators)

    def _hrep_auto_ok(self) -> bool:
        n, m = self.dim, self.num_generators
        return (
            n <= HREP_AUTO_MAX_DIM and _facets.num_subsets(n, max(m, n)) * n * n <= HREP_AUTO_BUDGET
        )

    def _use_hrep(self, method: str) -> bool:
        if method == "auto":
            return self._hrep_auto_ok()
        if method == "hrep":
            return True
        if method == "lp":
            return False
        raise ValueError(f"method must be 'auto', 'hrep' or 'lp', got {method!r}")

    def _hrep(self, max_subsets: int = _facets.HREP_MAX_SUBSETS) -> tuple[Tensor, Tensor]:
        if self._hrep_cache is not None:
            return self._hrep_cache
        C, d = _facets.zonotope_hrep(self.center, self.generators, max_subsets)
        # cache only constant zonotopes: a cached graph could be back-propagated only once, and a
        # copy computed under no_grad would silently drop gradients later
        if not (self.center.requires_grad or self.generators.requires_grad):
            self._hrep_cache = (C, d)
        return C, d

    def to_hpolytope(self, max_subsets: int = _facets.HREP_MAX_SUBSETS) -> HPolytope:
        """Exact H-representation by facet enumeration (spec A §2.2; see ``docs/sets.md``).

        Returns an :class:`HPolytope` with ``2 C(m + k, n - 1)`` unit-norm rows (``k`` = extra
        directions for flat zonotopes, usually 0); rank-deficient subsets appear as zero rows
        ``0 <= 1`` and parallel generators as duplicate rows (the representation is exact but not
        minimal).  Differentiable in center and generators.  Sensible for ``n <= 6`` and up to
        about ``10^4 - 10^5`` subsets (``C(12, 5) = 792``, ``C(20, 5) = 15504``, ``C(30, 5) =
        142506``); raises ``ValueError`` above ``max_subsets``.  One host sync (rank check).
        """
        C, d = self._hrep(max_subsets)
        return HPolytope(C, d, validate=False)

    # -- closed form -------------------------------------------------------------------------

    def support(self, direction: Tensor) -> Tensor:
        """``<c, v> + ||G^T v||_1`` (closed form, differentiable), ``(*batch,)``."""
        v = self._point(direction, "direction")
        gv = (v.unsqueeze(-2) @ self.generators).squeeze(-2)  # (*b, m)
        return (self.center * v).sum(-1) + gv.abs().sum(-1)

    def interval_hull(self) -> Box:
        """``box(Z) = <c, diag(sum_j |G_ij|)>`` (spec A §2.2)."""
        r = self.radius_vector
        return Box(self.center - r, self.center + r, validate=False)

    def linear_map(self, M: Tensor, offset: Tensor | None = None) -> Zonotope:
        """``<M c + offset, M G>``; ``M: (*batch, k, n)`` (any ``k``), ``offset: (*batch, k)``."""
        M = _as_float_tensor(M, "M", like=self.center)
        if M.dim() < 2 or M.shape[-1] != self.dim:
            raise ValueError(
                f"Zonotope.linear_map: M must have shape (*batch, k, {self.dim}), "
                f"got {tuple(M.shape)}"
            )
        c = _matvec(M, self.center)
        if offset is not None:
            offset = _as_float_tensor(offset, "offset", like=self.center)
            if offset.shape[-1] != M.shape[-2]:
                raise ValueError(
                    f"Zonotope.linear_map: offset must have shape (*batch, {M.shape[-2]}), "
                    f"got {tuple(offset.shape)}"
                )
            c = c + offset
        return Zonotope(c, M @ self.generators, validate=False)

    def minkowski_sum(self, other) -> Zonotope:
        """``<c1 + c2, [G1, G2]>`` with a :class:`Zonotope` or :class:`Box` (batches broadcast),
        or a translation by a point tensor ``(*batch, n)``."""
        if isinstance(other, Box):
            other = other.to_zonotope()
        if isinstance(other, Tensor):
            p = self._point(other, "other")
            return Zonotope(self.center + p, self.generators, validate=False)
        if not isinstance(other, Zonotope):
            raise TypeError(
                f"Zonotope.minkowski_sum: expected a Zonotope, Box or point tensor, got "
                f"{type(other).__name__}"
            )
        if other.dim != self.dim:
            raise ValueError(
                f"Zonotope.minkowski_sum: dimensions differ ({self.dim} vs {other.dim})"
            )
        batch = torch.broadcast_shapes(self.batch_shape, other.batch_shape)
        G = torch.cat(
            [
                self.generators.expand(*batch, *self.generators.shape[-2:]),
                other.generators.expand(*batch, *other.generators.shape[-2:]),
            ],
            -1,
        )
        return Zonotope(self.center + other.center, G, validate=False)

    # -- containment / ray / projection ----------------------------------------------------

    def contains(self, x: Tensor, tol: float = 1e-9, method: Method = "auto") -> Tensor:
        """``(*batch,)`` bool: ``x (*pbatch, n)`` in ``Z`` (spec A §2.2, point containment).

        ``method="hrep"``: ``max_f (N_f x - d_f) <= tol`` on the exact H-representation (unit
        normals, so ``tol`` is a distance to each facet hyperplane).  ``method="lp"``: the
        zonotope norm ``min{||beta||_inf : G beta = x - c} <= 1 + tol`` (one LP per point;
        Kulmburg & Althoff).  ``"auto"``: H-rep when ``n <= 6`` and ``C(m, n-1) n^2 <= 4096``
        (``HREP_AUTO_BUDGET``), else LP.
        """
        x = self._point(x)
        if self._use_hrep(method):
            with torch.no_grad():
                C, d = self._hrep()
                return (_matvec(C, x) - d).amax(-1) <= tol
        return self._zonotope_norm_lp(x.detach()) <= 1.0 + tol

    def _zonotope_norm_lp(self, x: Tensor) -> Tensor:
        """``min{||beta||_inf : G beta = x - c}`` (``+inf`` if infeasible, NaN on failure)."""
        m, n = self.num_generators, self.dim
        w = x - self.center
        if m == 0:
            zero = (w.abs() <= 0).all(-1)
            return torch.where(zero, 0.0, math.inf).to(self.dtype)
        eye = torch.eye(m, dtype=self.dtype, device=self.device)
        col = torch.ones(m, 1, dtype=self.dtype, device=self.device)
        G_ineq = torch.cat([torch.cat([eye, -col], 1), torch.cat([-eye, -col], 1)], 0)
        h = torch.zeros(2 * m, dtype=self.dtype, device=self.device)
        A = torch.cat([self.generators, self.generators.new_zeros((*self.batch_shape, n, 1))], -1)
        cost = torch.zeros(m + 1, dtype=self.dtype, device=self.device)
        cost[-1] = 1.0
        z, status = _solvers.solve_lp(cost, G_ineq, h, A, w)
        val = torch.where(status == _solvers.SOLVED, z[..., -1], math.nan)
        return torch.where(status == _solvers.PRIMAL_INFEASIBLE, math.inf, val)

    def ray_distance(
        self,
        origin: Tensor,
        direction: Tensor,
        tol: float = 1e-9,
        method: Method = "auto",
        check: bool = True,
    ) -> Tensor:
        """Largest ``t >= 0`` with ``origin + t direction`` in ``Z`` (spec A §3.3, ``λ_As``).

        ``method="hrep"`` (``"auto"`` in low dimension): closed form on the exact
        H-representation (same conventions as :meth:`HPolytope.ray_distance`).  ``method="lp"``:
        ``max t  s.t.  o + t v = c + G beta, ||beta||_inf <= 1, t >= 0`` (spec A §3.3); ``-inf``
        if infeasible (origin outside and the ray misses).  A zero direction gives ``+inf``
        (origin inside) or ``-inf``.  Differentiable (LP: implicit differentiation).
        ``check=True`` raises ``RuntimeError`` on an LP solver failure (one host sync).  Building
        the H-rep costs one host sync (full-dimensionality test); it is cached for zonotopes whose
        tensors do not require grad.

        Returns:
            ``(*batch,)``.
        """
        o = self._point(origin, "origin")
        v = self._point(direction, "direction")
        if self._use_hrep(method):
            C, d = self._hrep()
            a = _matvec(C, v)
            s = d - _matvec(C, o)
            a, s = torch.broadcast_tensors(a, s)
            return _ray_exit(a, s, tol)
        return self._ray_distance_lp(o, v, tol, check)

    def _ray_distance_lp(self, o: Tensor, v: Tensor, tol: float, check: bool) -> Tensor:
        m, n = self.num_generators, self.dim
        inf = math.inf
        zero_dir = (v == 0).all(-1)
        if m == 0:  # a point: only t = 0 (or any t for v = 0) if o == c
            at_c = ((o - self.center).abs() <= tol).all(-1)
            t = torch.where(zero_dir, inf, 0.0).to(self.dtype)
            return torch.where(at_c, t, -inf) + 0.0 * (v.sum(-1) + o.sum(-1))
        # Zero directions (no sync): v = 0 and the objective +t instead of -t, i.e. the bounded
        # feasibility problem "o in Z" (t* = 0); solved -> +inf, infeasible -> -inf.
        batch = torch.broadcast_shapes(v.shape[:-1], o.shape[:-1], self.batch_shape)
        zero_dir = zero_dir.expand(batch)
        A = torch.cat(
            [v.expand(*batch, n).unsqueeze(-1), -self.generators.expand(*batch, n, m)], -1
        )
        b = self.center - o
        eye = torch.eye(m, dtype=self.dtype, device=self.device)
        zc = torch.zeros(m, 1, dtype=self.dtype, device=self.device)
        t_row = torch.zeros(1, m + 1, dtype=self.dtype, device=self.device)
        t_row[0, 0] = -1.0
        G_ineq = torch.cat([torch.cat([zc, eye], 1), torch.cat([zc, -eye], 1), t_row], 0)
        h = torch.ones(2 * m + 1, dtype=self.dtype, device=self.device)
        h[-1] = 0.0
        cost = torch.zeros(*batch, m + 1, dtype=self.dtype, device=self.device)
        cost[..., 0] = torch.where(zero_dir, 1.0, -1.0).to(self.dtype)
        z, status = _solvers.solve_lp(cost, G_ineq, h, A, b)
        if check:
            _solvers.check_status(
                status, "Zonotope.ray_distance (LP)", (_solvers.SOLVED, _solvers.PRIMAL_INFEASIBLE)
            )
        solved = status == _solvers.SOLVED
        t = torch.where(solved, z[..., 0], math.nan)
        t = torch.where(zero_dir & solved, inf, t)
        return torch.where(status == _solvers.PRIMAL_INFEASIBLE, -inf, t)

    def project(
        self,
        x: Tensor,
        check: bool = True,
        method: Literal["auto", "hrep", "qp"] = "auto",
    ) -> Tensor:
        """Euclidean projection onto ``Z`` by a QP (spec A Eq. 44), ``(*batch, n)``.

        ``method="hrep"`` (``"auto"`` in low dimension): ``argmin_{C y <= d} ||y - x||^2`` on the
        exact H-representation (strictly convex; the solver's polish step gives ~1e-12 accuracy in
        float64).  ``method="qp"``: in generator space,
        ``beta* = argmin_{||beta||_inf <= 1} 1/2 ||c + G beta - x||^2``, ``y = c + G beta*``
        (any dimension; for points on or very near the boundary the problem is degenerate and the
        interior-point result is only accurate to ~1e-4 at the default tolerance).

        Differentiable (implicit differentiation; the Jacobian is the projector onto the span of
        the inactive generators, spec A Eq. 71).  ``check=True`` raises ``RuntimeError`` on a
        solver failure (one host sync); else failed entries are NaN.
        """
        x = self._point(x)
        m = self.num_generators
        batch = torch.broadcast_shapes(x.shape[:-1], self.batch_shape)
        if method not in ("auto", "hrep", "qp"):
            raise ValueError(
                f"Zonotope.project: method must be 'auto', 'hrep' or 'qp', got {method!r}"
            )
        if m == 0:
            return self.center.expand(*batch, self.dim) + 0.0 * x
        if method == "hrep" or (method == "auto" and self._hrep_auto_ok()):
            return HPolytope(*self._hrep(), validate=False).project(x, check=check)
        G = self.generators
        Q = G.transpose(-1, -2) @ G
        p = (G.transpose(-1, -2) @ (self.center - x).unsqueeze(-1)).squeeze(-1)
        eye = torch.eye(m, dtype=self.dtype, device=self.device)
        G_ineq = torch.cat([eye, -eye], 0)
        h = torch.ones(2 * m, dtype=self.dtype, device=self.device)
        beta, status = _solvers.solve_qp(Q, p, G_ineq, h)
        if check:
            _solvers.check_status(status, "Zonotope.project")
        y = self.center + _matvec(G, beta)
        return torch.where((status == _solvers.SOLVED).unsqueeze(-1), y, math.nan)

    # -- sampling -------------------------------------------------------------------------

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        method: Literal["generators", "uniform"] = "generators",
        max_draws: int = 10_000_000,
    ) -> Tensor:
        """``(n, *batch, dim)`` random points of ``Z``.

        ``method="generators"`` (default, spec A §2.2 and the reference code's RCI reset
        distribution): ``c + G beta`` with ``beta ~ U([-1, 1]^m)``; *not* uniform over ``Z``
        (concentrated towards the centre for ``m > n``).  ``method="uniform"``: uniform over
        ``Z`` by rejection sampling from the interval hull (needs a full-dimensional zonotope;
        acceptance is ``vol(Z)/vol(box(Z))``; host syncs per round).
        """
        n = self._num_samples(n)
        g = self._generator(generator)
        if method == "generators":
            beta = torch.rand(
                (n, *self.batch_shape, self.num_generators),
                generator=g,
                dtype=self.dtype,
                device=self.device,
            )
            beta = 2.0 * beta - 1.0
            return self.center + _matvec(self.generators, beta)
        if method == "uniform":
            with torch.no_grad():
                hull = self.interval_hull()
                return _rejection_sample(
                    hull.low, hull.high, lambda y: self.contains(y, 0.0), n, g, max_draws
                )
        raise ValueError(
            f"Zonotope.sample: method must be 'generators' or 'uniform', got {method!r}"
        )

    # -- vertices ---------------------------------------------------------------------------

    def vertices(self) -> Tensor:
        """Vertices for low dimension (tests, plots), ``(*batch, V, n)``.

        * ``n = 1``: ``[c - r, c + r]``.
        * ``n = 2``: the ``2m`` boundary points in counter-clockwise order (generators sorted by
          angle); parallel or zero generators give repeated / collinear points on edges.
        * ``n >= 3``: for generators in general position, the vertices of every facet
          (``c + sum_{j not in S} sign(<nu, g_j>) g_j + G_S sigma``), each vertex repeated; if
          some generator lies in a facet hyperplane it was not enumerated for (coplanar
          generators), falls back to all ``2^m`` points ``c + G sigma`` (``m <= 16``), whose
          convex hull is ``Z`` but which include non-vertices.  One host sync.
        """
        n, m = self.dim, self.num_generators
        c, G = self.center, self.generators
        if m == 0:
            return c.unsqueeze(-2)
        if n == 1:
            r = G.abs().sum(-1)
            return torch.stack([c - r, c + r], -2)
        if n == 2:
            flip = (G[..., 1, :] < 0) | ((G[..., 1, :] == 0) & (G[..., 0, :] < 0))
            Gf = torch.where(flip.unsqueeze(-2), -G, G)
            ang = torch.atan2(Gf[..., 1, :], Gf[..., 0, :])
            order = ang.argsort(-1)
            Gs = torch.gather(Gf, -1, order.unsqueeze(-2).expand_as(Gf))  # (*b, 2, m)
            start = c - Gf.sum(-1)
            steps = torch.cumsum(2.0 * Gs, -1).transpose(-1, -2)  # (*b, m, 2)
            first = torch.cat([start.unsqueeze(-2), start.unsqueeze(-2) + steps[..., :-1, :]], -2)
            return torch.cat([first, 2.0 * c.unsqueeze(-2) - first], -2)
        N, valid, idx, Gdir, k = _facets.hrep_normals(G)
        Glen = torch.cat([G, torch.zeros_like(Gdir[..., m:])], -1) if k else G
        S = idx.shape[0]
        proj = N @ Glen  # (*b, S, m')
        in_sub = torch.zeros(S, m + k, dtype=torch.bool, device=self.device)
        in_sub[torch.arange(S, device=self.device).unsqueeze(-1), idx] = True
        scale = Glen.abs().sum(-2).amax(-1, keepdim=True).unsqueeze(-1)  # (*b, 1, 1)
        tie = (
            (proj.abs() <= 1e3 * torch.finfo(self.dtype).eps * scale)
            & ~in_sub
            & (Glen.abs().sum(-2) > 0).unsqueeze(-2)
        )
        if bool((tie & valid.unsqueeze(-1)).any()):
            if m > 16:
                raise ValueError(
                    "Zonotope.vertices: coplanar generators and m > 16; enumeration not supported"
                )
            bits = (
                torch.arange(2**m, device=self.device).unsqueeze(-1)
                >> torch.arange(m, device=self.device)
            ) & 1
            sig = (2 * bits - 1).to(self.dtype)  # (2^m, m)
            return c.unsqueeze(-2) + sig @ G.transpose(-1, -2)
        sgn = torch.where(in_sub, 0.0, torch.sign(proj))
        base = sgn @ Glen.transpose(-1, -2)  # (*b, S, n) offset from c on facet +nu
        q = n - 1
        bits = (
            torch.arange(2**q, device=self.device).unsqueeze(-1)
            >> torch.arange(q, device=self.device)
        ) & 1
        sig = (2 * bits - 1).to(self.dtype)  # (2^q, q)
        Gsub = Glen[..., idx].movedim(-3, -2)  # (*b, S, n, q)
        inner = sig @ Gsub.transpose(-1, -2)  # (*b, S, 2^q, n)
        pts_pos = base.unsqueeze(-2) + inner
        pts = torch.cat([pts_pos, -pts_pos], -3)  # (*b, 2S, 2^q, n) offsets (symmetric)
        vmask = torch.cat([valid, valid], -1)
        # replace points of rank-deficient subsets by those of the first valid subset
        first_valid = vmask.long().argmax(-1)  # (*b,)
        fill = torch.gather(
            pts, -3, first_valid[..., None, None, None].expand(*pts.shape[:-3], 1, *pts.shape[-2:])
        )
        pts = torch.where(vmask[..., None, None], pts, fill)
        return c.unsqueeze(-2) + pts.flatten(-3, -2)

    # -- zonotope containment ----------------------------------------------------------------

    def contains_zonotope(
        self,
        other: Zonotope | Box,
        method: Literal["exact", "sadraddini"] = "exact",
        tol: float = 1e-9,
        max_subsets: int = _facets.HREP_MAX_SUBSETS,
    ) -> Tensor:
        """``(*batch,)`` bool: ``other ⊆ self``.

        ``method="exact"``: ``other`` is inside iff its support in every facet normal of
        ``self``'s exact H-representation is at most the facet offset,
        ``N_f c_o + ||G_o^T N_f||_1 <= d_f + tol`` (closed form given the H-rep; exact, low
        dimension only, see :meth:`to_hpolytope`).

        ``method="sadraddini"``: the sufficient LP condition of Sadraddini & Tedrake (spec A
        §2.2): ``exists Gamma, beta: G_o = G Gamma, c - c_o = G beta, ||[Gamma, beta]||_inf <= 1``;
        solved as ``min s`` with the max absolute row sum ``<= s`` and reported as contained iff
        ``s* <= 1 + tol``.  Only sufficient: ``False`` does not prove non-containment.  The LP
        value is accurate to ~1e-8, so touching cases (``s* = 1``) need ``tol ~ 1e-6``.
        """
        if isinstance(other, Box):
            other = other.to_zonotope()
        if not isinstance(other, Zonotope):
            raise TypeError(
                f"contains_zonotope: expected a Zonotope or Box, got {type(other).__name__}"
            )
        if other.dim != self.dim:
            raise ValueError(f"contains_zonotope: dimensions differ ({self.dim} vs {other.dim})")
        if other.dtype != self.dtype or other.device != self.device:
            raise TypeError("contains_zonotope: both zonotopes must share dtype and device")
        if method == "exact":
            with torch.no_grad():
                C, d = self._hrep(max_subsets)
                sup = _matvec(C, other.center) + (C @ other.generators).abs().sum(-1)
                return (sup - d).amax(-1) <= tol
        if method == "sadraddini":
            with torch.no_grad():
                s = self.sadraddini_scale(other)
            return s <= 1.0 + tol
        raise ValueError(
            f"contains_zonotope: method must be 'exact' or 'sadraddini', got {method!r}"
        )

    def sadraddini_scale(self, other: Zonotope) -> Tensor:
        """Optimal value of the Sadraddini & Tedrake LP (spec A §2.2), ``(*batch,)``:

        ``min s  s.t.  G Gamma = G_o,  G beta = c - c_o,  sum_j |[Gamma, beta]_ij| <= s  (all i)``.

        ``s* <= 1`` certifies ``other ⊆ self``; ``+inf`` if the equalities are infeasible (e.g.
        ``G_o`` not in the range of ``G``); NaN on a solver failure.  Differentiable.
        """
        n = self.dim
        m2, m1 = self.num_generators, other.num_generators
        q = m1 + 1
        P = m2 * q
        batch = torch.broadcast_shapes(self.batch_shape, other.batch_shape)
        dt, dev = self.dtype, self.device
        if m2 == 0:  # self is a point: inside iff other is that same point
            same = ((other.center - self.center).abs().amax(-1) <= 0) & (
                other.generators.abs().sum((-1, -2)) <= 0
            )
            return torch.where(same, 0.0, math.inf).to(dt).expand(batch)
        G2 = self.generators.expand(*batch, n, m2)
        eye_q = torch.eye(q, dtype=dt, device=dev)
        # vec (row-major) of G2 Gamma' equals kron(G2, I_q) vec(Gamma')
        A_gam = (G2[..., :, None, :, None] * eye_q[:, None, :]).reshape(*batch, n * q, P)
        A = torch.cat([A_gam, A_gam.new_zeros((*batch, n * q, P + 1))], -1)
        rhs = torch.cat(
            [
                other.generators.expand(*batch, n, m1),
                (self.center - other.center).expand(*batch, n).unsqueeze(-1),
            ],
            -1,
        ).reshape(*batch, n * q)
        eye_p = torch.eye(P, dtype=dt, device=dev)
        zc = torch.zeros(P, 1, dtype=dt, device=dev)
        row_sum = torch.kron(
            torch.eye(m2, dtype=dt, device=dev), torch.ones(1, q, dtype=dt, device=dev)
        )
        G_ineq = torch.cat(
            [
                torch.cat([eye_p, -eye_p, zc], 1),
                torch.cat([-eye_p, -eye_p, zc], 1),
                torch.cat(
                    [
                        torch.zeros(m2, P, dtype=dt, device=dev),
                        row_sum,
                        -torch.ones(m2, 1, dtype=dt, device=dev),
                    ],
                    1,
                ),
            ],
            0,
        )
        h = torch.zeros(2 * P + m2, dtype=dt, device=dev)
        cost = torch.zeros(2 * P + 1, dtype=dt, device=dev)
        cost[-1] = 1.0
        z, status = _solvers.solve_lp(cost, G_ineq, h, A, rhs)
        val = torch.where(status == _solvers.SOLVED, z[..., -1], math.nan)
        return torch.where(status == _solvers.PRIMAL_INFEASIBLE, math.inf, val)
