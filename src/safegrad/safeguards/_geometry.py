"""Safe action regions ``A ∩ A_s`` in a canonical, batch-flattened form, and the geometry the
safeguards need on them: projection (spec A Eq. 12), ray distances (§3.3, closed form), safe
centres (§3.4) and the least-violating fallback point (issue 5, item 7).

Canonical form (what :meth:`Region.build` makes of an ``HPolytope`` / ``Box`` / ``Zonotope``
intersected with the action box ``A = [low, high]``):

* **box part** ``[lo, hi]``: the action box tightened by every *axis row* of ``A_s`` (a row with
  exactly one non-zero entry, ``C_jl a_l <= d_j``).  Computed in closed form by a custom autograd
  function (:class:`_AxisBounds`): ``hi_l = min_j d_j / C_jl`` over the rows with ``C_jl > 0``,
  etc.  Zero rows ``0 a <= d_j`` are satisfied or make the set empty (``d_j < 0``).  This covers
  1-D sets (the pendulum's interval), ``Box`` sets and sets like the household's, whose rows each
  act on a single action coordinate.
* **general rows** (two or more non-zero entries), normalised to unit rows and **pruned**: a row
  is dropped when it is redundant on the box part (its support on ``[lo, hi]`` is below its
  offset by a margin), which does not change the set.  What is left is packed into
  ``N (B, kg, m)``, ``e (B, kg)`` (``kg`` = the batch maximum; elements with fewer rows are padded
  with a redundant row) followed by the ``2m`` rows of the box part.  Only the elements with at
  least one general row left (``Region.gidx``) need a solver.

Per element, everything is closed form on the box part.  On the elements with general rows:
projection by an exact 2-D method for ``m = 2`` (:func:`project_polygon`, one custom autograd
function, falling back to the QP where its check fails) and a batched QP (:mod:`safegrad.qp`)
for ``m >= 3``; the zonotopic and Chebyshev centres by a batched QP; ray distances in closed
form.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from torch import Tensor

from safegrad.qp import QPStatus, solve_qp
from safegrad.safeguards._base import check_like, flat, guard_threshold
from safegrad.sets import Box, HPolytope, Zonotope

__all__ = [
    "Region",
    "resolve_box",
    "default_directions",
    "project_polygon",
    "project_polytope_2d",
    "ray_map",
    "least_violating_point",
]

_SOLVED = int(QPStatus.SOLVED)
_MAX_ITER = int(QPStatus.MAX_ITER)
_CONST_CACHE: dict[tuple, Any] = {}


def _const(key: tuple, make):
    """Small constant tensors (the unit action box, the box rows ``[I; -I]``) cached per
    ``(name, m, dtype, device)``; created outside inference mode so that they can be used in
    autograd graphs later."""
    val = _CONST_CACHE.get(key)
    if val is None:
        with torch.inference_mode(False), torch.no_grad():
            val = make()
        _CONST_CACHE[key] = val
    return val


def _unit_box(m: int, dtype, device) -> tuple[Tensor, Tensor]:
    def make():
        one = torch.ones(m, dtype=dtype, device=device)
        return -one, one

    return _const(("box", m, dtype, device), make)


def _box_rows(m: int, dtype, device) -> Tensor:
    """``[I; -I]`` ``(2m, m)``: the rows ``a <= hi``, ``-a <= -lo`` of a box."""

    def make():
        eye = torch.eye(m, dtype=dtype, device=device)
        return torch.cat([eye, -eye], 0)

    return _const(("rows", m, dtype, device), make)


def resolve_box(spec: Any, m: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """Action box ``A`` as ``(low, high)`` tensors ``(*bb, m)`` with ``like``'s dtype/device.

    ``spec``: ``None`` (the unit box ``[-1, 1]^m``, the convention of every environment, spec A
    §2.1), a :class:`~safegrad.sets.Box`, or a pair ``(low, high)`` of numbers / tensors."""
    if spec is None:
        return _unit_box(m, like.dtype, like.device)
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


def has_all_axes(D: Tensor) -> bool:
    """Whether the unit directions ``D (m, n_g)`` contain every coordinate axis (up to sign).
    Then the inner-zonotope centre of a box is its midpoint (see :meth:`Region.zonotope_centre`)."""
    m = D.shape[0]
    eye = torch.eye(m, dtype=D.dtype, device=D.device)
    match = (D.abs().unsqueeze(1) == eye.unsqueeze(-1)).all(0)  # (m, n_g): column g is ±e_l
    return bool(match.any(-1).all())


def _matvec(M: Tensor, x: Tensor) -> Tensor:
    """``M x`` for ``M (B, k, m)``, ``x (B, m)`` (``bmm``: fewer dispatches than ``@``), or any
    broadcastable shapes."""
    if M.dim() == 3 and x.dim() == 2 and M.shape[0] == x.shape[0]:
        return torch.bmm(M, x.unsqueeze(-1)).squeeze(-1)
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


# ---------------------------------------------------------------------------------------------
# box part: closed-form bounds from the axis rows
# ---------------------------------------------------------------------------------------------


class _AxisBounds(torch.autograd.Function):
    """``lo, hi (B, m)``: the action box ``[low, high]`` tightened by the axis rows of
    ``{C a <= d}``: ``hi_l = min(high_l, min_{j: C_jl > 0} d_j / C_jl)``, ``lo_l`` likewise.
    ``npos``/``nneg`` ``(B, k, m)`` mask out the entries that are not positive / negative entries
    of axis rows (built with ``<=``/``>=`` so that NaN entries are *not* masked and propagate).

    Also returns ``bad (B,)``: ``zero_bad`` (a zero row with ``d < 0``), crossed or NaN bounds;
    where bad, the differentiable outputs are the action box (so that downstream maths stays
    finite) and ``side["raw"]`` keeps the raw bounds (``None`` when no element is bad).

    Backward: for the row ``j`` that attains ``hi_l`` (strictly tighter than the action box),
    ``∂hi_l/∂d_j = 1/C_jl``, ``∂hi_l/∂C_jl = -hi_l/C_jl``; otherwise the gradient goes to
    ``high_l``.  Same for ``lo``.
    """

    @staticmethod
    def forward(ctx, C, d, low, high, masks, side):
        npos, nneg, zero_bad = masks
        ratio = d.unsqueeze(-1) / C
        hi_r, j_hi = ratio.masked_fill(npos, math.inf).min(-2)
        lo_r, j_lo = ratio.masked_fill(nneg, -math.inf).max(-2)
        hi = torch.minimum(hi_r, high)
        lo = torch.maximum(lo_r, low)
        bad = ~(lo <= hi).all(-1)
        if zero_bad is not None:
            bad = bad | zero_bad
        if bool(bad.any()):
            side["raw"] = (lo, hi)
            b = bad.unsqueeze(-1)
            lo, hi = torch.where(b, low, lo), torch.where(b, high, hi)
            ctx.bad = b
        else:
            side["raw"] = None
            ctx.bad = None
        ctx.save_for_backward(C, j_hi, j_lo, hi_r, lo_r, low, high, lo, hi)
        ctx.mark_non_differentiable(bad)
        return lo, hi, bad

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_lo, g_hi, _gbad):
        C, j_hi, j_lo, hi_r, lo_r, low, high, lo, hi = ctx.saved_tensors
        need_C, need_d, need_low, need_high = ctx.needs_input_grad[:4]
        f_hi, f_lo = hi_r < high, lo_r > low
        if ctx.bad is not None:
            f_hi, f_lo = f_hi & ~ctx.bad, f_lo & ~ctx.bad
        gC = gd = glow = ghigh = None
        if need_C or need_d:
            gC, gd = _bounds_grads(C, j_hi, j_lo, f_hi, f_lo, g_lo, g_hi, lo, hi, need_C, need_d)
        if need_low:
            glow = _reduce_like(torch.where(f_lo, 0.0, g_lo), low)
        if need_high:
            ghigh = _reduce_like(torch.where(f_hi, 0.0, g_hi), high)
        return gC, gd, glow, ghigh, None, None


def _axis_bounds_value(C, d, low, high, npos, nneg, zero_bad):
    """``lo, hi, bad`` of the box part (no gradient; see :class:`_AxisBounds`)."""
    ratio = d.unsqueeze(-1) / C
    hi = torch.minimum(ratio.masked_fill(npos, math.inf).amin(-2), high)
    lo = torch.maximum(ratio.masked_fill(nneg, -math.inf).amax(-2), low)
    bad = ~(lo <= hi).all(-1)
    if zero_bad is not None:
        bad = bad | zero_bad
    b = bad.unsqueeze(-1)
    return torch.where(b, low, lo), torch.where(b, high, hi), bad


def _reduce_like(g: Tensor, t: Tensor) -> Tensor:
    """Sum a ``(B, m)`` gradient over the batch for an unbatched ``(m,)`` input."""
    return g.sum(0) if t.dim() < g.dim() else g


class _BoxProject(torch.autograd.Function):
    """Boundary projection onto the box part, fused with its bounds (the axis rows, as in
    :class:`_AxisBounds`): ``a_s = a`` where ``a``'s residual is ``<= tol`` (returned exactly,
    Jacobian ``I``), else ``clamp(a, lo, hi)`` (spec A Eq. 12 on a box).

    Backward (Theorem 1 on a box): ``∂a_s/∂a = diag(free coordinates)``; a coordinate clamped at
    a bound set by row ``j`` sends ``g_l / C_jl`` to ``d_j`` and ``-g_l hi_l / C_jl`` to
    ``C_jl`` (``lo`` likewise), a coordinate clamped at the action box sends ``g_l`` to
    ``high_l``/``low_l``.  ``side`` receives ``lo, hi, bad, safe`` (detached) and ``raw``.
    """

    @staticmethod
    def forward(ctx, a, C, d, low, high, masks, tol, side):
        npos, nneg, zero_bad = masks
        ratio = d.unsqueeze(-1) / C
        hi_r, j_hi = ratio.masked_fill(npos, math.inf).min(-2)
        lo_r, j_lo = ratio.masked_fill(nneg, -math.inf).max(-2)
        hi = torch.minimum(hi_r, high)
        lo = torch.maximum(lo_r, low)
        bad = ~(lo <= hi).all(-1)
        if zero_bad is not None:
            bad = bad | zero_bad
        viol = torch.maximum(lo - a, a - hi).amax(-1)
        if bool(bad.any()):
            side["raw"] = (lo, hi)
            b = bad.unsqueeze(-1)
            lo, hi = torch.where(b, low, lo), torch.where(b, high, hi)
            viol = viol.masked_fill(bad, math.inf)
        else:
            side["raw"] = None
        safe = viol <= tol
        out = torch.where(safe.unsqueeze(-1), a, torch.clamp(a, lo, hi))
        side.update(lo=lo, hi=hi, bad=bad, safe=safe)
        ctx.save_for_backward(a, C, lo, hi, safe, hi_r, lo_r, low, high, j_hi, j_lo)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        a, C, lo, hi, safe, hi_r, lo_r, low, high, j_hi, j_lo = ctx.saved_tensors
        need = ctx.needs_input_grad
        s = safe.unsqueeze(-1)
        up = (a > hi) & ~s
        dn = (a < lo) & ~s
        ga = gC = gd = glow = ghigh = None
        if need[0]:
            ga = torch.where(up | dn, 0.0, g)
        th, tl = up & (hi_r < high), dn & (lo_r > low)  # clamped at a bound set by a row
        if need[1] or need[2]:
            B, k, m = C.shape
            act = th | tl
            j = torch.where(th, j_hi, j_lo)
            c = C.gather(1, j.unsqueeze(1)).squeeze(1)
            q = torch.where(act, g, 0.0) / torch.where(act, c, 1.0)
            if need[2]:
                gd = C.new_zeros(B, k).scatter_add_(1, j, q)
            if need[1]:
                idx = j * m + torch.arange(m, device=C.device)
                val = -q * torch.where(th, hi, lo)
                gC = C.new_zeros(B, k * m).scatter_add_(1, idx, val).view(B, k, m)
        if need[3]:
            glow = _reduce_like(torch.where(dn & ~tl, g, 0.0), low)
        if need[4]:
            ghigh = _reduce_like(torch.where(up & ~th, g, 0.0), high)
        return ga, gC, gd, glow, ghigh, None, None, None


# ---------------------------------------------------------------------------------------------
# exact 2-D projection onto a polygon
# ---------------------------------------------------------------------------------------------


def _cross(u: Tensor, v: Tensor) -> Tensor:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _polygon_core(x: Tensor, N: Tensor, e: Tensor, tol: float, redundant: Tensor | None = None):
    """The forward of :class:`_PolygonProject`: ``y (P, 2)``, ``ok (P,)`` and the tensors its
    backward needs ``(n1, n2, det_s, two, lam1, lam2, y, i_row, j_row)``.  ``redundant``
    ``(P, k)`` bool: rows known to be redundant (never active), left out of the candidates."""
    P, k, _ = N.shape
    thr = 64.0 * torch.finfo(x.dtype).eps
    r = torch.baddbmm(e.unsqueeze(-1), N, x.unsqueeze(-1), beta=-1.0).squeeze(-1)  # residuals
    rc = r if redundant is None else r.masked_fill(redundant, -math.inf)
    kv = min(max(int((rc > tol).sum(-1).max()), 1), k)
    if kv < k:
        ri, cand = rc.topk(kv, -1)  # (P, kv): the violated rows first
    else:
        ri, cand = r, torch.arange(k, device=x.device).expand(P, k)
    Ni = N.gather(1, cand.unsqueeze(-1).expand(P, kv, 2))
    ei = e.gather(1, cand)
    rot = _const(
        ("rot90", x.dtype, x.device),
        lambda: torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=x.dtype, device=x.device),
    )
    NT = N.mT
    # rows [N_i; τ_i] (τ_i = (-N_i2, N_i1), the tangent) times N_j and x, in two products
    NiT = torch.cat([Ni, Ni @ rot], 1)  # (P, 2 kv, 2)
    prod = torch.bmm(NiT, torch.cat([NT, x.unsqueeze(-1)], -1))  # (P, 2 kv, k + 1)
    S = prod[:, kv:, :k]  # N_j · τ_i = det(N_i, N_j)
    num = e.unsqueeze(1) - ei.unsqueeze(-1) * prod[:, :kv, :k]
    tx = prod[:, kv:, k]  # τ_i · x
    pos, neg = S > thr, S < -thr
    ratio = num / S
    t_hi, j_hi = ratio.masked_fill(~pos, math.inf).min(-1)
    t_lo, j_lo = ratio.masked_fill(~neg, -math.inf).max(-1)
    par_bad = ((num < -tol) & ~(pos | neg)).any(-1)
    t = torch.minimum(torch.maximum(tx, t_lo), t_hi)
    # |x - (e_i N_i + t τ_i)|^2 = r_i^2 + (τ_i·x - t)^2  (N_i, τ_i orthonormal)
    dist = torch.addcmul(ri * ri, tx - t, tx - t)
    dist = dist.masked_fill(par_bad | (t_lo > t_hi + tol), math.inf)
    dmin, best = dist.min(-1)
    b1 = best.unsqueeze(-1)
    vals = torch.stack((t, tx, t_hi, t_lo, ei, ri), 1).gather(2, b1.unsqueeze(1).expand(P, 6, 1))
    tb, txb, thb, tlb, eb, rb = vals.squeeze(-1).unbind(-1)
    js = torch.stack((j_hi, j_lo, cand), 1).gather(2, b1.unsqueeze(1).expand(P, 3, 1))
    jhb, jlb, i_row = js.squeeze(-1).unbind(-1)
    n1 = Ni.gather(1, b1.unsqueeze(-1).expand(P, 1, 2)).squeeze(1)
    tau1 = n1 @ rot
    y = torch.addcmul(eb.unsqueeze(-1) * n1, tb.unsqueeze(-1), tau1)
    hi_act = txb > thb
    two = hi_act | (txb < tlb)
    j_row = torch.where(hi_act, jhb, jlb)
    n2 = N.gather(1, j_row.view(P, 1, 1).expand(P, 1, 2)).squeeze(1)
    det = tau1.mul(n2).sum(-1)  # det(n1, n2)
    det_s = torch.where(two, det, 1.0)
    w = x - y
    # multipliers: one row: the residual; two rows: [n1 n2] λ = x - y (Cramer)
    lam1 = torch.where(two, _cross(w, n2) / det_s, rb)
    lam2 = torch.where(two, _cross(n1, w) / det_s, 0.0)
    dtol = tol * (1.0 + x.abs().amax(-1))
    ok = torch.isfinite(dmin) & (torch.minimum(lam1, lam2) >= -dtol) & torch.isfinite(y).all(-1)
    return y, ok, (n1, n2, det_s, two, lam1, lam2, y, i_row, j_row)


class _PolygonProject(torch.autograd.Function):
    """Euclidean projection of ``x (P, 2)`` onto ``{y : N y <= e}`` (unit rows ``N (P, k, 2)``;
    unbounded polygons allowed) for points **outside** it, exact and batched (spec A Eq. 12).

    Forward.  The projection lies on the boundary, on the line of a row that ``x`` violates
    (``x - y = Σ λ_j N_j`` with ``λ >= 0`` has a positive inner product with ``x - y``, so some
    active row has ``N_j x > e_j``).  For each candidate row ``i`` (the ``kv`` largest residuals,
    ``kv`` = the batch maximum of the number of violated rows) the part of its line inside the
    polygon is the segment ``e_i N_i + t τ_i``, ``t in [t_lo, t_hi]`` (``τ_i`` the tangent;
    ``t_hi = min_j (e_j - e_i N_j·N_i)/(N_j·τ_i)`` over ``N_j·τ_i > 0``, ``t_lo`` likewise;
    a parallel row with a negative gap makes it empty).  The nearest point of the nearest
    segment is the projection; its active set is row ``i`` plus the row that clamps ``t``.
    Cost ``O(P kv k)``.

    Check: the KKT multipliers of that active set must be ``>= -dtol`` (``ok``); elsewhere the
    caller uses the QP.  Backward: implicit differentiation of the active-set projection
    ``y = x - N_A^T (N_A N_A^T)^{-1} (N_A x - e_A)``: ``∂L/∂x = P g`` (``P`` the projector onto
    the complement of the active normals: Theorem 1), ``∂L/∂e_A = v``,
    ``∂L/∂N_A = -(λ u^T + v y^T)`` with ``u = P g``, ``v = (N_A N_A^T)^{-1} N_A g``.
    """

    @staticmethod
    def forward(ctx, x, N, e, tol):
        y, ok, saved = _polygon_core(x, N, e, tol)
        ctx.save_for_backward(*saved)
        ctx.k = N.shape[1]
        ctx.mark_non_differentiable(ok)
        return y, ok

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g, _gok):
        need = ctx.needs_input_grad
        gx, gN, ge = _polygon_grads(g, ctx.saved_tensors, ctx.k, need[0], need[1], need[2])
        return gx, gN, ge, None


def _polygon_grads(g: Tensor, saved, k: int, need_x: bool, need_N: bool, need_e: bool):
    """Backward of :class:`_PolygonProject` (its docstring) from the saved tensors of
    :func:`_polygon_core`: ``(∂L/∂x, ∂L/∂N (P, k, 2), ∂L/∂e (P, k))``, ``None`` where not
    needed."""
    n1, n2, det_s, two, lam1, lam2, y, i_row, j_row = saved
    P = g.shape[0]
    two_ = two.unsqueeze(-1)
    # one active row (unit): v1 = n1·g, u = g - v1 n1; two: u = 0, v = [n1 n2]^{-1} g
    v1_one = (n1 * g).sum(-1)
    v1 = torch.where(two, _cross(g, n2) / det_s, v1_one)
    v2 = torch.where(two, _cross(n1, g) / det_s, 0.0)
    u = torch.where(two_, 0.0, g - v1_one.unsqueeze(-1) * n1)
    gN = ge = None
    ar = torch.arange(P, device=g.device)
    if need_N:
        gN = g.new_zeros(P, k, 2)
        dN1 = -(lam1.unsqueeze(-1) * u + v1.unsqueeze(-1) * y)
        dN2 = torch.where(two_, -(v2.unsqueeze(-1) * y), 0.0)
        gN.index_put_((ar, i_row), dN1, accumulate=True)
        gN.index_put_((ar, j_row), dN2, accumulate=True)
    if need_e:
        ge = g.new_zeros(P, k)
        ge.index_put_((ar, i_row), v1, accumulate=True)
        ge.index_put_((ar, j_row), v2, accumulate=True)
    return (u if need_x else None), gN, ge


def cutting_fraction(
    C: Tensor, d: Tensor, low: Tensor, high: Tensor, tol: float, scale, gen: Tensor | None = None
) -> float:
    """Fraction of the ``B`` elements of ``{C a <= d}`` (``C (B, k, m)``) with a general row
    (two or more non-zero entries) that is not redundant on the action box ``[low, high]``
    (``(m,)``; support below the offset by the pruning margin).  The raw 2-D paths
    (:class:`_PolytopeProject2D`, :meth:`Region.build_raw`) pay off when most elements need a
    solver; where most sets reduce to boxes after pruning the fused box paths are cheaper.  One
    host sync.  ``gen``: the ``(B, k)`` general-row mask, when the caller has it."""
    with torch.no_grad():
        m = C.shape[-1]
        if gen is None:
            gen = (C != 0).sum(-1) > 1
        nu = torch.linalg.vector_norm(C, dim=-1)
        if low is _unit_box(m, low.dtype, low.device)[0]:
            supp = C.abs().sum(-1)
        else:
            supp = _matvec(C, 0.5 * (low + high)) + _matvec(C.abs(), 0.5 * (high - low))
        margin = (2.0 * math.sqrt(m) * tol * scale) * nu
        cut = (gen & ~(supp <= d - margin)).any(-1)
        return float(cut.sum()) / max(C.shape[0], 1)


class _PolytopeProject2D(torch.autograd.Function):
    """Boundary projection onto ``{C a <= d} ∩ [low, high]`` for ``m = 2``, fused, on the raw
    rows (no pruning, no :class:`Region`): the fast path of
    :class:`~safegrad.safeguards.BoundaryProjection` for 2-D sets with general rows.

    Forward: unit rows ``N = C/|C|``, ``e = d/|C|`` (zero rows replaced by the inert row
    ``a_1 <= high_1 + 1``) and the 4 rows of the action box; ``a`` where its largest residual is
    ``<= tol`` (returned exactly), else the exact 2-D projection :func:`_polygon_core` over all
    rows (redundant rows are never active, so this is the projection onto the pruned set too).
    ``side["safe"]``, and ``side["bad"]``: elements the caller must solve by the general path
    (a zero row with ``d < 0`` or NaN, a non-finite residual, a failed multiplier check of the
    2-D method or a residual of the output above ``tol * scale``).

    Backward: ``g`` to ``a`` where safe; elsewhere :func:`_polygon_grads` (Theorem 1), mapped
    through the normalisation (``∂N/∂C = (I - N N')/|C|``, ``∂e/∂C = -e N/|C|``,
    ``∂e/∂d = 1/|C|``) and to ``high`` / ``low`` for the box rows.
    """

    @staticmethod
    def forward(ctx, a, C, d, low, high, tol, scale, side):
        B, k, m = C.shape
        nu = torch.linalg.vector_norm(C, dim=-1)
        zero = nu == 0
        nu_s = torch.where(zero, 1.0, nu)
        hi2 = high.expand(B, m)
        N = torch.where(
            zero.unsqueeze(-1),
            _const(
                ("e1", m, C.dtype, C.device),
                lambda: torch.eye(m, dtype=C.dtype, device=C.device)[0],
            ),
            C / nu_s.unsqueeze(-1),
        )
        e = torch.where(zero, hi2[:, :1] + 1.0, d / nu_s)
        Nf = torch.cat([N, _box_rows(m, C.dtype, C.device).expand(B, 2 * m, m)], 1)
        ef = torch.cat([e, hi2, -low.expand(B, m)], 1)
        res = (_matvec(Nf, a) - ef).amax(-1)
        safe = res <= tol
        # rows redundant on the action box (support below the offset by a margin) are never
        # active: not candidates (they still bound the candidates' segments, harmlessly)
        margin = 2.0 * math.sqrt(m) * tol * scale
        if low is _unit_box(m, low.dtype, low.device)[0]:
            supp = N.abs().sum(-1)
        else:
            supp = _matvec(N, 0.5 * (low + high)) + _matvec(N.abs(), 0.5 * (high - low))
        redundant = torch.cat([supp <= e - margin, zero.new_zeros(B, 2 * m)], 1)
        kk = int((~redundant).sum(-1).max())
        if kk < k + 2 * m:  # pack the other rows first: the candidate work is O(B kv kk)
            order = torch.sort(redundant.to(torch.uint8), dim=-1, stable=True)[1][:, :kk]
            Np = Nf.gather(1, order.unsqueeze(-1).expand(B, kk, m))
            y, ok, saved = _polygon_core(
                a, Np, ef.gather(1, order), tol, redundant.gather(1, order)
            )
            i_row, j_row = (
                order.gather(1, saved[7].unsqueeze(-1)),
                order.gather(1, saved[8].unsqueeze(-1)),
            )
            saved = (*saved[:7], i_row.squeeze(-1), j_row.squeeze(-1))
        else:
            y, ok, saved = _polygon_core(a, Nf, ef, tol, redundant)
        out = torch.where(safe.unsqueeze(-1), a, y)
        cert = (_matvec(Nf, out) - ef).amax(-1) <= tol * scale
        bad = ~torch.isfinite(res) | ~(safe | (ok & cert)) | (zero & ~(d >= 0)).any(-1)
        side["safe"], side["bad"] = safe, bad
        ctx.save_for_backward(safe, C, N, nu_s, e, *saved)
        ctx.dims = (k, low.dim(), high.dim())
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        safe, C, N, nu_s, e, *saved = ctx.saved_tensors
        k, low_dim, high_dim = ctx.dims
        need = ctx.needs_input_grad
        unsafe = ~safe
        gu = g * unsafe.unsqueeze(-1)  # the polygon part acts on the unsafe elements only
        need_rows = need[1] or need[2] or need[3] or need[4]
        gx, gN, ge = _polygon_grads(gu, saved, k + 4, need[0], need_rows, need_rows)
        ga = gC = gd = glow = ghigh = None
        if need[0]:
            ga = torch.where(safe.unsqueeze(-1), g, gx)
        if need_rows:
            gNg, geg = gN[:, :k], ge[:, :k]
            if need[1]:
                proj = gNg - (gNg * N).sum(-1, keepdim=True) * N
                gC = (proj - (geg * e).unsqueeze(-1) * N) / nu_s.unsqueeze(-1)
                # entries that are exactly 0 (axis and zero rows) get no gradient, as on the
                # general path (docs/safeguards.md, "Gradients w.r.t. the set")
                gC = gC.masked_fill(C == 0, 0.0)
            if need[2]:
                gd = (geg / nu_s).masked_fill((C == 0).all(-1), 0.0)
            if need[4]:  # rows a <= high (and the inert rows' offset high_1 + 1: no gradient)
                ghigh = ge[:, k : k + 2]
                ghigh = ghigh.sum(0) if high_dim == 1 else ghigh
            if need[3]:
                glow = -ge[:, k + 2 :]
                glow = glow.sum(0) if low_dim == 1 else glow
        return ga, gC, gd, glow, ghigh, None, None, None


def project_polytope_2d(
    a: Tensor, C: Tensor, d: Tensor, low: Tensor, high: Tensor, tol: float, scale
) -> tuple[Tensor, Tensor, Tensor]:
    """:class:`_PolytopeProject2D`: ``(a_s, safe, bad)`` for flat ``a (B, 2)``, ``C (B, k, 2)``,
    ``d (B, k)`` and the action box ``low, high`` (``(2,)`` or ``(B, 2)``)."""
    side: dict[str, Tensor] = {}
    out = _PolytopeProject2D.apply(a, C, d, low, high, tol, scale, side)
    return out, side["safe"], side["bad"]


def _qp_project(x: Tensor, N: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    y, info = solve_qp(eye, -x, N, e, return_info=True)
    return y, (info.status == _SOLVED) | (info.status == _MAX_ITER)


def project_polygon(x: Tensor, N: Tensor, e: Tensor, tol: float) -> tuple[Tensor, Tensor]:
    """Exact Euclidean projection of points ``x (P, 2)`` **outside** ``{y : N y <= e}`` (unit
    rows ``(P, k, 2)``) onto it: :class:`_PolygonProject`, and the batched QP where its
    multiplier check fails (degenerate vertices) or the polygon is empty.  Returns ``y (P, 2)``
    (differentiable w.r.t. ``x, N, e``) and ``ok (P,)``."""
    y, ok = _PolygonProject.apply(x, N, e, tol)
    bad = (~ok).nonzero().squeeze(-1)
    if bad.numel() > 0:
        yq, okq = _qp_project(
            x.index_select(0, bad), N.index_select(0, bad), e.index_select(0, bad)
        )
        y = y.index_copy(0, bad, yq)
        ok = ok.index_copy(0, bad, okq)
    return y, ok


# ---------------------------------------------------------------------------------------------
# the radial map of the ray mask
# ---------------------------------------------------------------------------------------------


def _rm_direction(a: Tensor, c: Tensor, thr: float):
    """``v = a - c``, ``λ_a = |v|``, ``small = λ_a <= thr``, ``d = v/λ_a`` (``e_1`` if small)."""
    v = a - c
    lam_a = torch.linalg.vector_norm(v, dim=-1)
    small = lam_a <= thr
    d = v / torch.where(small, 1.0, lam_a).unsqueeze(-1)
    if bool(small.any()):
        e1 = torch.zeros_like(a)
        e1[:, 0] = 1.0
        d = torch.where(small.unsqueeze(-1), e1, d)
    return v, lam_a, small, d


def _rm_box_ray(c: Tensor, d: Tensor, low: Tensor, high: Tensor, thr: float):
    """``λ_A`` (raw, argmin coordinate, clamped at 0) from ``c`` along ``d`` in ``[low, high]``."""
    lim = d.abs() > thr
    bnd = torch.where(d > 0, high, low)
    raw, l = torch.where(lim, (bnd - c) / torch.where(lim, d, 1.0), math.inf).min(-1)
    return raw, l, raw.clamp_min(0.0)


def _rm_profile(lam_a, lam_as, lam_A, linear: bool, thr: float):
    """``ρ`` and ``ρ'(0)`` of :func:`safegrad.safeguards.ray_profile` (0 where guarded), and
    the intermediate state for :func:`_rm_profile_partials`."""
    ok = (lam_A > thr) & (lam_as > thr)
    A_s = torch.where(ok, lam_A, 1.0)
    S_s = torch.where(ok, lam_as, 1.0)
    inside = lam_a < A_s
    ap = torch.where(inside, lam_a, A_s)
    if linear:
        rho, s0 = S_s * ap / A_s, S_s / A_s
        T: tuple = ()
    else:
        Tx, Ty = torch.tanh(ap / S_s), torch.tanh(A_s / S_s)
        rho, s0 = S_s * Tx / Ty, 1.0 / Ty
        T = (Tx, Ty)
    rho = torch.where(ok, rho, 0.0)
    s0 = torch.where(ok, s0, 0.0)
    return rho, s0, (ok, inside, ap, A_s, S_s, *T)


def _rm_profile_partials(st: tuple, linear: bool):
    """``∂ρ/∂λ_a, ∂ρ/∂λ_As, ∂ρ/∂λ_A`` (where not guarded; ``λ_a`` is clamped at ``λ_A``)."""
    ok, inside, ap, A_s, S_s = st[:5]
    if linear:  # ρ = S a'/A, a' = min(λ_a, A)
        rho_a = torch.where(inside, S_s / A_s, 0.0)
        rho_S = ap / A_s
        rho_A = torch.where(inside, -S_s * ap / (A_s * A_s), 0.0)
    else:  # ρ = S tanh(a'/S) / tanh(A/S)
        Tx, Ty = st[5:]
        sx, sy = 1.0 - Tx * Tx, 1.0 - Ty * Ty
        d_ap = sx / Ty
        d_A = -Tx * sy / (Ty * Ty)
        rho_S = Tx / Ty - (ap / S_s) * d_ap + (A_s / S_s) * Tx * sy / (Ty * Ty)
        rho_a = torch.where(inside, d_ap, 0.0)
        rho_A = torch.where(inside, d_A, d_A + d_ap)
    return rho_a, rho_S, rho_A


def _rm_backward_head(g, d, rho, st, linear, lamS_raw, lamA_raw):
    """Upstream ``g`` of ``a_s = c + ρ d`` -> ``(g_d, g_λa, g_λAs, g_λA)``."""
    ok = st[0]
    g_rho = (g * d).sum(-1)
    g_d = rho.unsqueeze(-1) * g
    rho_a, rho_S, rho_A = _rm_profile_partials(st, linear)
    g_la = torch.where(ok, rho_a * g_rho, 0.0)
    g_S = torch.where(ok & (lamS_raw > 0), rho_S * g_rho, 0.0)
    g_A = torch.where(ok & (lamA_raw > 0), rho_A * g_rho, 0.0)
    return g_d, g_la, g_S, g_A


def _rm_backward_lam_A(g_c, g_d, g_A, d, lA, lam_A):
    """Add ``λ_A = (bound_l - c_l)/d_l``'s terms; returns ``g_c, g_d, qA, dl``
    (``∂L/∂bound_l = qA``)."""
    dl = d.gather(1, lA.unsqueeze(-1)).squeeze(-1)
    qA = g_A / torch.where(g_A != 0, dl, 1.0)
    g_c = g_c.scatter_add(1, lA.unsqueeze(-1), -qA.unsqueeze(-1))
    g_d = g_d.scatter_add(1, lA.unsqueeze(-1), -(qA * lam_A).unsqueeze(-1))
    return g_c, g_d, qA, dl


def _rm_backward_tail(g, g_c, g_d, g_la, d, lam_a, small, s0):
    """``v = a - c`` (``λ_a = |v|``, ``d = v/λ_a``) and the ``small`` branch
    ``a_s = c + ρ'(0) v`` -> ``(g_a, g_c)``."""
    la_s = torch.where(small, 1.0, lam_a).unsqueeze(-1)
    g_v = g_la.unsqueeze(-1) * d + (g_d - (g_d * d).sum(-1, keepdim=True) * d) / la_s
    sm = small.unsqueeze(-1)
    s0_ = s0.unsqueeze(-1)
    return torch.where(sm, s0_ * g, g_v), torch.where(sm, (1.0 - s0_) * g, g_c - g_v)


def _box_grads(g, qA, dl, lA, small, box_dim):
    """``∂L/∂low``, ``∂L/∂high`` from ``λ_A``'s bound (``qA`` at coordinate ``lA``)."""
    qA = torch.where(small, 0.0, qA)
    oh = torch.zeros_like(g).scatter_(1, lA.unsqueeze(-1), qA.unsqueeze(-1))
    dpos = (dl > 0).unsqueeze(-1)
    glow, ghigh = torch.where(dpos, 0.0, oh), torch.where(dpos, oh, 0.0)
    if box_dim == 1:
        glow, ghigh = glow.sum(0), ghigh.sum(0)
    return glow, ghigh


class _RayMap(torch.autograd.Function):
    """The ray-mask map ``a_s = c + ρ(λ_a, λ_As, λ_A) d`` (spec A §3.3) in one function.

    ``v = a - c``, ``λ_a = |v|``, ``d = v/λ_a``; ``λ_As = min_j (e_j - N_j c)/(N_j d)`` over the
    rows of ``A ∩ A_s`` with ``N_j d > thr`` (unit rows, box rows included), ``λ_A`` the same for
    the action box ``[low, high]``, both clamped at 0; ``ρ = λ_As ω(min(λ_a, λ_A))`` with
    ``ω`` linear or tanh (:func:`safegrad.safeguards.ray_profile`), 0 where ``λ_As`` or ``λ_A``
    is ``<= thr``; at ``λ_a <= thr``: ``a_s = c + ρ'(0) v`` (``d := e_1``).  The same maths as
    composing those functions under autograd, with the chain rule written out in
    :meth:`backward` (the selected row of each ray distance is fixed, a generalised Jacobian
    element at ties).  Outputs ``a_s (B, m)`` and, not differentiable, ``λ_a, λ_As, λ_A (B,)``.
    """

    @staticmethod
    def forward(ctx, a, c, N, e, low, high, linear):
        thr = guard_threshold(a.dtype)
        v, lam_a, small, d = _rm_direction(a, c, thr)
        s = _matvec(N, d)  # λ_As over the rows of A ∩ A_s
        pos = s > thr
        r = e - _matvec(N, c)
        lamS_raw, jS = torch.where(pos, r / torch.where(pos, s, 1.0), math.inf).min(-1)
        lam_as = lamS_raw.clamp_min(0.0)
        lamA_raw, lA, lam_A = _rm_box_ray(c, d, low, high, thr)
        rho, s0, st = _rm_profile(lam_a, lam_as, lam_A, linear, thr)
        out = torch.where(small.unsqueeze(-1), c + s0.unsqueeze(-1) * v, c + rho.unsqueeze(-1) * d)
        ctx.linear, ctx.box_dim = linear, low.dim()
        ctx.save_for_backward(
            c, N, d, lam_a, small, rho, s0, jS, lamS_raw, lam_as, lA, lamA_raw, lam_A, *st
        )
        ctx.mark_non_differentiable(lam_a, lam_as, lam_A)
        return out, lam_a, lam_as, lam_A

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g, _g1, _g2, _g3):
        saved = ctx.saved_tensors
        (c, N, d, lam_a, small, rho, s0, jS, lamS_raw, lam_as, lA, lamA_raw, lam_A) = saved[:13]
        st = saved[13:]
        B, k, m = N.shape
        ar = torch.arange(B, device=g.device)
        g_d, g_la, g_S, g_A = _rm_backward_head(g, d, rho, st, ctx.linear, lamS_raw, lamA_raw)
        # λ_As = (e_j - N_j c) / (N_j d), j = jS
        nS = N[ar, jS]  # (B, m)
        sS = (nS * d).sum(-1)
        qS = g_S / torch.where(g_S != 0, sS, 1.0)
        g_c = g - qS.unsqueeze(-1) * nS
        g_d = g_d - (qS * lam_as).unsqueeze(-1) * nS
        g_c, g_d, qA, dl = _rm_backward_lam_A(g_c, g_d, g_A, d, lA, lam_A)
        g_a, g_c = _rm_backward_tail(g, g_c, g_d, g_la, d, lam_a, small, s0)
        need = ctx.needs_input_grad
        gN = ge = glow = ghigh = None
        if need[2] or need[3]:
            qS = torch.where(small, 0.0, qS)
            if need[3]:
                ge = g.new_zeros(B, k).index_put_((ar, jS), qS, accumulate=True)
            if need[2]:
                val = -qS.unsqueeze(-1) * (c + lam_as.unsqueeze(-1) * d)
                gN = g.new_zeros(B, k, m).index_put_((ar, jS), val, accumulate=True)
        if need[4] or need[5]:
            glow, ghigh = _box_grads(g, qA, dl, lA, small, ctx.box_dim)
        return g_a, g_c, gN, ge, glow, ghigh, None


class _BoxRayMask(torch.autograd.Function):
    """The whole ray mask with the zonotopic centre on a region without general rows, fused
    with the box part's bounds (as :class:`_BoxProject`): ``c = (lo + hi)/2`` (the inner-zonotope
    centre of a box, :meth:`Region.zonotope_centre`) and the map of :class:`_RayMap` in a
    scale-free form: with ``v = a - c``, ``w = (hi - lo)/2`` and ``u_l`` the distance from ``c_l``
    to the action box's bound in the direction of ``v_l``,
    ``s = min_l w_l/|v_l|`` (``λ_As = λ_a s``) and ``q = min_l u_l/|v_l|`` (``λ_A = λ_a q``), so
    ``a_s = c + κ v`` with ``κ = s / max(q, 1)`` (linear) or
    ``κ = s tanh(min(q, 1)/s) / tanh(q/s)`` (tanh); ``κ = 0`` where ``λ_As`` or ``λ_A`` is
    ``<= thr``; at ``λ_a <= thr``: ``a_s = c + ρ'(0) v`` along ``e_1``.  Coordinates with
    ``|v_l| <= thr λ_a`` never limit.  Backward: the chain rule through ``κ``, the centre and
    the bounds.  ``side`` receives ``lo, hi, bad, raw, raw_unsafe, fb`` (the certificate
    failed) and the info tensors ``centre, lambda_*``.
    """

    @staticmethod
    def forward(ctx, a, C, d, low, high, masks, linear, tol, scale, side):
        npos, nneg, zero_bad = masks
        ratio = d.unsqueeze(-1) / C
        hi_r, j_hi = ratio.masked_fill(npos, math.inf).min(-2)
        lo_r, j_lo = ratio.masked_fill(nneg, -math.inf).max(-2)
        hi = torch.minimum(hi_r, high)
        lo = torch.maximum(lo_r, low)
        bad = ~(lo <= hi).all(-1)
        if zero_bad is not None:
            bad = bad | zero_bad
        any_bad = bool(bad.any())
        side["raw"] = None
        if any_bad:
            side["raw"] = (lo, hi)
            b = bad.unsqueeze(-1)
            lo, hi = torch.where(b, low, lo), torch.where(b, high, hi)
        thr = guard_threshold(a.dtype)
        c = 0.5 * (lo + hi)
        v = a - c
        lam_a = torch.linalg.vector_norm(v, dim=-1)
        av = v.abs()
        pos = v > 0
        lim = av > thr * lam_a.unsqueeze(-1)
        num = torch.stack((0.5 * (hi - lo), torch.where(pos, high - c, c - low)), 1)  # (B,2,m)
        rat = (num / torch.where(lim, av, 1.0).unsqueeze(1)).masked_fill(
            ~lim.unsqueeze(1), math.inf
        )
        sq, lsq = rat.min(-1)  # (B, 2): s, q and their coordinates
        s, q = sq.unbind(-1)
        lam_as, lam_A = lam_a * s, lam_a * q
        ok = (lam_as > thr) & (lam_A > thr)
        s_ = torch.where(ok, s, 1.0)
        if linear:
            kap = s_ / q.clamp_min(1.0)
            T = ()
        else:
            T1 = torch.tanh(q.clamp_max(1.0) / s_)
            T2 = torch.tanh(torch.where(ok, q, 1.0) / s_)
            kap = s_ * T1 / T2
            T = (T1, T2)
        kap = torch.where(ok, kap, 0.0)
        small = lam_a <= thr
        if bool(small.any()):  # a = c: the slope at the centre along e_1
            u1 = high[..., 0] - c[:, 0]
            w1 = 0.5 * (hi[:, 0] - lo[:, 0])
            ok1 = (w1 > thr) & (u1 > thr)
            if linear:
                s0 = w1 / torch.where(ok1, u1, 1.0)
            else:
                s0 = 1.0 / torch.tanh(torch.where(ok1, u1, 1.0) / torch.where(ok1, w1, 1.0))
            kap = torch.where(small, torch.where(ok1, s0, 0.0), kap)
            lam_as = torch.where(small, w1.clamp_min(0.0), lam_as)
            lam_A = torch.where(small, u1.clamp_min(0.0), lam_A)
        out = c + kap.unsqueeze(-1) * v
        viol = torch.maximum(lo - a, a - hi).amax(-1)
        fb = ~(torch.maximum(lo - out, out - hi).amax(-1) <= tol * scale)  # NaN fails too
        if any_bad:
            fb = fb | bad
            viol = viol.masked_fill(bad, math.inf)
        side.update(lo=lo, hi=hi, bad=bad, raw_unsafe=viol > tol, fb=fb, centre=c)
        side.update(lambda_a=lam_a, lambda_as=lam_as, lambda_A=lam_A)
        ctx.linear, ctx.box_dim = linear, low.dim()
        ctx.bad = bad.unsqueeze(-1) if any_bad else None
        ctx.save_for_backward(
            C, j_hi, j_lo, hi_r, lo_r, low, high, lo, hi,
            v, av, pos, s_, torch.where(ok, q, 1.0), lsq, ok, small, kap, *T,
        )  # fmt: skip
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        saved = ctx.saved_tensors
        (C, j_hi, j_lo, hi_r, lo_r, low, high, lo, hi) = saved[:9]
        (v, av, pos, s, q, lsq, ok, small, kap) = saved[9:18]
        gv_dot = (g * v).sum(-1)  # a_s = c + κ v
        if ctx.linear:  # κ = s / max(q, 1)
            qc = q.clamp_min(1.0)
            k_s = 1.0 / qc
            k_q = torch.where(q > 1.0, -kap / qc, 0.0)
        else:  # κ = s tanh(min(q,1)/s) / tanh(q/s)
            T1, T2 = saved[18:]
            m1 = q.clamp_max(1.0)
            d1, d2 = 1.0 - T1 * T1, 1.0 - T2 * T2
            k_s = T1 / T2 - (m1 / s) * d1 / T2 + (q / s) * T1 * d2 / (T2 * T2)
            k_q = torch.where(q < 1.0, d1 / T2, 0.0) - T1 * d2 / (T2 * T2)
        okn = ok & ~small
        g_s = torch.where(okn, k_s * gv_dot, 0.0)
        g_q = torch.where(okn, k_q * gv_dot, 0.0)
        # s = w_l / |v_l|, q = u_l / |v_l| at l = lsq[:, 0], lsq[:, 1] (one-hot rows (B, 2, m))
        oh = torch.zeros(lsq.shape + v.shape[-1:], dtype=v.dtype, device=v.device)
        oh.scatter_(2, lsq.unsqueeze(-1), 1.0)
        inv = oh / torch.where(av > 0, av, 1.0).unsqueeze(1)  # 1/|v_l| at the selected l
        gsq = torch.stack((g_s, g_q), -1).unsqueeze(-1) * inv  # ∂L/∂w, ∂L/∂u (B, 2, m)
        g_w, g_u = gsq.unbind(1)
        sgn = torch.where(pos, 1.0, -1.0)
        # ∂s/∂v_l = -s sgn_l / |v_l|, ∂q/∂v_l = -q sgn_l / |v_l|
        g_v = kap.unsqueeze(-1) * g - (g_w * s.unsqueeze(-1) + g_u * q.unsqueeze(-1)) * sgn
        g_a = g_v
        # u_l = high_l - c_l (v_l > 0) or c_l - low_l: ∂u/∂c = -sgn
        g_c = g - g_v - g_u * sgn
        g_lo, g_hi = 0.5 * (g_c - g_w), 0.5 * (g_c + g_w)
        need = ctx.needs_input_grad
        gC = gd = glow = ghigh = None
        f_hi, f_lo = hi_r < high, lo_r > low
        if ctx.bad is not None:
            f_hi, f_lo = f_hi & ~ctx.bad, f_lo & ~ctx.bad
        if need[1] or need[2]:
            gC, gd = _bounds_grads(C, j_hi, j_lo, f_hi, f_lo, g_lo, g_hi, lo, hi, need[1], need[2])
        if need[3] or need[4]:
            glow = torch.where(pos, 0.0, -g_u) + torch.where(f_lo, 0.0, g_lo)
            ghigh = torch.where(pos, g_u, 0.0) + torch.where(f_hi, 0.0, g_hi)
            if ctx.box_dim == 1:
                glow, ghigh = glow.sum(0), ghigh.sum(0)
        return g_a, gC, gd, glow, ghigh, None, None, None, None, None


def _bounds_grads(C, j_hi, j_lo, f_hi, f_lo, g_lo, g_hi, lo, hi, need_C, need_d):
    """``∂L/∂C, ∂L/∂d`` of the box part's bounds (see :class:`_AxisBounds`)."""
    B, k, m = C.shape
    c_hi = torch.where(f_hi, C.gather(1, j_hi.unsqueeze(1)).squeeze(1), 1.0)
    c_lo = torch.where(f_lo, C.gather(1, j_lo.unsqueeze(1)).squeeze(1), 1.0)
    q_hi = torch.where(f_hi, g_hi, 0.0) / c_hi
    q_lo = torch.where(f_lo, g_lo, 0.0) / c_lo
    gC = gd = None
    if need_d:
        gd = C.new_zeros(B, k).scatter_add_(1, j_hi, q_hi).scatter_add_(1, j_lo, q_lo)
    if need_C:
        ar = torch.arange(m, device=C.device)
        gC = C.new_zeros(B, k * m)
        gC.scatter_add_(1, j_hi * m + ar, -q_hi * hi)
        gC.scatter_add_(1, j_lo * m + ar, -q_lo * lo)
        gC = gC.view(B, k, m)
    return gC, gd


def ray_map(a, c, N, e, low, high, map: str):
    """``(a_s, λ_a, λ_As, λ_A)`` of the ray mask (:class:`_RayMap`), shapes ``(B, m)`` and
    ``(B,)``; ``N (B, k, m)``, ``e (B, k)`` the unit rows of ``A ∩ A_s`` (box rows included)."""
    return _RayMap.apply(a, c, N, e, low, high, map == "linear")


# ---------------------------------------------------------------------------------------------
# the region
# ---------------------------------------------------------------------------------------------


def _zono_consts(m: int, n_g: int, reg: float, dt, dev) -> tuple[Tensor, Tensor, Tensor]:
    """The constant parts of the zonotope-centre QP over ``(c, l, t)``: the rows
    ``t - l_j <= 0`` and ``-t <= 0`` ``(n_g + 1, nv)``, ``Q = reg I`` and the linear term of
    ``(l, t)``, ``(-1/(2 n_g), ..., -1/2)``."""
    nv = m + n_g + 1
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
    p_lt = torch.full((n_g + 1,), -0.5 / n_g, dtype=dt, device=dev)
    p_lt[-1] = -0.5
    return torch.cat([G2, G3], 0), reg * torch.eye(nv, dtype=dt, device=dev), p_lt


class CentreWarmStart:
    """The active sets of a safeguard's centre QPs at its previous call, passed as
    ``active_hint`` to :func:`safegrad.qp.solve_qp` at the next (docs/safeguards.md, "Warm
    start").  Consecutive environment steps rarely change the centre's active set; where the
    hint is right the QP is one batched KKT solve instead of an interior-point run, where it is
    wrong the solver notices (KKT check) and solves that element cold.  The result is the same
    either way: a hint only changes the time.

    The active rows are stored per ``(centre kind, B, K, m, extra rows, dtype, device)`` in the
    numbering of the *original* rows (the ``K`` rows of ``C``, then the ``2m`` box-part rows,
    then the centre QP's own rows), so that pruning, which keeps a different subset of the rows
    at every call, does not shift them.  At most ``max_entries`` keys are kept (the oldest is
    dropped).  ``accepted``: ``(P,)`` bool, which elements of the last centre QP were solved
    from the hint (``None`` before the first solve)."""

    def __init__(self, max_entries: int = 4):
        self.max_entries = int(max_entries)
        self._store: dict[tuple, Tensor] = {}
        self.accepted: Tensor | None = None

    def get(self, key: tuple) -> Tensor | None:
        return self._store.get(key)

    def put(self, key: tuple, active: Tensor) -> None:
        self._store.pop(key, None)
        while len(self._store) >= self.max_entries > 0:
            self._store.pop(next(iter(self._store)))
        if self.max_entries > 0:
            self._store[key] = active

    def clear(self) -> None:
        self._store.clear()
        self.accepted = None


class Region:
    """``A ∩ A_s`` for a flat batch of ``B`` elements (see the module docstring).

    Attributes:
        low, high: ``(B, m)`` action box ``A``.
        lo, hi: ``(B, m)`` box part (action box ∩ axis rows), differentiable; the action box
            where ``empty``.  Computed on first use (:class:`_AxisBounds`) unless the region was
            built with general rows, or set (detached) by :meth:`project_box`.
        empty: ``(B,)`` bool, known empty without a solve (crossed bounds, a zero row with
            ``d < 0``, a ``-inf`` offset, NaN entries); ``any_empty``: whether some element is.
        raw: the box part's bounds before the replacement (``None``: no element is empty).
        scale: ``1 + max |box|`` (a float for the default box, else ``(B,)``), the scale of the
            certificate tolerance.
        GN, Ge: ``(B, kg, m)``, ``(B, kg)`` unit general rows left after pruning, padded with
            redundant rows; ``None`` when no element has one.
        gidx: ``(P,)`` long, the elements with at least one general row (``None``: none).
        gorder, gslot: ``(B, kg)`` the original row (of ``C``) behind each row of ``GN`` and
            whether it is a kept row (else a pad); ``None`` with ``GN``.
        C, d: the flat original rows (for the least-violating fallback), or ``None`` (a Box).
        had_general: ``(B,)`` bool, the element had general rows before pruning (fallback LP),
            or ``None``.
    """

    def __init__(self, low: Tensor, high: Tensor, scale: Any):
        self.low, self.high, self.scale = low, high, scale
        self._lo = self._hi = self._empty = self.raw = None
        self._any_empty = False
        self.GN = self.Ge = self.gidx = self.C = self.d = self.had_general = None
        self.gorder = self.gslot = None
        self._rows: tuple[Tensor, Tensor] | None = None
        self._lazy: tuple | None = None

    def _set_bounds(self, lo, hi, empty, any_empty, raw) -> None:
        self._lo, self._hi, self._empty, self._any_empty, self.raw = lo, hi, empty, any_empty, raw
        self._lazy = None

    def _bounds(self) -> None:
        if self._lazy is not None:
            side: dict[str, Any] = {}
            lo, hi, empty = _AxisBounds.apply(*self._lazy, side)
            self._set_bounds(lo, hi, empty, side["raw"] is not None, side["raw"])

    @property
    def box_only(self) -> bool:
        """No general rows and the box part not computed yet (the fused paths apply)."""
        return self._lazy is not None and self.gidx is None

    @property
    def lo(self) -> Tensor:
        self._bounds()
        return self._lo

    @property
    def hi(self) -> Tensor:
        self._bounds()
        return self._hi

    @property
    def empty(self) -> Tensor:
        self._bounds()
        return self._empty

    @property
    def any_empty(self) -> bool:
        self._bounds()
        return self._any_empty

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        safe_set: Any,
        low: Tensor,
        high: Tensor,
        batch: tuple[int, ...],
        tol: float = 0.0,
    ) -> Region:
        """Flatten ``safe_set ∩ [low, high]`` to ``B = prod(batch)`` elements.  General rows
        whose support on the box part is below their offset by ``2 √m tol scale`` are dropped
        (redundant; the margin keeps the certificate of ``finish`` valid for them)."""
        m = low.shape[-1]
        B = math.prod(batch)
        if low.dim() == 1:  # one box for all: kept (m,), it broadcasts
            lowf, highf = low, high
        else:
            lowf, highf = flat(low, batch, 1), flat(high, batch, 1)
        if low is _unit_box(m, low.dtype, low.device)[0]:
            scale: Any = 2.0
        else:
            scale = 1.0 + torch.maximum(lowf.abs(), highf.abs()).detach().amax(-1)
        region = cls(lowf, highf, scale)
        if isinstance(safe_set, Box):
            lo = torch.maximum(flat(safe_set.low, batch, 1), lowf)
            hi = torch.minimum(flat(safe_set.high, batch, 1), highf)
            with torch.no_grad():
                bad = ~(lo <= hi).all(-1)
            b = bad.unsqueeze(-1)
            raw = (lo.detach(), hi.detach())
            lo, hi = torch.where(b, lowf, lo), torch.where(b, highf, hi)
            region._set_bounds(lo, hi, bad, bool(bad.any()), raw)
            return region
        if isinstance(safe_set, Zonotope):
            safe_set = safe_set.to_hpolytope()
        if not isinstance(safe_set, HPolytope):
            raise TypeError(
                "safe_set must be a safegrad.sets.HPolytope, Box or Zonotope, "
                f"got {type(safe_set).__name__}"
            )
        C, d = flat(safe_set.C, batch, 2), flat(safe_set.d, batch, 1)
        if C.shape[1] == 0:  # no rows: A_s is everything
            empty = torch.zeros(C.shape[0], dtype=torch.bool, device=C.device)
            region._set_bounds(lowf.expand(B, m), highf.expand(B, m), empty, False, None)
            return region
        region.C, region.d = C, d
        zero_bad = gen = None
        # (comparisons and integer sums: no autograd graph, no need for no_grad)
        if m == 1:
            npos, nneg = C <= 0, C >= 0
            zero = npos & nneg
        else:
            cnt = (C != 0).sum(-1)
            naxis = (cnt != 1).unsqueeze(-1)
            npos, nneg = (C <= 0) | naxis, (C >= 0) | naxis
            zero, gen = cnt == 0, cnt > 1
        if bool(zero.any()):  # a zero row 0 <= d_j: empty where d_j < 0 (or NaN)
            zero_bad = (zero.reshape(d.shape) & ~(d >= 0)).any(-1)
        if gen is not None and not bool(gen.any()):
            gen = None
        region._lazy = (C, d, lowf, highf, (npos, nneg, zero_bad))
        if gen is None:
            return region  # box part only: bounds on first use (or fused, project_box)
        region.had_general = gen.any(-1)
        with torch.no_grad():
            nrm = torch.linalg.vector_norm(C, dim=-1)
            sc = scale.unsqueeze(-1) if isinstance(scale, Tensor) else scale
            margin = (2.0 * math.sqrt(m) * tol) * sc * nrm
            # stage 1 (cheap): rows redundant on the action box; NaN rows are kept (and then
            # fail the solver / the certificate)
            if isinstance(scale, float):  # the unit box
                supp = C.abs().sum(-1)
            else:
                supp = _matvec(C, 0.5 * (lowf + highf)) + _matvec(C.abs(), 0.5 * (highf - lowf))
            keep = gen & ~(supp <= d - margin)
            if not bool(keep.any()):
                return region  # every general row is redundant: the box part is the region
        # stage 2: rows redundant on the box part [lo, hi] (computed once, with its autograd
        # graph; the detached values decide the pruning)
        lazy = region._lazy
        region._bounds()
        lo, hi = region._lo.detach(), region._hi.detach()
        with torch.no_grad():
            empty = region._empty | (gen & (d == -math.inf)).any(-1)
            mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
            supp = _matvec(C, mid) + _matvec(C.abs(), half)
            keep = keep & ~(supp <= d - margin) & ~empty.unsqueeze(-1)
            n_keep = keep.sum(-1)
            kg = int(n_keep.max())
            if kg == 0:  # every general row is redundant: the box part is the region; back to
                # the lazy bounds (the fused paths compute them with the safeguard)
                region._lazy = lazy
                if bool(empty.any()):  # a -inf offset of a general row
                    region._lazy = (C, d, lowf, highf, (npos, nneg, empty))
                return region
            order = torch.sort(keep.to(torch.uint8), stable=True, dim=-1, descending=True)[1]
            order = order[:, :kg]
            slot = keep.gather(1, order)  # (B, kg): a kept row (else a pad)
            region.gidx = (n_keep > 0).nonzero().squeeze(-1)
            region.gorder, region.gslot = order, slot
            any_inf = bool(empty.any())
        if any_inf:
            region._empty, region._any_empty = empty, True
        Crow = C.gather(1, order.unsqueeze(-1).expand(B, kg, m))
        drow = d.gather(1, order)
        nr = torch.linalg.vector_norm(Crow, dim=-1)
        nr = torch.where(slot, nr, 1.0)
        # pad slots: the redundant row a_1 <= hi_1 + 1 (never active, finite, no gradient)
        pad_N = _const(
            ("e1", m, C.dtype, C.device), lambda: torch.eye(m, dtype=C.dtype, device=C.device)[0]
        )
        region.GN = torch.where(slot.unsqueeze(-1), Crow / nr.unsqueeze(-1), pad_N)
        region.Ge = torch.where(slot, drow / nr, hi[:, :1] + 1.0)
        return region

    @classmethod
    def build_raw(cls, C: Tensor, d: Tensor, low: Tensor, high: Tensor, scale: Any) -> Region:
        """Every row of ``{C a <= d}`` kept as a general unit row, the box part the action box
        (no axis-row bounds, no pruning): the cheap canonical form for sets with many general
        rows whose safeguard solves a problem over all rows anyway (the ray mask's centre QP and
        ray distances, docs/safeguards.md).  Redundant rows never become active, so the set,
        the centres and the map are the pruned form's; offsets above a row's support on the
        action box + 1 are capped there (the same set; bounded data keeps the centre QP's
        relative tolerances tight).  ``C (B, k, m)``, ``d (B, k)``,
        ``low, high`` ``(m,)``.  Zero rows become the inert row ``a_1 <= high_1 + 1``; exact
        zero entries get no gradient (the axis-row convention).  ``empty``: a zero row with
        ``d < 0``, a ``-inf`` offset or a NaN entry (those elements' rows are made inert too;
        they get the fallback)."""
        B, k, m = C.shape
        hi = high.expand(B, m)
        region = cls(low, high, scale)
        nu = torch.linalg.vector_norm(C, dim=-1)
        zero = nu == 0
        with torch.no_grad():
            empty = (zero & ~(d >= 0)).any(-1) | (d == -math.inf).any(-1)
            empty = empty | torch.isnan(nu).any(-1) | torch.isnan(d).any(-1)
            any_empty = bool(empty.any())
        inert = zero | empty.unsqueeze(-1) if any_empty else zero
        Cg = torch.where(C == 0, C.detach(), C)  # (no gradient into exact zeros)
        e1 = _const(
            ("e1", m, C.dtype, C.device), lambda: torch.eye(m, dtype=C.dtype, device=C.device)[0]
        )
        nu_s = torch.where(inert, 1.0, nu).unsqueeze(-1)
        GN = torch.where(inert.unsqueeze(-1), e1, Cg / nu_s)
        # offsets of rows far outside the box are capped at their support on the box + 1 (the
        # row stays redundant, the set is unchanged): they would otherwise scale up the QP's
        # relative tolerances (``1 + max |h|``) and with them the accepted error of the centre
        with torch.no_grad():
            if low is _unit_box(m, low.dtype, low.device)[0]:
                cap = GN.abs().sum(-1) + 1.0
            else:
                cap = _matvec(GN, 0.5 * (low + high)) + _matvec(GN.abs(), 0.5 * (high - low)) + 1.0
        region.GN = GN
        region.Ge = torch.where(
            inert, hi[:, :1].detach() + 1.0, torch.minimum(d / nu_s.squeeze(-1), cap)
        )
        region.C, region.d = C, d
        region.had_general = torch.ones(B, dtype=torch.bool, device=C.device)
        region.gidx = torch.arange(B, device=C.device)
        region.gorder = torch.arange(k, device=C.device).expand(B, k)
        region.gslot = ~inert
        region._set_bounds(low.expand(B, m), hi, empty, any_empty, None)
        return region

    def ray_mask_box(self, a: Tensor, map: str, tol: float):
        """The ray mask with the zonotopic centre (the box midpoint) on a region without general
        rows whose bounds are not computed yet, fused (:class:`_BoxRayMask`).  Returns ``a_s``
        and the ``side`` dict (``raw_unsafe``, ``fb``, ``centre``, ``lambda_*``)."""
        side: dict[str, Any] = {}
        C, d, low, high, masks = self._lazy
        out = _BoxRayMask.apply(a, C, d, low, high, masks, map == "linear", tol, self.scale, side)
        raw = side["raw"]
        self._set_bounds(side["lo"], side["hi"], side["bad"], raw is not None, raw)
        return out, side

    def project_box(self, a: Tensor, tol: float) -> tuple[Tensor, Tensor]:
        """Boundary projection on a region without general rows, fused (:class:`_BoxProject`):
        ``a`` where its residual is ``<= tol`` (returned exactly), else ``clamp(a, lo, hi)``.
        Returns ``(a_s, safe)``; afterwards ``lo, hi, empty`` are available (detached)."""
        if self._lazy is None:  # bounds already computed (a Box set, or no rows)
            safe = self.residual(a.detach()) <= tol
            out = torch.where(safe.unsqueeze(-1), a, torch.clamp(a, self.lo, self.hi))
            return out, safe
        side: dict[str, Any] = {}
        out = _BoxProject.apply(a, *self._lazy, tol, side)  # (C, d, low, high, masks)
        raw = side["raw"]
        self._set_bounds(side["lo"], side["hi"], side["bad"], raw is not None, raw)
        return out, side["safe"]

    # -- closed form ----------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self.low.shape[-1]

    @property
    def rows(self) -> tuple[Tensor, Tensor]:
        """``N (B, kg + 2m, m)``, ``e (B, kg + 2m)``: the unit rows of ``A ∩ A_s`` (general rows,
        then the box part ``a <= hi``, ``-a <= -lo``), differentiable."""
        if self._rows is None:
            B, m = self.lo.shape
            Nb = _box_rows(m, self.lo.dtype, self.lo.device).expand(B, 2 * m, m)
            eb = torch.cat([self.hi, -self.lo], -1)
            if self.GN is None:
                self._rows = (Nb, eb)
            else:
                self._rows = (torch.cat([self.GN, Nb], 1), torch.cat([self.Ge, eb], -1))
        return self._rows

    def residual(self, x: Tensor) -> Tensor:
        """``(B,)`` largest (unit-row) constraint violation of ``x`` in ``A ∩ A_s``; ``inf``
        where known empty."""
        r = torch.maximum(self.lo - x, x - self.hi).amax(-1)
        if self.GN is not None:
            r = torch.maximum(r, (_matvec(self.GN, x) - self.Ge).amax(-1))
        return r.masked_fill(self.empty, math.inf) if self.any_empty else r

    def ray(self, c: Tensor, d: Tensor) -> Tensor:
        """``λ_As``: distance from ``c`` to the boundary of ``A ∩ A_s`` along unit ``d``
        (autograd version; the ray mask uses :func:`ray_map`)."""
        t = box_ray(c, d, self.lo, self.hi)
        if self.GN is not None:
            t = torch.minimum(t, poly_ray(c, d, self.GN, self.Ge))
        return t

    def box_ray(self, c: Tensor, d: Tensor) -> Tensor:
        """``λ_A``: distance from ``c`` to the boundary of the action box along unit ``d``."""
        return box_ray(c, d, self.low, self.high)

    def _solver_idx(self, need: Tensor | None) -> Tensor | None:
        """Elements with general rows (restricted to ``need``), or ``None`` if there are none."""
        if self.gidx is None:
            return None
        idx = self.gidx
        if need is not None:
            idx = idx[need.index_select(0, idx)]
        return idx if idx.numel() > 0 else None

    # -- projection (spec A Eq. 12) ---------------------------------------------------------------

    def project(self, x: Tensor, need: Tensor | None = None, tol: float = 1e-9):
        """Euclidean projection onto ``A ∩ A_s`` and ``ok (B,)`` (solved, not known empty).

        ``clamp`` to the box part (Jacobian ``diag`` of the free coordinates, Theorem 1) for the
        elements without general rows; on the others (only those in ``need`` if given: the rest
        get the clamp, a placeholder) :func:`project_polygon` for ``m = 2``, else the batched QP
        ``min ||y - x||^2, N y <= e``.  Either backward is the projector onto the complement of
        the active constraints' normals ``I - N_act^T (N_act N_act^T)^+ N_act`` (Theorem 1,
        Eq. 71 in polytope form), and reaches the set's parameters too.
        """
        p = torch.clamp(x, self.lo, self.hi)
        ok = ~self.empty
        idx = self._solver_idx(need)
        if idx is None:
            return p, ok
        N, e = self.rows
        xs, Ns, es = x.index_select(0, idx), N.index_select(0, idx), e.index_select(0, idx)
        if self.dim == 2:
            ys, oks = project_polygon(xs, Ns, es, tol)
        else:
            ys, oks = _qp_project(xs, Ns, es)
        p = p.index_copy(0, idx, ys)
        ok = ok.index_copy(0, idx, ok.index_select(0, idx) & oks)
        return p, ok

    # -- centres (spec A §3.4) --------------------------------------------------------------------

    def _centre_qp(self, kind: str, idx: Tensor, Q, p, G, h, warm: CentreWarmStart | None):
        """``solve_qp(Q, p, G, h)`` for the elements ``idx`` of a centre QP whose rows are
        ``[GN; box part; extra]``, warm-started from the active rows of the previous call in
        ``warm`` (:class:`CentreWarmStart`), where the new ones are stored.
        Returns ``(x, info)``."""
        if warm is None:
            return solve_qp(Q, p, G, h, return_info=True)
        B, m = self.lo.shape
        K = 0 if self.C is None else self.C.shape[1]
        kg = 0 if self.GN is None else self.GN.shape[1]
        rest = G.shape[1] - kg  # 2m box rows + the QP's own rows
        key = (kind, B, K, m, rest, p.dtype, p.device)
        full = warm.get(key)
        hint = order = slot = None
        if kg > 0:
            order, slot = self.gorder.index_select(0, idx), self.gslot.index_select(0, idx)
        if full is None:  # no previous call: the dual active-set method from scratch
            hint = torch.zeros(idx.shape[0], G.shape[1], dtype=torch.bool, device=p.device)
        else:
            fh = full.index_select(0, idx)
            hint = (
                fh[:, K:]
                if kg == 0
                else torch.cat([fh[:, :K].gather(1, order) & slot, fh[:, K:]], 1)
            )
        x, info = solve_qp(Q, p, G, h, return_info=True, active_hint=hint)
        act = info.active
        P = idx.shape[0]
        if kg > 0:  # back to the original numbering (order is injective: pads hit unkept rows)
            orig = torch.zeros(P, K, dtype=torch.bool, device=act.device)
            act = torch.cat([orig.scatter(1, order, act[:, :kg] & slot), act[:, kg:]], 1)
        elif K > 0:
            act = torch.cat([act.new_zeros(P, K), act], 1)
        if full is None:
            full = torch.zeros(B, K + rest, dtype=torch.bool, device=act.device)
        warm.put(key, full.index_copy(0, idx, act))
        warm.accepted = info.warm
        return x, info

    def chebyshev_centre(
        self, reg: float, warm: CentreWarmStart | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Centre and radius of the largest ball in ``A ∩ A_s`` (our own option, an LP made
        strictly convex): ``min -r + reg/2 (||x - x_A||^2 + r^2)  s.t.  N x + r <= e, r >= 0``
        with ``x_A`` the action-box centre.  The tiny proximal term picks the Chebyshev centre
        closest to ``x_A`` when it is not unique (e.g. a long box), which makes the centre a
        well-defined, differentiable function of the set.  Returns ``(c (B,m), r (B,), ok)``.

        Box part only (no general rows): closed form, ``r = min_l (hi_l - lo_l)/2`` and
        ``c = clamp(x_A, lo + r, hi - r)`` -- the QP's solution whenever
        ``reg (r + ||c - x_A||_1) < 1`` (along the optimal ``c(r)`` the objective then decreases
        in ``r``), which is checked; elsewhere the QP runs."""
        xA = (0.5 * (self.low + self.high)).expand(self.lo.shape)
        r = 0.5 * (self.hi - self.lo).amin(-1)
        ru = r.unsqueeze(-1)
        c = torch.minimum(torch.maximum(xA, self.lo + ru), self.hi - ru)
        ok = ~self.empty
        with torch.no_grad():
            closed = reg * (r + (c - xA).abs().sum(-1)) < 0.5
            need = ~closed
            if self.gidx is not None:
                need[self.gidx] = True
            idx = need.nonzero().squeeze(-1) if bool(need.any()) else None
        if idx is None:
            return c, r, ok
        N, e = self.rows
        Ns, es = N.index_select(0, idx), e.index_select(0, idx)
        P, k, m = Ns.shape
        dt, dev = Ns.dtype, Ns.device
        wr = torch.linalg.vector_norm(Ns, dim=-1, keepdim=True)
        G = torch.cat([Ns, wr], -1)
        row = torch.zeros(1, m + 1, dtype=dt, device=dev)
        row[0, m] = -1.0
        G = torch.cat([G, row.expand(P, 1, m + 1)], 1)
        h = torch.cat([es, es.new_zeros(P, 1)], 1)
        Q = reg * torch.eye(m + 1, dtype=dt, device=dev)
        p_r = torch.full((P, 1), -1.0, dtype=dt, device=dev)
        p = torch.cat([-reg * xA.index_select(0, idx), p_r], -1)
        z, info = self._centre_qp("chebyshev", idx, Q, p, G, h, warm)
        oks = (info.status == _SOLVED) | (info.status == _MAX_ITER)
        c = c.index_copy(0, idx, z[:, :m])
        r = r.index_copy(0, idx, z[:, m])
        ok = ok.index_copy(0, idx, ok.index_select(0, idx) & oks)
        return c, r, ok

    def zonotope_centre(
        self,
        D: Tensor,
        reg: float,
        axes: bool | None = None,
        warm: CentreWarmStart | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Inner zonotope ``<c, D diag(l)> ⊆ A ∩ A_s`` with fixed unit directions ``D (m, n_g)``
        (spec A §3.4, the paper's "zonotopic approximation", P5-deterministic).

        Containment of a zonotope in ``{N a <= e}`` is exact through support functions:
        ``N c + |N D| l <= e``.  The paper maximises the geometric mean of ``l`` (not an LP); we
        maximise the linear surrogate ``(min_k l_k + mean_k l_k)/2`` (``min <= geo-mean <=
        mean``), with ``t = min_k l_k`` as a variable, plus the same tiny proximal term as
        :meth:`chebyshev_centre` for uniqueness:
        ``min -(t + mean(l))/2 + reg/2 (||c - x_A||^2 + ||l||^2 + t^2)
        s.t. N c + |N D| l <= e,  t <= l_k,  t >= 0``  (one batched QP).
        Returns ``(c (B,m), l (B,n_g), ok)``.

        Box part only (no general rows) and ``D`` containing every axis: ``c`` is the box
        midpoint, exactly.  (The axis generator ``l_e`` appears only in coordinate ``l``'s two
        rows; were one of them slack, shifting ``c_l`` by ``δ`` and growing ``l_e`` would raise
        the objective by ``O(δ/n_g)`` against ``O(reg δ)``.)  There ``l`` is reported as 0."""
        n_g = D.shape[1]
        B, m = self.lo.shape
        if has_all_axes(D) if axes is None else axes:
            idx = self.gidx
        else:
            idx = torch.arange(B, device=self.lo.device)
        if idx is None:
            return 0.5 * (self.lo + self.hi), self.lo.new_zeros(B, n_g), ~self.empty
        every = idx.shape[0] == B  # (gidx is sorted: then it is arange(B))
        N, e = self.rows
        Ns, es = (N, e) if every else (N.index_select(0, idx), e.index_select(0, idx))
        P, k, _ = Ns.shape
        dt, dev = Ns.dtype, Ns.device
        nv = m + n_g + 1
        # constant rows t <= l_j, -t <= 0, the Hessian and the linear term of l, t (cached)
        G23, Q, p_lt = _const(
            ("zono", m, n_g, reg, dt, dev), lambda: _zono_consts(m, n_g, reg, dt, dev)
        )
        ND = (Ns @ D).abs()  # (P, k, n_g)
        G = torch.cat(
            [torch.cat([Ns, ND, Ns.new_zeros(P, k, 1)], -1), G23.expand(P, n_g + 1, nv)], 1
        )
        h = torch.cat([es, es.new_zeros(P, n_g + 1)], 1)
        xA = (0.5 * (self.low + self.high)).expand(B, m)
        if not every:
            xA = xA.index_select(0, idx)
        p = torch.cat([-reg * xA, p_lt.expand(P, n_g + 1)], -1)
        z, info = self._centre_qp("zonotope", idx, Q, p, G, h, warm)
        oks = (info.status == _SOLVED) | (info.status == _MAX_ITER)
        if every:
            return z[:, :m], z[:, m : m + n_g], ~self.empty & oks
        c = (0.5 * (self.lo + self.hi)).index_copy(0, idx, z[:, :m])
        lengths = self.lo.new_zeros(B, n_g).index_copy(0, idx, z[:, m : m + n_g])
        ok = ~self.empty
        ok = ok.index_copy(0, idx, ok.index_select(0, idx) & oks)
        return c, lengths, ok

    # -- fallback (issue 5, item 7) ---------------------------------------------------------------

    def least_violating(self) -> Tensor:
        """``(B, m)`` a point of the action box that minimises the largest (unit-row) violation
        of ``A_s``; inside ``A ∩ A_s`` when that is non-empty.  Detached (no gradient).

        Elements whose ``A_s`` has only axis (and zero) rows: per coordinate the midpoint of
        ``[lo_raw, hi_raw]`` clamped to the action box.  Elements with general rows: the LP of
        :func:`least_violating_point` over all rows of ``A_s``."""
        with torch.no_grad():
            lo_raw, hi_raw = (self.lo, self.hi) if self.raw is None else self.raw
            x = clamp_box(0.5 * (lo_raw + hi_raw), self.low, self.high)
            if self.had_general is None or not bool(self.had_general.any()):
                return x
            idx = self.had_general.nonzero().squeeze(-1)
            C, d = self.C.index_select(0, idx), self.d.index_select(0, idx)
            nrm = torch.linalg.vector_norm(C, dim=-1)
            # rows that cannot be helped (zero, +-inf offsets, NaN) are left out
            inert = (nrm == 0) | ~torch.isfinite(d) | torch.isnan(nrm)
            nrm_s = torch.where(inert, 1.0, nrm)
            N = torch.where(inert.unsqueeze(-1), 0.0, C / nrm_s.unsqueeze(-1))
            e = torch.where(inert, 1.0, d / nrm_s)
            low = self.low.expand(self.lo.shape).index_select(0, idx)
            high = self.high.expand(self.lo.shape).index_select(0, idx)
            xs = least_violating_point(N, e, low, high)
            return x.index_copy(0, idx, xs)


def least_violating_point(N: Tensor, e: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """The LP ``max r  s.t.  N a + |N_i| r <= e,  low <= a <= high,  r <= w`` (``w`` the largest
    box width; ``r`` may be negative: the violation bound) over unit (or zero) rows
    ``N (B, k, m)``; returns ``a (B, m)`` in the box, detached."""
    with torch.no_grad():
        B, k, m = N.shape
        dt, dev = N.dtype, N.device
        Nb = _box_rows(m, dt, dev).expand(B, 2 * m, m)
        wr = torch.linalg.vector_norm(N, dim=-1, keepdim=True)
        G = torch.cat([torch.cat([N, wr], -1), torch.cat([Nb, Nb.new_zeros(B, 2 * m, 1)], -1)], 1)
        row = torch.zeros(1, m + 1, dtype=dt, device=dev)
        row[0, m] = 1.0
        G = torch.cat([G, row.expand(B, 1, m + 1)], 1)
        width = (high - low).amax(-1, keepdim=True)
        h = torch.cat([e, high, -low, width + 1.0], 1)
        cvec = torch.zeros(m + 1, dtype=dt, device=dev)
        cvec[m] = -1.0
        z, info = solve_qp(None, cvec.expand(B, m + 1), G, h, return_info=True)
        x = z[:, :m]
        good = (info.status == _SOLVED) | (info.status == _MAX_ITER)
        # last resort (never expected: the LP is always feasible and bounded): box centre
        x = torch.where(good.unsqueeze(-1), x, 0.5 * (low + high))
        return clamp_box(torch.nan_to_num(x), low, high)
