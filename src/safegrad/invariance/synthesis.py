"""Template-zonotope RCI synthesis as one convex program (spec A §2.2, §2.4, §11.2).

Problem (offline, cvxpy + Clarabel).  Given the certified linear model of
:mod:`safegrad.invariance.model`, ``x' = A x + B u + f0 + D r`` with ``r in [-1, 1]^{n_d}``
(``D = [E G_W, G_R, eps A]``: disturbance, linearisation remainder and a state-error margin), a
generator template ``T (n x p)`` and the boxes, find the largest state zonotope
``Z = <c_x, T diag(s)>`` (``s >= 0``) with a paired control zonotope ``<c_u, G_u>`` (``m x p``,
the feedback ``x = c_x + T diag(s) beta -> u = c_u + G_u beta``) such that

* invariance (Sadraddini & Tedrake sufficient condition, spec A §2.2): the closed-loop image
  ``<A c_x + B c_u + f0, [A T diag(s) + B G_u, D]>`` lies in ``Z``:
  there are ``Gamma' (p x p)``, ``Gamma_D' (p x n_d)``, ``beta' (p)`` with
  ``T Gamma' = A T diag(s) + B G_u``, ``T Gamma_D' = D``, ``T beta' = c_x - A c_x - B c_u - f0``
  and row sums ``sum_j |[Gamma', Gamma_D', beta']_ij| <= (1 - delta) s_i``.  (The substitution
  ``Gamma' = diag(s) Gamma`` makes the bilinear condition linear.)
* ``Z`` plus the state-error margin lies in the box ``H ∩ S_s`` (``H``: where the remainder is
  certified; ``S_s``: ``S`` shrunk by ``state_margin``, strictly inside ``S``, pitfall P7);
* controls in the action box: ``|c_u| + |G_u| 1 <= 1 - control_margin``.

Objective: maximise ``sum_i log s_i`` (a volume proxy that spreads the generators; the exact
volume ``2^n sum |det|`` is not concave).  Everything is linear except the log, so Clarabel solves
it in well under a second for ``p <= 24``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from safegrad.invariance.facets import facet_normals
from safegrad.invariance.model import LinearModel

__all__ = ["SynthesisResult", "solve_template_rci", "zonotope_volume"]


@dataclass
class SynthesisResult:
    """Output of :func:`solve_template_rci` (float64 numpy).

    Attributes:
        center (n,), generators (n, p): the RCI zonotope ``<c_x, T diag(s)>``.
        ctrl_center (m,), ctrl_generators (m, p): the paired control zonotope.
        gamma (p, p + n_d + 1): ``[Gamma, Gamma_D, beta]`` of the Sadraddini condition for the
            generators (``Gamma = diag(s)^-1 Gamma'``, rows of zero-length generators zero).
        scale (p,): ``s``.  status: the solver status string.  objective: ``sum log s``.
    """

    center: np.ndarray
    generators: np.ndarray
    ctrl_center: np.ndarray
    ctrl_generators: np.ndarray
    gamma: np.ndarray
    scale: np.ndarray
    status: str
    objective: float


def zonotope_volume(G: np.ndarray) -> float:
    """Exact volume ``2^n sum_{n-subsets S} |det G_S|`` of ``<c, G>`` (``G: (n, p)``)."""
    from itertools import combinations

    n, p = G.shape
    if p < n:
        return 0.0
    idx = np.array(list(combinations(range(p), n)))
    dets = np.linalg.det(np.transpose(G[:, idx], (1, 0, 2)))
    return float(2.0**n * np.abs(dets).sum())


def solve_template_rci(
    lm: LinearModel,
    template: np.ndarray,
    box_lo: np.ndarray,
    box_hi: np.ndarray,
    *,
    state_error: np.ndarray | None = None,
    delta: float = 1e-6,
    control_margin: float = 1e-6,
    weights: np.ndarray | None = None,
    symmetric: bool = False,
    method: str = "exact",
    verbose: bool = False,
) -> SynthesisResult:
    """Solve the template-zonotope RCI program (module docstring).

    Args:
        lm: certified linear model (its ``A, B, f0`` and disturbance generators are used).
        template: ``(n, p)`` generator directions ``T`` (full row rank).
        box_lo, box_hi: ``(n,)`` box that must contain ``Z ⊕ [-state_error, state_error]``.
        state_error: ``(n,)`` half-widths ``eps`` of a state-error box the invariance must
            tolerate: the generators ``A diag(eps)`` join ``D``, so every state within ``eps`` of
            ``Z`` still has a control that keeps the next state in ``Z`` (robustness to float32
            rounding and solver tolerances at run time).
        delta: relative slack of the row-sum condition (float64 rounding margin).
        control_margin: slack of the control bound.
        weights: ``(p,)`` objective weights of ``log s_i`` (default ones).
        symmetric: fix ``c_x = 0`` and ``c_u = 0`` (for odd dynamics with symmetric boxes).
        method: ``"exact"`` (default): exact containment of the closed-loop image through the
            template's facets (the facet normals of ``<c, T diag(s)>`` do not depend on ``s``,
            so the support-function condition is convex in ``(s, G_u, c_x, c_u)``);
            ``"sadraddini"``: the sufficient condition of Sadraddini & Tedrake (smaller sets;
            it needs one-step contraction in every template direction, which slow chains of
            integrators such as the quadrotor's position loop do not have).

    Returns:
        :class:`SynthesisResult`; raises ``RuntimeError`` if the program is infeasible.
    """
    try:
        import cvxpy as cp
    except ImportError as exc:  # offline synthesis only; verification and the tasks need no cvxpy
        raise ImportError(
            "RCI synthesis needs cvxpy (and clarabel): pip install 'safegrad[baselines]' "
            "or python scripts/install.py --baselines"
        ) from exc

    A, B, f0 = lm.A, lm.B, lm.f0
    T = np.asarray(template, dtype=np.float64)
    n, p = T.shape
    m = B.shape[1]
    if np.linalg.matrix_rank(T) < n:
        raise ValueError(f"template of shape {T.shape} does not span R^{n}")
    D = lm.disturbance_generators
    eps = np.zeros(n) if state_error is None else np.asarray(state_error, np.float64)
    if (eps > 0).any():
        D = np.concatenate([D, (A * eps[None, :])[:, eps > 0]], 1)
    # work in coordinates scaled by the box half-widths (conditioning); unscaled at the end
    box_lo, box_hi = np.asarray(box_lo, np.float64), np.asarray(box_hi, np.float64)
    sc = 0.5 * (box_hi - box_lo)
    if not (sc > 0).all():
        raise ValueError(f"box must have positive widths, got {box_lo} .. {box_hi}")
    A = A * (1.0 / sc)[:, None] * sc[None, :]
    B = B / sc[:, None]
    f0 = f0 / sc
    D = D / sc[:, None]
    T = T / sc[:, None]
    eps = eps / sc
    box_lo, box_hi = box_lo / sc, box_hi / sc
    nd = D.shape[1]
    w = np.ones(p) if weights is None else np.asarray(weights, np.float64)

    s = cp.Variable(p, nonneg=True)
    Gu = cp.Variable((m, p))
    Gam = cp.Variable((p, p))
    GamD = cp.Variable((p, nd))
    bet = cp.Variable(p)
    if symmetric:
        cx = np.zeros(n)
        cu = np.zeros(m)
        cx_expr, cu_expr = cx, cu
    else:
        cx_expr = cp.Variable(n)
        cu_expr = cp.Variable(m)
    AT = A @ T
    cp_image = cx_expr - (A @ cx_expr + B @ cu_expr + f0)  # c_x - centre of the image
    cons = [
        cx_expr + np.abs(T) @ s + eps <= box_hi,
        cx_expr - np.abs(T) @ s - eps >= box_lo,
        cp.abs(cu_expr) + cp.sum(cp.abs(Gu), 1) <= 1.0 - control_margin,
    ]
    if method == "sadraddini":
        cons += [
            T @ Gam == cp.multiply(AT, s[None, :]) + B @ Gu,
            T @ GamD == D,
            T @ bet == cp_image,
            cp.sum(cp.abs(Gam), 1) + cp.sum(cp.abs(GamD), 1) + cp.abs(bet) <= (1 - delta) * s,
        ]
    elif method == "exact":
        N = facet_normals(T)
        N2 = np.concatenate([N, -N])  # both sides
        NT = np.abs(N2 @ T)  # facet offsets are linear in s: N c_x + |N T| s
        img = cp.multiply(N2 @ AT, s[None, :]) + (N2 @ B) @ Gu
        hD = np.abs(N2 @ D).sum(1)
        cons.append(cp.sum(cp.abs(img), 1) + hD - N2 @ cp_image <= (1 - delta) * (NT @ s))
    else:
        raise ValueError(f"method must be 'exact' or 'sadraddini', got {method!r}")
    prob = cp.Problem(cp.Maximize(cp.geo_mean(s, list(w))), cons)  # = max sum w log s
    prob.solve(solver=cp.CLARABEL, verbose=verbose)
    if prob.status not in ("optimal", "optimal_inaccurate") or s.value is None:
        raise RuntimeError(f"RCI program not solved: status {prob.status}")
    sv = np.maximum(np.asarray(s.value), 0.0)
    cx_v = sc * np.asarray(cx_expr.value if not symmetric else cx, np.float64).reshape(n)
    cu_v = np.asarray(cu_expr.value if not symmetric else cu, np.float64).reshape(m)
    if method == "sadraddini":
        full = np.concatenate([Gam.value, GamD.value, np.asarray(bet.value).reshape(p, 1)], 1)
        safe = np.where(sv > 0, sv, 1.0)
        gamma = np.where(sv[:, None] > 0, full / safe[:, None], 0.0)
    else:
        gamma = np.zeros((p, 0))
    return SynthesisResult(
        center=cx_v,
        generators=(T * sc[:, None]) * sv[None, :],
        ctrl_center=cu_v,
        ctrl_generators=np.asarray(Gu.value, np.float64),
        gamma=gamma,
        scale=sv,
        status=str(prob.status),
        objective=float(prob.value) if prob.value is not None else -math.inf,
    )
