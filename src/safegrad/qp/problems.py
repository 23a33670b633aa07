"""Random test problems with a known solution (tests and ``safegrad bench qp``).

Construction (docs/qp.md, "Test problems"): pick ``x*``; ``Q = L L' + eps I`` (strictly convex) or
``Q = 0`` (LP); random rows ``G``, ``A``; the first ``n_active`` inequalities (in a random order)
are tight at ``x*`` (``h_i = G_i x*``) with multipliers ``z_i ~ U(0.5, 1.5)``, the others have slack
``U(0.1, 1)`` and ``z_i = 0``; ``b = A x*`` and ``y ~ N(0, 1)``; finally
``p = -(Q x* + G'z + A'y)``. Then ``(x*, z, y)`` satisfies the KKT conditions with strict
complementarity, so ``x*`` is the unique optimum (for an LP when the ``n_active + k = n`` tight rows
are independent, which holds almost surely).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["random_qp"]


def random_qp(
    batch: int | tuple[int, ...],
    n: int,
    m: int,
    k: int = 0,
    *,
    n_active: int | None = None,
    lp: bool = False,
    eps: float = 1e-1,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> dict[str, Tensor]:
    """A batch of random QPs (or LPs) with known optimum.

    Args:
        batch: batch shape (``()`` for one unbatched problem).
        n, m, k: variables, inequalities, equalities (``k < n``).
        n_active: inequalities tight at the optimum (default ``min(m, (n - k + 1) // 2)`` for a
            QP, ``n - k`` for an LP, which needs ``m >= n - k``).
        lp: ``Q = 0`` (returned as ``None``).
        eps: ``Q = L L' + eps I``.
        seed: seed of a private ``torch.Generator`` (global RNG untouched).

    Returns:
        dict with ``Q (*batch, n, n) | None``, ``p (*batch, n)``, ``G (*batch, m, n)``,
        ``h (*batch, m)``, ``A (*batch, k, n)``, ``b (*batch, k)`` (``A, b`` are ``None`` if
        ``k = 0``) and the solution ``x (*batch, n)``, ``z (*batch, m)``, ``y (*batch, k)``,
        ``active (*batch, m)`` bool.
    """
    batch = (batch,) if isinstance(batch, int) else tuple(batch)
    if not 0 <= k < n:
        raise ValueError(f"need 0 <= k < n, got k={k}, n={n}")
    if n_active is None:
        n_active = n - k if lp else min(m, (n - k + 1) // 2)
    if not 0 <= n_active <= m:
        raise ValueError(f"n_active must be in [0, m={m}], got {n_active}")
    if lp and n_active + k != n:
        raise ValueError(f"an LP with a unique vertex needs n_active + k = n, got {n_active}+{k}")
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*batch, *shape, generator=gen, dtype=torch.float64)

    def randn(*shape):
        return torch.randn(*batch, *shape, generator=gen, dtype=torch.float64)

    x = randn(n)
    G = randn(m, n)
    A = randn(k, n)
    active = torch.zeros(*batch, m, dtype=torch.bool)
    order = rand(m).argsort(-1)
    active.scatter_(-1, order[..., :n_active], True)
    slack = torch.where(active, 0.0, 0.1 + 0.9 * rand(m))
    h = (G @ x.unsqueeze(-1)).squeeze(-1) + slack
    z = torch.where(active, 0.5 + rand(m), 0.0)
    y = randn(k)
    b = (A @ x.unsqueeze(-1)).squeeze(-1)
    if lp:
        Q = None
        Qx = torch.zeros_like(x)
    else:
        L = randn(n, n) / n**0.5
        Q = L @ L.mT + eps * torch.eye(n, dtype=torch.float64)
        Qx = (Q @ x.unsqueeze(-1)).squeeze(-1)
    p = -(Qx + (G.mT @ z.unsqueeze(-1)).squeeze(-1) + (A.mT @ y.unsqueeze(-1)).squeeze(-1))

    def cast(t):
        return None if t is None else t.to(dtype=dtype, device=device)

    out = dict(Q=Q, p=p, G=G, h=h, A=A if k else None, b=b if k else None, x=x, z=z, y=y)
    out = {key: cast(val) for key, val in out.items()}
    out["active"] = active.to(device)
    return out
