"""``solve_qp`` / ``solve_lp``: batched, differentiable dense QP/LP solver (docs/qp.md).

Forward: row normalisation -> batched Mehrotra interior point (:mod:`safegrad.qp._ipm`) ->
active-set identification (``z_i > s_i``) -> polish (equality-constrained KKT on the active set,
:mod:`safegrad.qp._kkt`) -> per-problem status.
Backward: implicit differentiation of the active-set KKT system at the solution, with the same
factorisation as the polish step (OptNet-style formulas, see :class:`_QPFunction`).
Warm start (``active_hint``): the KKT system on the hinted active set, checked; failures repaired
by the dual active-set method (:mod:`safegrad.qp._dual`) and solved again on the final active
sets; the rest to the cold path above (docs/qp.md, "Warm start").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from safegrad.qp._dual import dual_active_set
from safegrad.qp._enum import enumerate_active_set, subset_count
from safegrad.qp._ipm import interior_point
from safegrad.qp._kkt import ActiveKKT, build_active_kkt
from safegrad.qp._types import QPInfeasibleError, QPInfo, QPStatus

__all__ = ["solve_qp", "solve_lp"]


@dataclass(frozen=True)
class _Options:
    tol: float
    tol_stage1: float
    max_iter: int
    check_every: int
    cert_every: int
    reg: float
    inf_tol: float
    delta: float
    refine: int
    method: str
    dual_steps: int


METHODS = ("auto", "ipm", "enum")
# "auto": enumeration when its estimated cost is below the IPM's. Cost model in ms, fitted to
# forward+backward timings on CPU (1 thread, float64; docs/qp.md "Enumeration"): enumeration
# ~ 1.2 + 3.5e-5 * B * N * (t + 1)^2 with N candidate subsets of width t = k + min(n - k, m);
# IPM ~ 3 + B * (5 + 0.5 n m) * 1e-3. At most ENUM_MAX_SUBSETS subsets (memory bound).
ENUM_MAX_SUBSETS = 4096


def _use_enum(method: str, B: int, n: int, m: int, k: int) -> bool:
    if method == "ipm":
        return False
    N = subset_count(n, m, k)
    if method == "enum":
        if N > 100_000:
            raise ValueError(
                f"method='enum' would enumerate {N} active sets (n={n}, m={m}, k={k}); "
                "use method='ipm' or 'auto' for problems this large"
            )
        return True
    if N > ENUM_MAX_SUBSETS:
        return False
    t = k + min(max(n - k, 0), m)
    return 1.2 + 3.5e-5 * B * N * (t + 1) ** 2 <= 3.0 + B * (5.0 + 0.5 * n * m) * 1e-3


def _options(dtype: torch.dtype, device: torch.device, tol, max_iter, method) -> _Options:
    f64 = dtype == torch.float64
    if tol is None:
        tol = 1e-9 if f64 else 1e-5
    if max_iter is None:
        max_iter = 50
    if not isinstance(tol, (int, float)) or not tol > 0:
        raise ValueError(f"tol must be a positive float, got {tol!r}")
    if not isinstance(max_iter, int) or isinstance(max_iter, bool) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return _Options(
        tol=float(tol),
        tol_stage1=1e-6 if f64 else 1e-4,
        max_iter=max_iter,
        check_every=1 if device.type == "cpu" else 5,
        cert_every=5,
        reg=1e-11 if f64 else 1e-7,
        inf_tol=1e-7 if f64 else 1e-4,
        delta=1e-10 if f64 else 1e-6,
        refine=2 if f64 else 1,
        method=method,
        dual_steps=30,
    )


def _row_norms(M: Tensor) -> Tensor:
    """``(B, r, n) -> (B, r, 1)`` Euclidean row norms, 1 for (near-)zero rows."""
    nu = torch.linalg.vector_norm(M, dim=-1, keepdim=True)
    return torch.where(nu > torch.finfo(M.dtype).tiny ** 0.5, nu, torch.ones_like(nu))


class _QPFunction(torch.autograd.Function):
    """Batched QP with implicit-differentiation backward.

    Inputs are batch-flattened: ``Q (B,n,n)``, ``p (B,n)``, ``G (B,m,n)``, ``h (B,m)``,
    ``A (B,k,n)``, ``b (B,k)`` (``m`` or ``k`` may be 0), ``hint (B,m)`` bool or ``None``
    (``active_hint``). Outputs ``x (B,n)`` (differentiable), ``z (B,m)``, ``y (B,k)``,
    ``status (B,)``, ``iterations (B,)``, ``active (B,m)``, ``warm (B,)`` (not differentiable).

    Backward (OptNet, Amos & Kolter 2017, eq. 7-8, restricted to the active set ``I``; ``C = [G_I;
    A]``, ``lam = [z_I; y]``): solve ``K0 [u; v] = [dL/dx; 0]`` with the active-set KKT matrix
    ``K0`` (symmetric), then ``dL/dp = -u``, ``dL/dQ = -(u x' + x u') / 2``,
    ``dL/dC = -(lam u' + v x')``, ``dL/d[h_I; b] = v``; inactive rows get zero gradient.
    """

    @staticmethod
    def forward(Q, p, G, h, A, b, hint, opts: _Options):
        B, n = p.shape
        m, k = G.shape[1], A.shape[1]
        dtype, device = p.dtype, p.device
        Qs = 0.5 * (Q + Q.mT)
        nuG = _row_norms(G)
        Gs, hs = G / nuG, h.unsqueeze(-1) / nuG
        if k > 0:
            nuA = _row_norms(A)
            As, bs = A / nuA, b.unsqueeze(-1) / nuA
            scale_p = 1.0 + torch.maximum(_amax_abs(hs), _amax_abs(bs))
        else:  # (no equalities: skip their normalisation)
            nuA, As, bs = A.new_ones(B, 0, 1), A, b.unsqueeze(-1)
            scale_p = 1.0 + _amax_abs(hs)
        pc = p.unsqueeze(-1)
        ok_codes = (int(QPStatus.SOLVED), int(QPStatus.MAX_ITER))
        scale_d = 1.0 + _amax_abs(pc)
        ptol, dtol = opts.tol * scale_p, opts.tol * scale_d

        def polish(
            active,
            status,
            z,
            y,
            keep_lam=False,
            Qs=Qs,
            Gs=Gs,
            As=As,
            pc=pc,
            hs=hs,
            bs=bs,
            ptol=ptol,
            dtol=dtol,
        ):
            """Active-set KKT solve; accepted where it satisfies every KKT condition to tol.

            Solved for the multiplier *correction* from the IPM's ``(z, y)``: where the active
            rows are dependent the multipliers are not unique, and the min-norm correction keeps
            them next to the IPM's nonnegative ones instead of the min-norm multipliers, which can
            have either sign (e.g. a zero-width slab ``g'x <= c, -g'x <= -c``). With
            ``keep_lam`` (exact multipliers from the enumeration) the correction is dropped."""
            B = pc.shape[0]
            kkt = build_active_kkt(Qs, Gs, As, active, opts.delta, opts.refine)
            ma = kkt.idx.shape[1]
            lam0 = torch.cat([_gather(z, kkt.idx) * kkt.mask[:, :ma], y], 1)
            rhs = torch.cat(
                [
                    torch.baddbmm(-pc, kkt.C.mT, lam0, alpha=-1.0),
                    kkt.mask * torch.cat([_gather(hs, kkt.idx), bs], 1),
                ],
                1,
            )
            w = kkt.solve(rhs)
            xp, lam = w[:, :n], (lam0 if keep_lam else w[:, n:] + lam0)
            zp = torch.zeros(B, m, 1, dtype=dtype, device=device)
            zp = zp.scatter(1, kkt.idx.unsqueeze(-1), lam[:, :ma] * kkt.mask[:, :ma])
            yp = lam[:, ma:]
            good = torch.ones(B, 1, dtype=torch.bool, device=device)
            rdual = torch.baddbmm(pc, Qs, xp)
            if m > 0:
                good &= (Gs @ xp - hs).amax(-2) <= ptol
                good &= zp.amin(-2) >= -dtol
                rdual = torch.baddbmm(rdual, Gs.mT, zp)
            if k > 0:
                good &= _amax_abs(As @ xp - bs) <= ptol
                rdual = torch.baddbmm(rdual, As.mT, yp)
            good &= _amax_abs(rdual) <= dtol
            good = good.squeeze(-1) & ((status == ok_codes[0]) | (status == ok_codes[1]))
            return kkt, xp, zp.clamp_min(0.0), yp, good

        def ipm_path(Qs, pc, Gs, hs, As, bs, ptol, dtol):
            """Two-stage IPM + polish (docs/qp.md, "Algorithm"); returns x, z, y (normalised
            rows), status, iterations, the active-set KKT system and whether the polish held."""
            data = dict(Qs=Qs, Gs=Gs, As=As, pc=pc, hs=hs, bs=bs, ptol=ptol, dtol=dtol)
            ipm = dict(
                max_iter=opts.max_iter,
                check_every=opts.check_every,
                cert_every=opts.cert_every,
                reg=opts.reg,
                inf_tol=opts.inf_tol,
            )
            # stage 1: IPM to a loose tolerance (enough to identify the active set), polish
            st = interior_point(Qs, pc, Gs, hs, As, bs, tol=max(opts.tol, opts.tol_stage1), **ipm)
            kkt, xp, zp, yp, good = polish((st.z > st.s).squeeze(-1), st.status, st.z, st.y, **data)
            retry = ~good & (st.status == int(QPStatus.SOLVED))
            if opts.tol < opts.tol_stage1 and bool(retry.any()):
                # stage 2: resume only the problems whose polish failed, to the full tolerance
                st.done = st.done & ~retry.unsqueeze(-1)
                st.status = torch.where(retry, int(QPStatus.MAX_ITER), st.status)
                st = interior_point(Qs, pc, Gs, hs, As, bs, tol=opts.tol, state=st, **ipm)
                kkt, xp, zp, yp, good = polish(
                    (st.z > st.s).squeeze(-1), st.status, st.z, st.y, **data
                )
            g3 = good.view(-1, 1, 1)
            x = torch.where(g3, xp, st.x)
            z = torch.where(g3, zp, st.z)
            y = torch.where(g3, yp, st.y)
            status = torch.where(good, int(QPStatus.SOLVED), st.status)
            return x, z, y, status, st.iterations.squeeze(-1), kkt

        def cold_path(Qs, pc, Gs, hs, As, bs, ptol, dtol):
            """Enumeration (where ``method`` selects it; failures to the IPM) or the IPM path.
            Returns x, z, y, status, iterations, the active set ``(B, m)`` and its factored KKT
            system (``None``: not built yet, the backward builds it from the active set)."""
            data = dict(Qs=Qs, Gs=Gs, As=As, pc=pc, hs=hs, bs=bs, ptol=ptol, dtol=dtol)
            B = pc.shape[0]
            if not _use_enum(opts.method, B, n, m, k):
                x, z, y, status, iters, kkt = ipm_path(Qs, pc, Gs, hs, As, bs, ptol, dtol)
                return x, z, y, status, iters, _kkt_active(kkt, m), kkt
            # the enumerated candidate is a KKT point (primal and dual feasibility checked,
            # stationarity and complementarity by construction). Where x_u - Q^{-1} C' lambda
            # cancels (Q ill-conditioned, e.g. 1e-6 I) x is recomputed from the active-set KKT
            # system and re-checked (polish); its multipliers are kept (the min-norm correction
            # would spoil exact multipliers on dependent rows).
            found, active, xe, ze, ye, clean = enumerate_active_set(
                Qs, pc, Gs, hs, As, bs, ptol, dtol
            )
            if bool((clean | ~found).all()):  # one host sync (free on CPU)
                # fast path: the candidate is a KKT point to the tolerances and free of
                # cancellation; the active-set KKT system is built lazily in the backward
                x, z, y, good, kkt = xe, ze.clamp_min(0.0), ye, found, None
            else:
                status = torch.where(found, int(QPStatus.SOLVED), int(QPStatus.MAX_ITER))
                kkt, x, z, y, good = polish(active, status, ze, ye, keep_lam=True, **data)
                good = good & found
            status = torch.where(good, int(QPStatus.SOLVED), int(QPStatus.MAX_ITER))
            iters = torch.zeros(B, dtype=torch.long, device=device)
            bad = (~good).nonzero().squeeze(-1)
            if bad.numel() > 0:  # one host sync; the rest goes to the IPM
                sel = [t.index_select(0, bad) for t in (Qs, pc, Gs, hs, As, bs, ptol, dtol)]
                xb, zb, yb, sb, ib, kb = ipm_path(*sel)
                x, z, y = (
                    x.index_copy(0, bad, xb),
                    z.index_copy(0, bad, zb),
                    y.index_copy(0, bad, yb),
                )
                status, iters = status.index_copy(0, bad, sb), iters.index_copy(0, bad, ib)
                active = active.index_copy(0, bad, _kkt_active(kb, m))
                kkt = None
            return x, z, y, status, iters, active, kkt

        if m > 0 and B > 0 and hint is not None:
            # warm start (docs/qp.md, "Warm start"): the KKT system on the hinted active set,
            # accepted per problem where it is a KKT point
            kkt, x, z, y, good, (zr, r) = _hinted_solve(
                Qs, pc, Gs, hs, As, bs, ptol, dtol, hint, opts, raw=True
            )
            bad = (~good).nonzero().squeeze(-1)
            if bad.numel() == 0:  # one host sync; every hint held: short output path
                saved = (Qs, Gs, As, nuG, nuA, x, z, y, kkt, None, None)
                iters = torch.zeros(B, dtype=torch.long, device=device)
                status = iters  # all SOLVED (= 0)
                z_out, y_out = (z / nuG).squeeze(-1), (y / nuA).squeeze(-1)
                return x.squeeze(-1), z_out, y_out, status, iters, hint, good, saved
            # the others: the dual active-set method from their hint (strictly convex problems),
            # then the same KKT solve on the final active sets of the whole batch, so that the
            # result depends on the problem and its active set only (bitwise the same as a
            # later call hinted with that active set); what still fails takes the cold path
            sel = [t.index_select(0, bad) for t in (Qs, pc, Gs, hs, As, bs, ptol, dtol)]
            start = tuple(t.index_select(0, bad) for t in (x, zr, y, r))
            act_b = _dual_repair(*sel, hint.index_select(0, bad), opts, start)
            active = hint.index_copy(0, bad, act_b)
            kkt, x, z, y, good = _hinted_solve(Qs, pc, Gs, hs, As, bs, ptol, dtol, active, opts)
            bad = (~good).nonzero().squeeze(-1)
            if bad.numel() == 0:  # one host sync; all repaired: short output path
                saved = (Qs, Gs, As, nuG, nuA, x, z, y, kkt, None, None)
                iters = torch.zeros(B, dtype=torch.long, device=device)
                z_out, y_out = (z / nuG).squeeze(-1), (y / nuA).squeeze(-1)
                return x.squeeze(-1), z_out, y_out, iters, iters, active, good, saved
            warm = good
            status = torch.where(good, int(QPStatus.SOLVED), int(QPStatus.MAX_ITER))
            iters = torch.zeros(B, dtype=torch.long, device=device)
            if bad.numel() > 0:  # the rest goes to the cold path
                kkt = None
                sel = [t.index_select(0, bad) for t in (Qs, pc, Gs, hs, As, bs, ptol, dtol)]
                xb, zb, yb, sb, ib, ab, _ = cold_path(*sel)
                x, z, y = (
                    x.index_copy(0, bad, xb),
                    z.index_copy(0, bad, zb),
                    y.index_copy(0, bad, yb),
                )
                status, iters = status.index_copy(0, bad, sb), iters.index_copy(0, bad, ib)
                active = active.index_copy(0, bad, ab)
        elif m > 0 and B > 0:
            x, z, y, status, iters, active, kkt = cold_path(Qs, pc, Gs, hs, As, bs, ptol, dtol)
            warm = torch.zeros(B, dtype=torch.bool, device=device)
        else:
            status = torch.full((B,), int(QPStatus.MAX_ITER), dtype=torch.long, device=device)
            iters = torch.zeros(B, dtype=torch.long, device=device)
            active = torch.zeros(B, m, dtype=torch.bool, device=device)
            warm = torch.zeros(B, dtype=torch.bool, device=device)
            kkt, x, z, y, good = polish(
                active,
                status,
                torch.zeros(B, m, 1, dtype=dtype, device=device),
                torch.zeros(B, k, 1, dtype=dtype, device=device),
            )
            # no IPM ran: failing the KKT checks means infeasible equalities or unbounded
            eq_bad = _amax_abs(As @ x - bs).squeeze(-1) > ptol.squeeze(-1)
            status = torch.where(
                good,
                int(QPStatus.SOLVED),
                torch.where(eq_bad, int(QPStatus.PRIMAL_INFEASIBLE), int(QPStatus.DUAL_INFEASIBLE)),
            )

        # ---- outputs in the original row scaling; documented values for failed problems
        ok = (status == ok_codes[0]) | (status == ok_codes[1])
        ok3 = ok.view(B, 1, 1)
        pinf3 = (status == int(QPStatus.PRIMAL_INFEASIBLE)).view(B, 1, 1)
        x = torch.where(ok3, torch.nan_to_num(x), 0.0)
        z_out, y_out = z / nuG, y / nuA
        if m + k > 0:
            cert_norm = torch.cat([z_out, y_out], 1).abs().amax(-2, keepdim=True)
            cert_norm = cert_norm.clamp_min(torch.finfo(dtype).tiny)
            z_out = torch.where(ok3, z_out, torch.where(pinf3, z_out / cert_norm, 0.0))
            y_out = torch.where(ok3, y_out, torch.where(pinf3, y_out / cert_norm, 0.0))
        z_out, y_out = torch.nan_to_num(z_out), torch.nan_to_num(y_out)
        active = active & ok.unsqueeze(-1)
        lazy = (active, opts.delta, opts.refine) if kkt is None else None
        saved = (Qs, Gs, As, nuG, nuA, x, z, y, kkt, lazy, ok3)
        return (
            x.squeeze(-1),
            z_out.squeeze(-1),
            y_out.squeeze(-1),
            status,
            iters,
            active,
            warm,
            saved,
        )

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, z, y, status, iters, active, warm, saved = output
        ctx.saved = saved
        ctx.mark_non_differentiable(z, y, status, iters, active, warm)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gx, _gz, _gy, _gs, _gi, _ga, _gw, _gsaved):
        Qs, Gs, As, nuG, nuA, x, z, y, kkt, lazy, ok3 = ctx.saved
        if gx is None:
            return (None,) * 8
        if kkt is None:  # enumeration fast path: factor the active-set KKT system only now
            kkt = build_active_kkt(Qs, Gs, As, *lazy)
        kkt: ActiveKKT
        B, n = x.shape[0], x.shape[1]
        m, k = Gs.shape[1], As.shape[1]
        ma = kkt.idx.shape[1]
        lam_a = torch.cat([_gather(z, kkt.idx) * kkt.mask[:, :ma], y], 1)
        g = gx.unsqueeze(-1)
        w = kkt.solve(torch.cat([g, torch.zeros_like(lam_a)], 1))
        u, v = w[:, :n], w[:, n:]
        if ok3 is not None:  # (None: every problem solved)
            u, v = u * ok3, v * ok3
        need = ctx.needs_input_grad
        dQ = dp = dG = dh = dA = db = None
        if need[0]:
            ux = u @ x.mT
            dQ = -0.5 * (ux + ux.mT)
        if need[1]:
            dp = -u.squeeze(-1)
        if need[2] or need[4]:
            dC = -(lam_a @ u.mT + v @ x.mT)
        if need[2]:
            idx = kkt.idx.unsqueeze(-1)
            dG = torch.zeros_like(Gs).scatter(1, idx.expand(B, ma, n), dC[:, :ma])
            dG = dG / nuG
        if need[3]:
            dh = torch.zeros(B, m, 1, dtype=x.dtype, device=x.device)
            dh = dh.scatter(1, kkt.idx.unsqueeze(-1), v[:, :ma] * kkt.mask[:, :ma])
            dh = (dh / nuG).squeeze(-1)
        if need[4]:
            dA = dC[:, ma:] / nuA
        if need[5]:
            db = (v[:, ma:] / nuA).squeeze(-1)
        del k
        return dQ, dp, dG, dh, dA, db, None, None


def _hinted_solve(
    Qs, pc, Gs, hs, As, bs, ptol, dtol, hint: Tensor, opts: _Options, raw: bool = False
):
    """The KKT system on the hinted active set (docs/qp.md, "Warm start"): the solution of
    ``min 1/2 x'Qx + p'x  s.t.  G_S x = h_S, Ax = b`` and its multipliers, accepted per problem
    where it is a KKT point of the whole problem: every row feasible (``<= ptol``), every hinted
    row tight (``|G_i x - h_i| <= ptol``: where hinted rows are inconsistent the regularised
    solve is only a least-squares point), multipliers ``>= -dtol`` and stationarity
    (``<= dtol``). Returns ``(kkt, x, z (clamped >= 0), y, good)``, with ``raw`` also
    ``(z unclamped (B, m), G x - h (B, m))``."""
    B, n = pc.shape[0], pc.shape[1]
    m = Gs.shape[1]
    kkt = build_active_kkt(Qs, Gs, As, hint, opts.delta, opts.refine)
    ma = kkt.idx.shape[1]
    idx3 = kkt.idx.unsqueeze(-1)
    w = kkt.solve(torch.cat([-pc, kkt.mask * torch.cat([hs.gather(1, idx3), bs], 1)], 1))
    x, lam = w[:, :n], w[:, n:]
    r = torch.baddbmm(-hs, Gs, x)
    good = r.amax(-2) <= ptol
    good &= ((r.gather(1, idx3) * kkt.mask[:, :ma]).abs().amax(-2) <= ptol) if ma > 0 else True
    good &= lam[:, :ma].amin(-2) >= -dtol if ma > 0 else True
    rd = torch.baddbmm(torch.baddbmm(pc, Qs, x), kkt.C.mT, lam)
    good = (good & (rd.abs().amax(-2) <= dtol)).squeeze(-1)
    z = lam.new_zeros(B, m, 1).scatter(1, idx3, lam[:, :ma] * kkt.mask[:, :ma])
    if raw:  # (the dual active-set repair starts from this point)
        return kkt, x, z.clamp_min(0.0), lam[:, ma:], good, (z.squeeze(-1), r.squeeze(-1))
    return kkt, x, z.clamp_min(0.0), lam[:, ma:], good


def _dual_repair(
    Qs, pc, Gs, hs, As, bs, ptol, dtol, hint: Tensor, opts: _Options, start=None
) -> Tensor:
    """Problems whose hint failed: the working set ``(B, m)`` the dual active-set method
    reaches from the hint in ``opts.dual_steps`` steps (strictly convex problems only; the hint
    itself elsewhere; ``start``: the hinted solve's point, see :func:`dual_active_set`). The
    caller checks it (KKT)."""
    _, info = torch.linalg.cholesky_ex(Qs)
    pd = info == 0
    if opts.dual_steps == 0 or not bool(pd.any()):
        return hint
    _, _, _, act, _ = dual_active_set(
        Qs, pc, Gs, hs, As, bs, ptol, dtol, hint & pd.unsqueeze(-1),
        delta=opts.delta, max_steps=opts.dual_steps, start=start,
    )  # fmt: skip
    return torch.where(pd.unsqueeze(-1), act, hint)


def _kkt_active(kkt: ActiveKKT, m: int) -> Tensor:
    """``(B, m)`` bool: the inequality rows in an active-set KKT system."""
    B = kkt.idx.shape[0]
    act = torch.zeros(B, m, dtype=torch.bool, device=kkt.idx.device)
    return act.scatter(1, kkt.idx, kkt.mask[:, : kkt.idx.shape[1], 0] > 0)


def _gather(vec: Tensor, idx: Tensor) -> Tensor:
    """``(B, m, 1)`` gathered at ``idx (B, r)`` -> ``(B, r, 1)``."""
    return vec.gather(1, idx.unsqueeze(-1))


def _amax_abs(vec: Tensor) -> Tensor:
    """``(B, r, 1) -> (B, 1)`` infinity norm (0 for ``r = 0``)."""
    if vec.shape[-2] == 0:
        return vec.new_zeros(vec.shape[0], 1)
    return vec.abs().amax(-2)


def _check_tensor(name: str, t, core_ndim: int) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got dtype {t.dtype}")
    if t.ndim < core_ndim:
        raise ValueError(
            f"{name} must have at least {core_ndim} dimension(s), got shape {tuple(t.shape)}"
        )


def _prepare(Q, p, G, h, A, b):
    """Validate, broadcast and flatten the batch. Returns tensors with one batch dim."""
    _check_tensor("p", p, 1)
    n = p.shape[-1]
    dtype, device = p.dtype, p.device
    if Q is None:
        Q = torch.zeros(n, n, dtype=dtype, device=device)
    if (G is None) != (h is None):
        raise ValueError("G and h must be given together (both None for no inequalities)")
    if (A is None) != (b is None):
        raise ValueError("A and b must be given together (both None for no equalities)")
    if G is None:
        G, h = p.new_zeros(0, n), p.new_zeros(0)
    if A is None:
        A, b = p.new_zeros(0, n), p.new_zeros(0)
    items = {"Q": (Q, 2), "p": (p, 1), "G": (G, 2), "h": (h, 1), "A": (A, 2), "b": (b, 1)}
    for name, (t, nd) in items.items():
        _check_tensor(name, t, nd)
        if t.dtype != dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but p has dtype {dtype}; use one dtype")
        if t.device != device:
            raise ValueError(f"{name} is on {t.device} but p is on {device}; use one device")
    m, k = G.shape[-2], A.shape[-2]
    expected = {"Q": (n, n), "G": (m, n), "h": (m,), "A": (k, n), "b": (k,)}
    for name, core in expected.items():
        t, nd = items[name]
        if tuple(t.shape[-nd:]) != core:
            raise ValueError(
                f"{name} has shape {tuple(t.shape)}, expected (*batch, {', '.join(map(str, core))})"
                f" for n={n} variables, m={m} inequalities, k={k} equalities"
            )
    try:
        batch = torch.broadcast_shapes(*(t.shape[: t.ndim - nd] for t, nd in items.values()))
    except RuntimeError as e:
        shapes = {name: tuple(t.shape) for name, (t, _) in items.items()}
        raise ValueError(f"batch dimensions do not broadcast: {shapes}") from e
    B = 1
    for d in batch:
        B *= d
    out = []
    flat = len(batch) == 1
    for t, nd in items.values():
        if flat and t.ndim == nd + 1 and t.shape[0] == B:
            out.append(t)  # already (B, *core): no view ops
            continue
        core = t.shape[t.ndim - nd :]
        out.append(t.expand(*batch, *core).reshape(B, *core))
    return tuple(out), tuple(batch), n


def _prepare_hint(hint, batch: tuple[int, ...], m: int, device) -> Tensor | None:
    """Validate ``active_hint`` and flatten it to ``(B, m)`` bool (``None`` passes through)."""
    if hint is None:
        return None
    if not isinstance(hint, Tensor) or hint.dtype != torch.bool:
        raise TypeError(
            "active_hint must be a bool torch.Tensor of shape (*batch, m), got "
            f"{type(hint).__name__}{'' if not isinstance(hint, Tensor) else ' ' + str(hint.dtype)}"
        )
    if hint.device != device:
        raise ValueError(f"active_hint is on {hint.device} but p is on {device}; use one device")
    if hint.ndim < 1 or hint.shape[-1] != m:
        raise ValueError(
            f"active_hint has shape {tuple(hint.shape)}, expected (*batch, {m}) for m={m} "
            "inequalities"
        )
    try:
        full = torch.broadcast_shapes(hint.shape[:-1], batch)
    except RuntimeError as e:
        raise ValueError(
            f"active_hint batch shape {tuple(hint.shape[:-1])} does not broadcast to the "
            f"problem batch {batch}"
        ) from e
    if tuple(full) != tuple(batch):
        raise ValueError(
            f"active_hint batch shape {tuple(hint.shape[:-1])} does not broadcast to the "
            f"problem batch {batch}"
        )
    return hint.expand(*batch, m).reshape(-1, m)


def solve_qp(
    Q: Tensor | None,
    p: Tensor,
    G: Tensor | None = None,
    h: Tensor | None = None,
    A: Tensor | None = None,
    b: Tensor | None = None,
    *,
    return_info: bool = False,
    tol: float | None = None,
    max_iter: int | None = None,
    raise_on_infeasible: bool = False,
    method: str = "auto",
    active_hint: Tensor | None = None,
):
    """Solve ``min 1/2 x'Qx + p'x  s.t.  Gx <= h, Ax = b`` for a batch of problems.

    Args:
        Q: ``(*batch, n, n)`` symmetric PSD (only its symmetric part is used), or ``None`` (LP).
        p: ``(*batch, n)``.
        G, h: ``(*batch, m, n)``, ``(*batch, m)`` or ``None``.
        A, b: ``(*batch, k, n)``, ``(*batch, k)`` or ``None``.
        return_info: also return a :class:`QPInfo` (duals, status, iterations).
        tol: relative KKT tolerance of the interior point (default 1e-9 float64, 1e-5 float32);
            the polish step then typically reaches ~1e-12 (float64).
        max_iter: interior-point iteration cap (default 50).
        raise_on_infeasible: raise :class:`QPInfeasibleError` if any problem is primal or dual
            infeasible (default: report it in ``info.status`` and return ``x = 0`` for it).
        method: ``"ipm"`` interior point + polish; ``"enum"`` batched active-set enumeration
            (strictly convex ``Q`` only; problems it cannot solve, e.g. infeasible ones or
            ``Q`` not positive definite, fall back to the IPM per problem); ``"auto"``
            (default) ``"enum"`` when ``Q`` is given and a cost model (batch size and the number
            of candidate active sets ``sum_{j <= n-k} C(m, j)``) predicts it to be faster, else
            ``"ipm"``. Both give the same ``x``, status and (consistent) gradients; see
            docs/qp.md "Enumeration". ``info.iterations`` is 0 for enumerated problems.
        active_hint: optional ``(*batch, m)`` bool guess of the active inequality rows (e.g.
            ``info.active`` of a previous, similar call). Per problem, the equality-constrained
            KKT system on the hinted rows is solved directly and accepted only where it is a
            KKT point to ``tol`` (hinted rows tight, all rows feasible, multipliers ``>= 0``,
            stationarity); the other problems are solved as without the hint. A wrong hint
            costs time, never accuracy: the result is the same optimum (unique for strictly
            convex problems) and the backward the same active-set implicit differentiation
            (docs/qp.md "Warm start"). ``info.warm`` says where the hint was accepted.

    Every input may be unbatched; the batch shape is the broadcast of the leading dims. If all
    inputs are unbatched, ``x`` has shape ``(n,)``.

    Returns:
        ``x: (*batch, n)``, or ``(x, info)`` if ``return_info``. ``x`` is differentiable w.r.t.
        every input by implicit differentiation of the active-set KKT system (docs/qp.md);
        gradients through infeasible/unbounded problems are zero.
    """
    if method == "auto" and Q is None:
        method = "ipm"  # an LP is not strictly convex: enumeration cannot apply
    (Q, p, G, h, A, b), batch, n = _prepare(Q, p, G, h, A, b)
    opts = _options(p.dtype, p.device, tol, max_iter, method)
    hint = _prepare_hint(active_hint, batch, G.shape[-2], p.device)
    x, z, y, status, iters, active, warm, _ = _QPFunction.apply(Q, p, G, h, A, b, hint, opts)
    flat = len(batch) == 1
    if not flat:
        x = x.reshape(*batch, n)
    info = None
    if return_info or raise_on_infeasible:
        info = QPInfo(x=x, z=z, y=y, status=status, iterations=iters, active=active, warm=warm)
        if not flat:
            info = QPInfo(
                x=x,
                z=z.reshape(*batch, z.shape[-1]),
                y=y.reshape(*batch, y.shape[-1]),
                status=status.reshape(batch),
                iterations=iters.reshape(batch),
                active=active.reshape(*batch, active.shape[-1]),
                warm=warm.reshape(batch),
            )
    if raise_on_infeasible:
        bad = (status == int(QPStatus.PRIMAL_INFEASIBLE)) | (
            status == int(QPStatus.DUAL_INFEASIBLE)
        )
        n_bad = int(bad.sum())
        if n_bad:
            raise QPInfeasibleError(
                f"{n_bad} of {status.numel()} problems are infeasible or unbounded "
                f"(status codes in .info.status: 1 primal infeasible, 2 dual infeasible)",
                info,
            )
    return (x, info) if return_info else x


def solve_lp(
    c: Tensor,
    G: Tensor,
    h: Tensor,
    A: Tensor | None = None,
    b: Tensor | None = None,
    **options,
):
    """Solve the LP ``min c'x  s.t.  Gx <= h, Ax = b``; same as ``solve_qp(None, c, G, h, A, b,
    **options)`` (shapes and options there). An unbounded LP is reported as
    ``QPStatus.DUAL_INFEASIBLE``."""
    return solve_qp(None, c, G, h, A, b, **options)
