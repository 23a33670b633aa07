"""ProxSuite QPLayer adapter: ``proxsuite.torch.qplayer.QPFunction(eps=1e-10, maxIter=1000)``
called with ``l = -1e20`` (one-sided inequalities). The forward loops over the batch in C++
(``omp_parallel=False``, the default, as this build may lack OpenMP)."""

from __future__ import annotations

import torch

from safegrad.qp.backends import missing_extra

try:
    from proxsuite.torch.qplayer import QPFunction
except ImportError as e:  # pragma: no cover - depends on the environment
    raise missing_extra("proxsuite") from e

from safegrad.qp.solve import _prepare


def solve(Q, p, G=None, h=None, A=None, b=None, *, eps=1e-10, max_iter=1000):
    """Same signature and shapes as :func:`safegrad.qp.solve_qp`; returns ``x``."""
    (Q, p, G, h, A, b), batch, n = _prepare(Q, p, G, h, A, b)
    e = p.new_empty(0)
    if A.shape[1] == 0:
        A, b = e, e
    lower = torch.full_like(h, -1e20)
    x, _, _ = QPFunction(eps=eps, maxIter=max_iter)(Q, p, A, b, G, lower, h)
    return x.to(p.dtype).reshape(*batch, n)
