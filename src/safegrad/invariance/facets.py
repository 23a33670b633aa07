"""Exact facet enumeration of zonotopes in float64 numpy (offline and verification use).

Every facet of ``<c, G>`` (``G: n x p``) is parallel to ``n - 1`` linearly independent generators;
its unit normal ``nu`` spans the orthogonal complement of their span and its offset is the support
value ``<nu, c> + sum_j |<nu, g_j>|`` (spec A §2.2).  Enumerating all ``(n-1)``-subsets gives every
facet; rank-deficient subsets are skipped and duplicate normals (parallel generators, or block
structured templates whose many subsets span the same hyperplane) are merged.  The facet *normals*
depend only on the generator directions, not their lengths, which makes the exact containment
condition in the RCI synthesis linear in the generator scales (:mod:`.synthesis`).

This module is independent of :mod:`safegrad.sets` (the torch implementation) on purpose: the
RCI verification (:mod:`.verify`) should not rely on the code it checks.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

__all__ = ["facet_normals", "zonotope_hrep"]


def facet_normals(G: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """Unit facet normals ``(k, n)`` of any zonotope with generator directions ``G (n, p)``,
    one per facet pair (``nu`` and ``-nu`` both give facets); ``n >= 1``.

    Raises:
        ValueError: if ``G`` does not span ``R^n`` (flat zonotope).
    """
    G = np.asarray(G, dtype=np.float64)
    n, p = G.shape
    if n == 1:
        return np.ones((1, 1))
    scale = np.linalg.norm(G, axis=0)
    if np.linalg.matrix_rank(G[:, scale > 0]) < n if (scale > 0).any() else True:
        raise ValueError(f"generators of shape {G.shape} do not span R^{n} (flat zonotope)")
    U = G[:, scale > 0] / scale[scale > 0]
    idx = np.array(list(combinations(range(U.shape[1]), n - 1)))
    sub = np.transpose(U[:, idx], (1, 0, 2))  # (S, n, n-1)
    # normal = left singular vector of the smallest singular value (n-th) of the n x (n-1) block
    u, sv, _ = np.linalg.svd(sub, full_matrices=True)
    normals = u[:, :, -1]
    ok = sv[:, -1] > rtol * np.maximum(sv[:, 0], 1e-300)
    normals = normals[ok]
    # canonical sign: first significant component positive; merge duplicates
    first = np.argmax(np.abs(normals) > 1e-9, axis=1)
    sign = np.sign(normals[np.arange(normals.shape[0]), first])
    normals = normals * sign[:, None]
    key = np.round(normals, 9)
    _, uniq = np.unique(key, axis=0, return_index=True)
    return normals[np.sort(uniq)]


def zonotope_hrep(c: np.ndarray, G: np.ndarray, normals: np.ndarray | None = None):
    """Exact H-representation ``{y : C y <= d}`` of ``<c, G>`` with unit rows.

    Args:
        c: ``(n,)``; G: ``(n, p)``; normals: precomputed :func:`facet_normals` of ``G``.

    Returns:
        ``C (2k, n)``, ``d (2k,)``: rows ``nu`` then ``-nu``.
    """
    c = np.asarray(c, np.float64)
    G = np.asarray(G, np.float64)
    N = facet_normals(G) if normals is None else normals
    r = np.abs(N @ G).sum(1)
    nc = N @ c
    return np.concatenate([N, -N]), np.concatenate([nc + r, -nc + r])
