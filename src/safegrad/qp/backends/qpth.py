"""qpth adapter: ``qpth.qp.QPFunction(verbose=-1, check_Q_spd=False)`` (PDIPM, eps 1e-12,
maxIter 20 by default). qpth factors ``Q``, so an LP (``Q=None``) is solved with
``Q = lp_eps * I`` (default 1e-8); it also needs at least one inequality."""

from __future__ import annotations

import torch

from safegrad.qp.backends import missing_extra

try:
    from qpth.qp import QPFunction
except ImportError as e:  # pragma: no cover - depends on the environment
    raise missing_extra("qpth") from e

from safegrad.qp.solve import _prepare


def solve(Q, p, G=None, h=None, A=None, b=None, *, eps=1e-12, max_iter=20, lp_eps=1e-8):
    """Same signature and shapes as :func:`safegrad.qp.solve_qp`; returns ``x``."""
    lp = Q is None
    (Q, p, G, h, A, b), batch, n = _prepare(Q, p, G, h, A, b)
    if lp:
        Q = Q + lp_eps * torch.eye(n, dtype=p.dtype, device=p.device)
    if G.shape[1] == 0:
        raise ValueError("the qpth backend needs at least one inequality (m >= 1)")
    e = p.new_empty(0)
    if A.shape[1] == 0:
        A, b = e, e
    fn = QPFunction(eps=eps, verbose=-1, maxIter=max_iter, check_Q_spd=False)
    return fn(Q, p, G, h, A, b).reshape(*batch, n)
