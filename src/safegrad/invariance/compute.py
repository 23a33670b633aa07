"""RCI synthesis pipelines for the shipped tasks: ``compute_rci`` (spec A §2.4, §11.1-11.2).

Pipeline (offline; cvxpy + Clarabel + scipy):

1. ``S_s`` = the feasible box ``S`` shrunk by ``state_margin`` (relative), so the set lies strictly
   inside ``S`` (pitfall P7) and ``|theta| < pi`` (the angle wrap is inactive).
2. For each candidate *domain* ``H`` (a box that bounds the coordinates the accelerations depend on
   nonlinearly), fit the affine acceleration model on ``H x A`` and certify its remainder box
   (:func:`~safegrad.invariance.model.fit_linear_model`).
3. Build the generator template (per block of coordinates: evenly spread directions in 2-D, or
   real eigenvectors of several pole-placed closed loops in higher dimension, chosen by a seeded
   search over pole sets) and solve the convex program
   (:func:`~safegrad.invariance.synthesis.solve_template_rci`) with ``Z ⊆ H ∩ S_s``, so the
   remainder box is consistent with the set by construction.
4. Keep the largest set over the domains; check its certificate
   (:func:`~safegrad.invariance.verify.check_certificate`) and return an :class:`RCISet`.

Why templates from eigenvectors: the one-step invariance condition asks the closed-loop vector
field to point inwards on every facet.  For slow chains of integrators (quadrotor position, cart)
no control acts on a facet whose normal is orthogonal to ``B``; a facet normal that is a left
eigenvector of a stable closed loop contracts regardless of the facet's extent.  Zonotopes from
evenly spread or random directions were infeasible for the quadrotor's ``(x, phi, x_dot,
phi_dot)`` block (docs/invariance.md).
"""

from __future__ import annotations

import math
import platform
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from safegrad.invariance.model import accel_model, fit_linear_model
from safegrad.invariance.rciset import RCISet
from safegrad.invariance.synthesis import solve_template_rci, zonotope_volume

__all__ = [
    "Block",
    "RCIProblem",
    "RCI_PROBLEMS",
    "compute_rci",
    "system_description",
    "system_compatibility",
]


@dataclass(frozen=True)
class Block:
    """A block of state coordinates with its own generators (product structure).

    Attributes:
        indices: state coordinates of the block.
        kind: ``"uniform"`` (``size`` directions spread evenly over a half circle in the
            coordinates scaled by S's half-widths; 2-D blocks) or ``"eigen"`` (``bases`` sets of
            real closed-loop eigenvectors, from pole placement with the block's ``action``).
        size: number of generators for ``"uniform"``.
        action: action index driving the block (``"eigen"``).
        bases: number of eigenvector bases (``"eigen"``); ``trials`` pole sets are searched.
        pole_range: poles are drawn from ``U(pole_range)`` (``"eigen"``).
    """

    indices: tuple[int, ...]
    kind: str = "uniform"
    size: int = 8
    action: int = 0
    bases: int = 2
    trials: int = 30
    pole_range: tuple[float, float] = (0.2, 0.995)


@dataclass(frozen=True)
class RCIProblem:
    """Synthesis settings of one task (see :data:`RCI_PROBLEMS`)."""

    name: str
    env_id: str
    system_factory: Any
    blocks: tuple[Block, ...]
    domains: tuple[dict[int, float], ...]
    state_margin: float = 1e-3
    state_error: float = 1e-4
    cell_budget: int = 400_000
    remainder_inflation: float = 0.02
    seed: int = 0
    symmetric: bool = True
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _pendulum():
    from safegrad.systems import Pendulum

    return Pendulum()


def _quadrotor():
    from safegrad.systems import PlanarQuadrotor

    return PlanarQuadrotor()


def _cartpole():
    from safegrad.systems import CartPole

    return CartPole()


#: the synthesis settings of the shipped sets (docs/invariance.md explains the choices)
RCI_PROBLEMS: dict[str, RCIProblem] = {
    "BalancePendulum-v0": RCIProblem(
        name="pendulum",
        env_id="BalancePendulum-v0",
        system_factory=_pendulum,
        blocks=(Block((0, 1), "uniform", size=8),),
        domains=({0: 2.64},),
        notes="theta domain 2.64 rad = the paper's hull (larger domains up to 3.1 are feasible)",
    ),
    "BalanceQuadrotor-v0": RCIProblem(
        name="quadrotor",
        env_id="BalanceQuadrotor-v0",
        system_factory=_quadrotor,
        blocks=(
            Block((1, 4), "uniform", size=6),
            Block((0, 2, 3, 5), "eigen", action=1, bases=2, trials=30),
        ),
        domains=({2: 0.15}, {2: 0.17}, {2: 0.2}),
        cell_budget=200_000,
    ),
    "BalanceCartPole-v0": RCIProblem(
        name="cartpole",
        env_id="BalanceCartPole-v0",
        system_factory=_cartpole,
        blocks=(
            Block((0, 1, 2, 3), "eigen", action=0, bases=2, trials=30, pole_range=(0.5, 0.999)),
        ),
        domains=({1: 0.3, 3: 2.0},),
        cell_budget=100_000,
    ),
}


def system_description(system) -> dict[str, Any]:
    """Class name and the constants the set depends on (checked when a task loads the set):
    ``dt``, the boxes ``S`` and ``W``, and every float attribute of the system (``params``)."""
    return {
        "class": type(system).__name__,
        "dt": float(system.dt),
        "state_low": system.state_low.tolist(),
        "state_high": system.state_high.tolist(),
        "disturbance_low": system.disturbance_low.tolist(),
        "disturbance_high": system.disturbance_high.tolist(),
        "action_dim": int(system.action_dim),
        "params": {
            k: float(v)
            for k, v in sorted(vars(system).items())
            if isinstance(v, float) and not k.startswith("__")
        },
    }


def system_compatibility(recorded: dict[str, Any], system) -> list[str]:
    """Reasons why a set made for the ``recorded`` system is not valid for ``system`` (empty if
    valid): a different class, ``dt`` or parameter, a state box ``S`` that does not contain the
    recorded one, or a disturbance box ``W`` not contained in the recorded one (a set robust to
    a larger ``W`` is robust to a smaller one)."""
    ref = system_description(system)
    bad = []
    if recorded.get("class") != ref["class"]:
        bad.append(f"class={recorded.get('class')!r} (system: {ref['class']!r})")
    if abs(float(recorded.get("dt", math.nan)) - ref["dt"]) > 1e-12 or math.isnan(
        float(recorded.get("dt", math.nan))
    ):
        bad.append(f"dt={recorded.get('dt')!r} (system: {ref['dt']!r})")
    tol = 1e-12
    s_lo, s_hi = np.asarray(recorded["state_low"]), np.asarray(recorded["state_high"])
    if (np.asarray(ref["state_low"]) > s_lo + tol).any() or (
        np.asarray(ref["state_high"]) < s_hi - tol
    ).any():
        bad.append(f"state box S={ref['state_low']}..{ref['state_high']} is smaller")
    w_lo, w_hi = np.asarray(recorded["disturbance_low"]), np.asarray(recorded["disturbance_high"])
    if (np.asarray(ref["disturbance_low"]) < w_lo - tol).any() or (
        np.asarray(ref["disturbance_high"]) > w_hi + tol
    ).any():
        bad.append(
            f"disturbance box W={ref['disturbance_low']}..{ref['disturbance_high']} is larger "
            f"than {recorded['disturbance_low']}..{recorded['disturbance_high']}"
        )
    for k, v in recorded.get("params", {}).items():
        if k not in ref["params"] or abs(ref["params"][k] - float(v)) > 1e-12 * max(1.0, abs(v)):
            bad.append(f"{k}={v!r} (system: {ref['params'].get(k)!r})")
    return bad


def _uniform_template(half: np.ndarray, size: int) -> np.ndarray:
    if half.shape[0] != 2:
        raise ValueError("'uniform' templates are for 2-D blocks")
    ang = math.pi * np.arange(size) / size
    return np.stack([np.cos(ang), np.sin(ang)]) * half[:, None]


def _eigen_template(A: np.ndarray, B: np.ndarray, poles_list) -> np.ndarray:
    from scipy.signal import place_poles

    cols = []
    for poles in poles_list:
        K = place_poles(A, B, np.asarray(poles)).gain_matrix
        w, V = np.linalg.eig(A - B @ K)
        if np.abs(w.imag).max() > 1e-9:
            raise ValueError("complex closed-loop poles")
        V = np.real(V)
        cols.append(V / np.linalg.norm(V, axis=0))
    return np.concatenate(cols, 1)


def _assemble(n: int, blocks: tuple[Block, ...], parts: list[np.ndarray]) -> np.ndarray:
    T = np.zeros((n, sum(p.shape[1] for p in parts)))
    col = 0
    for blk, part in zip(blocks, parts):
        T[np.ix_(list(blk.indices), list(range(col, col + part.shape[1])))] = part
        col += part.shape[1]
    return T


def _boxes(problem: RCIProblem, system, domain: dict[int, float]):
    lo = system.state_low.numpy().copy()
    hi = system.state_high.numpy().copy()
    half = 0.5 * (hi - lo)
    s_lo, s_hi = lo + problem.state_margin * half, hi - problem.state_margin * half
    h_lo, h_hi = s_lo.copy(), s_hi.copy()
    for i, v in domain.items():
        h_lo[i], h_hi[i] = max(s_lo[i], -v), min(s_hi[i], v)
    return half, h_lo, h_hi


def compute_rci(
    env_id_or_problem: str | RCIProblem,
    *,
    verbose: bool = False,
    command: str | None = None,
) -> RCISet:
    """Synthesise the RCI set of a task (module docstring); returns an :class:`RCISet` whose
    certificate has been checked (``meta["certificate"]``).

    Args:
        env_id_or_problem: a key of :data:`RCI_PROBLEMS` or an :class:`RCIProblem`.
        verbose: print progress.
        command: the command line recorded in the file (default ``safegrad rci compute ID``).

    Raises:
        ValueError: unknown task.  RuntimeError: no feasible set, or the certificate fails.
    """
    from safegrad.invariance.verify import check_certificate

    if isinstance(env_id_or_problem, RCIProblem):
        problem = env_id_or_problem
    else:
        if env_id_or_problem not in RCI_PROBLEMS:
            raise ValueError(
                f"no RCI problem for {env_id_or_problem!r}; available: {sorted(RCI_PROBLEMS)}"
            )
        problem = RCI_PROBLEMS[env_id_or_problem]
    system = problem.system_factory()
    model = accel_model(system)
    say = print if verbose else (lambda *a, **k: None)
    rng = np.random.default_rng(problem.seed)
    best: tuple[float, Any, Any, Any, dict] | None = None
    template = None
    for domain in problem.domains:
        half, h_lo, h_hi = _boxes(problem, system, domain)
        lm = fit_linear_model(
            model, h_lo, h_hi, cell_budget=problem.cell_budget, inflate=problem.remainder_inflation
        )
        eps = problem.state_error * half
        say(f"domain {domain}: remainder [{lm.rho_lo}, {lm.rho_hi}]")
        if template is None:
            template = _search_template(problem, system, lm, half, h_lo, h_hi, eps, rng, say)
        try:
            res = _solve(lm, template, h_lo, h_hi, eps, problem.symmetric)
        except RuntimeError as err:
            say(f"  infeasible: {err}")
            continue
        vol = zonotope_volume(res.generators)
        say(f"  volume {vol:.6g}, hull {np.abs(res.generators).sum(1).round(4)}")
        if best is None or vol > best[0]:
            best = (vol, res, lm, template, domain)
    if best is None:
        raise RuntimeError(f"{problem.env_id}: no feasible RCI set for any domain")
    vol, res, lm, template, domain = best
    import cvxpy
    import scipy
    import torch

    import safegrad

    lm_dict = {
        k: getattr(lm, k)
        for k in ("A", "B", "f0", "E", "w_half", "J", "a0", "rho_lo", "rho_hi", "x_lo", "x_hi",
                  "u_lo", "u_hi", "G_R")
    }  # fmt: skip
    rci = RCISet(
        name=problem.name,
        env_id=problem.env_id,
        center=res.center,
        generators=res.generators,
        ctrl_center=res.ctrl_center,
        ctrl_generators=res.ctrl_generators,
        linear_model=lm_dict,
        state_error=problem.state_error * _boxes(problem, system, domain)[0],
        system=system_description(system),
        meta={
            "synthesis": {
                "method": "template zonotope, exact facet containment (convex program)",
                "solver": "cvxpy + CLARABEL",
                "status": res.status,
                "objective": "max sum log s (geometric mean of the generator scales)",
                "template": template.tolist(),
                "scale": res.scale.tolist(),
                "domain": {str(k): v for k, v in domain.items()},
                "state_margin": problem.state_margin,
                "state_error": problem.state_error,
                "cell_budget": problem.cell_budget,
                "remainder_inflation": problem.remainder_inflation,
                "fit": "minimax (Chebyshev) affine fit of the accelerations on a grid",
                "remainder": "outward-rounded interval arithmetic, naive ∩ mean-value form",
                "blocks": [
                    {
                        "indices": list(b.indices),
                        "kind": b.kind,
                        "size": b.size,
                        "bases": b.bases,
                        "trials": b.trials,
                    }
                    for b in problem.blocks
                ],  # fmt: skip
                "seed": problem.seed,
                "notes": problem.notes,
            },
            "hull_halfwidth": np.abs(res.generators).sum(1).tolist(),
            "volume": vol,
            "command": command or f"safegrad rci compute {problem.env_id}",
            "versions": {
                "safegrad": safegrad.__version__,
                "numpy": np.__version__,
                "torch": torch.__version__,
                "cvxpy": cvxpy.__version__,
                "scipy": scipy.__version__,
                "python": platform.python_version(),
            },
        },
    )
    cert = check_certificate(rci, system)
    rci.meta["certificate"] = cert
    if not cert["passed"]:
        raise RuntimeError(f"{problem.env_id}: the synthesised set fails its certificate: {cert}")
    return rci


def _solve(lm, template, h_lo, h_hi, eps, symmetric):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return solve_template_rci(
                lm, template, h_lo, h_hi, state_error=eps, symmetric=symmetric, method="exact"
            )
        except Exception as err:  # cvxpy raises SolverError on numerical failure
            raise RuntimeError(str(err)) from err


def _search_template(problem, system, lm, half, h_lo, h_hi, eps, rng, say) -> np.ndarray:
    """Fixed templates for "uniform" blocks; a seeded search over pole sets for "eigen" blocks
    (largest volume of the whole set)."""
    n = int(system.state_dim)
    fixed: list[np.ndarray | None] = []
    for blk in problem.blocks:
        if blk.kind == "uniform":
            fixed.append(_uniform_template(half[list(blk.indices)], blk.size))
        elif blk.kind == "eigen":
            fixed.append(None)
        else:
            raise ValueError(f"unknown block kind {blk.kind!r}")
    eig = [i for i, f in enumerate(fixed) if f is None]
    if not eig:
        return _assemble(n, problem.blocks, fixed)  # type: ignore[arg-type]
    best_vol, best_T = -1.0, None
    trials = max(problem.blocks[i].trials for i in eig)
    for trial in range(trials):
        parts = list(fixed)
        try:
            for i in eig:
                blk = problem.blocks[i]
                idx = list(blk.indices)
                Ab = lm.A[np.ix_(idx, idx)]
                Bb = lm.B[np.ix_(idx, [blk.action])]
                lo, hi = blk.pole_range
                poles = [np.sort(rng.uniform(lo, hi, len(idx)))[::-1] for _ in range(blk.bases)]
                parts[i] = _eigen_template(Ab, Bb, poles)
        except ValueError:
            continue
        T = _assemble(n, problem.blocks, parts)  # type: ignore[arg-type]
        try:
            res = _solve(lm, T, h_lo, h_hi, eps, problem.symmetric)
        except RuntimeError:
            continue
        vol = zonotope_volume(res.generators)
        if vol > best_vol:
            best_vol, best_T = vol, T
            say(f"  template trial {trial}: volume {vol:.6g}")
    if best_T is None:
        raise RuntimeError(f"{problem.env_id}: no feasible template in {trials} trials")
    return best_T
