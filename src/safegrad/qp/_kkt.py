"""Equality-constrained KKT systems on an active set (polishing step and implicit backward).

For a batch of QPs with identified active set ``I`` (active inequality rows plus all equality
rows), stacked as ``C = [G_I; A]`` and ``d = [h_I; b]``, the KKT matrix is (docs/qp.md, "Polish")::

    K0 = [[Q, C'],
          [C, -diag(1 - mask)]]                       # (*, n + r, n + r), r = |I|_max + k

Rows are gathered so that every problem in the batch uses the same ``r`` (the largest active-set
size in the batch); padding rows are zero with ``-1`` on the diagonal, so their multiplier is
exactly 0. ``K0`` is singular when active rows are linearly dependent (parallel, redundant,
degenerate vertices). We factor the quasi-definite regularisation
``K_reg = K0 + diag(delta I_n, -delta I_r)`` once (LU) and apply iterative refinement against
``K0``; for a consistent singular system this converges to the solution whose multiplier part is
(approximately) of minimum norm, i.e. the Tikhonov / pseudo-inverse solution. In the backward pass
that choice makes the Jacobian the min-norm (consistent generalised) Jacobian; see docs/qp.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ActiveKKT:
    """Factored active-set KKT system of a batch. Shapes: ``B`` batch, ``n`` variables,
    ``ma`` gathered inequality rows, ``k`` equalities, ``r = ma + k``."""

    idx: Tensor  # (B, ma) int64, gathered inequality row indices
    mask: Tensor  # (B, r, 1) dtype, 1 for an active/equality row, 0 for padding
    C: Tensor  # (B, r, n) gathered active rows (padding rows zero)
    K0: Tensor  # (B, n + r, n + r) unregularised KKT matrix
    LU: Tensor
    piv: Tensor
    refine: int

    def solve(self, rhs: Tensor) -> Tensor:
        """Solve ``K0 w = rhs`` for ``rhs: (B, n + r, 1)`` by regularised LU + refinement."""
        w = torch.linalg.lu_solve(self.LU, self.piv, rhs)
        for _ in range(self.refine):
            w = w + torch.linalg.lu_solve(self.LU, self.piv, rhs - self.K0 @ w)
        return w


def build_active_kkt(
    Q: Tensor, G: Tensor, A: Tensor, active: Tensor, delta: float, refine: int
) -> ActiveKKT:
    """Gather the active rows and factor the regularised KKT matrix.

    Args:
        Q: ``(B, n, n)`` symmetric PSD.  G: ``(B, m, n)``.  A: ``(B, k, n)``.
        active: ``(B, m)`` bool, inequality rows treated as equalities.
        delta: regularisation of the quasi-definite factorisation.
        refine: iterative-refinement steps in :meth:`ActiveKKT.solve`.
    """
    B, n = Q.shape[0], Q.shape[-1]
    m, k = G.shape[-2], A.shape[-2]
    dtype, device = Q.dtype, Q.device
    if m > 0:
        ma = int(active.sum(-1).max()) if B > 0 else 0
        # stable sort puts active rows first, in their original order
        idx = torch.argsort((~active).to(torch.int8), dim=-1, stable=True)[:, :ma]
        mask_i = active.gather(1, idx).to(dtype).unsqueeze(-1)
        Gi = G.gather(1, idx.unsqueeze(-1).expand(B, ma, n)) * mask_i
    else:
        ma = 0
        idx = torch.zeros(B, 0, dtype=torch.long, device=device)
        mask_i = torch.zeros(B, 0, 1, dtype=dtype, device=device)
        Gi = G[:, :0]
    C = torch.cat([Gi, A], dim=1) if k > 0 else Gi
    mask = torch.cat([mask_i, torch.ones(B, k, 1, dtype=dtype, device=device)], 1)
    r = ma + k
    K0 = torch.cat(
        [
            torch.cat([Q, C.mT], dim=-1),
            torch.cat([C, torch.diag_embed(mask.squeeze(-1) - 1.0)], dim=-1),
        ],
        dim=-2,
    )
    reg = torch.cat(
        [
            torch.full((n,), delta, dtype=dtype, device=device),
            torch.full((r,), -delta, dtype=dtype, device=device),
        ]
    )
    LU, piv, _ = torch.linalg.lu_factor_ex(K0 + torch.diag(reg))
    return ActiveKKT(idx=idx, mask=mask, C=C, K0=K0, LU=LU, piv=piv, refine=refine)
