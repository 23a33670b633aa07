"""Exact facet enumeration (H-representation) of zonotopes in low dimension (spec A §2.2).

Every facet of ``Z = <c, G>`` (``G: n x m``) is parallel to ``n-1`` linearly independent
generators, so its unit normal ``nu`` is the generalised cross product of such an
``(n-1)``-subset and its offset is the support value

    h(nu) = <nu, c> + sum_j |<nu, g_j>|.

Enumerating all ``C(m, n-1)`` subsets and both signs gives ``2 C(m, n-1)`` half-spaces whose
intersection is ``Z``.  Every half-space built this way is a *supporting* half-space of ``Z`` (its
offset is the exact support value), so rank-deficient subsets (dropped: zero rows ``0 <= 1``),
duplicated normals (parallel generators) and inaccurate normals never make the result too small;
they only add redundant rows.

Degenerate (flat) zonotopes, ``rank G < n`` (zero-width boxes, ``m < n``, zero generators), need
the normals of their affine hull and of their facets inside it.  These come from appending the
``k`` left singular vectors of ``G`` that belong to (numerically) zero singular values as
*direction-only* columns (they take part in the normal computation but have zero length in the
offsets): the limit ``eps -> 0`` of ``<c, [G, eps U_perp]>``.  ``k`` is the largest deficiency over
the batch (one host sync); the rank tolerance is loose (``sqrt(eps) * max singular value``) because
extra columns are always safe.

Cost: ``S = C(m + k, n - 1)`` subsets; memory about ``batch * S * n * (n-1)^2`` floats for
``n >= 4`` (determinants), ``batch * S * n`` for ``n <= 3`` (explicit cross products).
"""

from __future__ import annotations

import functools
import itertools
import math

import torch
from torch import Tensor

#: ``to_hpolytope`` refuses more subsets than this (memory/time grow as C(m, n-1)).
HREP_MAX_SUBSETS = 100_000


@functools.lru_cache(maxsize=128)
def _combinations_cpu(m: int, r: int) -> Tensor:
    if r == 0:
        return torch.zeros((1, 0), dtype=torch.long)
    combos = list(itertools.combinations(range(m), r))
    if not combos:
        return torch.zeros((0, r), dtype=torch.long)
    return torch.tensor(combos, dtype=torch.long)


def combinations(m: int, r: int, device: torch.device) -> Tensor:
    """``(C(m, r), r)`` int64 index tensor of all ``r``-subsets of ``range(m)`` (cached)."""
    return _combinations_cpu(m, r).to(device)


@functools.lru_cache(maxsize=16)
def _minor_rows_cpu(n: int) -> Tensor:
    return torch.tensor([[r for r in range(n) if r != i] for i in range(n)], dtype=torch.long)


def num_subsets(n: int, m: int) -> int:
    """Number ``C(m, n-1)`` of generator subsets that define candidate facets."""
    return math.comb(m, n - 1) if n >= 1 else 0


def deficiency_directions(G: Tensor) -> Tensor:
    """``(*batch, n, k)`` direction-only columns spanning the (numerical) complement of range(G).

    ``k`` = the largest rank deficiency over the batch (host sync).  Detached: gradients are not
    propagated through these directions.
    """
    n, m = G.shape[-2], G.shape[-1]
    batch = G.shape[:-2]
    with torch.no_grad():
        if m == 0:
            eye = torch.eye(n, dtype=G.dtype, device=G.device)
            return eye.expand(*batch, n, n)
        U, sv, _ = torch.linalg.svd(G.detach(), full_matrices=True)
        rtol = math.sqrt(torch.finfo(G.dtype).eps)
        smax = sv.amax(-1, keepdim=True)
        rank = (sv > rtol * smax).sum(-1) if sv.numel() else torch.zeros(batch, dtype=torch.long)
        k = int((n - rank).max()) if rank.numel() else n - min(n, m)
        return U[..., n - k :].clone()


def facet_normals(Gdir: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Unit normals of all ``(n-1)``-subsets of the columns of ``Gdir``.

    Args:
        Gdir: ``(*batch, n, m')`` direction columns (``n >= 2``).

    Returns:
        ``N (*batch, S, n)`` unit normals (zero for rank-deficient subsets), ``valid (*batch, S)``
        bool, and the subset index tensor ``(S, n-1)``.
    """
    n, mp = Gdir.shape[-2], Gdir.shape[-1]
    idx = combinations(mp, n - 1, Gdir.device)
    sub = Gdir[..., idx].movedim(-3, -2)  # (*b, S, n, n-1)
    if n == 2:
        g = sub[..., 0]
        normal = torch.stack([g[..., 1], -g[..., 0]], -1)
    elif n == 3:
        normal = torch.linalg.cross(sub[..., 0], sub[..., 1], dim=-1)
    else:
        rows = _minor_rows_cpu(n).to(Gdir.device)
        minors = sub[..., rows, :]  # (*b, S, n, n-1, n-1)
        sign = torch.ones(n, dtype=Gdir.dtype, device=Gdir.device)
        sign[1::2] = -1.0
        normal = torch.linalg.det(minors) * sign
    nrm = torch.linalg.vector_norm(normal, dim=-1)
    scale = torch.linalg.vector_norm(sub, dim=-2).prod(-1)  # Hadamard bound of |normal|
    eps = torch.finfo(Gdir.dtype).eps
    valid = (nrm > 1e3 * eps * scale) & (nrm > 0)
    safe = torch.where(valid, nrm, torch.ones_like(nrm))
    N = torch.where(valid.unsqueeze(-1), normal / safe.unsqueeze(-1), torch.zeros_like(normal))
    return N, valid, idx


def zonotope_hrep(
    c: Tensor, G: Tensor, max_subsets: int = HREP_MAX_SUBSETS
) -> tuple[Tensor, Tensor]:
    """Exact H-representation ``{y : C y <= d}`` of ``<c, G>`` (see the module docstring).

    Args:
        c: ``(*batch, n)``; G: ``(*batch, n, m)`` (same batch shape).
        max_subsets: refuse (``ValueError``) if ``C(m + k, n-1)`` exceeds this.

    Returns:
        ``C (*batch, 2S, n)`` with unit (or zero) rows and ``d (*batch, 2S)``; rows ``i`` and
        ``S + i`` are the two sides of subset ``i``.  Differentiable in ``c`` and ``G``.
    """
    n, m = G.shape[-2], G.shape[-1]
    batch = G.shape[:-2]
    if n == 1:
        one = torch.ones((*batch, 1, 1), dtype=G.dtype, device=G.device)
        r = G.abs().sum(-1)  # (*b, 1)
        return torch.cat([one, -one], -2), torch.cat([c + r, -c + r], -1)
    extra = deficiency_directions(G)
    k = extra.shape[-1]
    S = num_subsets(n, m + k)
    if S > max_subsets:
        raise ValueError(
            f"zonotope H-representation: {S} generator subsets (n={n}, m={m}"
            f"{f', +{k} degenerate directions' if k else ''}) exceed max_subsets={max_subsets}; "
            "use the LP-based methods (method='lp') instead"
        )
    Gdir = torch.cat([G, extra.to(G.dtype)], -1) if k else G
    N, valid, _ = facet_normals(Gdir)
    r = (N @ G).abs().sum(-1)  # (*b, S)
    nc = (N @ c.unsqueeze(-1)).squeeze(-1)
    one = torch.ones_like(r)
    d_pos = torch.where(valid, nc + r, one)
    d_neg = torch.where(valid, -nc + r, one)
    return torch.cat([N, -N], -2), torch.cat([d_pos, d_neg], -1)
