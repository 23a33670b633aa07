"""The cvxpylayers + Clarabel formulations of boundary projection and the ray mask (the way the
public reference code of paper A builds them, spec A §3.1, §7.6, pitfall P15) as
:class:`~safegrad.safeguards.Safeguard` modules, so that they plug into
:class:`~safegrad.safeguards.SafeguardWrapper` and SHAC exactly like ours
(``safegrad bench shac-timing``).

* :class:`ReferenceBoundaryProjection`: ``min ||y - a||^2 s.t. C y <= d, -1 <= y <= 1`` (spec A
  Eq. 12) as one ``CvxpyLayer`` with ``a, C, d`` as parameters, one cone program per batch
  element (diffcp + Clarabel, float64, CPU);
* :class:`ReferenceRayMask`: the linear or tanh ray mask with the zonotopic centre (spec A
  §3.3-3.4): the inner-zonotope centre QP and the ray LP ``λ_As = max{t : N (c + t d) <= e}`` as
  two layers, ``λ_A`` and the radial map in torch.

The layers are those of :mod:`safegrad.bench.safeguards` (``_bp_layer``, ``_centre_layer``,
``_ray_layer``), built once per constraint shape.  Inputs are cast to float64 for the solver and
the output back to the action's dtype; the gradient reaches the action and the safe-set tensors
``C, d`` (the state path of SHAC) through diffcp's implicit differentiation.  These modules are
references for timing and cross-checks, not for training: every call solves ``B`` cone programs
on the CPU.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from safegrad.safeguards import RayMask, Safeguard, ray_profile
from safegrad.sets import HPolytope

__all__ = ["ReferenceBoundaryProjection", "ReferenceRayMask", "REFERENCE_SAFEGUARDS"]

F64 = torch.float64
#: finite stand-in for ``d = +inf`` rows (cone programs take finite data)
_BIG = 1e6


def _solver_args(tol: float | None, threads: int, backward: bool) -> dict[str, Any]:
    """Clarabel through diffcp; ``tol=None`` keeps Clarabel's defaults (the reference code's
    setting); otherwise the tight tolerances of ``safegrad bench safeguards``."""
    if tol is not None:
        from safegrad.bench.safeguards import _solver_args as tight

        return tight(tol, threads, backward)
    out: dict[str, Any] = {"solve_method": "Clarabel", "n_jobs_forward": threads}
    if backward:  # diffcp's forward-only path rejects n_jobs_backward
        out["n_jobs_backward"] = threads
    return out


def _polytope(safe_set: Any, action: Tensor) -> tuple[Tensor, Tensor]:
    """``(C (B, k, m), d (B, k))`` of an :class:`HPolytope` safe set, flattened to one batch dim
    and cast to float64 (``+inf`` offsets replaced by a large finite number)."""
    if not isinstance(safe_set, HPolytope):
        raise TypeError(
            f"the reference safeguards take an HPolytope safe set (env.safe_action_set), got "
            f"{type(safe_set).__name__}"
        )
    m = action.shape[-1]
    if safe_set.dim != m:
        raise ValueError(f"safe set has dimension {safe_set.dim}, the action has {m}")
    B = math.prod(action.shape[:-1])
    k = safe_set.C.shape[-2]
    C = safe_set.C.expand(*action.shape[:-1], k, m).reshape(B, k, m).to(F64)
    d = safe_set.d.expand(*action.shape[:-1], k).reshape(B, k).to(F64)
    return C, torch.nan_to_num(d, posinf=_BIG)


def _needs_grad(*ts: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in ts)


def _info(action: Tensor, out: Tensor, C: Tensor, d: Tensor, tol: float) -> dict[str, Tensor]:
    """The :class:`~safegrad.safeguards.Safeguard` info entries; ``intervened`` means moved by
    more than ``max(tol, 1e-6)`` (a cone solver returns a feasible action only up to its
    accuracy, not bit-exactly)."""
    a = action.detach().reshape(-1, action.shape[-1]).to(F64)
    res = torch.cat(
        [(C.detach() @ a.unsqueeze(-1)).squeeze(-1) - d.detach(), a.abs() - 1.0], dim=-1
    )
    dist = torch.linalg.vector_norm(out.detach() - action.detach(), dim=-1)
    batch = action.shape[:-1]
    return {
        "intervened": dist > max(tol, 1e-6),
        "raw_unsafe": (res.amax(-1) > tol).reshape(batch),
        "fallback": torch.zeros(batch, dtype=torch.bool, device=action.device),
        "distance": dist,
    }


class _Reference(Safeguard):
    """Common part: layer cache, solver settings, dtype round trip."""

    def __init__(self, *, tol_solver: float | None = None, threads: int = 1, **kw: Any):
        super().__init__(**kw)
        if tol_solver is not None and not tol_solver > 0:
            raise ValueError(f"tol_solver must be > 0 or None, got {tol_solver!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        self.tol_solver = tol_solver
        self.threads = threads
        self._layers: dict[tuple, Any] = {}

    def _args(self, *ts: Tensor) -> dict[str, Any]:
        return _solver_args(self.tol_solver, self.threads, _needs_grad(*ts))


class ReferenceBoundaryProjection(_Reference):
    """Boundary projection onto ``A ∩ A_s`` as a CvxpyLayer (spec A Eq. 12; module docstring).

    Args:
        tol_solver: Clarabel tolerance (``None``: Clarabel's defaults, as the reference code).
        threads: diffcp jobs (forward and backward).
        grad_mode, passthrough_scope, strict, tol: see :class:`~safegrad.safeguards.Safeguard`.
    """

    def _safeguard(self, action: Tensor, safe_set: Any, fallback: Tensor | None, **kw: Any):
        from safegrad.bench.safeguards import _bp_layer

        C, d = _polytope(safe_set, action)
        B, k, m = C.shape
        a = action.reshape(B, m).to(F64)
        layer = self._layers.get(("bp", k, m))
        if layer is None:
            layer = self._layers[("bp", k, m)] = _bp_layer(k, m)
        (y,) = layer(a, C, d, solver_args=self._args(a, C, d))
        out = y.to(action.dtype).reshape(action.shape)
        return out, _info(action, out, C, d, self._tol(action.dtype))


class ReferenceRayMask(_Reference):
    """Ray mask with the zonotopic centre as two CvxpyLayers (spec A §3.3-3.4; module docstring).

    The inner-zonotope directions and the proximal weight are those of our
    :class:`~safegrad.safeguards.RayMask` (``n_g = 2m``, 1 for ``m = 1``; fixed, P5), so both
    solve the same problems.

    Args:
        map: ``"linear"`` (RM) or ``"tanh"`` (HRM).
        tol_solver, threads: see :class:`ReferenceBoundaryProjection`.
        grad_mode, passthrough_scope, strict, tol: see :class:`~safegrad.safeguards.Safeguard`.
    """

    def __init__(self, map: str = "linear", **kw: Any):
        super().__init__(**kw)
        self._rm = RayMask(map, centre="zonotope")
        self.map = map

    def _safeguard(self, action: Tensor, safe_set: Any, fallback: Tensor | None, **kw: Any):
        from safegrad.bench.safeguards import _centre_layer, _ray_layer

        C, d = _polytope(safe_set, action)
        B, k, m = C.shape
        a = action.reshape(B, m).to(F64)
        D = self._rm.generator_directions(m, F64, a.device)
        key = ("rm", k, m, D.shape[1])
        layers = self._layers.get(key)
        if layers is None:
            kk = k + 2 * m
            layers = self._layers[key] = (
                _centre_layer(kk, m, D.shape[1], self._rm.centre_reg),
                _ray_layer(kk),
            )
        centre_layer, ray_layer = layers
        # normalised rows of C y <= d plus the action box -1 <= y <= 1 (zero rows: 0 <= 1)
        nrm = torch.linalg.vector_norm(C, dim=-1)
        inert = nrm == 0
        nrm_s = torch.where(inert, torch.ones_like(nrm), nrm)
        N = torch.where(inert.unsqueeze(-1), 0.0, C / nrm_s.unsqueeze(-1))
        e = torch.where(inert, 1.0, d / nrm_s)
        eye = torch.eye(m, dtype=F64, device=a.device)
        N = torch.cat([N, torch.cat([eye, -eye], 0).expand(B, 2 * m, m)], 1)
        e = torch.cat([e, torch.ones(B, 2 * m, dtype=F64, device=a.device)], 1)
        ND = (N @ D).abs()
        (c,) = centre_layer(N, ND, e, solver_args=self._args(N, ND, e))
        v = a - c
        lam_a = torch.linalg.vector_norm(v, dim=-1)
        dirn = v / lam_a.clamp_min(1e-12).unsqueeze(-1)
        Nd = (N @ dirn.unsqueeze(-1)).squeeze(-1)
        s = e - (N @ c.unsqueeze(-1)).squeeze(-1)
        (lam_as,) = ray_layer(Nd, s, solver_args=self._args(Nd, s))
        # λ_A: distance from c to the box [-1, 1]^m along dirn (closed form)
        pos, neg = dirn > 1e-12, dirn < -1e-12
        d_safe = torch.where(pos | neg, dirn, torch.ones_like(dirn))
        t = torch.where(pos, (1.0 - c) / d_safe, torch.where(neg, (-1.0 - c) / d_safe, math.inf))
        lam_A = t.amin(-1).clamp_min(0.0)
        rho = ray_profile(lam_a, lam_as.reshape(B), lam_A, self.map)
        out = (c + rho.unsqueeze(-1) * dirn).to(action.dtype).reshape(action.shape)
        return out, _info(action, out, C, d, self._tol(action.dtype))


#: names used by ``safegrad bench shac-timing`` -> constructor
REFERENCE_SAFEGUARDS = {
    "boundary-projection": ReferenceBoundaryProjection,
    "ray-mask": ReferenceRayMask,
}
