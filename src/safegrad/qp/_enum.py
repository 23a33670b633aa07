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
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Solve a batch of strictly convex QPs by enumerating active sets (module docstring).

    Shapes (rows of ``G``, ``A`` normalised): ``Q (B,n,n)`` symmetric, ``p (B,n,1)``,
    ``G (B,m,n)``, ``h (B,m,1)``, ``A (B,k,n)``, ``b (B,k,1)``, ``ptol, dtol (B,1)``; ``m >= 1``.

    Returns:
        ``found (B,)`` bool (a valid candidate exists; false where ``Q`` is not numerically PD,
        the problem is infeasible, or only ill-conditioned subsets fit), ``active (B, m)`` bool
        (rows tight at the solution within ``ptol``: the chosen subset plus any other tight rows,
        e.g. duplicates, so the backward sees the same degenerate active set as the IPM's),
        ``x (B, n, 1)``, ``z (B, m, 1)``, ``y (B, k, 1)``: the chosen candidate (a KKT point to
        the tolerances; meaningless where not found).
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

    # gather the (t, t+1) augmented systems [M_TT | c_T] of every subset, eliminate in lock-step
    flat = T.unsqueeze(-1) * (r1 + 1) + torch.cat([T, T.new_full((N, 1), r1)], -1).unsqueeze(1)
    S = Mc.reshape(B, -1).index_select(1, flat.reshape(-1)).view(B, N, t, t + 1)
    D0 = Mc[:, :, :-1].diagonal(dim1=-2, dim2=-1).index_select(1, T.reshape(-1)).view(B, N, t)
    ok = pd.view(B, 1).expand(B, N).clone()
    piv_tol = eps**0.5
    pivots = []
    for j in range(t):
        dj = S[..., j, j]
        ok &= dj > piv_tol * D0[..., j]
        dj = torch.where(ok, dj, 1.0)
        pivots.append(dj)
        if j + 1 < t:
            lj = S[..., j + 1 :, j] / dj.unsqueeze(-1)  # (B, N, t-j-1)
            S[..., j + 1 :, j + 1 :] -= lj.unsqueeze(-1) * S[..., j : j + 1, j + 1 :]
    lam = S.new_empty(B, N, t)
    for j in range(t - 1, -1, -1):
        acc = S[..., j, t]
        if j + 1 < t:
            acc = acc - (S[..., j, j + 1 : t] * lam[..., j + 1 :]).sum(-1)
        lam[..., j] = acc / pivots[j]
    lam = torch.where(ok.unsqueeze(-1), lam, 0.0)

    # candidates x_T = x_u - W_T lambda_T, (B, n, N); primal and dual feasibility
    WT = Wx.index_select(2, T.reshape(-1)).view(B, n, N, t)
    X = Wx[:, :, -1:] - (WT * lam.unsqueeze(1)).sum(-1)
    r = torch.baddbmm(-h, G, X)  # (B, m, N)
    ok &= r.amax(1) <= ptol
    if s > 0:
        ok &= lam[..., k:].amin(-1) >= -dtol
    found = ok.any(-1)
    pick = ok.to(torch.uint8).argmax(-1)  # first valid candidate (smallest active set)

    rr = r.gather(2, pick.view(B, 1, 1).expand(B, m, 1)).squeeze(-1)  # (B, m)
    x = X.gather(2, pick.view(B, 1, 1).expand(B, n, 1))  # (B, n, 1)
    lam_p = lam.gather(1, pick.view(B, 1, 1).expand(B, 1, t)).squeeze(1)  # (B, t)
    T_p = T.index_select(0, pick)  # (B, t)
    z = torch.zeros(B, r1, dtype=dtype, device=device).scatter(1, T_p[:, k:], lam_p[:, k:])
    z = z[:, k : k + m].unsqueeze(-1)
    y = lam_p[:, :k].unsqueeze(-1)
    active = (rr >= -ptol) & found.unsqueeze(-1)
    return found, active, x, z, y
