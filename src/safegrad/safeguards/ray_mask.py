"""Ray mask (RM, linear) and hyperbolic ray mask (HRM, tanh) with the zonotopic, orthogonal and
Chebyshev safe centres (spec A §3.3-3.4, Eq. 32; pitfalls P3, P5, P14)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from safegrad.safeguards._base import Safeguard, check_float_tensor, check_like, guard_threshold
from safegrad.safeguards._geometry import (
    CentreWarmStart,
    Region,
    default_directions,
    has_all_axes,
    ray_map,
)
from safegrad.safeguards.projection import (
    _empty_info,
    finish,
    prepare_region,
    prepare_region_raw,
)

__all__ = ["RayMask", "ray_profile", "RAY_MAPS", "CENTRES"]

RAY_MAPS = ("linear", "tanh")
CENTRES = ("zonotope", "orthogonal", "chebyshev")


def ray_profile(lam_a: Tensor, lam_as: Tensor, lam_A: Tensor, map: str) -> Tensor:
    """Radial profile ``ρ(λ_a) = λ_As · ω(λ_a)`` of the ray mask (spec A §3.3).

    ``ω_lin = λ_a / λ_A``;  ``ω_tanh = tanh(λ_a/λ_As) / tanh(λ_A/λ_As)`` (Eq. 32 is its
    derivative).  ``ρ(0) = 0``, ``ρ(λ_A) = λ_As``, strictly increasing on ``[0, λ_A]`` when
    ``λ_As > 0``.  ``λ_a`` beyond ``λ_A`` (an action outside the box) is first clamped to ``λ_A``
    (radial pull onto the box boundary).  Guarded (P14): ``ρ = 0`` where ``λ_As`` or ``λ_A`` is
    ~0 (then the whole ray is unsafe / the centre is on the box boundary), with NaN-free
    gradients.  Shapes: any broadcastable ``(*b,)``.
    """
    thr = guard_threshold(lam_a.dtype)
    lam_a = torch.minimum(lam_a, lam_A)
    ok = (lam_A > thr) & (lam_as > thr)
    A_safe = torch.where(ok, lam_A, torch.ones_like(lam_A))
    S_safe = torch.where(ok, lam_as, torch.ones_like(lam_as))
    if map == "linear":
        rho = lam_as * lam_a / A_safe
    elif map == "tanh":
        rho = S_safe * torch.tanh(lam_a / S_safe) / torch.tanh(A_safe / S_safe)
    else:
        raise ValueError(f"map must be one of {RAY_MAPS}, got {map!r}")
    return torch.where(ok, rho, torch.zeros_like(rho))


def _slope_at_centre(lam_as: Tensor, lam_A: Tensor, map: str) -> Tensor:
    """``ρ'(0)``: ``λ_As/λ_A`` (linear), ``1/tanh(λ_A/λ_As)`` (tanh); 0 where guarded."""
    thr = guard_threshold(lam_as.dtype)
    ok = (lam_A > thr) & (lam_as > thr)
    A_safe = torch.where(ok, lam_A, torch.ones_like(lam_A))
    S_safe = torch.where(ok, lam_as, torch.ones_like(lam_as))
    s = lam_as / A_safe if map == "linear" else 1.0 / torch.tanh(A_safe / S_safe)
    return torch.where(ok, s, torch.zeros_like(s))


def _ray_map(a: Tensor, c: Tensor, region: Region, map: str):
    """Reference implementation (plain autograd; the safeguard uses the equivalent
    :func:`~safegrad.safeguards._geometry.ray_map`, tested against this one):
    ``a_s = c + λ_As ω(λ_a) d`` for a set-defined centre ``c`` (spec A §3.3, with the λ_As
    factor, P3).  At ``a = c`` (``λ_a <= thr``) returns ``c + ρ'(0; e_1) (a - c)``, i.e. exactly
    ``c`` with the finite, full-rank Jacobian ``ρ'(0; e_1) I`` (P14)."""
    thr = guard_threshold(a.dtype)
    v = a - c
    lam_a = torch.linalg.vector_norm(v, dim=-1)
    small = lam_a <= thr
    e1 = torch.zeros_like(a)
    e1[:, 0] = 1.0
    lam_safe = torch.where(small, torch.ones_like(lam_a), lam_a)
    d = torch.where(small.unsqueeze(-1), e1, v / lam_safe.unsqueeze(-1))
    lam_as = region.ray(c, d)
    lam_A = region.box_ray(c, d)
    rho = ray_profile(lam_a, lam_as, lam_A, map)
    s0 = _slope_at_centre(lam_as, lam_A, map)
    out = torch.where(small.unsqueeze(-1), c + s0.unsqueeze(-1) * v, c + rho.unsqueeze(-1) * d)
    return out, lam_a, lam_as, lam_A


class RayMask(Safeguard):
    """Ray mask ``a_s = c + λ_As · ω(λ_a) · d`` (spec A §3.3), ``ω`` linear (RM) or tanh (HRM).

    ``λ_a = ||a - c||``, ``d = (a - c)/λ_a``, ``λ_As`` = distance from ``c`` to the boundary of
    ``A ∩ A_s`` along ``d``, ``λ_A`` = distance to the boundary of the action box ``A``; both in
    closed form (``min_i (e_i - N_i c)/(N_i d)`` over rows with ``N_i d > 0``).  The map sends
    the segment ``[c, c + λ_A d]`` bijectively and monotonically onto ``[c, c + λ_As d]`` (no
    aliasing), its Jacobian is full rank where ``λ_As > 0``, and every output lies in
    ``A ∩ A_s`` (the λ_As factor, P3).  ``λ_As`` is measured on the exact set ``A ∩ A_s`` for
    every centre (the paper-era code optionally measured it on the inner zonotope, which is more
    conservative; not offered).

    Safe centres ``c`` (``centre=``):

    * ``"zonotope"`` (paper default, spec A §3.4): centre of an inner zonotope
      ``<c, D diag(l)>`` with *fixed* unit directions ``D`` (P5; :func:`default_directions`:
      axes, then diagonals; ``n_g = 2m`` by default, 1 for ``m = 1``; or ``directions=``), fitted
      by one batched QP (:meth:`Region.zonotope_centre`; ``info["generator_lengths"]``).
    * ``"chebyshev"`` (our option): centre of the largest inscribed ball, a batched LP with a tiny
      proximal term for uniqueness (:meth:`Region.chebyshev_centre`; ``info["radius"]``).
    * ``"orthogonal"`` (spec A §3.4): action-dependent.  ``p = BP(a)``; a safe ``a`` is returned
      unchanged; else ``u = (p - a)/||p - a||``, ``μ* = `` distance from ``p`` along ``u`` in
      ``A ∩ A_s``, ``c = p + μ*/2 u``, ``λ_As = μ*/2``, ``d = -u``, ``λ_a = ||a - p|| + μ*/2``.
      The map is discontinuous at the safe-set boundary (as in the paper).
    * For a box ``A ∩ A_s`` (a Box, a 1-D interval, or rows acting on one coordinate each once
      redundant rows are dropped) the centres are closed form and equal the QPs' solutions:
      the zonotope centre is the box midpoint (``D`` containing every axis), the Chebyshev
      centre ``clamp(c_A, lo + r, hi - r)``; with the zonotope centre the whole safeguard is one
      fused autograd function (:class:`~safegrad.safeguards._geometry._BoxRayMask`).
    * ``centre=`` tensor in ``forward``: a caller-supplied centre ``(*batch, m)`` (e.g. the RCI
      paired control); elements where it is not in ``A ∩ A_s`` (tol) fall back.

    Raw actions outside the action box are pulled radially onto its boundary first
    (``λ_a := min(λ_a, λ_A)``).  At ``a = c`` the output is ``c`` with a finite Jacobian.

    Args:
        map: ``"linear"`` | ``"tanh"``.
        centre: ``"zonotope"`` | ``"orthogonal"`` | ``"chebyshev"``.
        action_box: see :class:`BoundaryProjection`.
        n_g: number of inner-zonotope directions (default ``2m``, 1 for ``m = 1``).
        directions: explicit ``(m, n_g)`` directions (columns normalised); overrides ``n_g``.
        centre_reg: weight of the proximal term of the centre QPs (default 1e-4).
        warm_start: warm-start the centre QPs from the active sets of the previous call with
            the same batch size and set shape (default True; :class:`CentreWarmStart`,
            docs/safeguards.md "Warm start").  Changes the time only, never the result: a
            hint is used only where it passes the QP's KKT check.
        grad_mode, passthrough_scope, strict, tol: see :class:`~safegrad.safeguards.Safeguard`.

    ``info`` extras: ``centre (*batch, m)``, ``lambda_a``, ``lambda_as``, ``lambda_A``
    (``(*batch,)``), and ``generator_lengths (*batch, n_g)`` or ``radius (*batch,)``.
    """

    def __init__(
        self,
        map: str = "linear",
        centre: str = "zonotope",
        *,
        action_box: Any = None,
        n_g: int | None = None,
        directions: Tensor | None = None,
        centre_reg: float = 1e-4,
        warm_start: bool = True,
        **kw,
    ):
        super().__init__(**kw)
        if map not in RAY_MAPS:
            raise ValueError(f"map must be one of {RAY_MAPS}, got {map!r}")
        if centre not in CENTRES:
            raise ValueError(f"centre must be one of {CENTRES}, got {centre!r}")
        if n_g is not None and (isinstance(n_g, bool) or not isinstance(n_g, int) or n_g < 1):
            raise ValueError(f"n_g must be a positive int or None, got {n_g!r}")
        if directions is not None:
            directions = check_float_tensor(directions, "directions")
            if directions.dim() != 2:
                raise ValueError(
                    f"directions must have shape (m, n_g), got {tuple(directions.shape)}"
                )
            nrm = torch.linalg.vector_norm(directions, dim=0, keepdim=True)
            if bool((nrm == 0).any()):
                raise ValueError("directions must not contain zero columns")
            directions = directions / nrm
        if isinstance(centre_reg, bool) or not isinstance(centre_reg, (int, float)):
            raise TypeError(f"centre_reg must be a float, got {centre_reg!r}")
        if not centre_reg > 0:
            raise ValueError(f"centre_reg must be > 0, got {centre_reg!r}")
        self.map = map
        self.centre = centre
        self.action_box = action_box
        self.n_g = n_g
        self.directions = directions
        self.centre_reg = float(centre_reg)
        self._dir_cache: dict = {}
        if not isinstance(warm_start, bool):
            raise TypeError(f"warm_start must be a bool, got {warm_start!r}")
        self.warm_start = CentreWarmStart() if warm_start else None

    def extra_repr(self) -> str:
        return f"map={self.map!r}, centre={self.centre!r}, " + super().extra_repr()

    def generator_directions(self, m: int, dtype=torch.float64, device=None) -> Tensor:
        """The fixed inner-zonotope directions ``D (m, n_g)`` used for action dimension ``m``."""
        return self._directions(m, dtype, device)[0]

    def _directions(self, m: int, dtype, device) -> tuple[Tensor, bool]:
        """``(D, D contains every axis)``, cached per ``(m, dtype, device)``."""
        key = (m, dtype, device)
        hit = self._dir_cache.get(key)
        if hit is None:
            if self.directions is not None:
                if self.directions.shape[0] != m:
                    raise ValueError(
                        f"directions have {self.directions.shape[0]} rows, the action has {m}"
                    )
                D = self.directions.to(dtype=dtype, device=device)
            else:
                D = default_directions(m, self.n_g, dtype=dtype, device=device)
            hit = self._dir_cache[key] = (D, has_all_axes(D))
        return hit

    def _safeguard(self, action, safe_set, fallback, action_box=None, centre=None):
        box = self.action_box if action_box is None else action_box
        tol = self._tol(action.dtype)
        raw = None
        if centre is None and self.centre != "orthogonal":  # 2-D general rows: no pruning
            raw = prepare_region_raw(action, safe_set, box, tol)
        region, a, batch = prepare_region(action, safe_set, box, tol) if raw is None else raw
        B, m = a.shape
        if B == 0:
            return action.expand(*batch, m), _empty_info(batch, action)
        extra: dict[str, Tensor] = {}
        if centre is None and self.centre == "zonotope":
            D, axes = self._directions(m, a.dtype, a.device)
            if axes and region.box_only:  # closed form, fused (the box midpoint)
                out, side = region.ray_mask_box(a, self.map, tol)
                extra["generator_lengths"] = a.new_zeros(B, D.shape[1])
                for k in ("centre", "lambda_a", "lambda_as", "lambda_A"):
                    extra[k] = side[k]
                return finish(
                    a, out, None, side["raw_unsafe"], region, fallback, batch, tol, extra,
                    fb=side["fb"],
                )  # fmt: skip
        raw_unsafe = region.residual(a.detach()) > tol
        if centre is not None:
            centre = check_float_tensor(centre, "centre")
            check_like(centre, action, "centre")
            c = centre.expand(*batch, m).reshape(B, m)
            ok = region.residual(c.detach()) <= tol
        elif self.centre == "orthogonal":
            out, c, lam_a, lam_as, lam_A, ok = self._orthogonal(a, region, raw_unsafe, tol)
        elif self.centre == "chebyshev":
            c, r, ok = region.chebyshev_centre(self.centre_reg, self.warm_start)
            extra["radius"] = r
        else:
            c, lengths, ok = region.zonotope_centre(D, self.centre_reg, axes, self.warm_start)
            extra["generator_lengths"] = lengths
        if centre is not None or self.centre != "orthogonal":
            N, e = region.rows
            out, lam_a, lam_as, lam_A = ray_map(a, c, N, e, region.low, region.high, self.map)
        extra.update(centre=c, lambda_a=lam_a, lambda_as=lam_as, lambda_A=lam_A)
        extra = {k: v.detach() for k, v in extra.items()}
        return finish(a, out, ok, raw_unsafe, region, fallback, batch, tol, extra)

    def _orthogonal(self, a: Tensor, region: Region, raw_unsafe: Tensor, tol: float):
        """Orthogonal centre (spec A §3.4), guarded divisions (P14: ``p = a``)."""
        thr = guard_threshold(a.dtype)
        p, okp = region.project(a, raw_unsafe, tol)
        v = p - a
        dist = torch.linalg.vector_norm(v, dim=-1)
        has = dist > thr
        e1 = torch.zeros_like(a)
        e1[:, 0] = 1.0
        u = torch.where(has.unsqueeze(-1), v / torch.where(has, dist, 1.0).unsqueeze(-1), e1)
        mu = region.ray(p, u)
        lam_as = 0.5 * mu
        c = p + lam_as.unsqueeze(-1) * u
        d = -u
        lam_a = dist + lam_as
        lam_A = region.box_ray(c, d)
        rho = ray_profile(lam_a, lam_as, lam_A, self.map)
        out_rm = c + rho.unsqueeze(-1) * d
        unsafe = raw_unsafe.unsqueeze(-1)
        out = torch.where(unsafe, torch.where(has.unsqueeze(-1), out_rm, p), a)
        ok = okp | ~raw_unsafe
        return out, c, lam_a, lam_as, lam_A, ok
