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
offsets): the limit ``eps -> 0`` of ``<c, [G, eps U_perp]>``.  The full-dimensionality test reuses
the enumerated normals (one host sync on a bool); only a flat batch element triggers the SVD, and
``k`` is then the largest deficiency over the batch.  The rank tolerance is loose
(``sqrt(eps)`` relative) because extra columns are always safe.

Cost: ``S = C(m + k, n - 1)`` subsets; the normals are generalised cross products computed by
successive wedge products (no determinants), memory about ``batch * S * n^2`` floats.
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


@functools.lru_cache(maxsize=256)
def combinations(m: int, r: int, device: torch.device) -> Tensor:
    """``(C(m, r), r)`` int64 index tensor of all ``r``-subsets of ``range(m)``.

    Cached per device, so the hot path does no host-to-device copy after the first call.
    """
    return _combinations_cpu(m, r).to(device)


@functools.lru_cache(maxsize=16)
def _wedge_matrices_cpu(n: int) -> tuple[Tensor, ...]:
    """Dense bilinear maps of the wedge products ``w_{k+1} = w_k ∧ g`` (float64, CPU).

    In the basis of sorted ``k``-subsets of ``range(n)``:
    ``(w ∧ g)[J] = sum_{j in J} (-1)^{#{i in J: i > j}} w[J \\ j] g[j]``, written as
    ``vec(w g^T) @ T_k`` with ``T_k (C(n,k) n, C(n,k+1))``.  The last matrix also maps the
    ``(n-1)``-vector to the normal ``nu`` with ``<nu, x> = det[g_1, ..., g_{n-1}, x]``.
    """
    mats = []
    for k in range(1, n - 1):
        pos_k = {J: i for i, J in enumerate(itertools.combinations(range(n), k))}
        out = list(itertools.combinations(range(n), k + 1))
        T = torch.zeros(len(pos_k) * n, len(out), dtype=torch.float64)
        for col, J in enumerate(out):
            for j in J:
                rest = tuple(i for i in J if i != j)
                T[pos_k[rest] * n + j, col] = (-1.0) ** sum(1 for i in J if i > j)
        mats.append(T)
    # grade n-1: subset number r of combinations(range(n), n-1) omits coordinate n-1-r, and
    # w ∧ x = sum_j (-1)^{n-1-j} w[[n] \\ j] x_j
    F = torch.zeros(n, n, dtype=torch.float64)
    for j in range(n):
        F[n - 1 - j, j] = (-1.0) ** (n - 1 - j)
    if mats:
        mats[-1] = mats[-1] @ F
    else:
        mats.append(F)
    return tuple(mats)


@functools.lru_cache(maxsize=64)
def _wedge_matrices(n: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, ...]:
    return tuple(T.to(device=device, dtype=dtype) for T in _wedge_matrices_cpu(n))


def generalized_cross(V: Tensor) -> Tensor:
    """Generalised cross product of the ``n-1`` rows of ``V (*b, n-1, n)``, ``(*b, n)``.

    The vector ``nu`` with ``<nu, x> = det[v_1; ...; v_{n-1}; x]`` (cofactors), computed by
    successive wedge products ``v_1 ∧ ... ∧ v_{n-1}`` as small dense matmuls: no determinants,
    polynomial (hence smooth) and exactly zero for dependent rows up to rounding.  ``n >= 2``.
    """
    n = V.shape[-1]
    mats = _wedge_matrices(n, V.device, V.dtype)
    w = V[..., 0, :]
    if n == 2:
        return w @ mats[0]
    for k, T in enumerate(mats, start=1):
        w = (w.unsqueeze(-1) * V[..., k, :].unsqueeze(-2)).flatten(-2) @ T
    return w


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
    rows = Gdir.transpose(-1, -2)  # (*b, m', n): generators as rows
    # unit rows: same normal directions, |normal| <= 1 (Hadamard), no overflow in float32
    row_sq = (rows * rows).sum(-1, keepdim=True)
    nz = row_sq > 0
    rows = torch.where(nz, rows / torch.where(nz, row_sq, torch.ones_like(row_sq)).sqrt(), 0.0)
    normal = generalized_cross(rows[..., idx, :])  # (*b, S, n)
    sq = (normal * normal).sum(-1)  # (sum of squares: much faster than vector_norm on CPU)
    valid = sq > (1e3 * torch.finfo(Gdir.dtype).eps) ** 2
    nrm = torch.where(valid, sq, torch.ones_like(sq)).sqrt()  # safe: no sqrt'(0) in backward
    N = torch.where(valid.unsqueeze(-1), normal / nrm.unsqueeze(-1), torch.zeros_like(normal))
    return N, valid, idx


def hrep_normals(
    G: Tensor, max_subsets: int = HREP_MAX_SUBSETS
) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Candidate facet normals of ``<c, G>`` including the degenerate-direction augmentation.

    First enumerates the ``(n-1)``-subsets of ``G``; the zonotope is full-dimensional iff some
    valid normal ``nu`` has ``|<nu, g_j>| > sqrt(eps) max_j ||g_j||`` for a generator.  Only if a
    batch element fails that test (one host sync on a bool) are the deficiency directions of an
    SVD appended and the enumeration repeated.

    Args:
        G: ``(*batch, n, m)``, ``n >= 2``.

    Returns:
        ``N (*batch, S, n)`` unit normals (zero rows for rank-deficient subsets),
        ``valid (*batch, S)``, the subset index ``(S, n-1)``, the direction columns
        ``Gdir (*batch, n, m + k)`` and ``k``.

    Raises:
        ValueError: more than ``max_subsets`` subsets.
    """
    n, m = G.shape[-2], G.shape[-1]

    def check(S: int, k: int) -> None:
        if S > max_subsets:
            raise ValueError(
                f"zonotope H-representation: {S} generator subsets (n={n}, m={m}"
                f"{f', +{k} degenerate directions' if k else ''}) exceed "
                f"max_subsets={max_subsets}; use the LP-based methods (method='lp') instead"
            )

    check(num_subsets(n, m), 0)
    if m >= n:
        N, valid, idx = facet_normals(G)
        with torch.no_grad():
            rtol = math.sqrt(torch.finfo(G.dtype).eps)
            gmax = (G * G).sum(-2).amax(-1).sqrt()  # (*b,)
            off = (N @ G).abs().flatten(-2).amax(-1)  # (*b,)
            full = off > rtol * gmax
        if bool(full.all()):
            return N, valid, idx, G, 0
    extra = deficiency_directions(G)
    k = extra.shape[-1]
    check(num_subsets(n, m + k), k)
    Gdir = torch.cat([G, extra.to(G.dtype)], -1) if k else G
    N, valid, idx = facet_normals(Gdir)
    return N, valid, idx, Gdir, k


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
    n = G.shape[-2]
    batch = G.shape[:-2]
    if n == 1:
        one = torch.ones((*batch, 1, 1), dtype=G.dtype, device=G.device)
        r = G.abs().sum(-1)  # (*b, 1)
        return torch.cat([one, -one], -2), torch.cat([c + r, -c + r], -1)
    N, valid, _, _, _ = hrep_normals(G, max_subsets)
    r = (N @ G).abs().sum(-1)  # (*b, S)
    nc = (N @ c.unsqueeze(-1)).squeeze(-1)
    one = torch.ones_like(r)
    d_pos = torch.where(valid, nc + r, one)
    d_neg = torch.where(valid, -nc + r, one)
    return torch.cat([N, -N], -2), torch.cat([d_pos, d_neg], -1)
