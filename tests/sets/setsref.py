"""Reference solvers (cvxpy + Clarabel) and random test sets for the safegrad.sets tests."""

from __future__ import annotations

import itertools

import cvxpy as cp
import numpy as np
import torch

from safegrad.sets import HPolytope, Zonotope

F64 = torch.float64


def np_(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _solve(prob: cp.Problem) -> None:
    prob.solve(solver=cp.CLARABEL)


# -- reference computations ---------------------------------------------------------------------


def cvx_project_hpoly(C, d, x) -> np.ndarray:
    y = cp.Variable(C.shape[-1])
    _solve(cp.Problem(cp.Minimize(cp.sum_squares(y - np_(x))), [np_(C) @ y <= np_(d)]))
    return y.value


def cvx_support_hpoly(C, d, v) -> float:
    y = cp.Variable(C.shape[-1])
    prob = cp.Problem(cp.Maximize(np_(v) @ y), [np_(C) @ y <= np_(d)])
    _solve(prob)
    return prob.value


def cvx_chebyshev(C, d) -> tuple[np.ndarray, float]:
    Cn = np_(C)
    y = cp.Variable(Cn.shape[-1])
    r = cp.Variable()
    cons = [Cn @ y + np.linalg.norm(Cn, axis=1) * r <= np_(d), r >= 0]
    _solve(cp.Problem(cp.Maximize(r), cons))
    return y.value, float(r.value)


def cvx_zono_norm(c, G, x) -> float:
    """min ||beta||_inf s.t. G beta = x - c (inf if infeasible)."""
    Gn = np_(G)
    beta = cp.Variable(Gn.shape[-1])
    prob = cp.Problem(cp.Minimize(cp.norm(beta, "inf")), [Gn @ beta == np_(x) - np_(c)])
    _solve(prob)
    return np.inf if prob.status in ("infeasible", "infeasible_inaccurate") else float(prob.value)


def cvx_project_zono(c, G, x) -> np.ndarray:
    Gn = np_(G)
    beta = cp.Variable(Gn.shape[-1])
    y = np_(c) + Gn @ beta
    _solve(cp.Problem(cp.Minimize(cp.sum_squares(y - np_(x))), [cp.norm(beta, "inf") <= 1]))
    return np_(c) + Gn @ beta.value


def cvx_support_zono(c, G, v) -> float:
    Gn = np_(G)
    beta = cp.Variable(Gn.shape[-1])
    prob = cp.Problem(cp.Maximize(np_(v) @ (np_(c) + Gn @ beta)), [cp.norm(beta, "inf") <= 1])
    _solve(prob)
    return prob.value


def cvx_ray_zono(c, G, o, v) -> float:
    Gn = np_(G)
    beta = cp.Variable(Gn.shape[-1])
    t = cp.Variable()
    prob = cp.Problem(
        cp.Maximize(t),
        [np_(o) + t * np_(v) == np_(c) + Gn @ beta, cp.norm(beta, "inf") <= 1, t >= 0],
    )
    _solve(prob)
    return -np.inf if prob.status in ("infeasible", "infeasible_inaccurate") else float(t.value)


def corner_points(z: Zonotope) -> torch.Tensor:
    """All 2^m points c + G sigma (their convex hull is Z): brute force for containment."""
    m = z.num_generators
    sig = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=m)), dtype=z.dtype)
    if m == 0:
        return z.center.unsqueeze(-2)
    return z.center.unsqueeze(-2) + sig @ z.generators.transpose(-1, -2)


# -- random sets -----------------------------------------------------------------------------------


def random_zonotope(n, m, batch=(), scale=1.0, gen=None, dtype=F64) -> Zonotope:
    c = torch.randn(*batch, n, generator=gen, dtype=dtype)
    G = scale * torch.randn(*batch, n, m, generator=gen, dtype=dtype) / np.sqrt(m)
    return Zonotope(c, G)


def random_hpolytope(n, k, batch=(), gen=None, dtype=F64) -> tuple[HPolytope, torch.Tensor]:
    """Bounded polytope: random unit normals plus a box, all containing ``x0`` with margin."""
    x0 = torch.randn(*batch, n, generator=gen, dtype=dtype)
    C = torch.randn(*batch, k, n, generator=gen, dtype=dtype)
    C = C / C.norm(dim=-1, keepdim=True)
    eye = torch.eye(n, dtype=dtype)
    C = torch.cat([C, torch.cat([eye, -eye]).expand(*batch, 2 * n, n)], -2)
    off = 0.3 + torch.rand(*batch, k + 2 * n, generator=gen, dtype=dtype)
    d = (C @ x0.unsqueeze(-1)).squeeze(-1) + off
    return HPolytope(C, d), x0
