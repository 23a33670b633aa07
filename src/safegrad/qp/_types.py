"""Result types of :func:`safegrad.qp.solve_qp` (status codes, dual information, errors)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["QPStatus", "QPInfo", "QPInfeasibleError"]


class QPStatus(enum.IntEnum):
    """Per-problem status stored in :attr:`QPInfo.status`.

    * ``SOLVED``: primal/dual residuals and complementarity below ``tol`` (see docs/qp.md).
    * ``PRIMAL_INFEASIBLE``: a Farkas certificate ``z >= 0, G'z + A'y ~ 0, h'z + b'y < 0`` was
      found (stored, normalised to unit infinity norm, in ``info.z`` / ``info.y``); ``x = 0``.
    * ``DUAL_INFEASIBLE``: an unbounded direction ``d`` with ``Qd ~ 0, Ad ~ 0, Gd <= ~0,
      p'd < 0`` was found (the problem is unbounded below if feasible); ``x = 0``.
    * ``MAX_ITER``: no convergence in ``max_iter`` iterations; ``x`` is the last (finite) iterate.
    """

    SOLVED = 0
    PRIMAL_INFEASIBLE = 1
    DUAL_INFEASIBLE = 2
    MAX_ITER = 3


@dataclass
class QPInfo:
    """Solution information of a batch of QPs.

    Attributes:
        x: ``(*batch, n)`` primal solution (same tensor as the first return value).
        z: ``(*batch, m)`` inequality duals (``z >= 0``), not differentiable.
        y: ``(*batch, k)`` equality duals, not differentiable.
        status: ``(*batch,)`` int64, values of :class:`QPStatus`.
        iterations: ``(*batch,)`` int64, interior-point iterations used by each problem.
        active: ``(*batch, m)`` bool, the active inequality rows of the returned solution (the
            rows of the implicit-differentiation system; all False for failed problems); pass
            it as ``active_hint`` to a later, similar call (docs/qp.md, "Warm start").
        warm: ``(*batch,)`` bool, the problem was solved from ``active_hint`` (no IPM or
            enumeration ran for it).
    """

    x: Tensor
    z: Tensor
    y: Tensor
    status: Tensor
    iterations: Tensor
    active: Tensor | None = None
    warm: Tensor | None = None

    @property
    def solved(self) -> Tensor:
        """``(*batch,)`` bool, ``status == SOLVED``."""
        return self.status == int(QPStatus.SOLVED)

    def count(self, status: QPStatus) -> int:
        """Number of problems in the batch with the given status (host sync)."""
        return int(torch.count_nonzero(self.status == int(status)))


class QPInfeasibleError(RuntimeError):
    """Raised by ``solve_qp(..., raise_on_infeasible=True)`` when some problem is infeasible or
    unbounded. ``.info`` holds the :class:`QPInfo` of the whole batch."""

    def __init__(self, message: str, info: QPInfo):
        super().__init__(message)
        self.info = info
