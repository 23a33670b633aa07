"""safegrad.qp: batched, differentiable dense QP / LP solver in torch (docs/qp.md).

Solves, for a batch of problems (any input may be unbatched and is broadcast)::

    min_x 1/2 x'Qx + p'x   s.t.   Gx <= h,   Ax = b

Algorithm and why (details, tolerances and measurements in docs/qp.md):

* **Batched Mehrotra predictor-corrector interior point** on the reduced normal equations
  ``(Q + G'DG) dx = r`` (one batched Cholesky per iteration; one LU of the ``(n+k)``
  quasi-definite matrix when equalities are present). The iteration count of an IPM hardly
  depends on the problem, so a whole batch moves in lock-step with no Python loop over the batch,
  and at the small sizes of safety layers (n <= 10, m <= 100) the cost is the number of torch ops
  per iteration, which this formulation keeps at ~60. An active-set method would be faster for
  n = 1-2 but needs a data-dependent number of pivots per problem (bad for batching) and is fragile
  with degenerate/parallel constraints.
* **Enumeration** (``method="auto"|"enum"``): small strictly convex QPs are solved by
  enumerating all candidate active sets at once (Schur complement with ``Q^{-1}``, lock-step
  elimination of the padded small systems); problems it cannot solve fall back to the IPM.
* **Polish**: the IPM's active set (``z_i > s_i``) defines an equality-constrained KKT system that
  is solved directly (regularised LU + iterative refinement); the polished point is accepted per
  problem only if it satisfies all KKT conditions, giving ~1e-12 accuracy in float64 instead of the
  IPM's ~1e-9.
* **Backward**: implicit differentiation of the same active-set KKT system (OptNet formulas). For
  linearly dependent active rows the regularised solve with refinement returns the min-norm
  multiplier sensitivity, i.e. a consistent element of the generalised Jacobian.
* **Warm start** (``active_hint=``): the KKT system on a guessed active set (e.g. the previous
  call's ``info.active``), accepted per problem by the KKT checks; wrong guesses of strictly convex
  problems are repaired by a batched dual active-set method (Goldfarb-Idnani, ``_dual.py``), the
  rest take the cold path. Same optimum, same backward; docs/qp.md "Warm start".
* **Infeasibility**: Farkas / unbounded-ray certificates tested on the iterates every few
  iterations, per problem; failed problems are frozen, flagged in ``info.status``, get ``x = 0``
  and zero gradients.

Public API: :func:`solve_qp`, :func:`solve_lp`, :class:`QPStatus`, :class:`QPInfo`,
:class:`QPInfeasibleError`, :func:`random_qp` (test-problem generator). Reference solvers with
the same signature live in :mod:`safegrad.qp.backends` (optional extra ``safegrad[baselines]``).
"""

from safegrad.qp._types import QPInfeasibleError, QPInfo, QPStatus
from safegrad.qp.problems import random_qp
from safegrad.qp.solve import solve_lp, solve_qp

__all__ = ["solve_qp", "solve_lp", "QPStatus", "QPInfo", "QPInfeasibleError", "random_qp"]
