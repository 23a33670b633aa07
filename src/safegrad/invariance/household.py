"""A certified safe set for ``ManageHousehold-v0``: the maximal robust control invariant (RCI)
set of the household's linear dynamics (docs/invariance.md, "Household"; issue 5).

The paper-era safe box of spec A §5.3 is a one-step look-ahead, not invariant: from some states
every action leads to a state from which no action keeps ``T_in`` in ``[18, 24]`` (the heat pump
only heats, the building responds with a time constant of 240 h).  Here the dynamics are linear
and the disturbance (the outside temperature ``T_out``) is bounded, so the maximal RCI set inside
``S`` can be computed exactly:

* the battery is decoupled: ``SoC' = SoC + dt p_ess u_0``; ``[0, soc_max]`` is invariant
  (``u_0 = 0`` stays), so ``Ω = [0, soc_max] x Ω_th``;
* the thermal part ``x = (T_in, T_ret)``, ``x' = A x + b u_1 + e w + f`` with one input
  ``u_1 in [-1, 1]`` and one disturbance ``w = T_out in [w_lo, w_hi]``:
  ``Ω_0 = S_th``, ``Ω_{k+1} = Ω_k ∩ Pre(Ω_k)`` with
  ``Pre(Ω) = {x : ∃u ∀w: A x + b u + e w + f ∈ Ω}``.  For an H-polygon ``{H y <= h}`` the
  ``∀w`` is a tightening by ``max_w H e w`` and the ``∃u`` a Fourier-Motzkin elimination of the
  scalar ``u`` (exact); redundant rows are dropped from the polygon's vertices.  The iteration
  stops at a fixed point (every vertex of ``Ω_k`` lies in ``Pre(Ω_k)``, checked exactly: the
  feasible ``u`` of a vertex is an interval), which is then the maximal RCI set.

Why not the spec's ``W = [-9.3, 31.1]`` degC: with ``T_out`` held at 31 degC the room drifts to
31 degC whatever the heat pump does, so no RCI set inside ``T_in <= 24`` exists.  The task's
episodes replay recorded hours that are known in advance; the environment uses their range
(plus a margin), see :class:`safegrad.envs.ManageHousehold`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ThermalModel", "HouseholdInvariantSet", "thermal_model", "household_invariant_set"]


@dataclass(frozen=True)
class ThermalModel:
    """``x' = A x + b u + e w + f`` of ``x = (T_in, T_ret)`` (float64 arrays)."""

    A: np.ndarray  # (2, 2)
    b: np.ndarray  # (2,)
    e: np.ndarray  # (2,)
    f: np.ndarray  # (2,)


def thermal_model(system) -> ThermalModel:
    """The thermal part of :class:`safegrad.systems.HouseholdEnergy` (explicit Euler, exact)."""
    dt = float(system.dt)
    A = np.array(
        [
            [1.0 - dt * system.c0, dt * system.c1],
            [dt * system.c2, 1.0 - dt * system.c2],
        ]
    )
    hp_mid = 0.5 * (system.p_hp_min + system.p_hp_max)
    hp_half = 0.5 * (system.p_hp_max - system.p_hp_min)
    b = np.array([0.0, dt * system.c4 * hp_half])
    e = np.array([dt / system.tau, 0.0])
    f = np.array([0.0, dt * system.c4 * hp_mid])
    return ThermalModel(A, b, e, f)


def _vertices(H: np.ndarray, h: np.ndarray, tol: float) -> np.ndarray:
    """Vertices ``(V, 2)`` of the bounded polygon ``{H y <= h}`` (pairwise intersections that
    satisfy every row), de-duplicated."""
    k = H.shape[0]
    i, j = np.triu_indices(k, 1)
    det = H[i, 0] * H[j, 1] - H[i, 1] * H[j, 0]
    ok = np.abs(det) > 1e-12
    i, j, det = i[ok], j[ok], det[ok]
    x = (h[i] * H[j, 1] - H[i, 1] * h[j]) / det
    y = (H[i, 0] * h[j] - h[i] * H[j, 0]) / det
    P = np.stack([x, y], 1)
    feas = (P @ H.T - h <= tol * (1.0 + np.abs(h))).all(1)
    P = P[feas]
    if len(P) == 0:
        return P
    keep = [0]
    for n in range(1, len(P)):
        if np.min(np.abs(P[keep] - P[n]).max(1)) > 1e-9:
            keep.append(n)
    return P[keep]


def _prune(H: np.ndarray, h: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalise the rows and keep those that support an edge of the polygon (two distinct
    vertices on the row's line); duplicates are merged."""
    nrm = np.linalg.norm(H, axis=1)
    H, h = H / nrm[:, None], h / nrm
    V = _vertices(H, h, tol)
    if len(V) < 3:
        raise ValueError("the invariant-set iteration produced an empty or degenerate polygon")
    tight = np.abs(V @ H.T - h) <= 1e-9 * (1.0 + np.abs(h))  # (V, k)
    keep = tight.sum(0) >= 2
    H, h = H[keep], h[keep]
    # merge duplicated rows
    out_H, out_h = [], []
    for r in range(len(h)):
        if not any(np.allclose(H[r], q, atol=1e-12) for q in out_H):
            out_H.append(H[r])
            out_h.append(h[r])
    return np.array(out_H), np.array(out_h)


def _pre_rows(H, h, model: ThermalModel, u_lo, u_hi, w_lo, w_hi):
    """Rows of ``Pre({H y <= h})`` (Fourier-Motzkin elimination of the scalar input)."""
    alpha = H @ model.A  # (k, 2)
    beta = H @ model.b  # (k,)
    he = H @ model.e
    gamma = h - H @ model.f - np.maximum(he * w_lo, he * w_hi)
    # input bounds as rows: u <= u_hi, -u <= -u_lo
    alpha = np.vstack([alpha, np.zeros((2, 2))])
    beta = np.concatenate([beta, [1.0, -1.0]])
    gamma = np.concatenate([gamma, [u_hi, -u_lo]])
    zero = np.abs(beta) <= 1e-14
    pos, neg = np.nonzero(beta > 1e-14)[0], np.nonzero(beta < -1e-14)[0]
    rows = [alpha[zero]]
    rhs = [gamma[zero]]
    for p in pos:
        for n in neg:
            rows.append((-beta[n] * alpha[p] + beta[p] * alpha[n])[None])
            rhs.append(np.array([-beta[n] * gamma[p] + beta[p] * gamma[n]]))
    R, r = np.vstack(rows), np.concatenate(rhs)
    nz = np.linalg.norm(R, axis=1) > 1e-14
    if np.any(~nz & (r < -1e-12)):
        raise ValueError("the pre-set is empty")
    return R[nz], r[nz]


def _input_interval(v, H, h, model: ThermalModel, u_lo, u_hi, w_lo, w_hi):
    """The inputs ``u`` that keep ``A v + b u + e w + f`` in ``{H y <= h}`` for every ``w``:
    ``(lower, upper)`` (empty if ``lower > upper``)."""
    beta = H @ model.b
    he = H @ model.e
    slack = h - H @ (model.A @ v + model.f) - np.maximum(he * w_lo, he * w_hi)
    lower, upper = u_lo, u_hi
    for bi, si, hi in zip(beta, slack, h):
        if bi > 1e-14:
            upper = min(upper, si / bi)
        elif bi < -1e-14:
            lower = max(lower, si / bi)
        elif si < -1e-9 * (1.0 + abs(hi)):  # (a vertex on the boundary: rounding)
            return 1.0, -1.0
    return lower, upper


@dataclass(frozen=True)
class HouseholdInvariantSet:
    """``Ω = [0, soc_max] x {x_th : H x_th <= h}`` (float64 arrays).

    Attributes:
        H, h: ``(k, 2)``, ``(k,)`` unit rows of the thermal polygon in ``(T_in, T_ret)``.
        vertices: ``(V, 2)`` its vertices.
        soc_bounds: ``(0, soc_max)``.
        w_bounds: the disturbance interval ``[w_lo, w_hi]`` it is invariant for.
        iterations: iterations of ``Ω_{k+1} = Ω_k ∩ Pre(Ω_k)`` to the fixed point.
        min_input_slack: the smallest width of the feasible input interval over the vertices
            (``> 0``: every state of ``Ω`` has an interval of admissible ``u_1``).
    """

    H: np.ndarray
    h: np.ndarray
    vertices: np.ndarray
    soc_bounds: tuple[float, float]
    w_bounds: tuple[float, float]
    iterations: int
    min_input_slack: float

    def state_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``(k + 2, 3)``, ``(k + 2,)`` of ``Ω`` in the full state ``(SoC, T_in, T_ret)``."""
        k = self.H.shape[0]
        C = np.zeros((k + 2, 3))
        C[0, 0], C[1, 0] = 1.0, -1.0
        C[2:, 1:] = self.H
        d = np.concatenate([[self.soc_bounds[1], -self.soc_bounds[0]], self.h])
        return C, d

    def contains(self, x: np.ndarray, tol: float = 1e-9) -> np.ndarray:
        """``(N,)`` bool for states ``x (N, 3)``."""
        C, d = self.state_rows()
        return (np.asarray(x) @ C.T - d <= tol).all(-1)


def household_invariant_set(
    system, w_low: float, w_high: float, *, max_iter: int = 500, tol: float = 1e-10
) -> HouseholdInvariantSet:
    """The maximal RCI set of :class:`~safegrad.systems.HouseholdEnergy` inside its state box
    ``S`` for ``T_out in [w_low, w_high]`` (module docstring).

    Raises:
        ValueError: no non-empty RCI set exists for this disturbance interval (e.g. an outside
            temperature above the comfort bound: the heat pump cannot cool), or the iteration
            did not reach a fixed point within ``max_iter``.
    """
    if not w_low <= w_high:
        raise ValueError(f"need w_low <= w_high, got {w_low}, {w_high}")
    model = thermal_model(system)
    lo = system.state_low.tolist()
    hi = system.state_high.tolist()
    if w_high >= hi[1]:  # held there, the room drifts to T_out: the heat pump cannot cool
        raise ValueError(
            f"no robust control invariant set inside S exists for T_out up to {w_high} degC "
            f">= the comfort bound T_in <= {hi[1]} degC; the heat pump can only heat"
        )
    H = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    h = np.array([hi[1], -lo[1], hi[2], -lo[2]])
    u_lo, u_hi = -1.0, 1.0
    for it in range(1, max_iter + 1):
        try:
            R, r = _pre_rows(H, h, model, u_lo, u_hi, w_low, w_high)
            H_new, h_new = _prune(np.vstack([H, R]), np.concatenate([h, r]), tol)
        except ValueError as exc:
            raise ValueError(
                f"no robust control invariant set inside S exists for T_out in [{w_low}, "
                f"{w_high}] degC ({exc}); the heat pump can only heat"
            ) from None
        V = _vertices(H_new, h_new, tol)
        widths = [
            u - l
            for l, u in (
                _input_interval(v, H_new, h_new, model, u_lo, u_hi, w_low, w_high) for v in V
            )
        ]
        unchanged = (
            len(h_new) == len(h)
            and np.allclose(H_new, H, atol=1e-12)
            and np.allclose(h_new, h, rtol=1e-12, atol=1e-12)
        )
        H, h = H_new, h_new
        # every vertex has an admissible input (Ω ⊆ Pre(Ω); the feasible inputs of a vertex are
        # an interval, its width is concave on Ω), up to rounding at a vertex where the input
        # is unique; or a numerical fixed point of the iteration with that property
        if min(widths) >= -1e-12 or (unchanged and min(widths) >= -1e-9):
            return HouseholdInvariantSet(
                H=H,
                h=h,
                vertices=V,
                soc_bounds=(lo[0], hi[0]),
                w_bounds=(float(w_low), float(w_high)),
                iterations=it,
                min_input_slack=float(min(widths)),
            )
    raise ValueError(f"the invariant-set iteration did not converge in {max_iter} iterations")
