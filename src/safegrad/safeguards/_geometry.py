"""Safe action regions ``A ∩ A_s`` in a canonical, batch-flattened form, and the geometry the
safeguards need on them: projection (spec A Eq. 12), ray distances (§3.3, closed form), safe
centres (§3.4) and the least-violating fallback point (issue 5, item 7).

Two kinds:

* ``"box"``: ``A ∩ A_s`` is an axis-aligned box ``[lo, hi]`` (a :class:`~safegrad.sets.Box` safe
  set, or any 1-D H-polytope, i.e. an interval as for the pendulum).  Everything is closed form.
* ``"poly"``: ``{a : N a <= e}`` with unit-norm rows; the last ``2m`` rows are the action box.
  Projection and centres are batched QPs/LPs (:mod:`safegrad.qp`), ray distances closed form.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from safegrad.qp import QPStatus, solve_qp
from safegrad.safeguards._base import check_like, flat, guard_threshold
from safegrad.sets import Box, HPolytope, Zonotope

__all__ = ["Region", "resolve_box", "default_directions"]

_SOLVED = int(QPStatus.SOLVED)
_MAX_ITER = int(QPStatus.MAX_ITER)


def resolve_box(spec: Any, m: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """Action box ``A`` as ``(low, high)`` tensors ``(*bb, m)`` with ``like``'s dtype/device.

    ``spec``: ``None`` (the unit box ``[-1, 1]^m``, the convention of every environment, spec A
    §2.1), a :class:`~safegrad.sets.Box`, or a pair ``(low, high)`` of numbers / tensors."""
    if spec is None:
        one = torch.ones(m, dtype=like.dtype, device=like.device)
        return -one, one
    if isinstance(spec, Box):
        low, high = spec.low, spec.high
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        low = torch.as_tensor(spec[0], dtype=like.dtype, device=like.device)
        high = torch.as_tensor(spec[1], dtype=like.dtype, device=like.device)
        low, high = torch.broadcast_tensors(low, high)
        if low.dim() == 0:
            low, high = low.expand(m), high.expand(m)
        if bool((low > high).any()) or not bool(
            torch.isfinite(low).all() & torch.isfinite(high).all()
        ):
            raise ValueError(
                f"action_box must be finite with low <= high, got ({spec[0]!r}, {spec[1]!r})"
            )
    else:
        raise TypeError(
            f"action_box must be None, a safegrad.sets.Box or a (low, high) pair, got {spec!r}"
        )
    check_like(low, like, "action_box")
    if low.shape[-1] != m:
        raise ValueError(f"action_box has dimension {low.shape[-1]}, the action has {m}")
    return low, high


def default_directions(
    m: int, n_g: int | None = None, *, dtype=torch.float64, device=None
) -> Tensor:
    """Fixed, deterministic unit generator directions ``D (m, n_g)`` of the inner zonotope
    (spec A §3.4; pitfall P5: never redrawn).

    Order: the coordinate axes ``e_1..e_m``; then the pair diagonals ``(e_i + e_j)/√2`` and
    ``(e_i - e_j)/√2`` for ``i < j`` in lexicographic order; then the full diagonals
    ``(1, ±1, ..., ±1)/√m``; then unit vectors drawn once from a ``torch.Generator`` seeded with 0.
    The first ``n_g`` of this list are used.  Default ``n_g = 2m`` (the paper's choice; 1 for
    ``m = 1``): for ``m = 2`` the axes and both diagonals.
    """
    if n_g is None:
        n_g = 1 if m == 1 else 2 * m
    if isinstance(n_g, bool) or not isinstance(n_g, int) or n_g < 1:
        raise ValueError(f"n_g must be a positive int, got {n_g!r}")
    cols: list[Tensor] = [torch.eye(m, dtype=torch.float64)[:, i] for i in range(m)]
    for i, j in itertools.combinations(range(m), 2):
        for sgn in (1.0, -1.0):
            v = torch.zeros(m, dtype=torch.float64)
            v[i], v[j] = 1.0, sgn
            cols.append(v / math.sqrt(2.0))
    if m > 2:
        for signs in itertools.product((1.0, -1.0), repeat=m - 1):
            if len(cols) >= n_g:
                break
            cols.append(torch.tensor((1.0, *signs), dtype=torch.float64) / math.sqrt(m))
    if len(cols) < n_g:
        g = torch.Generator().manual_seed(0)
        extra = torch.randn(m, n_g - len(cols), generator=g, dtype=torch.float64)
        extra = extra / torch.linalg.vector_norm(extra, dim=0, keepdim=True)
        cols.extend(extra.unbind(1))
    return torch.stack(cols[:n_g], 1).to(dtype=dtype, device=device)


def _matvec(M: Tensor, x: Tensor) -> Tensor:
    return (M @ x.unsqueeze(-1)).squeeze(-1)


def box_ray(c: Tensor, d: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """``max{t >= 0 : lo <= c + t d <= hi}`` for unit ``d`` (spec A §3.3, ``λ_A`` closed form),
    ``(B,)``.  Guarded: components ``|d_j| <= thr`` never limit (one ``|d_j| >= 1/√m`` does)."""
    thr = guard_threshold(c.dtype)
    pos, neg = d > thr, d < -thr
    d_safe = torch.where(pos | neg, d, torch.ones_like(d))
    inf = torch.full_like(d, math.inf)
    t = torch.where(pos, (hi - c) / d_safe, torch.where(neg, (lo - c) / d_safe, inf))
    return t.amin(-1).clamp_min(0.0)


def poly_ray(c: Tensor, d: Tensor, N: Tensor, e: Tensor) -> Tensor:
    """``max{t >= 0 : N (c + t d) <= e}`` (closed form, spec A §3.3), ``(B,)``; rows with
    ``N_i d <= thr`` never limit.  Finite whenever the box rows are part of ``N``."""
    thr = guard_threshold(c.dtype)
    a = _matvec(N, d)
    s = e - _matvec(N, c)
    pos = a > thr
    a_safe = torch.where(pos, a, torch.ones_like(a))
    t = torch.where(pos, s / a_safe, torch.full_like(a, math.inf))
    return t.amin(-1).clamp_min(0.0)


def clamp_box(x: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Euclidean projection onto ``[lo, hi]``; Jacobian ``diag(lo <= x <= hi)`` (boundary
    points count as inside)."""
    return torch.where(x > hi, hi, torch.where(x < lo, lo, x))


@dataclass
class Region:
    """``A ∩ A_s`` for a flat batch of ``B`` elements (see the module docstring).

    Attributes:
        kind: ``"box"`` or ``"poly"``.
        low, high: ``(B, m)`` action box ``A``.
        lo, hi: ``(B, m)`` the box ``A ∩ A_s`` (kind ``"box"``; replaced by ``low, high`` where
            empty so that downstream maths stays finite).
        lo_raw, hi_raw: ``(B, m)`` the same before that replacement (``lo > hi`` where empty).
        N, e: ``(B, k, m)``, ``(B, k)`` unit rows of ``A_s`` followed by the ``2m`` box rows
            (kind ``"poly"``).
        n_safe: number of rows of ``A_s`` in ``N``.
        empty: ``(B,)`` bool, structurally empty (known without a solve).
    """

    kind: str
    low: Tensor
    high: Tensor
    lo: Tensor | None = None
    hi: Tensor | None = None
    lo_raw: Tensor | None = None
    hi_raw: Tensor | None = None
    N: Tensor | None = None
    e: Tensor | None = None
    n_safe: int = 0
    empty: Tensor | None = None

    # -- construction ---------------------------------------------------------------------------

    @staticmethod
    def batch_of(safe_set: Any) -> torch.Size:
        return safe_set.batch_shape

    @classmethod
    def build(cls, safe_set: Any, low: Tensor, high: Tensor, batch: tuple[int, ...]) -> Region:
        """Flatten ``safe_set ∩ [low, high]`` to ``B = prod(batch)`` elements."""
        m = low.shape[-1]
        lowf, highf = flat(low, batch, 1), flat(high, batch, 1)
        if isinstance(safe_set, Box):
            lo = torch.maximum(flat(safe_set.low, batch, 1), lowf)
            hi = torch.minimum(flat(safe_set.high, batch, 1), highf)
            return cls._box(lowf, highf, lo, hi, torch.zeros_like(lo[:, 0], dtype=torch.bool))
        if isinstance(safe_set, Zonotope):
            safe_set = safe_set.to_hpolytope()
        if not isinstance(safe_set, HPolytope):
            raise TypeError(
                "safe_set must be a safegrad.sets.HPolytope, Box or Zonotope, "
                f"got {type(safe_set).__name__}"
            )
        C, d = flat(safe_set.C, batch, 2), flat(safe_set.d, batch, 1)
        nrm = torch.linalg.vector_norm(C, dim=-1)
        zero = nrm == 0
        # +inf offsets: no constraint; zero rows: 0 <= d (empty if d < 0); -inf: empty.
        empty_row = (zero & (d < 0)) | (d == -math.inf)
        inert = zero | (d == math.inf) | empty_row
        empty = empty_row.any(-1)
        nrm_safe = torch.where(zero, torch.ones_like(nrm), nrm)
        N = torch.where(inert.unsqueeze(-1), 0.0, C / nrm_safe.unsqueeze(-1))
        e = torch.where(inert, 1.0, d / nrm_safe)
        if m == 1:  # an interval: closed form (spec A §11.3, pendulum)
            n1 = N[..., 0]
            inf = torch.full_like(e, math.inf)
            hi = torch.where(n1 > 0, e / torch.where(n1 > 0, n1, 1.0), inf).amin(-1)
            lo = torch.where(n1 < 0, e / torch.where(n1 < 0, n1, 1.0), -inf).amax(-1)
            lo = torch.maximum(lo.unsqueeze(-1), lowf)
            hi = torch.minimum(hi.unsqueeze(-1), highf)
            return cls._box(lowf, highf, lo, hi, empty)
        eye = torch.eye(m, dtype=C.dtype, device=C.device)
        Nb = torch.cat([eye, -eye], 0).expand(N.shape[0], 2 * m, m)
        N = torch.cat([N, Nb], 1)
        e = torch.cat([e, highf, -lowf], 1)
        return cls("poly", lowf, highf, N=N, e=e, n_safe=C.shape[-2], empty=empty)

    @classmethod
    def _box(cls, low, high, lo, hi, empty) -> Region:
        bad = (lo > hi).any(-1) | empty
        b = bad.unsqueeze(-1)
        return cls(
            "box",
            low,
            high,
            lo=torch.where(b, low, lo),
            hi=torch.where(b, high, hi),
            lo_raw=lo,
            hi_raw=hi,
            empty=bad,
        )

    # -- closed form ----------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self.low.shape[-1]

    def residual(self, x: Tensor) -> Tensor:
        """``(B,)`` largest (unit-row) constraint violation of ``x`` in ``A ∩ A_s``."""
        if self.kind == "box":
            r = torch.maximum(self.lo - x, x - self.hi).amax(-1)
        else:
            r = (_matvec(self.N, x) - self.e).amax(-1)
        return torch.where(self.empty, math.inf, r)

    def ray(self, c: Tensor, d: Tensor) -> Tensor:
        """``λ_As``: distance from ``c`` to the boundary of ``A ∩ A_s`` along unit ``d``."""
        if self.kind == "box":
            return box_ray(c, d, self.lo, self.hi)
        return poly_ray(c, d, self.N, self.e)

    def box_ray(self, c: Tensor, d: Tensor) -> Tensor:
        """``λ_A``: distance from ``c`` to the boundary of the action box along unit ``d``."""
        return box_ray(c, d, self.low, self.high)

    # -- projection (spec A Eq. 12) ---------------------------------------------------------------

    def project(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Euclidean projection onto ``A ∩ A_s`` and ``ok (B,)`` (solved, not known empty).

        Box kind: ``clamp`` (Jacobian ``diag`` of the inactive coordinates, Theorem 1).  Poly
        kind: the batched QP ``min ||y - x||^2, N y <= e``; its implicit-differentiation backward
        is the projector onto the inactive constraints' complement
        ``I - N_act^T (N_act N_act^T)^+ N_act`` (Theorem 1, Eq. 71 in polytope form).
        """
        if self.kind == "box":
            return clamp_box(x, self.lo, self.hi), ~self.empty
        m = self.dim
        eye = torch.eye(m, dtype=x.dtype, device=x.device)
        y, info = solve_qp(eye, -x, self.N, self.e, return_info=True)
        ok = ((info.status == _SOLVED) | (info.status == _MAX_ITER)) & ~self.empty
        return y, ok

    # -- centres (spec A §3.4) --------------------------------------------------------------------

    def midpoint(self) -> Tensor:
        return 0.5 * (self.lo + self.hi)

    def chebyshev_centre(self, reg: float) -> tuple[Tensor, Tensor, Tensor]:
        """Centre and radius of the largest ball in ``A ∩ A_s`` (our own option, an LP made
        strictly convex): ``min -r + reg/2 (||x - x_A||^2 + r^2)  s.t.  N x + r <= e, r >= 0``
        with ``x_A`` the action-box centre.  The tiny proximal term picks the Chebyshev centre
        closest to ``x_A`` when it is not unique (e.g. a long box), which makes the centre a
        well-defined, differentiable function of the set.  Returns ``(c (B,m), r (B,), ok)``.
        Box kind: the midpoint (the centre of the box, radius = half the smallest width)."""
        if self.kind == "box":
            r = 0.5 * (self.hi - self.lo).amin(-1)
            return self.midpoint(), r, ~self.empty
        B, k, m = self.N.shape
        dt, dev = self.N.dtype, self.N.device
        wr = torch.linalg.vector_norm(self.N, dim=-1, keepdim=True)  # 1, or 0 for inert rows
        G = torch.cat([self.N, wr], -1)
        row = torch.zeros(1, m + 1, dtype=dt, device=dev)
        row[0, m] = -1.0
        G = torch.cat([G, row.expand(B, 1, m + 1)], 1)
        h = torch.cat([self.e, self.e.new_zeros(B, 1)], 1)
        Q = reg * torch.eye(m + 1, dtype=dt, device=dev)
        xA = 0.5 * (self.low + self.high)
        p = torch.cat([-reg * xA, torch.full((B, 1), -1.0, dtype=dt, device=dev)], -1)
        z, info = solve_qp(Q, p, G, h, return_info=True)
        ok = ((info.status == _SOLVED) | (info.status == _MAX_ITER)) & ~self.empty
        return z[:, :m], z[:, m], ok

    def zonotope_centre(self, D: Tensor, reg: float) -> tuple[Tensor, Tensor, Tensor]:
        """Inner zonotope ``<c, D diag(l)> ⊆ A ∩ A_s`` with fixed unit directions ``D (m, n_g)``
        (spec A §3.4, the paper's "zonotopic approximation", P5-deterministic).

        Containment of a zonotope in ``{N a <= e}`` is exact through support functions:
        ``N c + |N D| l <= e``.  The paper maximises the geometric mean of ``l`` (not an LP); we
        maximise the linear surrogate ``(min_k l_k + mean_k l_k)/2`` (``min <= geo-mean <=
        mean``), with ``t = min_k l_k`` as a variable, plus the same tiny proximal term as
        :meth:`chebyshev_centre` for uniqueness:
        ``min -(t + mean(l))/2 + reg/2 (||c - x_A||^2 + ||l||^2 + t^2)
        s.t. N c + |N D| l <= e,  t <= l_k,  t >= 0``  (one batched QP).
        Returns ``(c (B,m), l (B,n_g), ok)``.  Box kind: the midpoint (and ``l = 0``)."""
        n_g = D.shape[1]
        if self.kind == "box":
            return self.midpoint(), self.lo.new_zeros(self.lo.shape[0], n_g), ~self.empty
        B, k, m = self.N.shape
        dt, dev = self.N.dtype, self.N.device
        nv = m + n_g + 1
        ND = (self.N @ D).abs()  # (B, k, n_g)
        G1 = torch.cat([self.N, ND, self.N.new_zeros(B, k, 1)], -1)
        G2 = torch.cat(
            [
                torch.zeros(n_g, m, dtype=dt, device=dev),
                -torch.eye(n_g, dtype=dt, device=dev),
                torch.ones(n_g, 1, dtype=dt, device=dev),
            ],
            -1,
        )
        G3 = torch.zeros(1, nv, dtype=dt, device=dev)
        G3[0, -1] = -1.0
        G = torch.cat([G1, torch.cat([G2, G3], 0).expand(B, n_g + 1, nv)], 1)
        h = torch.cat([self.e, self.e.new_zeros(B, n_g + 1)], 1)
        Q = reg * torch.eye(nv, dtype=dt, device=dev)
        xA = 0.5 * (self.low + self.high)
        p_l = torch.full((B, n_g), -0.5 / n_g, dtype=dt, device=dev)
        p_t = torch.full((B, 1), -0.5, dtype=dt, device=dev)
        p = torch.cat([-reg * xA, p_l, p_t], -1)
        z, info = solve_qp(Q, p, G, h, return_info=True)
        ok = ((info.status == _SOLVED) | (info.status == _MAX_ITER)) & ~self.empty
        return z[:, :m], z[:, m : m + n_g], ok

    # -- fallback (issue 5, item 7) ---------------------------------------------------------------

    def least_violating(self) -> Tensor:
        """``(B, m)`` a point of the action box that minimises the largest (unit-row) violation
        of ``A_s``; inside ``A ∩ A_s`` when that is non-empty.  Detached (no gradient).

        Box kind: per coordinate the midpoint of ``[lo_raw, hi_raw]`` clamped to the action box.
        Poly kind: the LP ``max r  s.t.  N_s a + r <= e_s,  low <= a <= high,  r <= w`` with
        ``w`` the largest box width (``r`` may be negative: the violation bound)."""
        with torch.no_grad():
            if self.kind == "box":
                mid = 0.5 * (self.lo_raw + self.hi_raw)
                return clamp_box(mid, self.low, self.high)
            B, k, m = self.N.shape
            dt, dev = self.N.dtype, self.N.device
            wr = torch.linalg.vector_norm(self.N, dim=-1, keepdim=True)
            wr[:, self.n_safe :] = 0.0  # box rows are hard constraints
            G = torch.cat([self.N, wr], -1)
            row = torch.zeros(1, m + 1, dtype=dt, device=dev)
            row[0, m] = 1.0
            G = torch.cat([G, row.expand(B, 1, m + 1)], 1)
            width = (self.high - self.low).amax(-1, keepdim=True)
            h = torch.cat([self.e, width + 1.0], 1)
            c = torch.zeros(m + 1, dtype=dt, device=dev)
            c[m] = -1.0
            z, info = solve_qp(None, c.expand(B, m + 1), G, h, return_info=True)
            x = z[:, :m]
            good = (info.status == _SOLVED) | (info.status == _MAX_ITER)
            # last resort (never expected: the LP is always feasible and bounded): box centre
            x = torch.where(good.unsqueeze(-1), x, 0.5 * (self.low + self.high))
            return clamp_box(torch.nan_to_num(x), self.low, self.high)
