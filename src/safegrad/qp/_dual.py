"""Batched dual active-set method (Goldfarb & Idnani 1983) for strictly convex QPs, used to
repair a wrong active-set guess (``solve_qp(..., active_hint=)``) and as a cold solver for small
strictly convex problems (docs/qp.md, "Dual active set").

Problem (rows of ``G`` and ``A`` normalised, ``Q`` symmetric positive definite)::

    min 1/2 x'Qx + p'x   s.t.   Gx <= h,  Ax = b

The iterate is always the minimiser on its working set ``S`` (rows of ``G`` held as equalities,
plus every row of ``A``) with multipliers ``u_S >= 0``: dual feasible, possibly primal
infeasible. One *step*, for a violated row ``q`` (the most violated when none is pending):
the direction of the KKT point as ``q``'s multiplier grows by ``t``, from the active-set KKT
system (the same factorisation as the polish, :mod:`safegrad.qp._kkt`)::

    [Q  C_S'] [dx]   [-g_q]
    [C_S  0 ] [du] = [  0 ]

so ``g_q'x`` decreases at rate ``-g_q'dx = dx'Q dx >= 0``. The full step ``t2 = (g_q'x -
h_q) / (-g_q'dx)`` makes ``q`` tight (``q`` joins ``S``); the partial step ``t1 = min_{j in S,
du_j < 0} u_j / (-du_j)`` keeps ``u >= 0`` (row ``j`` leaves ``S``, ``q`` stays pending). No
finite step (``dx = 0`` and no ``du_j < 0``) certifies infeasibility (left to the IPM). The dual
objective increases at every step with ``t > 0``, so a working set never repeats and the method
terminates: optimal when no row is violated beyond ``ptol``.

All problems move in lock-step (a finished one takes empty steps); the caller bounds the number
of steps and verifies the result with the KKT checks of the polish.
"""

from __future__ import annotations

import torch
from torch import Tensor

from safegrad.qp._kkt import ActiveKKT, build_active_kkt

__all__ = ["dual_active_set"]


def _dense(kkt: ActiveKKT, w: Tensor, m: int) -> Tensor:
    """Gathered inequality multipliers ``w (B, ma, 1)`` of ``kkt`` scattered to ``(B, m)``."""
    B, ma = kkt.idx.shape
    vals = (w * kkt.mask[:, :ma]).squeeze(-1)
    return w.new_zeros(B, m).scatter(1, kkt.idx, vals)


def dual_active_set(
    Q: Tensor,
    p: Tensor,
    G: Tensor,
    h: Tensor,
    A: Tensor,
    b: Tensor,
    ptol: Tensor,
    dtol: Tensor,
    active: Tensor,
    *,
    delta: float,
    max_steps: int,
    start: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Run the dual active-set method from the working set ``active`` (module docstring).

    Shapes: ``Q (B,n,n)`` SPD, ``p (B,n,1)``, ``G (B,m,n)``, ``h (B,m,1)``, ``A (B,k,n)``,
    ``b (B,k,1)``, ``ptol, dtol (B,1)``, ``active (B,m)`` bool; ``m >= 1``.

    Start: the minimiser on ``active``; rows with a negative multiplier are dropped (twice at
    most), and a problem whose working set still has a negative multiplier or a row that is not
    tight (dependent, inconsistent rows) restarts from the equality rows only.  ``start``:
    the minimiser on ``active`` if the caller has it, ``(x (B,n,1), u (B,m) unclamped, y
    (B,k,1), G x - h (B,m))``.

    Returns ``x (B,n,1)``, ``z (B,m,1)`` (``>= 0``), ``y (B,k,1)``, the final working set
    ``(B,m)`` and ``done (B,)`` (no row violated beyond ``ptol`` within ``max_steps`` steps;
    the caller verifies ``done`` problems by the full KKT check).
    """
    B, n = p.shape[0], p.shape[1]
    m, k = G.shape[1], A.shape[1]
    dtype, device = p.dtype, p.device
    S = active

    def minimiser(S: Tensor):
        kkt = build_active_kkt(Q, G, A, S, delta, 0, inverse=False)
        ma = kkt.idx.shape[1]
        dS = torch.cat([h.gather(1, kkt.idx.unsqueeze(-1)), b], 1) * kkt.mask
        w = kkt.solve(torch.cat([-p, dS], 1))
        x, u, y = w[:, :n], _dense(kkt, w[:, n : n + ma], m), w[:, n + ma :]
        r = (G @ x - h).squeeze(-1)
        return x, u, y, r

    x, u, y, r = minimiser(S) if start is None else start
    for attempt in range(3):
        bad_u = (u < -dtol) & S
        loose = ((r.abs() > ptol) & S).any(-1)
        if attempt < 2:
            redo = bad_u.any(-1) & ~loose
            S = S & ~bad_u
        else:  # still not a dual-feasible minimiser: start from the equality rows
            redo = bad_u.any(-1) | loose
            S = S & ~redo.unsqueeze(-1)
            loose = torch.zeros_like(loose)
        redo = redo | loose
        if not bool(redo.any()):
            break
        x2, u2, y2, r2 = minimiser(S)
        r3 = redo.view(B, 1, 1)
        x, y = torch.where(r3, x2, x), torch.where(r3, y2, y)
        u, r = torch.where(redo.unsqueeze(-1), u2, u), torch.where(redo.unsqueeze(-1), r2, r)
    u = u.clamp_min(0.0) * S

    ar = torch.arange(B, device=device)
    pend = torch.full((B,), -1, dtype=torch.long, device=device)
    uq = u.new_zeros(B)  # multiplier of the pending row (not in S yet)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    failed = torch.zeros(B, dtype=torch.bool, device=device)
    eps = torch.finfo(dtype).eps
    for _ in range(max_steps + 1):
        r = (G @ x - h).squeeze(-1)
        rmax, q_new = r.masked_fill(S, -torch.inf).max(-1)
        need = (pend < 0) & ~done & ~failed
        fin = need & (rmax <= ptol.squeeze(-1))
        done = done | fin
        pend = torch.where(need & ~fin, q_new, pend)
        live = ~done & ~failed
        if not bool(live.any()):  # one host sync per step
            break
        q = pend.clamp_min(0)
        gq = G[ar, q].unsqueeze(-1)  # (B, n, 1)
        kkt = build_active_kkt(Q, G, A, S, delta, 0, inverse=False)
        ma = kkt.idx.shape[1]
        w = kkt.solve(torch.cat([-gq, gq.new_zeros(B, ma + k, 1)], 1))
        dx, du, dy = w[:, :n], _dense(kkt, w[:, n : n + ma], m), w[:, n + ma :]
        rate = -(gq * dx).sum((-2, -1))  # = dx'Q dx >= 0
        viol = r[ar, q]
        has_dx = rate > eps**0.5 * (1.0 + viol.abs())
        t2 = torch.where(has_dx, viol / torch.where(has_dx, rate, 1.0), torch.inf)
        dec = S & (du < 0)
        t1, j = torch.where(dec, u / torch.where(dec, -du, 1.0), torch.inf).min(-1)
        full = t2 <= t1
        t = torch.where(full, t2, t1)
        stuck = live & torch.isinf(t)
        failed = failed | stuck
        go = live & ~stuck
        t = torch.where(go, t, 0.0)
        x = torch.addcmul(x, t.view(B, 1, 1), dx)
        y = torch.addcmul(y, t.view(B, 1, 1), dy)
        uq = uq + t
        add, drop = go & full, go & ~full
        oh_q = torch.nn.functional.one_hot(q, m).bool() & add.unsqueeze(-1)
        oh_j = torch.nn.functional.one_hot(j, m).bool() & drop.unsqueeze(-1)
        S = (S | oh_q) & ~oh_j
        u = torch.where(oh_q, uq.unsqueeze(-1), torch.addcmul(u, t.unsqueeze(-1), du)) * S
        pend = torch.where(add, -1, pend)
        uq = torch.where(add, 0.0, uq)
    return x, u.clamp_min(0.0).unsqueeze(-1), y, S, done
