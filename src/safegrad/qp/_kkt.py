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
    Kinv: Tensor | None = None  # explicit inverse of the regularised matrix, if formed

    def _apply(self, r: Tensor) -> Tensor:
        if self.Kinv is not None:
            return torch.bmm(self.Kinv, r)
        return torch.linalg.lu_solve(self.LU, self.piv, r)

    def solve(self, rhs: Tensor) -> Tensor:
        """Solve ``K0 w = rhs`` for ``rhs: (B, n + r, c)`` by the regularised factorisation
        (or its explicit inverse) + refinement against ``K0``."""
        w = self._apply(rhs)
        for _ in range(self.refine):
            w = w + self._apply(torch.baddbmm(rhs, self.K0, w, alpha=-1.0))
        return w


def build_active_kkt(
    Q: Tensor,
    G: Tensor,
    A: Tensor,
    active: Tensor,
    delta: float,
    refine: int,
    inverse: bool = True,
) -> ActiveKKT:
    """Gather the active rows and factor the regularised KKT matrix.

    Args:
        Q: ``(B, n, n)`` symmetric PSD.  G: ``(B, m, n)``.  A: ``(B, k, n)``.
        active: ``(B, m)`` bool, inequality rows treated as equalities.
        delta: regularisation of the quasi-definite factorisation.
        refine: iterative-refinement steps in :meth:`ActiveKKT.solve`.
        inverse: also form the explicit inverse of the regularised matrix (one triangular
            solve against ``I``), so that every later solve is one batched product: at these
            sizes (``n + r <= ~20``) a ``bmm`` costs ~2.5 us against ~15 us for ``lu_solve``
            (1 CPU thread, measured), which pays off from two solves on (a forward with
            refinement and its backward).  Only where every LU pivot is above ``1e-6`` times
            the largest (no dependent active rows); elsewhere the solves stay ``lu_solve`` +
            refinement, whose accuracy on the regularised singular system the inverse would
            lose (measured: 4e-8 instead of 1e-12 on duplicated rows).
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
    if k > 0:
        C = torch.cat([Gi, A], dim=1)
        mask = torch.cat([mask_i, torch.ones(B, k, 1, dtype=dtype, device=device)], 1)
    else:
        C, mask = Gi, mask_i
    r = ma + k
    K0 = torch.cat(
        [
            torch.cat([Q, C.mT], dim=-1),
            torch.cat([C, torch.diag_embed(mask.squeeze(-1) - 1.0)], dim=-1),
        ],
        dim=-2,
    )
    nr = n + r
    LU, piv, _ = torch.linalg.lu_factor_ex(K0 + _reg_diag(n, r, delta, dtype, device))
    Kinv = None
    if inverse and B > 0:
        # only for well-conditioned systems: with dependent active rows the regularised matrix
        # has pivots ~delta, and an explicit inverse would lose the refinement's accuracy
        piv_abs = LU.diagonal(dim1=-2, dim2=-1).abs()
        if bool((piv_abs.amin(-1) > 1e-6 * piv_abs.amax(-1)).all()):  # one host sync
            eye = torch.eye(nr, dtype=dtype, device=device).expand(B, nr, nr)
            Kinv = torch.linalg.lu_solve(LU, piv, eye)
    return ActiveKKT(idx=idx, mask=mask, C=C, K0=K0, LU=LU, piv=piv, refine=refine, Kinv=Kinv)


_REG_CACHE: dict[tuple, Tensor] = {}


def _reg_diag(n: int, r: int, delta: float, dtype, device) -> Tensor:
    """``diag(delta I_n, -delta I_r)``, cached per shape, dtype and device (created outside
    inference mode, so that it may enter autograd graphs later)."""
    key = (n, r, delta, dtype, device)
    val = _REG_CACHE.get(key)
    if val is None:
        if len(_REG_CACHE) > 256:
            _REG_CACHE.clear()
        with torch.inference_mode(False):
            d = torch.cat(
                [
                    torch.full((n,), delta, dtype=dtype, device=device),
                    torch.full((r,), -delta, dtype=dtype, device=device),
                ]
            )
            val = _REG_CACHE[key] = torch.diag(d)
    return val
