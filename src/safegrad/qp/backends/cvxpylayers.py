"""cvxpylayers adapter, solved by Clarabel (not the SCS default) through diffcp.

DPP needs the objective to be affine in the parameters times the variable, so the layer is
parametrised by ``L`` with ``Q = L L'`` (``L = cholesky(Q + jitter I)``, differentiable in torch):
``min 1/2 ||L'x||^2 + p'x  s.t.  Gx <= h, Ax = b``. With cvxpylayers 1.2.0 the call is
``CvxpyLayer(problem, parameters, variables)`` and ``layer(*params, solver_args={"solve_method":
"Clarabel"})``. Instances are solved one by one on CPU (diffcp), GPU tensors are copied.
"""

from __future__ import annotations

import functools

import torch

from safegrad.qp.backends import missing_extra

try:
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer
except ImportError as e:  # pragma: no cover - depends on the environment
    raise missing_extra("cvxpylayers") from e

from safegrad.qp.solve import _prepare


@functools.lru_cache(maxsize=64)
def _layer(n: int, m: int, k: int, quadratic: bool) -> CvxpyLayer:
    x = cp.Variable(n)
    p = cp.Parameter(n)
    params, cons = [], []
    obj = p @ x
    if quadratic:
        L = cp.Parameter((n, n))
        obj = obj + 0.5 * cp.sum_squares(L.T @ x)
        params.append(L)
    params.append(p)
    if m:
        G, h = cp.Parameter((m, n)), cp.Parameter(m)
        cons.append(G @ x <= h)
        params += [G, h]
    if k:
        A, b = cp.Parameter((k, n)), cp.Parameter(k)
        cons.append(A @ x == b)
        params += [A, b]
    prob = cp.Problem(cp.Minimize(obj), cons)
    return CvxpyLayer(prob, parameters=params, variables=[x])


def solve(Q, p, G=None, h=None, A=None, b=None, *, solver_args=None, jitter=0.0):
    """Same signature and shapes as :func:`safegrad.qp.solve_qp`; returns ``x``.

    ``solver_args`` default ``{"solve_method": "Clarabel"}`` (diffcp); ``jitter`` is added to the
    diagonal of ``Q`` before its Cholesky factorisation (needed only for singular PSD ``Q``)."""
    quadratic = Q is not None
    (Q, p, G, h, A, b), batch, n = _prepare(Q, p, G, h, A, b)
    m, k = G.shape[1], A.shape[1]
    args = []
    if quadratic:
        eye = torch.eye(n, dtype=p.dtype, device=p.device)
        Qs = 0.5 * (Q + Q.mT)
        args.append(
            torch.linalg.cholesky(Qs + jitter * eye) if jitter else torch.linalg.cholesky(Qs)
        )
    args.append(p)
    if m:
        args += [G, h]
    if k:
        args += [A, b]
    sa = {"solve_method": "Clarabel"} if solver_args is None else solver_args
    (x,) = _layer(n, m, k, quadratic)(*args, solver_args=sa)
    return x.to(p.dtype).reshape(*batch, n)
