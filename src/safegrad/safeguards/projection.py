"""Boundary projection (spec A §3.2, Eq. 12, Theorem 1)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from safegrad.safeguards._base import Safeguard, base_info, check_like
from safegrad.safeguards._geometry import Region, resolve_box

__all__ = ["BoundaryProjection", "prepare_region"]


def prepare_region(
    action: Tensor, safe_set: Any, box_spec: Any
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
    try:
        batch = tuple(
            torch.broadcast_shapes(action.shape[:-1], safe_set.batch_shape, low.shape[:-1])
        )
    except RuntimeError as exc:
        raise ValueError(
            f"batch shapes do not broadcast: action {tuple(action.shape)}, safe_set batch "
            f"{tuple(safe_set.batch_shape)}, action_box {tuple(low.shape)}"
        ) from exc
    region = Region.build(safe_set, low, high, batch)
    a = action.expand(*batch, m).reshape(-1, m)
    return region, a, batch


def finish(
    a: Tensor,
    out: Tensor,
    ok: Tensor,
    raw_unsafe: Tensor,
    region: Region,
    fallback: Tensor | None,
    batch: tuple[int, ...],
    tol: float,
    extra: dict[str, Tensor] | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Certify ``out`` (residual <= tol * (1 + scale)), substitute the fallback where it fails
    or where ``ok`` is False, never NaN, reshape to ``batch``."""
    m = a.shape[-1]
    with torch.no_grad():
        scale = 1.0 + torch.maximum(region.low.abs(), region.high.abs()).amax(-1)
        certified = ok & torch.isfinite(out).all(-1) & (region.residual(out) <= tol * scale)
    fb = ~certified
    if bool(fb.any()):
        if fallback is not None:
            fb_act = fallback.expand(*batch, m).reshape(-1, m)
        else:
            fb_act = region.least_violating()
        out = torch.where(fb.unsqueeze(-1), fb_act, torch.nan_to_num(out))
    info = base_info(a, out, raw_unsafe, fb)
    if extra:
        info.update(extra)
    info = {k: v.reshape(*batch, *v.shape[1:]) for k, v in info.items()}
    return out.reshape(*batch, m), info


class BoundaryProjection(Safeguard):
    """Boundary projection ``a_s = argmin_{a' in A ∩ A_s} ||a - a'||^2`` (spec A Eq. 12).

    Forward:

    * :class:`~safegrad.sets.Box` safe set or any 1-D set (an interval, e.g. the pendulum):
      closed form ``clamp``;
    * :class:`~safegrad.sets.HPolytope` (the workhorse) or :class:`~safegrad.sets.Zonotope`
      (converted to its exact H-representation): one batched QP through
      :func:`safegrad.qp.solve_qp` over ``{C a <= d} ∩ A``.
    * Safe raw actions (all unit-row residuals ``<= tol``) are returned **exactly**
      (``a_s = a``, Jacobian ``I``); the projection is applied unconditionally (P1) and is
      exactly idempotent.

    Jacobian (``grad_mode="exact"``): Theorem 1 (Eq. 71) in polytope form, the orthogonal
    projector ``I - N_act^T (N_act N_act^T)^+ N_act`` onto the complement of the active
    constraint normals: ``I`` inside, rank ``m - #active`` on a face, ``0`` at a vertex (and
    always ``0`` for ``m = 1`` when it intervenes).  It comes from the QP's implicit
    differentiation (``clamp``'s derivative in closed form), and reaches ``C, d`` too.

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
        region, a, batch = prepare_region(action, safe_set, box)
        if a.shape[0] == 0:
            return action.expand(*batch, a.shape[-1]), _empty_info(batch, action)
        tol = self._tol(a.dtype)
        with torch.no_grad():  # within tol counts as safe: returned exactly (idempotent)
            safe = region.residual(a) <= tol
        p, ok = region.project(a)
        out = torch.where(safe.unsqueeze(-1), a, p)
        return finish(a, out, ok | safe, ~safe, region, fallback, batch, tol)


def _empty_info(batch, like: Tensor) -> dict[str, Tensor]:
    z = torch.zeros(batch, dtype=torch.bool, device=like.device)
    return {
        "intervened": z,
        "raw_unsafe": z,
        "fallback": z,
        "distance": torch.zeros(batch, dtype=like.dtype, device=like.device),
    }
