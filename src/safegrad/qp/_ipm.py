"""Batched Mehrotra predictor-corrector primal-dual interior-point method (docs/qp.md, "IPM").

Problem (rows of ``G`` and ``A`` already normalised, ``Q`` symmetric PSD)::

    min 1/2 x'Qx + p'x   s.t.   Gx + s = h,  s >= 0,   Ax = b

KKT residuals at ``(x, s, z, y)``::

    r_d = Qx + p + G'z + A'y,   r_p = Gx + s - h,   r_e = Ax - b,   mu = s'z / m

Newton step, eliminating ``ds`` and ``dz`` with ``D = diag(z / s)`` (reduced normal equations)::

    [Q + G'DG + rho I   A'       ] [dx]   [-r_d - G'(D r_p - r_c / s)]
    [A                  -delta I ] [dy] = [-r_e                      ]
    dz = D (G dx + r_p) - r_c / s,          ds = -r_p - G dx

with ``r_c = s o z`` (predictor) and ``r_c = s o z + ds_a o dz_a - sigma mu`` (corrector). The
matrix (SPD without equalities, quasi-definite with them) is factored once per iteration
(Cholesky and an explicit inverse without equalities, batched LU with them, see ``_factor``).
The corrector reuses the factorisation, and only its difference
``w = (ds_a o dz_a - sigma mu) / s`` is solved for.

All vectors are kept as ``(B, ., 1)`` columns so that every product is one ``baddbmm``. Every
problem tests its own convergence every iteration and is then frozen (step length 0), so the batch
runs until all are frozen or ``max_iter``; the host is asked "all done?" only every
``check_every`` iterations (a device sync on CUDA). Infeasibility certificates are tested every
``check_every`` iterations (docs/qp.md, "Infeasibility detection").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from safegrad.qp._types import QPStatus


@dataclass
class IPMState:
    """Iterate and bookkeeping of a batch; ``interior_point`` can resume from it."""

    x: Tensor  # (B, n, 1)
    v: Tensor  # (B, 2m, 1) = [s; z]
    y: Tensor  # (B, k, 1)
    done: Tensor  # (B, 1) bool, frozen problems
    status: Tensor  # (B,) int64
    iterations: Tensor  # (B, 1) int64

    @property
    def s(self) -> Tensor:
        return self.v[:, : self.v.shape[1] // 2]

    @property
    def z(self) -> Tensor:
        return self.v[:, self.v.shape[1] // 2 :]


def _mv(Mt: Tensor, v: Tensor) -> Tensor:
    """``M @ v`` for ``Mt = M' (B, c, r)`` contiguous and ``v (B, c, j)``, as the row product
    ``(v' M')'``: at these sizes a batched product with a short output row is several times
    cheaper than ``bmm(M, v)`` with a ``(B, r, 1)`` output (measured, docs/qp.md)."""
    return torch.bmm(v.mT, Mt).mT


def _factor(H: Tensor, Kt: Tensor | None, Kb: Tensor | None):
    """Factor ``H`` (SPD) or the quasi-definite ``[[H, A'], [A, -delta I]]``; returns a solver.

    Without equalities: Cholesky ``H = L L'`` and the explicit ``H^{-1} = L^{-T} L^{-1}``
    (one triangular solve against ``I``), so every later solve is one small row product; at
    these sizes that is ~3x cheaper than ``lu_solve`` per right-hand side (measured,
    docs/qp.md). If the Cholesky factorisation fails for any problem of the batch (one host
    check, free on CPU), and with equalities, batched LU with partial pivoting is used."""
    if Kt is None:
        L, info = torch.linalg.cholesky_ex(H)
        if not bool(info.any()):
            eye = torch.eye(H.shape[-1], dtype=H.dtype, device=H.device).expand_as(H)
            Li = torch.linalg.solve_triangular(L, eye, upper=False)
            Hi = torch.bmm(Li.mT, Li)
            return lambda r: _mv(Hi, r)
    K = H if Kt is None else torch.cat([torch.cat([H, Kt], -1), Kb], -2)
    LU, piv, _ = torch.linalg.lu_factor_ex(K)
    return lambda r: torch.linalg.lu_solve(LU, piv, r)


def _corrected(parts, c2: Tensor, cc: Tensor):
    """Corrector for ``w = c2 * w2 + cc * wc`` from the solved parts; returns (dX, dv, step)."""
    X, GX, w2, wc, ds_a, dz_a, D, v, eta = parts
    dX = X[..., :1] * c2 + X[..., 1:] * cc
    Gd = GX[..., :1] * c2 + GX[..., 1:] * cc
    dv = torch.cat([ds_a - Gd, torch.addcmul(dz_a, D, Gd) - (w2 * c2 + wc * cc)], 1)
    a = eta / (-(dv / v).amin(-2, keepdim=True)).clamp_min(eta)
    return dX, dv, a


def interior_point(
    Q: Tensor,
    p: Tensor,
    G: Tensor,
    h: Tensor,
    A: Tensor,
    b: Tensor,
    *,
    tol: float,
    max_iter: int,
    check_every: int,
    cert_every: int,
    reg: float,
    inf_tol: float,
    state: IPMState | None = None,
) -> IPMState:
    """Run (or resume, from ``state``) the batched IPM until every problem is frozen (converged
    to ``tol`` or certified infeasible) or ``max_iter`` total iterations. Shapes: ``Q (B,n,n)``,
    ``p (B,n,1)``, ``G (B,m,n)``, ``h (B,m,1)``, ``A (B,k,n)``, ``b (B,k,1)``; needs ``m >= 1``."""
    B, n = p.shape[0], p.shape[1]
    m, k = G.shape[1], A.shape[1]
    dtype, device = p.dtype, p.device
    Gt, At = G.mT.contiguous(), A.mT.contiguous()
    Qr = Q + reg * torch.eye(n, dtype=dtype, device=device)
    if k > 0:
        Kt = At
        Kb = torch.cat([A, (-reg) * torch.eye(k, dtype=dtype, device=device).expand(B, k, k)], -1)
    else:
        Kt = Kb = None
    scale_p = 1.0 + torch.maximum(
        h.abs().amax(-2), b.abs().amax(-2) if k > 0 else h.new_zeros(B, 1)
    )
    scale_d = 1.0 + p.abs().amax(-2)
    tol_p, tol_d = tol * scale_p, tol * scale_d
    nb = -b
    hb = torch.cat([h, b], 1)
    eta = 0.99
    DG = torch.empty_like(G)  # reused buffer for D G (a fresh (B, m, n) temporary costs more)

    if state is None:
        # initial point (CVXOPT-style): least-squares x, then shift s and z into the interior
        y = torch.zeros(B, k, 1, dtype=dtype, device=device)
        solve0 = _factor(torch.baddbmm(Qr, Gt, G), Kt, Kb)
        rhs0 = torch.baddbmm(-p, Gt, h)
        if k > 0:
            sol = solve0(torch.cat([rhs0, b], 1))
            x, y = sol[:, :n], sol[:, n:]
        else:
            x = solve0(rhs0)
        st = h - G @ x
        shift_s = (-st).amax(-2, keepdim=True)
        s = torch.where(shift_s < 0, st, st + (1.0 + shift_s))
        shift_z = st.amax(-2, keepdim=True)
        z = torch.where(shift_z < 0, -st, (1.0 + shift_z) - st)
        state = IPMState(
            x=x,
            v=torch.cat([s, z], 1),
            y=y,
            done=torch.zeros(B, 1, dtype=torch.bool, device=device),
            status=torch.full((B,), int(QPStatus.MAX_ITER), dtype=torch.long, device=device),
            iterations=torch.zeros(B, 1, dtype=torch.long, device=device),
        )
    x, v, y, done, status, iters = (
        state.x,
        state.v,
        state.y,
        state.done,
        state.status,
        state.iterations,
    )

    def certificates(x: Tensor, z: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Farkas (primal infeasible) and unbounded-ray (dual infeasible) tests, (B, 1) bool."""
        lam = torch.cat([z, y], 1)
        nl = lam.abs().amax(-2)
        cert = torch.baddbmm(Gt @ z, At, y) if k > 0 else Gt @ z
        # G'z + A'y = r_d - (Qx + p) stays O(|p|) while the duals of an infeasible problem grow
        # geometrically, so the residual test is relative with the looser sqrt(inf_tol)
        pinf = (cert.abs().amax(-2) <= inf_tol**0.5 * nl) & (
            (hb * lam).sum(-2) <= -(inf_tol**0.5) * nl
        )
        nx = x.abs().amax(-2)
        ray = (Q @ x).abs().amax(-2) <= inf_tol * nx
        if k > 0:
            ray = ray & ((A @ x).abs().amax(-2) <= inf_tol * nx)
        dinf = (
            ray
            & ((G @ x).amax(-2) <= inf_tol * nx)
            & ((p * x).sum(-2) <= -inf_tol * scale_d * nx)
            # a ray is only meaningful once the iterate has run far away from the data scale
            & (nx > (scale_p + scale_d) / inf_tol)
        )
        return pinf, dinf

    start = int(iters.max()) if B > 0 else 0
    for it in range(start + 1, max_iter + 1):
        s, z = v[:, :m], v[:, m:]
        rd = p + _mv(Q, x) + _mv(G, z)
        rp = (s - h) + _mv(Gt, x)
        res_p = rp.abs().amax(-2)
        if k > 0:
            rd = rd + _mv(A, y)
            re = nb + _mv(At, x)
            res_p = torch.maximum(res_p, re.abs().amax(-2))
        sz = s * z
        mu = sz.mean(-2, keepdim=True)  # (B, 1, 1)
        res_d = rd.abs().amax(-2)
        done = done | ((res_p <= tol_p) & (res_d <= tol_d) & (mu[:, 0] <= tol_d))
        if it % cert_every == 0:
            pinf, dinf = certificates(x, z, y)
            status = torch.where(
                (pinf & ~done).squeeze(-1), int(QPStatus.PRIMAL_INFEASIBLE), status
            )
            status = torch.where(
                (dinf & ~done & ~pinf).squeeze(-1), int(QPStatus.DUAL_INFEASIBLE), status
            )
            done = done | pinf | dinf
        if it % check_every == 0 and bool(done.all()):
            break
        live = ~done
        iters = iters + live

        # ---- predictor
        D = z / s
        solve = _factor(torch.baddbmm(Qr, Gt, torch.mul(D, G, out=DG)), Kt, Kb)
        r1 = rd + _mv(G, torch.addcmul(-z, D, rp))
        if k > 0:
            sol = solve(torch.cat([r1, re], 1))
            ndx, ndy = sol[:, :n], sol[:, n:]
        else:
            ndx = solve(r1)
        ds_a = _mv(Gt, ndx) - rp
        dz_a = -torch.addcmul(z, D, ds_a)
        dv = torch.cat([ds_a, dz_a], 1)
        a = eta / (-(dv / v).amin(-2, keepdim=True)).clamp_min(eta)
        vn = torch.addcmul(v, a, dv)
        mu_aff = (vn[:, :m] * vn[:, m:]).mean(-2, keepdim=True)
        mu_c = mu.clamp_min(torch.finfo(dtype).tiny)
        sigma_mu = (mu_aff / mu_c).clamp_max(1.0) ** 3 * mu_c  # sigma <= 1

        # ---- corrector (difference to the predictor, same factorisation). Both parts of
        # w = (ds_a o dz_a - sigma mu) / s, the second-order term and the centring term, are
        # solved for at once (2 right-hand sides), so a safeguarded fallback costs no solve.
        w2 = ds_a * dz_a / s
        wc = -1.0 / s
        W = torch.cat([w2, wc], -1)  # (B, m, 2)
        rhs = _mv(G, W)
        X = solve(torch.cat([rhs, rhs.new_zeros(B, k, 2)], 1) if k > 0 else rhs)
        GX = _mv(Gt, X[:, :n])

        one = torch.ones_like(sigma_mu)
        parts = (X, GX, w2, wc, ds_a, dz_a, D, v, eta)
        dX, dv, a = _corrected(parts, one, sigma_mu)
        # Mehrotra safeguard: the second-order term can make the step increase mu and the
        # iteration cycle; there, take the plain path-following step (no second-order term,
        # sigma >= 0.5) instead. (Cartis 2009; Salahi, Peng & Terlaky 2008.)
        vn = torch.addcmul(v, a, dv)
        mu_new = (vn[:, :m] * vn[:, m:]).mean(-2, keepdim=True)
        # only on (nearly) primal- and dual-feasible iterates: on the iterates of an infeasible
        # or unbounded problem mu grows legitimately (and must, for the certificates)
        near = (res_p <= 1e-3 * scale_p) & (res_d <= 1e-3 * scale_d)
        bad = (mu_new > (1.0 - 0.1 * a) * mu) & near.unsqueeze(-1)
        if device.type == "cpu" and not bool(bad.any()):  # host check only where it is free
            a = torch.where(live.unsqueeze(-1), a, 0.0)
            x = torch.addcmul(x, a, dX[:, :n] - ndx)
            if k > 0:
                y = torch.addcmul(y, a, dX[:, n:] - ndy)
            v = torch.addcmul(v, a, dv)
            continue
        dXf, dvf, af = _corrected(parts, torch.zeros_like(one), torch.maximum(sigma_mu, 0.5 * mu))
        # and limit its step so that mu(a) = mu + a c1 + a^2 c2 decreases (c1 < 0 here)
        c1 = (v[:, :m] * dvf[:, m:] + v[:, m:] * dvf[:, :m]).mean(-2, keepdim=True)
        c2 = (dvf[:, :m] * dvf[:, m:]).mean(-2, keepdim=True)
        af = torch.minimum(af, (-0.5 * c1 / c2.clamp_min(torch.finfo(dtype).tiny)).clamp_min(0))
        dX = torch.where(bad, dXf, dX)
        dv = torch.where(bad, dvf, dv)
        a = torch.where(bad & live.unsqueeze(-1), af, torch.where(live.unsqueeze(-1), a, 0.0))
        x = torch.addcmul(x, a, dX[:, :n] - ndx)
        if k > 0:
            y = torch.addcmul(y, a, dX[:, n:] - ndy)
        v = torch.addcmul(v, a, dv)

    status = torch.where(done.squeeze(-1) & (status == int(QPStatus.MAX_ITER)), 0, status)
    # final certificates for problems that ran out of iterations
    pinf, dinf = certificates(x, v[:, m:], y)
    unsolved = status == int(QPStatus.MAX_ITER)
    status = torch.where(unsolved & pinf.squeeze(-1), int(QPStatus.PRIMAL_INFEASIBLE), status)
    status = torch.where(
        unsolved & dinf.squeeze(-1) & ~pinf.squeeze(-1), int(QPStatus.DUAL_INFEASIBLE), status
    )
    return IPMState(x=x, v=v, y=y, done=done, status=status, iterations=iters)
