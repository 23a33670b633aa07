"""Linear one-step models with a certified remainder box (spec A §2.3, §11.1; pitfall P6).

The three systems with RCI sets (pendulum, planar quadrotor, cart-pole) integrate with
semi-implicit Euler (spec A §5): ``v' = v + dt a(x, u) + dt S_w w`` and ``p' = p + dt v'``, so
the one-step map is linear in ``(x, acceleration)``::

    x' = M_x x + M_a (a(x, u) + S_w w)          M_x, M_a: constant (n x n), (n x n_v)

Only the accelerations ``a(x, u)`` are nonlinear.  We replace them by an affine model
``a_lin = J z + a0`` (``z = (x, u)``) and bound the remainder ``rho = a - a_lin`` over a box
``H x U`` of states and actions *with certainty* (outward-rounded interval arithmetic on a fine
grid of cells, :mod:`safegrad.invariance.interval`).  Then, for every ``x in H``, ``u in U``,
``w in W``::

    F(x, u, w) = A x + B u + f0 + E (w - c_W) + G_R r,   r in [-1, 1]^{n_r}   (exactly, some r)

with ``A = M_x + M_a J_x``, ``B = M_a J_u``, ``f0 = M_a (a0 + rho_mid + S_w c_W)``,
``E = M_a S_w`` and ``G_R = M_a diag(rho_half)`` (zero columns dropped).  The RCI synthesis
treats ``E G_W`` and ``G_R`` as disturbance generators, so its invariance proof holds for the
nonlinear simulator on ``H`` (angle wrapping and the state clamp are inactive inside the RCI set,
which lies strictly inside ``S`` with ``|theta| < pi``).

The affine model is a minimax (Chebyshev) fit of each acceleration over a grid of ``H x U``
(an LP), which for the pendulum reduces the remainder from ``14.7 |sin theta - theta|`` (the
Jacobian at 0) to about a third of it; any fit is sound because the remainder is bounded
afterwards, for the fit actually used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from safegrad.invariance.interval import Dual, Interval, cos, sin, sqr

__all__ = [
    "AccelModel",
    "LinearModel",
    "accel_model",
    "fit_linear_model",
]


@dataclass(frozen=True)
class AccelModel:
    """Semi-implicit-Euler structure and accelerations of a system (spec A §5).

    Attributes:
        system: the :class:`~safegrad.systems.ControlSystem`.
        accel: ``accel(x, u) -> list of n_v accelerations`` (``x``, ``u``: lists of floats,
            numpy arrays or :class:`Interval`), without the disturbance; entries of ``x``/``u``
            that a component does not use may be ``None``.
        deps: for each acceleration component, the indices into ``z = (x, u)`` it depends on.
        M_x: ``(n, n)``; M_a: ``(n, n_v)``; S_w: ``(n_v, q)`` (how ``w`` enters the
            accelerations); all float64 numpy.
    """

    system: object
    accel: Callable[[Sequence, Sequence], list]
    deps: tuple[tuple[int, ...], ...]
    M_x: np.ndarray
    M_a: np.ndarray
    S_w: np.ndarray

    @property
    def n(self) -> int:
        return self.M_x.shape[0]

    @property
    def m(self) -> int:
        return int(self.system.action_dim)

    @property
    def n_v(self) -> int:
        return self.M_a.shape[1]

    def step_numpy(self, x: np.ndarray, u: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Unwrapped one-step map ``(N, n), (N, m), (N, q) -> (N, n)`` from this model (tests)."""
        acc = self.accel(list(x.T), list(u.T))
        a = np.stack(
            [np.broadcast_to(np.asarray(v, dtype=np.float64), x.shape[:1]) for v in acc], -1
        )
        return x @ self.M_x.T + (a + w @ self.S_w.T) @ self.M_a.T


def _semi_implicit_matrices(system) -> tuple[np.ndarray, np.ndarray]:
    n, dt = int(system.state_dim), float(system.dt)
    pos, vel = list(system.position_indices), list(system.velocity_indices)
    if system.integrator != "semi_implicit_euler" or len(pos) != len(vel) or len(pos) * 2 != n:
        raise ValueError(
            f"{type(system).__name__}: RCI synthesis needs a semi-implicit Euler system with "
            f"positions and velocities; got integrator={system.integrator!r}"
        )
    M_x = np.eye(n)
    M_a = np.zeros((n, len(vel)))
    for k, (p, v) in enumerate(zip(pos, vel)):
        M_x[p, v] = dt
        M_a[v, k] = dt
        M_a[p, k] = dt * dt
    return M_x, M_a


def _disturbance_map(system, M_a: np.ndarray) -> np.ndarray:
    """``S_w`` from the system's own ``E = dF/dw`` (velocity rows divided by ``dt``)."""
    n, m = int(system.state_dim), int(system.action_dim)
    x = torch.zeros(n, dtype=torch.float64)
    u = torch.zeros(m, dtype=torch.float64)
    _, _, E = system.linearize(x, u)
    E = E.numpy()
    vel = list(system.velocity_indices)
    S_w = E[vel] / float(system.dt)
    if not np.allclose(M_a @ S_w, E, atol=1e-12):
        raise ValueError(f"{type(system).__name__}: disturbance does not enter the accelerations")
    return S_w


def accel_model(system) -> AccelModel:
    """The :class:`AccelModel` of a shipped system (Pendulum, PlanarQuadrotor, CartPole).

    The acceleration expressions restate the systems' equations (spec A §5.1, §5.2, §5.4); the
    tests check them against ``system.step`` at random points.
    """
    from safegrad.systems import CartPole, Pendulum, PlanarQuadrotor

    M_x, M_a = _semi_implicit_matrices(system)
    S_w = _disturbance_map(system, M_a)
    if isinstance(system, Pendulum):
        c_sin, c_u = system._c_sin, system._c_u

        def accel(x, u):
            return [c_sin * sin(x[0]) + c_u * u[0]]

        deps = ((0, 2),)
    elif isinstance(system, PlanarQuadrotor):
        g, kt, cr = system.g, system.thrust_gain, system._c_roll
        k0, k1 = system.k0, system.k1

        def accel(x, u):
            thrust = kt * u[0] + g if u[0] is not None else None
            ax = thrust * sin(x[2]) if thrust is not None else None
            az = thrust * cos(x[2]) - g if thrust is not None else None
            aphi = None
            if x[5] is not None and u[1] is not None:
                aphi = cr * u[1] - k0 * x[2] - k1 * x[5]
            return [ax, az, aphi]

        deps = ((2, 6), (2, 6), (2, 5, 7))
    elif isinstance(system, CartPole):
        c_pml, c_force, c_mp = system._c_pml, system._c_force, system._c_mp
        g, length = system.g, system._l

        def accel(x, u):
            th, thd = x[1], x[3]
            s, c = sin(th), cos(th)
            temp = c_pml * sqr(thd) * s + c_force * u[0]
            den = length * (4.0 / 3.0 - c_mp * sqr(c))
            thdd0 = (g * s - c * temp) / den
            xdd = temp - c_pml * c * thdd0
            return [xdd, thdd0]

        deps = ((1, 3, 4), (1, 3, 4))
    else:
        raise ValueError(
            f"no acceleration model for {type(system).__name__}; RCI synthesis supports "
            "Pendulum, PlanarQuadrotor and CartPole"
        )
    return AccelModel(system, accel, deps, M_x, M_a, S_w)


@dataclass
class LinearModel:
    """``x' = A x + B u + f0 + E (w - c_W) + G_R r`` with ``r in [-1,1]^{n_r}`` on a box.

    Valid (exactly, for some ``r``) for ``x`` in ``[x_lo, x_hi]``, ``u`` in ``[u_lo, u_hi]`` and
    ``w in W``; see the module docstring.  Arrays are float64 numpy.

    Attributes:
        A (n, n), B (n, m), f0 (n,), E (n, q), w_half (q,): ``G_W = diag(w_half)``.
        J (n_v, n + m), a0 (n_v,): the affine acceleration model ``a_lin = J z + a0``.
        rho_lo, rho_hi (n_v,): certified remainder interval of each acceleration.
        G_R (n, n_r): remainder generators ``M_a diag(rho_half)`` (non-zero columns).
        x_lo, x_hi (n,), u_lo, u_hi (m,): the box on which the model is certified.
        cells: grid cells per dependency dimension used for the bound.
    """

    A: np.ndarray
    B: np.ndarray
    f0: np.ndarray
    E: np.ndarray
    w_half: np.ndarray
    J: np.ndarray
    a0: np.ndarray
    rho_lo: np.ndarray
    rho_hi: np.ndarray
    G_R: np.ndarray
    x_lo: np.ndarray
    x_hi: np.ndarray
    u_lo: np.ndarray
    u_hi: np.ndarray
    cells: list[int] = field(default_factory=list)

    @property
    def disturbance_generators(self) -> np.ndarray:
        """``[E G_W, G_R]`` ``(n, q' + n_r)`` (zero columns of ``E G_W`` dropped)."""
        EG = self.E * self.w_half[None, :]
        EG = EG[:, np.abs(EG).sum(0) > 0]
        return np.concatenate([EG, self.G_R], 1)


def _grid(lo: np.ndarray, hi: np.ndarray, num: int) -> np.ndarray:
    axes = [np.linspace(a, b, num) for a, b in zip(lo, hi)]
    return np.stack([g.reshape(-1) for g in np.meshgrid(*axes, indexing="ij")], -1)


def _component(model: AccelModel, k: int, zs: list) -> object:
    """Evaluate acceleration ``k`` with ``zs`` (list over z-indices; None where unused)."""
    n = model.n
    return model.accel(zs[:n], zs[n:])[k]


def _minimax_fit(values: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, float]:
    """Chebyshev fit ``min_t max_j |values_j - coef . pts_j - c0|`` (LP, scipy HiGHS)."""
    from scipy.optimize import linprog

    N, d = pts.shape
    # variables (coef (d), c0, t); rows: +-(values - pts coef - c0) <= t
    ones = np.ones((N, 1))
    A_ub = np.block([[-pts, -ones, -ones], [pts, ones, -ones]])
    b_ub = np.concatenate([-values, values])
    cost = np.zeros(d + 2)
    cost[-1] = 1.0
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=[(None, None)] * (d + 2), method="highs")
    if res.status != 0:
        raise RuntimeError(f"minimax fit failed: {res.message}")
    return res.x[: d + 1], float(res.x[-1])


def _cell_remainder(
    model: AccelModel,
    k: int,
    dep: list[int],
    Jk: np.ndarray,
    a0k: float,
    lows: list[np.ndarray],
    highs: list[np.ndarray],
) -> Interval:
    """Enclosure of ``a_k(z) - Jk z - a0k`` on each cell ``[lows, highs]`` (per cell).

    The intersection of the naive interval evaluation and the mean-value form
    ``rem(centre) + sum_i rem_i'(cell) [-h_i, h_i]`` (gradients by interval forward-mode
    differentiation, :class:`~safegrad.invariance.interval.Dual`); both are enclosures.
    """
    n, m = model.n, model.m
    d = len(dep)
    # naive enclosure
    zs: list = [None] * (n + m)
    cells = []
    for j, i in enumerate(dep):
        cells.append(Interval(lows[j], highs[j]))
        zs[i] = cells[j]
    lin = Interval(a0k)
    for j, i in enumerate(dep):
        lin = lin + cells[j] * float(Jk[i])
    acc = _component(model, k, zs)
    acc = acc if isinstance(acc, Interval) else Interval(acc)
    naive = acc - lin
    # mean-value form
    cen, half = [], []
    for j in range(d):
        c = 0.5 * (lows[j] + highs[j])
        cen.append(c)
        half.append(np.maximum(highs[j] - c, c - lows[j]))
    zc: list = [None] * (n + m)
    for j, i in enumerate(dep):
        zc[i] = Interval(cen[j])
    linc = Interval(a0k)
    for i in dep:
        linc = linc + zc[i] * float(Jk[i])
    accc = _component(model, k, zc)
    accc = accc if isinstance(accc, Interval) else Interval(accc)
    mv = accc - linc
    zd: list = [None] * (n + m)
    for j, i in enumerate(dep):
        zd[i] = Dual.variable(cells[j], j, d)
    accd = _component(model, k, zd)
    for j, i in enumerate(dep):
        grad = accd.grad[j] if isinstance(accd, Dual) else Interval(0.0)
        grad = grad - float(Jk[i])
        mv = mv + grad * Interval(-half[j], half[j])
    return Interval(np.maximum(naive.lo, mv.lo), np.minimum(naive.hi, mv.hi), _check=False)


def fit_linear_model(
    model: AccelModel,
    x_lo: Sequence[float],
    x_hi: Sequence[float],
    u_lo: Sequence[float] | None = None,
    u_hi: Sequence[float] | None = None,
    *,
    fit: str = "minimax",
    fit_points: int = 25,
    cell_budget: int = 1_000_000,
    inflate: float = 0.0,
) -> LinearModel:
    """Affine acceleration model and certified remainder box on ``[x_lo, x_hi] x [u_lo, u_hi]``.

    Args:
        model: from :func:`accel_model`.
        x_lo, x_hi: ``(n,)`` state box ``H`` (only the coordinates the accelerations depend on
            matter).  u_lo, u_hi: ``(m,)`` action box (default ``[-1, 1]^m``).
        fit: ``"minimax"`` (Chebyshev fit on a grid, default) or ``"jacobian"`` (the Jacobian at
            the box centre).
        fit_points: grid points per dimension for the fit.
        cell_budget: cells of the interval-arithmetic grid per component (the bound's
            over-estimate shrinks linearly with the cell width).
        inflate: widen each certified remainder interval by this fraction of its width on both
            sides (a margin so that an independent re-bound on a coarser grid still fits).

    Returns:
        :class:`LinearModel` whose remainder interval is certified on the box.
    """
    n, m, nv = model.n, model.m, model.n_v
    x_lo, x_hi = np.asarray(x_lo, np.float64), np.asarray(x_hi, np.float64)
    u_lo = -np.ones(m) if u_lo is None else np.asarray(u_lo, np.float64)
    u_hi = np.ones(m) if u_hi is None else np.asarray(u_hi, np.float64)
    if x_lo.shape != (n,) or x_hi.shape != (n,) or u_lo.shape != (m,) or u_hi.shape != (m,):
        raise ValueError(f"boxes must have shapes ({n},) and ({m},)")
    if (x_lo > x_hi).any() or (u_lo > u_hi).any():
        raise ValueError("box lower bounds exceed upper bounds")
    z_lo, z_hi = np.concatenate([x_lo, u_lo]), np.concatenate([x_hi, u_hi])
    J = np.zeros((nv, n + m))
    a0 = np.zeros(nv)
    rho_lo, rho_hi = np.zeros(nv), np.zeros(nv)
    cells_used = []
    for k in range(nv):
        dep = list(model.deps[k])
        d = len(dep)
        lo, hi = z_lo[dep], z_hi[dep]
        if fit == "minimax":
            pts = _grid(lo, hi, fit_points)
            zs: list = [None] * (n + m)
            for j, i in enumerate(dep):
                zs[i] = pts[:, j]
            vals = np.broadcast_to(np.asarray(_component(model, k, zs), np.float64), pts.shape[:1])
            coef, _ = _minimax_fit(np.array(vals), pts)
            J[k, dep], a0[k] = coef[:d], coef[d]
        elif fit == "jacobian":
            cen = 0.5 * (lo + hi)
            h = 1e-6 * np.maximum(1.0, np.abs(cen))
            for j, i in enumerate(dep):
                zp: list = [None] * (n + m)
                zm: list = [None] * (n + m)
                for jj, ii in enumerate(dep):
                    zp[ii] = cen[jj] + (h[jj] if jj == j else 0.0)
                    zm[ii] = cen[jj] - (h[jj] if jj == j else 0.0)
                J[k, i] = (_component(model, k, zp) - _component(model, k, zm)) / (2 * h[j])
            zc: list = [None] * (n + m)
            for jj, ii in enumerate(dep):
                zc[ii] = cen[jj]
            a0[k] = _component(model, k, zc) - J[k, dep] @ cen
        else:
            raise ValueError(f"fit must be 'minimax' or 'jacobian', got {fit!r}")
        # certified remainder: interval evaluation on a grid of cells, in chunks
        # dimensions of zero width need a single cell
        wide = [j for j in range(d) if hi[j] > lo[j]]
        per = max(2, int(cell_budget ** (1.0 / max(len(wide), 1))))
        counts = [per if j in wide else 1 for j in range(d)]
        cells_used.append(per)
        edges = [np.linspace(lo[j], hi[j], counts[j] + 1) for j in range(d)]
        r_lo, r_hi = math.inf, -math.inf
        # iterate over the first axis in chunks to bound memory
        first = edges[0]
        chunk = max(1, counts[0] // 16)
        for start in range(0, counts[0], chunk):
            stop = min(counts[0], start + chunk)
            sub_edges = [first[start : stop + 1]] + edges[1:]
            lows = np.meshgrid(*[e[:-1] for e in sub_edges], indexing="ij")
            highs = np.meshgrid(*[e[1:] for e in sub_edges], indexing="ij")
            lows = [a.reshape(-1) for a in lows]
            highs = [a.reshape(-1) for a in highs]
            rem = _cell_remainder(model, k, dep, J[k], a0[k], lows, highs)
            r_lo = min(r_lo, float(rem.lo.min()))
            r_hi = max(r_hi, float(rem.hi.max()))
        pad = inflate * (r_hi - r_lo)
        rho_lo[k], rho_hi[k] = r_lo - pad, r_hi + pad
    M_x, M_a = model.M_x, model.M_a
    A = M_x + M_a @ J[:, :n]
    B = M_a @ J[:, n:]
    sysm = model.system
    w_c = sysm.disturbance_centre.numpy()
    w_half = sysm.disturbance_halfwidth.numpy()
    rho_mid, rho_half = 0.5 * (rho_lo + rho_hi), 0.5 * (rho_hi - rho_lo)
    # the half-width is rounded up so that mid +- half still covers [rho_lo, rho_hi]
    rho_half = np.nextafter(np.maximum(rho_hi - rho_mid, rho_mid - rho_lo), np.inf)
    f0 = M_a @ (a0 + rho_mid + model.S_w @ w_c)
    E = M_a @ model.S_w
    G_R = M_a * rho_half[None, :]
    G_R = G_R[:, rho_half > 0]
    return LinearModel(
        A=A, B=B, f0=f0, E=E, w_half=w_half, J=J, a0=a0, rho_lo=rho_lo, rho_hi=rho_hi,
        G_R=G_R, x_lo=x_lo, x_hi=x_hi, u_lo=u_lo, u_hi=u_hi, cells=cells_used,
    )  # fmt: skip
