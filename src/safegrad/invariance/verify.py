"""Verification of an RCI set, independent of its synthesis (spec A §2.4, §11.2, §11.7).

Two checks:

1. :func:`check_certificate` — an algebraic certificate in float64 numpy, no solver:

   * the set was made for this system (class and constants);
   * ``Z ⊕ [-eps, eps]`` lies strictly inside ``S`` (interval hull, pitfall P7) and angles stay
     in ``(-pi, pi)``; the paired control zonotope lies in the action box;
   * the linearisation remainder of the stored affine acceleration model is **re-bounded** by
     interval arithmetic over the hull of ``Z ⊕ eps`` times the action box (an independent grid),
     and the linear model ``A, B, f0, E, G_R`` is rebuilt from it and the system;
   * **exact containment** of the closed-loop image
     ``<A c + B c_u + f0, [A G + B G_u, E G_W, G_R, A diag(eps)]>`` in ``Z``, through ``Z``'s
     facets (recomputed here from ``G``): the support in every facet normal must not exceed the
     facet offset.  With the paired feedback ``c + G beta -> c_u + G_u beta`` this proves: for
     every ``x`` within ``eps`` of ``Z`` there is an action in the box such that
     ``F(x, a, w) in Z`` for every ``w in W`` -- for the nonlinear simulator, since the
     remainder is covered.  (This is exact, whereas the Sadraddini-Tedrake condition is only
     sufficient, so the check does not depend on how the set was found.)

2. :func:`falsify` — simulation on the nonlinear system (``system.step``, angles wrapped): states
   in ``Z`` (random ``beta``, vertices ``beta in {-1, 1}^p``, boundary points with one
   ``|beta_j| = 1``), actions from the paired control and from the *safe action set* of the task
   (for ``m = 1`` its endpoints and a random point, for ``m >= 2`` a vertex in a random
   direction by an LP and the projection of a random action by a QP), random and vertex
   disturbances.  It reports escapes (next state outside ``Z`` by more than ``tol``, or outside
   ``S``), states of the set with an empty safe action set, and states outside ``S``.  A set
   scaled up by 10 % fails it (tested).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from safegrad.invariance.facets import zonotope_hrep
from safegrad.invariance.model import _cell_remainder, accel_model
from safegrad.invariance.rciset import RCISet

__all__ = ["check_certificate", "falsify", "verify_rci"]


def _system_matches(rci: RCISet, system) -> list[str]:
    from safegrad.invariance.compute import system_compatibility

    return system_compatibility(rci.system, system)


def _remainder_on_box(model, J, a0, x_lo, x_hi, u_lo, u_hi, cell_budget):
    """Certified remainder interval of every acceleration on the box (independent grid)."""
    n, m = model.n, model.m
    z_lo, z_hi = np.concatenate([x_lo, u_lo]), np.concatenate([x_hi, u_hi])
    rho_lo, rho_hi = np.zeros(model.n_v), np.zeros(model.n_v)
    for k in range(model.n_v):
        dep = list(model.deps[k])
        lo, hi = z_lo[dep], z_hi[dep]
        d = len(dep)
        per = max(2, int(cell_budget ** (1.0 / d))) if d else 1
        edges = [np.linspace(lo[j], hi[j], per + 1) for j in range(d)]
        r_lo, r_hi = math.inf, -math.inf
        for start in range(per):
            sub = [edges[0][start : start + 2]] + edges[1:]
            lows = [a.reshape(-1) for a in np.meshgrid(*[e[:-1] for e in sub], indexing="ij")]
            highs = [a.reshape(-1) for a in np.meshgrid(*[e[1:] for e in sub], indexing="ij")]
            rem = _cell_remainder(model, k, dep, J[k], float(a0[k]), lows, highs)
            r_lo, r_hi = min(r_lo, float(rem.lo.min())), max(r_hi, float(rem.hi.max()))
        rho_lo[k], rho_hi[k] = r_lo, r_hi
    assert n + m == z_lo.shape[0]
    return rho_lo, rho_hi


def check_certificate(rci: RCISet, system, *, cell_budget: int = 150_000) -> dict[str, Any]:
    """Algebraic certificate of ``rci`` for ``system`` (module docstring), float64.

    Returns:
        dict with ``passed`` (bool) and the numbers: ``containment_margin`` (min over facets of
        ``d_f - support``; must be ``> 0``), ``state_box_margin`` (min distance of the hull of
        ``Z ⊕ eps`` to ``S``'s boundary; ``> 0``), ``control_margin`` (``1 - max |c_u| +
        |G_u| 1``; ``>= 0``), ``rho_lo``/``rho_hi`` (re-bounded remainder), ``num_facets``,
        ``system_mismatch`` (keys that differ), ``model``.
    """
    out: dict[str, Any] = {"model": "nonlinear simulator (certified remainder)"}
    mismatch = _system_matches(rci, system)
    out["system_mismatch"] = mismatch
    c, G = rci.center, rci.generators
    cu, Gu = rci.ctrl_center, rci.ctrl_generators
    eps = rci.state_error
    hull = np.abs(G).sum(1) + eps
    lo_s, hi_s = system.state_low.numpy(), system.state_high.numpy()
    box_margin = float(np.minimum(hi_s - (c + hull), (c - hull) - lo_s).min())
    for i in system.angle_indices:  # the wrap must be inactive
        box_margin = min(box_margin, float(math.pi - (abs(c[i]) + hull[i])))
    out["state_box_margin"] = box_margin
    out["control_margin"] = float(1.0 - (np.abs(cu) + np.abs(Gu).sum(1)).max())
    # remainder re-bounded on the hull of Z + eps and the action box
    model = accel_model(system)
    lm = rci.linear_model
    J, a0 = np.asarray(lm["J"]), np.asarray(lm["a0"])
    m = int(system.action_dim)
    rho_lo, rho_hi = _remainder_on_box(
        model, J, a0, c - hull, c + hull, -np.ones(m), np.ones(m), cell_budget
    )
    out["rho_lo"], out["rho_hi"] = rho_lo.tolist(), rho_hi.tolist()
    out["remainder_within_stored"] = bool(
        (rho_lo >= np.asarray(lm["rho_lo"]) - 1e-9).all()
        and (rho_hi <= np.asarray(lm["rho_hi"]) + 1e-9).all()
    )
    n = model.n
    A = model.M_x + model.M_a @ J[:, :n]
    B = model.M_a @ J[:, n:]
    rho_mid = 0.5 * (rho_lo + rho_hi)
    rho_half = np.nextafter(np.maximum(rho_hi - rho_mid, rho_mid - rho_lo), np.inf)
    w_c = system.disturbance_centre.numpy()
    w_half = system.disturbance_halfwidth.numpy()
    f0 = model.M_a @ (a0 + rho_mid + model.S_w @ w_c)
    E = model.M_a @ model.S_w
    gens = np.concatenate(
        [A @ G + B @ Gu, E * w_half[None, :], model.M_a * rho_half[None, :], A * eps[None, :]], 1
    )
    centre = A @ c + B @ cu + f0
    C, d = zonotope_hrep(c, G)
    support = C @ centre + np.abs(C @ gens).sum(1)
    # float64 rounding of the support sums: a few ulp of the magnitudes involved
    slack = (
        64 * np.finfo(np.float64).eps * (np.abs(C @ centre) + np.abs(C @ gens).sum(1) + np.abs(d))
    )
    margin = d - support - slack
    out["containment_margin"] = float(margin.min())
    out["num_facets"] = int(C.shape[0])
    out["passed"] = bool(
        not mismatch
        and box_margin > 0
        and out["control_margin"] >= 0
        and out["containment_margin"] > 0
    )
    return out


@torch.no_grad()
def falsify(
    rci: RCISet,
    system,
    *,
    num_transitions: int = 100_000,
    seed: int = 0,
    tol: float = 1e-9,
    batch: int = 10_000,
) -> dict[str, Any]:
    """Falsification run on the nonlinear simulator (module docstring), float64 on CPU.

    Returns:
        dict with ``transitions``, ``escapes`` (next state outside ``Z`` beyond ``tol`` or
        outside ``S``), ``empty`` (states of ``Z`` whose safe action set is empty),
        ``states_outside_S``, ``max_violation`` (largest facet violation of a next state),
        ``passed`` (all counts zero).
    """
    from safegrad.invariance.safe_action import action_set_empty, polytope_safe_action_set
    from safegrad.qp import solve_lp

    dt = torch.float64
    gen = torch.Generator().manual_seed(seed)
    t = rci.tensors("cpu", dt)
    C, d = t["C"], t["d"]
    m = int(system.action_dim)
    p = rci.num_generators
    s_lo = system.state_low.to(dt)
    s_hi = system.state_high.to(dt)
    w_lo, w_hi = system.disturbance_low.to(dt), system.disturbance_high.to(dt)
    per_state = 4 if m == 1 else 3
    total = escapes = empty = outside_s = 0
    max_viol = -math.inf
    while total < num_transitions:
        ns = max(1, min(batch, (num_transitions - total + per_state - 1) // per_state))
        beta = 2.0 * torch.rand(ns, p, generator=gen, dtype=dt) - 1.0
        kind = torch.arange(ns) % 3
        signs = (torch.rand(ns, p, generator=gen, dtype=dt) < 0.5).to(dt) * 2.0 - 1.0
        beta = torch.where((kind == 1)[:, None], signs, beta)  # vertices
        j = torch.randint(0, p, (ns,), generator=gen)
        bnd = beta.clone()
        bnd[torch.arange(ns), j] = signs[torch.arange(ns), j]
        beta = torch.where((kind == 2)[:, None], bnd, beta)  # boundary points
        x = t["center"] + beta @ t["generators"].T
        outside_s += int(((x < s_lo) | (x > s_hi)).any(-1).sum())
        P = polytope_safe_action_set(system, x, C, d)
        is_empty = action_set_empty(P)
        empty += int(is_empty.sum())
        ok = ~is_empty
        actions = [(t["ctrl_center"] + beta @ t["ctrl_generators"].T).clamp(-1.0, 1.0)]
        if m == 1:
            c1 = P.C[..., 0]
            safe = torch.where(c1 != 0, c1, torch.ones_like(c1))
            upper = torch.where(c1 > 0, P.d / safe, math.inf).amin(-1)
            lower = torch.where(c1 < 0, P.d / safe, -math.inf).amax(-1)
            r = torch.rand(ns, generator=gen, dtype=dt)
            for a in (lower, upper, lower + r * (upper - lower)):
                actions.append(torch.where(ok, a, 0.0).unsqueeze(-1))
        else:
            direction = torch.randn(ns, m, generator=gen, dtype=dt)
            vert = solve_lp(-direction, P.C, P.d)
            actions.append(torch.where(ok[:, None], vert, 0.0))
            raw = 2.0 * torch.rand(ns, m, generator=gen, dtype=dt) - 1.0
            raw = raw * 1.5
            proj = torch.where(ok[:, None], P.project(raw, check=False), 0.0)
            actions.append(torch.nan_to_num(proj))
        for k, a in enumerate(actions):
            if k > 0:
                a = torch.where(ok[:, None], a, actions[0])  # empty set: paired control only
            if k % 2 == 0:
                w = w_lo + (w_hi - w_lo) * torch.rand(ns, w_lo.numel(), generator=gen, dtype=dt)
            else:
                corner = torch.rand(ns, w_lo.numel(), generator=gen, dtype=dt) < 0.5
                w = torch.where(corner, w_lo, w_hi)
            xn = system.step(x, a, w)
            viol = (xn @ C.T - d).amax(-1)
            out_s = ((xn < s_lo) | (xn > s_hi)).any(-1)
            escapes += int(((viol > tol) | out_s).sum())
            max_viol = max(max_viol, float(viol.max()))
            total += ns
    return {
        "transitions": total,
        "escapes": escapes,
        "empty": empty,
        "states_outside_S": outside_s,
        "max_violation": max_viol,
        "tol": tol,
        "seed": seed,
        "passed": escapes == 0 and empty == 0 and outside_s == 0,
    }


def verify_rci(
    rci: RCISet, system, *, num_transitions: int = 100_000, seed: int = 0
) -> dict[str, Any]:
    """Certificate and falsification; ``passed`` only if both pass."""
    cert = check_certificate(rci, system)
    fals = falsify(rci, system, num_transitions=num_transitions, seed=seed)
    return {"certificate": cert, "falsification": fals, "passed": cert["passed"] and fals["passed"]}
