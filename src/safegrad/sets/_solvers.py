"""Thin batching layer between the sets and :mod:`safegrad.qp` (spec A §2.2, §3.3).

The sets broadcast arbitrary batch shapes; this module broadcasts every problem tensor to one
common batch shape, flattens it to a single leading dimension, calls
:func:`safegrad.qp.solve_lp` / :func:`safegrad.qp.solve_qp` with ``return_info=True`` and
reshapes the solution and status back.  ``safegrad.qp`` is imported lazily so that the
closed-form parts of :mod:`safegrad.sets` never depend on it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SOLVED = 0  # safegrad.qp.QPStatus.SOLVED
PRIMAL_INFEASIBLE = 1
DUAL_INFEASIBLE = 2

_STATUS_NAMES = {0: "SOLVED", 1: "PRIMAL_INFEASIBLE", 2: "DUAL_INFEASIBLE", 3: "MAX_ITER"}


def _flatten(items: list[tuple[Tensor | None, int]]) -> tuple[torch.Size, list[Tensor | None]]:
    shapes = [t.shape[: t.dim() - core] for t, core in items if t is not None]
    batch = torch.broadcast_shapes(*shapes)
    nb = math.prod(batch)
    out: list[Tensor | None] = []
    for t, core in items:
        if t is None:
            out.append(None)
            continue
        core_shape = t.shape[t.dim() - core :]
        out.append(t.expand(*batch, *core_shape).reshape(nb, *core_shape))
    return batch, out


def solve_lp(
    c: Tensor,
    G: Tensor,
    h: Tensor,
    A: Tensor | None = None,
    b: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """``min c'x  s.t. Gx <= h, Ax = b`` over any broadcastable batch shape.

    Args:
        c: ``(*b, nv)``; G: ``(*b, m, nv)``; h: ``(*b, m)``; A: ``(*b, k, nv)``; b: ``(*b, k)``.

    Returns:
        ``x (*batch, nv)`` (differentiable) and ``status (*batch,)`` int64 (0 = solved).
    """
    from safegrad.qp import solve_lp as _solve_lp

    batch, (c_, G_, h_, A_, b_) = _flatten([(c, 1), (G, 2), (h, 1), (A, 2), (b, 1)])
    if math.prod(batch) == 0:
        return c.new_zeros((*batch, c.shape[-1])), torch.zeros(
            batch, dtype=torch.long, device=c.device
        )
    x, info = _solve_lp(c_, G_, h_, A_, b_, return_info=True)
    return x.reshape(*batch, -1), info.status.reshape(batch)


def solve_qp(
    Q: Tensor,
    p: Tensor,
    G: Tensor | None = None,
    h: Tensor | None = None,
    A: Tensor | None = None,
    b: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """``min 1/2 x'Qx + p'x  s.t. Gx <= h, Ax = b`` over any broadcastable batch shape.

    Returns ``x (*batch, nv)`` (differentiable) and ``status (*batch,)`` int64 (0 = solved).
    """
    from safegrad.qp import solve_qp as _solve_qp

    batch, (Q_, p_, G_, h_, A_, b_) = _flatten([(Q, 2), (p, 1), (G, 2), (h, 1), (A, 2), (b, 1)])
    if math.prod(batch) == 0:
        return p.new_zeros((*batch, p.shape[-1])), torch.zeros(
            batch, dtype=torch.long, device=p.device
        )
    x, info = _solve_qp(Q_, p_, G_, h_, A_, b_, return_info=True)
    return x.reshape(*batch, -1), info.status.reshape(batch)


def check_status(status: Tensor, what: str, allowed: tuple[int, ...] = (SOLVED,)) -> None:
    """Raise ``RuntimeError`` naming the failing batch indices if a status is not allowed.

    One host sync; only called when the user asked for ``check=True``.
    """
    ok = torch.zeros_like(status, dtype=torch.bool)
    for a in allowed:
        ok |= status == a
    if bool(ok.all()):
        return
    bad = (~ok).nonzero()
    first = [tuple(i.tolist()) for i in bad[:5]]
    codes = sorted({_STATUS_NAMES.get(int(v), str(int(v))) for v in status[~ok].unique()})
    raise RuntimeError(
        f"{what}: the solver did not succeed for {bad.shape[0]} of {status.numel()} problems "
        f"(status {', '.join(codes)}; first batch indices {first})"
    )
