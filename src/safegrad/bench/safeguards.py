"""``safegrad bench safeguards``: every safeguard vs the same safeguard in cvxpylayers + Clarabel.

Per task (``BalancePendulum``, ``BalanceQuadrotor``, ``ManageHousehold``, ``NavigateSeeker``,
``ReachAvoid``) and batch size B, the safe sets are those of the task at B reset states
(``env.safe_action_set`` / ``env.cbf_constraints``, float64, seed 0) and the raw actions are
``U([-1, 1]^m)``.  Each cell times one batched call (median of ``--repeats``; forward, and
forward + backward of a random linear functional of the output w.r.t. the action and every
safe-set tensor) of

* ours: :mod:`safegrad.safeguards` (BP, RM, HRM with the zonotopic centre; on ReachAvoid also
  the composite-CBF layer and the CBF-QP);
* the reference formulation (spec A §3.1, spec B §10, as the public reference code builds it):
  CvxpyLayers solved by Clarabel through diffcp, float64, CPU, batched over the environments:

  - BP: ``min ||y - a||^2 s.t. C y <= d, -1 <= y <= 1`` with ``a, C, d`` parameters;
  - RM / HRM: two layers, the inner-zonotope centre (the same QP as ours, Region.zonotope_centre:
    ``N c + |N D| l <= e``, ``t <= l``, ``t >= 0``, same proximal term) and the ray LP
    ``λ_As = max{t : N (c + t d) <= e}``; ``λ_A`` and the radial map in torch;
  - composite CBF: the one-row QP on the composite constraint (computed in torch), the same
    problem the closed form solves;
  - CBF-QP: ``min 1/2 ||u - ū||^2 s.t. L_f h_i + L_g h_i u >= -α h_i`` (spec B Eq. 6).

  Clarabel runs with tight tolerances (``--ref-tol``, default 1e-12) so that the outputs can
  be compared: cvxpylayers canonicalises the squared norm to a second-order cone, whose solution
  error is about the square root of the tolerance (1e-10 left differences of ~1e-6).
  ``max_diff`` is ``max |a_s(ours) - a_s(ref)|`` over the batch and ``grad_diff`` the same for
  the action gradient (diffcp's default ``lsqr`` derivative).

A reference cell whose call is predicted (linearly in B from the previous batch size) to take
longer than ``--cap`` seconds is skipped with the reason recorded.  Writes
``<out>/safeguards.json`` and ``<out>/safeguards.md`` with the command and library versions.
The issue-5 goal: ours >= 50x faster than the reference at 8-16 envs (forward + backward), with
outputs equal to 1e-6.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time

import torch

from safegrad.bench._meta import versions, write_results

__all__ = ["main", "TASKS", "SAFEGUARD_NAMES"]

F64 = torch.float64
TASKS = {
    "BalancePendulum": ("BalancePendulum-v0", {}),
    "BalanceQuadrotor": ("BalanceQuadrotor-v0", {}),
    "ManageHousehold": ("ManageHousehold-v0", {}),
    "NavigateSeeker": ("NavigateSeeker-v0", {}),
    # starts spread over the obstacle field (composite h >= 0), so that constraints are active
    "ReachAvoid": ("ReachAvoid-v0", {"reset_box": ([-1.0, -1.0], [5.0, 5.0])}),
}
SAFEGUARD_NAMES = ("BP", "RM", "HRM", "CompositeCBF", "CBFQP")
CBF_NAMES = ("CompositeCBF", "CBFQP")
#: safeguards whose centre QP is warm-started from the previous call (also timed cold)
WARM_NAMES = ("RM", "HRM")
DEFAULT_BATCHES = (8, 16, 64, 1024)
GOAL_RATIO = 50.0
GOAL_DIFF = 1e-6


def _versions() -> dict[str, str]:
    return versions("cvxpy", "cvxpylayers", "diffcp", "clarabel")


# ---------------------------------------------------------------------------------------------
# instances
# ---------------------------------------------------------------------------------------------


def _instance(task: str, B: int) -> dict:
    """Safe sets of the task at B reset states, raw actions, weights (all float64, detached)."""
    from safegrad import envs

    env_id, kw = TASKS[task]
    env = envs.make(env_id, num_envs=B, seed=0, dtype=F64, **kw)
    env.reset()
    x = env.state.detach()
    P = env.safe_action_set(x)
    m = env.action_dim
    g = torch.Generator().manual_seed(B)
    inst = {
        "env": env,
        "m": m,
        "C": P.C.detach().clone(),
        "d": P.d.detach().clone(),
        "a": 2 * torch.rand(B, m, generator=g, dtype=F64) - 1,
        "w": torch.randn(B, m, generator=g, dtype=F64),
    }
    from safegrad.safeguards.projection import prepare_region
    from safegrad.sets import HPolytope

    region, _, _ = prepare_region(inst["a"], HPolytope(inst["C"], inst["d"]), None, 1e-9)
    inst["solver_frac"] = 0.0 if region.gidx is None else region.gidx.numel() / B
    if hasattr(env, "cbf_constraints"):
        h, lf, lg = env.cbf_constraints(x)
        inst.update(h=h.detach(), lf=lf.detach(), lg=lg.detach())
        inst["kappa"], inst["alpha"] = env.kappa, env.cbf_alpha
    return inst


# ---------------------------------------------------------------------------------------------
# ours
# ---------------------------------------------------------------------------------------------


def _ours(name: str, inst: dict, cold: bool = False):
    """``f(grad: bool) -> (a_s, grad_a)``: one call of our safeguard on the instance.  With
    ``cold`` (RM, HRM) every call uses a fresh module: no warm start of the centre QP from a
    previous call (the dual active-set method from scratch, docs/safeguards.md)."""
    from safegrad import safeguards as sg
    from safegrad.sets import HPolytope

    def make():
        if name == "BP":
            return sg.BoundaryProjection()
        if name == "RM":
            return sg.RayMask("linear", centre="zonotope")
        if name == "HRM":
            return sg.RayMask("tanh", centre="zonotope")
        if name == "CompositeCBF":
            return sg.CompositeCBF(kappa=inst["kappa"], alpha=inst["alpha"])
        return sg.CBFQP(alpha=inst["alpha"])

    mod = make()
    cbf = name in CBF_NAMES
    keys = ("a", "h", "lf", "lg") if cbf else ("a", "C", "d")

    def call(grad: bool):
        nonlocal mod
        if cold:
            mod = make()
        t = {k: inst[k].clone().requires_grad_(grad) for k in keys}
        if cbf:
            s = sg.CBFConstraints(t["h"], t["lf"], t["lg"])
        else:
            s = HPolytope(t["C"], t["d"], validate=False)
        if not grad:
            with torch.no_grad():
                out, info = mod(t["a"], s)
            return out, None, info
        out, info = mod(t["a"], s)
        (out * inst["w"]).sum().backward()
        return out.detach(), t["a"].grad, info

    return call


# ---------------------------------------------------------------------------------------------
# reference: cvxpylayers + Clarabel
# ---------------------------------------------------------------------------------------------


def _solver_args(tol: float, threads: int, backward: bool = True) -> dict:
    out = {
        "solve_method": "Clarabel",
        "tol_gap_abs": tol,
        "tol_gap_rel": tol,
        "tol_feas": tol,
        "tol_ktratio": min(1e-6, tol * 100),
        "n_jobs_forward": threads,
    }
    if backward:  # diffcp's forward-only path (no grad) rejects n_jobs_backward
        out["n_jobs_backward"] = threads
    return out


def _bp_layer(k: int, m: int):
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer

    y = cp.Variable(m)
    a, C, d = cp.Parameter(m), cp.Parameter((k, m)), cp.Parameter(k)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(y - a)), [C @ y <= d, y <= 1, y >= -1])
    return CvxpyLayer(prob, parameters=[a, C, d], variables=[y])


def _qp_layer(k: int, m: int):
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer

    u = cp.Variable(m)
    ub, G, h = cp.Parameter(m), cp.Parameter((k, m)), cp.Parameter(k)
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(u - ub)), [G @ u <= h])
    return CvxpyLayer(prob, parameters=[ub, G, h], variables=[u])


def _centre_layer(k: int, m: int, n_g: int, reg: float):
    """The zonotopic-centre QP of ``Region.zonotope_centre`` (box centre 0)."""
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer

    c, l, t = cp.Variable(m), cp.Variable(n_g), cp.Variable()
    N, ND, e = cp.Parameter((k, m)), cp.Parameter((k, n_g)), cp.Parameter(k)
    obj = -(t + cp.sum(l) / n_g) / 2 + reg / 2 * (
        cp.sum_squares(c) + cp.sum_squares(l) + cp.square(t)
    )
    prob = cp.Problem(cp.Minimize(obj), [N @ c + ND @ l <= e, t <= l, t >= 0])
    return CvxpyLayer(prob, parameters=[N, ND, e], variables=[c])


def _ray_layer(k: int):
    """``λ_As = max{t >= 0 : Nd t <= s}`` with ``Nd = N d``, ``s = e - N c``."""
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer

    t = cp.Variable()
    Nd, s = cp.Parameter(k), cp.Parameter(k)
    prob = cp.Problem(cp.Maximize(t), [cp.multiply(Nd, t) <= s, t >= 0])
    return CvxpyLayer(prob, parameters=[Nd, s], variables=[t])


def _reference(name: str, inst: dict, tol: float, threads: int):
    """``f(grad: bool) -> (a_s, grad_a)``: the cvxpylayers formulation of the same safeguard."""
    from safegrad.safeguards import RayMask, composite_barrier, ray_profile
    from safegrad.safeguards._geometry import box_ray

    B, m = inst["a"].shape
    cbf = name in CBF_NAMES
    keys = ("a", "h", "lf", "lg") if cbf else ("a", "C", "d")
    if name == "BP":
        layer = _bp_layer(inst["C"].shape[1], m)
    elif name == "CompositeCBF":
        layer = _qp_layer(1, m)
    elif name == "CBFQP":
        layer = _qp_layer(inst["h"].shape[1], m)
    else:
        rm = RayMask("linear" if name == "RM" else "tanh")
        D = rm.generator_directions(m, F64)
        k = inst["C"].shape[1] + 2 * m
        centre_layer = _centre_layer(k, m, D.shape[1], rm.centre_reg)
        ray_layer = _ray_layer(k)

    def fwd(t, solver_args):
        if name == "BP":
            (y,) = layer(t["a"], t["C"], t["d"], solver_args=solver_args)
            return y
        if cbf:
            alpha = inst["alpha"]
            if name == "CompositeCBF":
                h, lam = composite_barrier(t["h"], inst["kappa"])
                lf = (lam * t["lf"]).sum(-1, keepdim=True)
                lg = (lam.unsqueeze(-1) * t["lg"]).sum(-2, keepdim=True)
                G, hh = -lg, lf + alpha * h.unsqueeze(-1)
            else:
                G, hh = -t["lg"], t["lf"] + alpha * t["h"]
            (u,) = layer(t["a"], G, hh, solver_args=solver_args)
            return u
        C, d = t["C"], t["d"]
        nrm = torch.linalg.vector_norm(C, dim=-1)
        inert = nrm == 0
        nrm_s = torch.where(inert, torch.ones_like(nrm), nrm)
        N = torch.where(inert.unsqueeze(-1), 0.0, C / nrm_s.unsqueeze(-1))
        e = torch.where(inert, 1.0, d / nrm_s)
        eye = torch.eye(m, dtype=F64)
        N = torch.cat([N, torch.cat([eye, -eye], 0).expand(B, 2 * m, m)], 1)
        e = torch.cat([e, torch.ones(B, 2 * m, dtype=F64)], 1)
        (c,) = centre_layer(N, (N @ D).abs(), e, solver_args=solver_args)
        v = t["a"] - c
        lam_a = torch.linalg.vector_norm(v, dim=-1)
        dirn = v / lam_a.unsqueeze(-1)
        Nd = (N @ dirn.unsqueeze(-1)).squeeze(-1)
        s = e - (N @ c.unsqueeze(-1)).squeeze(-1)
        (lam_as,) = ray_layer(Nd, s, solver_args=solver_args)
        lam_A = box_ray(c, dirn, -torch.ones_like(c), torch.ones_like(c))
        rho = ray_profile(lam_a, lam_as.reshape(B), lam_A, rm.map)
        return c + rho.unsqueeze(-1) * dirn

    def call(grad: bool):
        t = {k: inst[k].clone().requires_grad_(grad) for k in keys}
        if not grad:
            with torch.no_grad():
                return fwd(t, _solver_args(tol, threads, False)).to(F64), None
        out = fwd(t, _solver_args(tol, threads)).to(F64)
        (out * inst["w"]).sum().backward()
        return out.detach(), t["a"].grad

    return call


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------


def _median_time(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls, after a full garbage collection (for ours and the
    reference alike; the collector stays on, so each side pays for the garbage it makes): without
    it, a full collection that the previous cell's garbage triggers inside a sub-millisecond call
    scans every object the cvxpy problems left behind and adds ~5 ms to that call."""
    gc.collect()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _applicable(task: str, name: str) -> bool:
    return name not in CBF_NAMES or task == "ReachAvoid"


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    solver_args = _solver_args(args.ref_tol, args.threads)
    cells = []
    prev_ref: dict[tuple[str, str, str], tuple[int, float]] = {}
    for task in args.tasks:
        for B in args.batches:
            inst = _instance(task, B)
            for name in args.safeguards:
                if not _applicable(task, name):
                    continue
                ours = _ours(name, inst)
                ref = _reference(name, inst, args.ref_tol, args.threads)
                ours(False), ours(True)  # warm-up
                a_fwd, _, info = ours(False)
                _, g_ours, _ = ours(True)
                cell = {
                    "task": task,
                    "env_id": TASKS[task][0],
                    "B": B,
                    "m": inst["m"],
                    "rows": int(inst["h"].shape[1] if name in CBF_NAMES else inst["C"].shape[1]),
                    "safeguard": name,
                    "intervened_frac": float(info["intervened"].double().mean()),
                    # elements whose safe set keeps general rows after pruning (solver path)
                    "solver_frac": None if name in CBF_NAMES else inst["solver_frac"],
                    "fallbacks": int(info["fallback"].sum()),
                    "ours_fwd_ms": 1e3 * _median_time(lambda f=ours: f(False), args.ours_repeats),
                    "ours_fwdbwd_ms": 1e3 * _median_time(lambda f=ours: f(True), args.ours_repeats),
                }
                if name in WARM_NAMES:  # the first call of a fresh module (no warm start)
                    cold = _ours(name, inst, cold=True)
                    cell["ours_fwdbwd_cold_ms"] = 1e3 * _median_time(
                        lambda f=cold: f(True), args.ours_repeats
                    )
                for mode, grad in (("fwd", False), ("fwdbwd", True)):
                    key = (task, name, mode)
                    skip = None
                    if key in prev_ref:
                        pb, pt = prev_ref[key]
                        pred = pt * B / pb
                        if pred > args.cap:
                            skip = (
                                f"predicted {pred:.1f} s per call (linear in B from "
                                f"{pt:.2f} s at B={pb}) > cap {args.cap} s"
                            )
                    if skip:
                        cell[f"ref_{mode}_ms"] = None
                        cell[f"ref_{mode}_skipped"] = skip
                        continue
                    t0 = time.perf_counter()
                    out_ref, g_ref = ref(grad)  # warm-up and the compared output
                    first = time.perf_counter() - t0
                    reps = args.repeats if first * args.repeats < args.cap else 1
                    tm = _median_time(lambda f=ref, g=grad: f(g), reps)
                    prev_ref[key] = (B, tm)
                    cell[f"ref_{mode}_ms"] = 1e3 * tm
                    cell[f"ref_{mode}_repeats"] = reps
                    if grad:
                        cell["grad_diff"] = float((g_ours - g_ref).abs().max())
                    else:
                        cell["max_diff"] = float((a_fwd - out_ref).abs().max())
                for mode in ("fwd", "fwdbwd"):
                    r = cell.get(f"ref_{mode}_ms")
                    cell[f"ratio_{mode}"] = None if r is None else r / cell[f"ours_{mode}_ms"]
                if "ours_fwdbwd_cold_ms" in cell:
                    r = cell.get("ref_fwdbwd_ms")
                    cell["ratio_fwdbwd_cold"] = (
                        None if r is None else r / cell["ours_fwdbwd_cold_ms"]
                    )
                cells.append(cell)
                print(_cell_line(cell), flush=True)
    return {
        "benchmark": "safeguards",
        "command": "safegrad bench safeguards " + " ".join(args.argv),
        "versions": _versions(),
        "settings": {
            "threads": args.threads,
            "repeats": args.repeats,
            "ours_repeats": args.ours_repeats,
            "cap_s": args.cap,
            "dtype": "float64",
            "device": "cpu",
            "reference": "cvxpylayers (diffcp) + Clarabel",
            "reference_solver_args": solver_args,
            "cpu_count": os.cpu_count(),
            # the reference slows down more than ours on a busy machine: record the load
            "load_average_1_5_15min_at_end": list(os.getloadavg())
            if hasattr(os, "getloadavg")
            else None,
        },
        "goal": {"ratio_fwdbwd_at_B_8_16": GOAL_RATIO, "max_diff": GOAL_DIFF},
        "cells": cells,
    }


def _fmt(v, spec=".2f") -> str:
    return "—" if v is None else format(v, spec)


def _cell_line(c: dict) -> str:
    return (
        f"{c['task']:<16} B={c['B']:<5} {c['safeguard']:<12} ours {c['ours_fwd_ms']:.2f}/"
        f"{c['ours_fwdbwd_ms']:.2f} ms  ref {_fmt(c.get('ref_fwd_ms'), '.1f')}/"
        f"{_fmt(c.get('ref_fwdbwd_ms'), '.1f')} ms  ratio {_fmt(c['ratio_fwd'], '.0f')}/"
        f"{_fmt(c['ratio_fwdbwd'], '.0f')}x  diff {_fmt(c.get('max_diff'), '.1e')}"
    )


def to_markdown(res: dict) -> str:
    v, s = res["versions"], res["settings"]
    lines = [
        "# Safeguard benchmark: safegrad vs cvxpylayers + Clarabel",
        "",
        f"Command: `{res['command']}`",
        "",
        f"Versions: safegrad {v['safegrad']}, torch {v['torch']}, cvxpy {v['cvxpy']}, "
        f"cvxpylayers {v['cvxpylayers']}, diffcp {v['diffcp']}, clarabel {v['clarabel']}; "
        f"Python {v['python']}; {v['platform']}.",
        "",
        f"Settings: float64, CPU, torch threads = {s['threads']} (diffcp n_jobs = "
        f"{s['threads']}), median of {s.get('ours_repeats', s['repeats'])} calls (ours) and "
        f"{s['repeats']} calls (reference; fewer when one call is slow), each side after a full "
        f"garbage collection, cap {s['cap_s']} s per reference call; "
        f"Clarabel tolerances "
        f"{s['reference_solver_args']['tol_feas']:.0e}."
        + (
            f" Load average (1/5/15 min) at the end: "
            f"{', '.join(f'{x:.1f}' for x in s['load_average_1_5_15min_at_end'])} on "
            f"{s['cpu_count']} CPUs."
            if s.get("load_average_1_5_15min_at_end")
            else ""
        ),
        "",
        "Each cell: one batched call over B environments' safe sets (reset states, seed 0) and "
        "raw actions U([-1,1]^m). fwd+bwd = forward plus backward of a random linear functional "
        "w.r.t. the action and every safe-set tensor. ratio = reference time / ours. "
        "max diff = max |a_s(ours) - a_s(ref)|, grad diff = the same for d/da. "
        "'interv.' = fraction of elements the safeguard changed. 'solver' = fraction of "
        "elements whose safe set keeps rows with two or more non-zero entries after the rows "
        "redundant on the box part are dropped: those need the 2-D projection (BP) and the "
        "centre QP (RM, HRM); the others are closed form. RM and HRM warm-start the centre QP "
        "from the active set of the module's previous call (docs/safeguards.md, 'Warm start'), "
        "which the timed calls (after warm-up calls on the same instance) always reuse; 'cold' "
        "= fwd+bwd of a fresh module's first call (the centre QP's dual active-set method "
        "from scratch), and its ratio.",
        "",
        "| task | B | safeguard | rows | interv. | solver | ours fwd [ms] | ours fwd+bwd [ms] | "
        "ref fwd [ms] | ref fwd+bwd [ms] | ratio fwd | ratio fwd+bwd | cold fwd+bwd [ms] | "
        "ratio cold | max diff | grad diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for c in res["cells"]:
        lines.append(
            f"| {c['task']} | {c['B']} | {c['safeguard']} | {c['rows']} | "
            f"{c['intervened_frac']:.2f} | {_fmt(c.get('solver_frac'))} | "
            f"{c['ours_fwd_ms']:.2f} | {c['ours_fwdbwd_ms']:.2f} | "
            f"{_fmt(c.get('ref_fwd_ms'), '.1f')} | {_fmt(c.get('ref_fwdbwd_ms'), '.1f')} | "
            f"{_fmt(c['ratio_fwd'], '.0f')} | {_fmt(c['ratio_fwdbwd'], '.0f')} | "
            f"{_fmt(c.get('ours_fwdbwd_cold_ms'))} | {_fmt(c.get('ratio_fwdbwd_cold'), '.0f')} | "
            f"{_fmt(c.get('max_diff'), '.1e')} | {_fmt(c.get('grad_diff'), '.1e')} |"
        )
        for mode in ("fwd", "fwdbwd"):
            if c.get(f"ref_{mode}_skipped"):
                notes.append(
                    f"* {c['task']} B={c['B']} {c['safeguard']} reference {mode}: skipped, "
                    f"{c[f'ref_{mode}_skipped']}."
                )
    lines += [
        "",
        "## Goal check (issue 5): ratio fwd+bwd >= 50 and max diff <= 1e-6 at B = 8, 16",
        "",
    ]
    lines += [
        "| task | safeguard | B | ratio fwd+bwd | ratio cold | max diff | meets goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in res["cells"]:
        if c["B"] not in (8, 16):
            continue
        r, dmax = c["ratio_fwdbwd"], c.get("max_diff")
        ok = r is not None and dmax is not None and r >= GOAL_RATIO and dmax <= GOAL_DIFF
        lines.append(
            f"| {c['task']} | {c['safeguard']} | {c['B']} | {_fmt(r, '.0f')} | "
            f"{_fmt(c.get('ratio_fwdbwd_cold'), '.0f')} | "
            f"{_fmt(dmax, '.1e')} | {'yes' if ok else 'no'} |"
        )
    if notes:
        lines += ["", "## Skipped reference cells", "", *notes]
    return "\n".join(lines) + "\n"


def _parse(argv: list[str]):
    p = argparse.ArgumentParser(
        prog="safegrad bench safeguards",
        description="safeguards (ours) vs the same safeguards in cvxpylayers + Clarabel",
    )
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS), metavar="TASK")
    p.add_argument("--batches", nargs="+", type=int, default=list(DEFAULT_BATCHES))
    p.add_argument(
        "--safeguards", nargs="+", default=list(SAFEGUARD_NAMES), choices=SAFEGUARD_NAMES
    )
    p.add_argument("--repeats", type=int, default=5, help="timed reference calls per cell")
    p.add_argument(
        "--ours-repeats",
        type=int,
        default=25,
        help="timed calls of ours per cell (median; ours is cheap, more calls steady the median)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads and diffcp jobs (default 1: on a small shared CPU more "
        "threads stall)",
    )
    p.add_argument("--cap", type=float, default=3.0, help="skip reference calls predicted slower")
    p.add_argument("--ref-tol", type=float, default=1e-12, help="Clarabel tolerances")
    p.add_argument("--out", default="benchmarks", help="output directory")
    p.add_argument("--quick", action="store_true", help="B in (8, 16), 2 repeats (smoke run)")
    args = p.parse_args(argv)
    if args.quick:
        args.batches, args.repeats = [b for b in args.batches if b <= 16] or [8], 2
        args.ours_repeats = 2
    for name, val in (
        ("--repeats", args.repeats),
        ("--ours-repeats", args.ours_repeats),
        ("--threads", args.threads),
    ):
        if val < 1:
            p.error(f"{name} must be >= 1, got {val}")
    if any(b < 1 for b in args.batches):
        p.error(f"--batches must be positive, got {args.batches}")
    if not (args.cap > 0 and math.isfinite(args.cap)):
        p.error(f"--cap must be a positive number, got {args.cap}")
    args.argv = list(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    res = run(args)
    write_results(args.out, "safeguards", res, to_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
