"""Batched active-set enumeration for small strictly convex QPs (docs/qp.md, "Enumeration").

For ``Q`` positive definite the optimum is the solution of the equality-constrained problem on
some active set ``S`` of linearly independent inequality rows, ``|S| <= n - k`` (plus all ``k``
equality rows). With ``R = [A; G]``, ``d = [b; h]``, the unconstrained minimiser
``x_u = -Q^{-1} p``, ``W = Q^{-1} R'``, ``M = R W`` and ``c = R x_u - d``, the candidate of a
subset ``T = [equalities, S]`` is (Schur complement of the KKT matrix)::

    lambda_T = M_TT^{-1} c_T,      x_T = x_u - W_T lambda_T

which needs only ``|T| x |T|`` systems. A candidate is *valid* if ``M_TT`` is well conditioned
(every pivot of its elimination is at least ``piv_tol`` times the diagonal entry, i.e. the rows
are not (nearly) dependent in the ``Q^{-1}`` metric), ``G x_T <= h + ptol`` and
``lambda_S >= -dtol``: then ``(x_T, lambda_T)`` satisfies the KKT conditions. Every valid
candidate has the same ``x`` (strict convexity); the first one in the enumeration order (by
increasing ``|S|``) is taken.

All subsets of every size are padded to the width ``s = min(n - k, m)`` with distinct dummy
rows (indices ``k + m ..``) whose ``M`` block is the identity and whose ``c`` is 0 (multiplier
exactly 0), so all candidates of all problems are eliminated in lock-step: ``s + k`` Python
steps of elementwise tensor ops over a ``(B, N, s + k, s + k)`` tensor, whatever the batch
size ``B`` and subset count ``N = sum_{j <= s} C(m, j)``.
"""

from __future__ import annotations

import functools
import itertools
import math

import torch
from torch import Tensor

__all__ = ["subset_count", "enumerate_active_set"]


def subset_count(n: int, m: int, k: int = 0) -> int:
    """Number of candidate active sets ``sum_{j <= min(n - k, m)} C(m, j)``."""
    return sum(math.comb(m, j) for j in range(min(max(n - k, 0), m) + 1))


@functools.lru_cache(maxsize=64)
def _subsets(m: int, s: int, k: int, device: torch.device) -> Tensor:
    """``(N, k + s)`` int64 rows of ``R_ext = [A; G; 0]``: the ``k`` equalities, then a subset of
    the inequalities (``k .. k+m-1``) of size ``j``, padded with the distinct dummy rows
    ``k+m+j .. k+m+s-1``; by increasing size."""
    rows = []
    for j in range(s + 1):
        for comb in itertools.combinations(range(m), j):
            rows.append(list(range(k)) + [k + i for i in comb] + list(range(k + m + j, k + m + s)))
    return torch.tensor(rows, dtype=torch.long, device=device).reshape(len(rows), k + s)


def enumerate_active_set(
    Q: Tensor,
    p: Tensor,
    G: Tensor,
    h: Tensor,
    A: Tensor,
    b: Tensor,
    ptol: Tensor,
    dtol: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Solve a batch of strictly convex QPs by enumerating active sets (module docstring).

    Shapes (rows of ``G``, ``A`` normalised): ``Q (B,n,n)`` symmetric, ``p (B,n,1)``,
    ``G (B,m,n)``, ``h (B,m,1)``, ``A (B,k,n)``, ``b (B,k,1)``, ``ptol, dtol (B,1)``; ``m >= 1``.

    Returns:
        ``found (B,)`` bool (a valid candidate exists; false where ``Q`` is not numerically PD,
        the problem is infeasible, or only ill-conditioned subsets fit), ``active (B, m)`` bool
        (rows tight at the solution within ``ptol``: the chosen subset plus any other tight rows,
        e.g. duplicates, so the backward sees the same degenerate active set as the IPM's),
        ``x (B, n, 1)``, ``z (B, m, 1)``, ``y (B, k, 1)``: the chosen candidate (a KKT point to
        the tolerances; meaningless where not found), ``clean (B,)`` bool: ``x`` is free of
        cancellation (``|x_u|_inf <= 1e3 (1 + |x|_inf)``), so it can be used as is; elsewhere
        (e.g. ``Q = 1e-6 I``) the caller recomputes it from the active-set KKT system.
    """
    B, n = p.shape[0], p.shape[1]
    m, k = G.shape[1], A.shape[1]
    dtype, device = p.dtype, p.device
    eps = torch.finfo(dtype).eps
    s = min(max(n - k, 0), m)
    T = _subsets(m, s, k, device)  # (N, t)
    N, t = T.shape
    r1 = k + m + s  # rows of R_ext: equalities, inequalities, s dummies

    L, info = torch.linalg.cholesky_ex(Q)
    # PD check: a pivot below sqrt(eps) * max|Q_ii| means Q^{-1} is too ill-conditioned to use
    Ld = L.diagonal(dim1=-2, dim2=-1)
    qscale = Q.diagonal(dim1=-2, dim2=-1).abs().amax(-1, keepdim=True)
    pd = (info == 0) & (Ld.square() > eps**0.5 * qscale).all(-1)
    L = torch.where(pd.view(B, 1, 1), L, torch.eye(n, dtype=dtype, device=device))

    R = torch.cat([A, G, torch.zeros(B, s, n, dtype=dtype, device=device)], 1)  # (B, r1, n)
    d = torch.cat([b, h, torch.zeros(B, s, 1, dtype=dtype, device=device)], 1)  # (B, r1, 1)
    Wx = torch.cholesky_solve(torch.cat([R.mT, -p], -1), L)  # [Q^{-1} R', x_u]  (B, n, r1+1)
    Mc = R @ Wx  # [M, R x_u]  (B, r1, r1 + 1)
    Mc[:, k + m :, k + m : r1] += torch.eye(s, dtype=dtype, device=device)  # dummies: M = I, c = 0
    Mc[:, :, -1:] -= d

    # gather the (t, t+1) augmented systems [M_TT | c_T] of every subset and eliminate them in
    # lock-step. Layout (t, t + 1, N, B): the batch is innermost, so every elimination step is a
    # few elementwise ops on contiguous blocks (much cheaper than strided (B, N, t, t+1) views).
    flat = T.unsqueeze(-1) * (r1 + 1) + torch.cat([T, T.new_full((N, 1), r1)], -1).unsqueeze(1)
    McT = Mc.reshape(B, -1).mT  # (r1 * (r1 + 1), B)
    S = McT.index_select(0, flat.permute(1, 2, 0).reshape(-1)).view(t, t + 1, N, B)
    D0 = McT.index_select(0, (T * (r1 + 2)).mT.reshape(-1)).view(t, N, B)
    ok = pd.view(1, B).expand(N, B).clone()
    piv_tol = eps**0.5
    pivots = []
    for j in range(t):
        dj = S[j, j]
        ok &= dj > piv_tol * D0[j]
        dj = torch.where(ok, dj, 1.0)
        pivots.append(dj)
        if j + 1 < t:
            lj = S[j + 1 :, j] / dj  # (t-j-1, N, B)
            S[j + 1 :, j + 1 :] -= lj.unsqueeze(1) * S[j, j + 1 :].unsqueeze(0)
    lam = [None] * t
    for j in range(t - 1, -1, -1):
        acc = S[j, t]
        for i in range(j + 1, t):
            acc = acc - S[j, i] * lam[i]
        lam[j] = torch.where(ok, acc / pivots[j], 0.0)
    lamT = torch.stack(lam)  # (t, N, B)

    # candidates x_T = x_u - W_T lambda_T: scatter lambda_T into (B, r1, N) (rows of R_ext),
    # then two batched matmuls give X (B, n, N) and the residuals r = G X - h (B, m, N)
    Lf = lamT.new_zeros(r1, N, B).scatter_(0, T.mT.unsqueeze(-1).expand(t, N, B), lamT)
    X = torch.baddbmm(Wx[:, :, -1:], Wx[:, :, :-1], Lf.permute(2, 0, 1).contiguous(), alpha=-1.0)
    r = torch.baddbmm(-h, G, X).permute(1, 2, 0)  # (m, N, B)
    ok &= r.amax(0) <= ptol.view(1, B)
    if s > 0:
        ok &= lamT[k:].amin(0) >= -dtol.view(1, B)
    found = ok.any(0)
    pick = ok.to(torch.uint8).argmax(0)  # (B,) first valid candidate (smallest active set)

    ar = torch.arange(B, device=device)
    rr = r[:, pick, ar].mT  # (B, m)
    x = X[ar, :, pick].unsqueeze(-1)  # (B, n, 1)
    lam_p = lamT[:, pick, ar].mT  # (B, t)
    T_p = T.index_select(0, pick)  # (B, t)
    z = torch.zeros(B, r1, dtype=dtype, device=device).scatter(1, T_p[:, k:], lam_p[:, k:])
    z = z[:, k : k + m].unsqueeze(-1)
    y = lam_p[:, :k].unsqueeze(-1)
    active = (rr >= -ptol) & found.unsqueeze(-1)
    clean = Wx[:, :, -1].abs().amax(-1) <= 1e3 * (1.0 + x.abs().amax((-2, -1)))
    return found, active, x, z, y, clean
