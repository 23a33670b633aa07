"""Boundary projection (spec A §3.2, Eq. 12, Theorem 1)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from safegrad.safeguards._base import Safeguard, base_info, check_like
from safegrad.safeguards._geometry import (
    Region,
    _unit_box,
    cutting_fraction,
    project_polytope_2d,
    resolve_box,
)
from safegrad.sets import HPolytope

__all__ = ["BoundaryProjection", "prepare_region", "prepare_region_raw"]


def prepare_region(
    action: Tensor, safe_set: Any, box_spec: Any, tol: float = 0.0
) -> tuple[Region, Tensor, tuple[int, ...]]:
    """Validate and flatten ``(action, safe_set, action box)``; returns the region, the flat
    action ``(B, m)`` and the broadcast batch shape."""
    m = action.shape[-1]
    dim = getattr(safe_set, "dim", None)
    if dim is None or not hasattr(safe_set, "batch_shape"):
        raise TypeError(
            "safe_set must be a safegrad.sets.HPolytope, Box or Zonotope, "
            f"got {type(safe_set).__name__}"
        )
    if dim != m:
        raise ValueError(f"safe_set has dimension {dim} but the action has dimension {m}")
    if safe_set.dtype != action.dtype or safe_set.device != action.device:
        raise TypeError(
            f"safe_set ({safe_set.dtype}, {safe_set.device}) and action ({action.dtype}, "
            f"{action.device}) must share dtype and device"
        )
    low, high = resolve_box(box_spec, m, action)
    check_like(low, action, "action_box")
    a_batch, s_batch = tuple(action.shape[:-1]), tuple(safe_set.batch_shape)
    if a_batch == s_batch and low.dim() == 1:  # the common case, without broadcast_shapes
        batch = a_batch
    else:
        try:
            batch = tuple(torch.broadcast_shapes(a_batch, s_batch, low.shape[:-1]))
        except RuntimeError as exc:
            raise ValueError(
                f"batch shapes do not broadcast: action {tuple(action.shape)}, safe_set batch "
                f"{s_batch}, action_box {tuple(low.shape)}"
            ) from exc
    region = Region.build(safe_set, low, high, batch, tol)
    if batch != a_batch:
        a = action.expand(*batch, m).reshape(-1, m)
    else:  # no view node in the autograd graph where the action is already flat
        a = action if action.dim() == 2 else action.reshape(-1, m)
    return region, a, batch


def _raw_2d_rows(action: Tensor, safe_set: Any, box_spec: Any, tol: float):
    """``(C, d, low, high, scale)`` when the 2-D raw-row paths apply: a flat batch ``(B, 2)`` of
    :class:`HPolytope` sets on the action's dtype/device, a ``(2,)`` action box, and at least
    half of the elements with a general row that cuts the action box
    (:func:`cutting_fraction`); else ``None`` (most sets are boxes once pruned: the pruned,
    fused box paths are cheaper)."""
    if (
        action.dim() != 2
        or action.shape[-1] != 2
        or type(safe_set) is not HPolytope
        or safe_set.C.dim() != 3
        or safe_set.C.shape[0] != action.shape[0]
        or safe_set.dtype != action.dtype
        or safe_set.device != action.device
        or action.shape[0] == 0
    ):
        return None
    C, d = safe_set.C, safe_set.d
    low, high = resolve_box(box_spec, 2, action)
    if low.dim() != 1:
        return None
    gen = C[..., 0].ne(0) & C[..., 1].ne(0)  # general rows (both entries non-zero)
    if not bool(gen.any()):  # (one host sync) a box: the fused box paths
        return None
    if low is _unit_box(2, low.dtype, low.device)[0]:
        scale: Any = 2.0
    else:
        scale = 1.0 + float(torch.maximum(low.abs(), high.abs()).detach().max())
    if cutting_fraction(C, d, low, high, tol, scale, gen) < 0.5:
        return None
    return C, d, low, high, scale


def prepare_region_raw(
    action: Tensor, safe_set: Any, box_spec: Any, tol: float
) -> tuple[Region, Tensor, tuple[int, ...]] | None:
    """:meth:`Region.build_raw` where :func:`_raw_2d_rows` applies, else ``None`` (use
    :func:`prepare_region`)."""
    rows = _raw_2d_rows(action, safe_set, box_spec, tol)
    if rows is None:
        return None
    return Region.build_raw(*rows), action, (action.shape[0],)


def finish(
    a: Tensor,
    out: Tensor,
    ok: Tensor | None,
    raw_unsafe: Tensor,
    region: Region,
    fallback: Tensor | None,
    batch: tuple[int, ...],
    tol: float,
    extra: dict[str, Tensor] | None = None,
    inside: bool = False,
    fb: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Certify ``out`` (residual <= tol * scale), substitute the fallback where it fails or where
    ``ok`` is False (``None``: all ok), never NaN, reshape to ``batch``.  ``inside=True``: the
    caller guarantees the residual bound wherever ``out`` is finite and the region not empty
    (a clamp to the box part), so only those are checked; ``fb``: the caller has done the check
    (elements to replace)."""
    m = a.shape[-1]
    if fb is not None:
        pass
    elif inside:
        fb = torch.isnan(out).any(-1)
        if region.any_empty:
            fb = fb | region.empty
    else:
        # a NaN output has a NaN residual, which fails the comparison
        fb = ~(region.residual(out.detach()) <= tol * region.scale)
    if ok is not None:
        fb = fb | ~ok
    any_fb = bool(fb.any())
    if any_fb:
        if fallback is not None:
            fb_act = fallback.expand(*batch, m).reshape(-1, m)
        else:
            fb_act = region.least_violating()
        out = torch.where(fb.unsqueeze(-1), fb_act, torch.nan_to_num(out))
    info = base_info(a, out, raw_unsafe, fb)
    if extra:
        info.update(extra)
    if len(batch) != 1:
        info = {k: v.reshape(*batch, *v.shape[1:]) for k, v in info.items()}
        out = out.reshape(*batch, m)
    return out, info


class BoundaryProjection(Safeguard):
    """Boundary projection ``a_s = argmin_{a' in A ∩ A_s} ||a - a'||^2`` (spec A Eq. 12).

    Forward (the canonical form of :class:`~safegrad.safeguards._geometry.Region`):

    * where every row of ``A_s`` acts on one action coordinate (a :class:`~safegrad.sets.Box`,
      any 1-D set such as the pendulum's interval, the household's set), or the other rows are
      redundant on that box part: closed form ``clamp`` to the box part, one fused autograd
      function (:class:`~safegrad.safeguards._geometry._BoxProject`);
    * elsewhere (:class:`~safegrad.sets.HPolytope` rows with two or more non-zero entries that
      cut the box part, or a :class:`~safegrad.sets.Zonotope`'s exact H-representation), per
      element: the exact 2-D projection for ``m = 2``
      (:func:`~safegrad.safeguards._geometry.project_polygon`), one batched QP through
      :func:`safegrad.qp.solve_qp` over ``{C a <= d} ∩ A`` for ``m >= 3``.
    * Safe raw actions (all unit-row residuals ``<= tol``) are returned **exactly**
      (``a_s = a``, Jacobian ``I``); the projection is applied unconditionally (P1) and is
      exactly idempotent.

    Jacobian (``grad_mode="exact"``): Theorem 1 (Eq. 71) in polytope form, the orthogonal
    projector ``I - N_act^T (N_act N_act^T)^+ N_act`` onto the complement of the active
    constraint normals: ``I`` inside, rank ``m - #active`` on a face, ``0`` at a vertex (and
    always ``0`` for ``m = 1`` when it intervenes).  It comes from the implicit
    differentiation of the active-set projection (the QP's, or the 2-D projection's written
    out; ``clamp``'s in closed form), and reaches ``C, d`` too (for rows acting on one
    coordinate: their non-zero entries, docs/safeguards.md).

    Fallback (issue 5, item 7): where ``A ∩ A_s`` is empty or the solve fails, the
    caller-supplied ``fallback`` action, else the action-box point with the smallest largest
    constraint violation (an LP; closed form for boxes), flagged in ``info["fallback"]``.

    Args:
        action_box: the action box ``A`` (default ``[-1, 1]^m``; a :class:`~safegrad.sets.Box`
            or a ``(low, high)`` pair); may be overridden per call with ``action_box=``.
        grad_mode, passthrough_scope, strict, tol: see :class:`~safegrad.safeguards.Safeguard`.

    ``forward(action (*batch, m), safe_set, *, fallback=None, action_box=None)``.
    """

    def __init__(self, action_box: Any = None, **kw):
        super().__init__(**kw)
        self.action_box = action_box

    def _safeguard(self, action, safe_set, fallback, action_box=None):
        box = self.action_box if action_box is None else action_box
        tol = self._tol(action.dtype)
        fast = self._polygon_fast_path(action, safe_set, box, fallback, tol)
        if fast is not None:
            return fast
        region, a, batch = prepare_region(action, safe_set, box, tol)
        if a.shape[0] == 0:
            return action.expand(*batch, a.shape[-1]), _empty_info(batch, action)
        if region.gidx is None:  # box part only: a clamp, inside by construction
            out, safe = region.project_box(a, tol)
            return finish(a, out, None, ~safe, region, fallback, batch, tol, inside=True)
        safe = region.residual(a.detach()) <= tol  # within tol: safe, returned exactly
        unsafe = ~safe
        p, ok = region.project(a, unsafe, tol)
        out = torch.where(safe.unsqueeze(-1), a, p)
        return finish(a, out, ok | safe, unsafe, region, fallback, batch, tol)

    def _polygon_fast_path(self, action, safe_set, box, fallback, tol):
        """``m = 2``, a flat batch ``(B, 2)`` of :class:`~safegrad.sets.HPolytope` sets with
        general rows: the fused projection on the raw rows (:func:`project_polytope_2d`, no
        pruning, one autograd node); elements it flags go through the general path.  ``None``
        where it does not apply."""
        rows = _raw_2d_rows(action, safe_set, box, tol)
        if rows is None:
            return None
        C, d, low, high, scale = rows
        out, safe, bad = project_polytope_2d(action, C, d, low, high, tol, scale)
        info = base_info(action, out, ~safe, torch.zeros_like(safe))
        if bool(bad.any()):  # (one host sync) the general path, for those elements
            region, a, batch = prepare_region(action, safe_set, box, tol)
            safe_g = region.residual(a.detach()) <= tol
            p, ok = region.project(a, ~safe_g, tol)
            out_g = torch.where(safe_g.unsqueeze(-1), a, p)
            out_g, info_g = finish(a, out_g, ok | safe_g, ~safe_g, region, fallback, batch, tol)
            b = bad.unsqueeze(-1)
            out = torch.where(b, out_g, out)
            info = {k: torch.where(bad, info_g[k], v) for k, v in info.items()}
        return out, info


def _empty_info(batch, like: Tensor) -> dict[str, Tensor]:
    z = torch.zeros(batch, dtype=torch.bool, device=like.device)
    return {
        "intervened": z,
        "raw_unsafe": z,
        "fallback": z,
        "distance": torch.zeros(batch, dtype=like.dtype, device=like.device),
    }
