"""Safe action sets as H-polytopes in action space (spec A §2.1, §2.3; spec B Eq. 5).

Every function returns a :class:`safegrad.sets.HPolytope` ``{a : C(x) a <= d(x)}`` batched over
the states ``x: (B, n)``, on the states' device and dtype, differentiable with respect to ``x``
(the safe-set parameters depend on the state; SHAC back-propagates through them, spec A §2.3).

State-constrained sets use the **exact** one-step model at the current state: the shipped
systems are control-affine with additive disturbance and (semi-implicit or explicit) Euler, so
``F(x, a, w) = F(x, 0, c_W) + B(x) a + E (w - c_W)`` holds exactly (spec A §2.3, §11.1;
angle wrapping aside, which cannot occur inside the sets used here).  For a target polytope
``{y : C y <= d}`` the next-state set lies inside it for every ``w in W`` iff

    C B(x) a <= d - C F(x, 0, c_W) - |C E| w_half          (one row per facet)

plus the action-box rows ``-1 <= a <= 1``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from safegrad.sets import HPolytope

__all__ = [
    "one_step_affine",
    "polytope_safe_action_set",
    "box_safe_action_set",
    "action_box_rows",
    "action_set_empty",
    "cbf_safe_action_set",
]


def _disturbance_matrix(system, device, dtype) -> tuple[Tensor, Tensor]:
    """Constant ``E = dF/dw`` ``(n, q)`` and ``w_half`` ``(q,)`` (cached on the system)."""
    cache = system.__dict__.setdefault("_safegrad_invariance_cache", {})
    key = ("E", torch.device(device), dtype)
    if key not in cache:
        n, m = int(system.state_dim), int(system.action_dim)
        _, _, E = system.linearize(
            torch.zeros(n, dtype=torch.float64), torch.zeros(m, dtype=torch.float64)
        )
        cache[key] = (
            E.to(device=device, dtype=dtype),
            system.disturbance_halfwidth.to(device=device, dtype=dtype),
        )
    return cache[key]


def _drift_and_input(system, x: Tensor) -> tuple[Tensor, Tensor]:
    """``f0 = F(x, 0, c_W)`` ``(B, n)`` (unwrapped) and the continuous-time input matrix
    ``g(x)`` ``(B, n, m)`` of a control-affine system."""
    m = int(system.action_dim)
    zeros = x.new_zeros(*x.shape[:-1], m)
    centre = system.disturbance_centre.to(device=x.device, dtype=x.dtype).expand(*x.shape[:-1], -1)
    f0 = system._next_state(x, zeros, centre, False)
    _, g = system.control_affine(x)
    return f0, g


def input_map(system, device, dtype) -> Tensor:
    """Constant ``S (n, n)`` with ``B(x) = S g(x)`` for the system's integrator: ``dt I``
    (explicit Euler); semi-implicit Euler puts ``dt g_v`` on each velocity row and
    ``dt^2 g_v`` on its position row (the ``B`` of :func:`one_step_affine`)."""
    n, dt = int(system.state_dim), float(system.dt)
    if system.integrator != "semi_implicit_euler":
        return dt * torch.eye(n, dtype=dtype, device=device)
    S = torch.zeros(n, n, dtype=dtype, device=device)
    for p, v in zip(system.position_indices, system.velocity_indices, strict=True):
        S[v, v] = dt
        S[p, v] = dt * dt
    return S


def one_step_affine(system, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Exact affine-in-``(a, w)`` one-step map at states ``x (B, n)`` (spec A §2.3, HEAD model).

    Returns:
        ``f0 (B, n)`` = ``F(x, 0, c_W)`` (unwrapped), ``B (B, n, m)``, ``E (n, q)`` and
        ``w_half (q,)``, such that ``F(x, a, w) = f0 + B a + E (w - c_W)``.
    """
    n, m = int(system.state_dim), int(system.action_dim)
    f0, g = _drift_and_input(system, x)  # g: (B, n, m), continuous-time input matrix
    dt = float(system.dt)
    if system.integrator == "semi_implicit_euler":
        pos, vel = list(system.position_indices), list(system.velocity_indices)
        Bm = x.new_zeros(*x.shape[:-1], n, m)
        gv = g[..., vel, :]
        Bm = Bm.index_copy(-2, torch.tensor(vel, device=x.device), dt * gv)
        Bm = Bm.index_copy(-2, torch.tensor(pos, device=x.device), dt * dt * gv)
    else:
        Bm = dt * g
    E, w_half = _disturbance_matrix(system, x.device, x.dtype)
    return f0, Bm, E, w_half


def action_box_rows(m: int, like: Tensor, batch: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Rows ``[I; -I] a <= [1; 1]`` of the action box ``[-1, 1]^m``, ``(*batch, 2m, m)``."""
    eye = torch.eye(m, dtype=like.dtype, device=like.device)
    C = torch.cat([eye, -eye], 0).expand(*batch, 2 * m, m)
    d = like.new_ones(*batch, 2 * m)
    return C, d


def polytope_safe_action_set(
    system,
    x: Tensor,
    C: Tensor,
    d: Tensor,
    *,
    include_action_box: bool = True,
    cache: dict | None = None,
) -> HPolytope:
    """``{a in [-1,1]^m : F(x, a, W) ⊆ {y : C y <= d}}`` (module docstring).

    Args:
        system: control-affine :class:`~safegrad.systems.ControlSystem`.
        x: ``(B, n)`` states.  C: ``(k, n)`` or ``(B, k, n)``; d: ``(k,)`` or ``(B, k)`` target.
        cache: optional dict owned by the caller for a **constant** ``(k, n)`` target ``C`` (an
            RCI set's facets): the state-independent products ``C S`` (:func:`input_map`),
            ``|C E| w_half`` and the box rows are computed once and kept there, so each call
            is ``C_a = (C S) g(x)``, ``d_a = d - C f0(x) - |C E| w_half`` (the same set, fewer
            operations on the SHAC hot path).

    Returns:
        HPolytope with ``C_a (B, k [+ 2m], m)``, ``d_a (B, k [+ 2m])``.
    """
    constant = not (C.requires_grad or d.requires_grad) and C.dim() == 2 and d.dim() == 1
    if cache is not None and constant and x.dim() == 2:
        key = ("polytope_safe_action_set", x.device, x.dtype, include_action_box)
        hit = cache.get(key)
        if hit is None or hit[0] is not system or hit[1] is not C or hit[2] is not d:
            E, w_half = _disturbance_matrix(system, x.device, x.dtype)
            CS = C @ input_map(system, x.device, x.dtype)
            hW = (C @ E).abs() @ w_half
            box = action_box_rows(int(system.action_dim), x, (1,)) if include_action_box else None
            hit = cache[key] = (system, C, d, CS, C.mT.contiguous(), d - hW, box)
        CS, CT, d_w, box = hit[3:]
        f0, g = _drift_and_input(system, x)
        Ca = CS @ g  # (B, k, m)
        da = torch.addmm(d_w, f0, CT, beta=1.0, alpha=-1.0)  # d - C f0 - |C E| w_half
        if box is not None:
            B = x.shape[0]
            Ca = torch.cat([Ca, box[0].expand(B, -1, -1)], -2)
            da = torch.cat([da, box[1].expand(B, -1)], -1)
        return HPolytope(Ca, da, validate=False)
    f0, Bm, E, w_half = one_step_affine(system, x)
    hW = (C @ E).abs() @ w_half  # (k,) or (B, k)
    Ca = C @ Bm  # (B, k, m)
    da = d - (f0.unsqueeze(-2) * C).sum(-1) - hW
    if include_action_box:
        Cb, db = action_box_rows(int(system.action_dim), x, x.shape[:-1])
        Ca = torch.cat([Ca, Cb], -2)
        da = torch.cat([da, db], -1)
    return HPolytope(Ca, da, validate=False)


def box_safe_action_set(
    system,
    x: Tensor,
    low: Tensor,
    high: Tensor,
    *,
    dims: list[int] | None = None,
    include_action_box: bool = True,
) -> HPolytope:
    """``{a in [-1,1]^m : F(x, a, W) ⊆ [low, high]}`` for a (state-dependent) box.

    Args:
        low, high: ``(n,)`` or ``(B, n)`` bounds of the safe state box.
        dims: coordinates to constrain (default all; e.g. leave out wrapped angles).
    """
    f0, Bm, E, w_half = one_step_affine(system, x)
    n = int(system.state_dim)
    dims = list(range(n)) if dims is None else list(dims)
    idx = torch.tensor(dims, device=x.device)
    hW = (E.abs() @ w_half).index_select(-1, idx)  # (k,)
    f = f0.index_select(-1, idx)
    Bsel = Bm.index_select(-2, idx)
    lo = torch.as_tensor(low, dtype=x.dtype, device=x.device).expand(*x.shape[:-1], n)
    hi = torch.as_tensor(high, dtype=x.dtype, device=x.device).expand(*x.shape[:-1], n)
    lo, hi = lo.index_select(-1, idx), hi.index_select(-1, idx)
    Ca = torch.cat([Bsel, -Bsel], -2)
    da = torch.cat([hi - f - hW, f - lo - hW], -1)
    if include_action_box:
        Cb, db = action_box_rows(int(system.action_dim), x, x.shape[:-1])
        Ca = torch.cat([Ca, Cb], -2)
        da = torch.cat([da, db], -1)
    return HPolytope(Ca, da, validate=False)


def cbf_safe_action_set(
    lf_h: Tensor, lg_h: Tensor, h: Tensor, alpha: float, *, include_action_box: bool = False
) -> HPolytope:
    """CBF rows ``L_f h_i + L_g h_i a >= -alpha h_i`` (spec B Eq. 5, linear class-K), i.e.
    ``-L_g h_i a <= L_f h_i + alpha h_i``; ``lf_h (B, I)``, ``lg_h (B, I, m)``, ``h (B, I)``."""
    Ca = -lg_h
    da = lf_h + alpha * h
    if include_action_box:
        Cb, db = action_box_rows(lg_h.shape[-1], h, h.shape[:-1])
        Ca = torch.cat([Ca, Cb], -2)
        da = torch.cat([da, db], -1)
    return HPolytope(Ca, da, validate=False)


def action_set_empty(P: HPolytope, tol: float | None = None) -> Tensor:
    """``(*B,)`` bool: whether the action polytope is empty (up to ``tol``).

    Closed form for ``m = 1`` (interval ``max lower <= min upper``; zero rows need ``d >= 0``),
    one batched LP (:meth:`HPolytope.is_empty`, :mod:`safegrad.qp`) otherwise.  ``tol`` defaults
    to 1e-9 (float64) / 1e-5 (float32) on normalised rows.
    """
    if tol is None:
        tol = 1e-9 if P.dtype == torch.float64 else 1e-5
    with torch.no_grad():
        C, d = P.C, P.d
        nrm = C.norm(dim=-1)
        if P.dim == 1:
            c = C[..., 0]
            pos, neg = c > 0, c < 0
            safe = torch.where(c != 0, c, torch.ones_like(c))
            ratio = d / safe
            upper = torch.where(pos, ratio, math.inf).amin(-1)
            lower = torch.where(neg, ratio, -math.inf).amax(-1)
            zero_bad = ((c == 0) & (d < -tol)).any(-1)
            return (lower > upper + tol) | zero_bad
        Pn = HPolytope(
            C / nrm.clamp_min(1e-300).unsqueeze(-1), d / nrm.clamp_min(1e-300), validate=False
        )
        return Pn.is_empty(tol)
