"""Test helpers for safegrad.safeguards: random instances, cvxpy references, Jacobians."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import torch

F64 = torch.float64


def random_polytope(B: int, m: int, k: int, seed: int = 0, dtype=F64, spread: float = 0.4):
    """Non-empty random H-polytopes ``{C a <= d}`` containing a point of ``[-spread, spread]^m``
    with margin; not necessarily bounded (the action box bounds the region)."""
    g = torch.Generator().manual_seed(seed)
    C = torch.randn(B, k, m, generator=g, dtype=F64)
    c0 = (torch.rand(B, m, generator=g, dtype=F64) * 2 - 1) * spread
    d = (C @ c0.unsqueeze(-1)).squeeze(-1) + 0.05 + 0.6 * torch.rand(B, k, generator=g, dtype=F64)
    return C.to(dtype), d.to(dtype)


def random_actions(B: int, m: int, seed: int = 1, dtype=F64, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    return ((torch.rand(B, m, generator=g, dtype=F64) * 2 - 1) * scale).to(dtype)


def max_residual(C, d, x, low=-1.0, high=1.0):
    """Largest violation of ``C x <= d`` and of the box, per element."""
    r = ((C @ x.unsqueeze(-1)).squeeze(-1) - d).amax(-1)
    rb = torch.maximum(x - high, low - x).amax(-1)
    return torch.maximum(r, rb)


def cvxpy_project(C, d, a, low=-1.0, high=1.0):
    """Reference Euclidean projection onto ``{C y <= d} ∩ [low, high]`` (Clarabel, per element)."""
    out = []
    for Ci, di, ai in zip(C.detach().numpy(), d.detach().numpy(), a.detach().numpy()):
        y = cp.Variable(ai.shape[0])
        prob = cp.Problem(cp.Minimize(cp.sum_squares(y - ai)), [Ci @ y <= di, y >= low, y <= high])
        prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
        out.append(y.value)
    return torch.tensor(np.array(out), dtype=F64)


def batch_jacobian(fn, a):
    """``(B, m_out, m)`` Jacobians of a batched map whose element ``i`` depends on ``a[i]`` only."""
    a = a.detach().clone().requires_grad_(True)
    out = fn(a)
    rows = []
    for j in range(out.shape[-1]):
        (g,) = torch.autograd.grad(out[:, j].sum(), a, retain_graph=True)
        rows.append(g)
    return torch.stack(rows, 1)


def inactive_projector(N):
    """``I - N^T (N N^T)^+ N`` for active rows ``N (r, m)`` (Theorem 1 in polytope form)."""
    m = N.shape[-1]
    eye = torch.eye(m, dtype=N.dtype)
    if N.shape[0] == 0:
        return eye
    return eye - N.T @ torch.linalg.pinv(N @ N.T) @ N
