"""``safegrad bench safety-layers``: the closed-form composite-CBF layer vs exact CBF-QP layers
(spec B §8.1, §10; issue 8).

Methods (all float64 by default, CPU, ``--threads`` torch threads):

==============  ===========================================================================
``composite``   :class:`~safegrad.safeguards.CompositeCBF`, the closed form (spec B Eq. 20-21);
                it solves the **one-row** composite problem (18)-(19), a restriction of (6)
                through ``h <= min_i h_i`` (more conservative, not the same problem)
``cbfqp``       :class:`~safegrad.safeguards.CBFQP`, the exact problem (6) with ``safegrad.qp``
``qpth``        the same layer with ``backend="qpth"`` (qpth ``QPFunction``, eps 1e-12, 20 it.)
``cvxpylayers`` ``backend="cvxpylayers"`` (diffcp + Clarabel, tolerances ``--clarabel-tol``)
``proxsuite``   ``backend="proxsuite"`` (ProxSuite QPLayer, eps 1e-10)
==============  ===========================================================================

The QP baselines solve the plain problem (6) (``min 1/2||u - ū||^2 s.t. L_f h_i + L_g h_i u >=
-α h_i``, no actuator rows, no slack: spec B §10 fairness rule), inside the same
:class:`CBFQP` wrapper, so every method pays the same bookkeeping.

Three parts:

(a) **layer**: for ``I`` obstacles (``ReachAvoid-v0`` with ``num_obstacles=I``, layout seed 0)
    and batch ``B``: forward (``no_grad``) and forward + backward (of a random linear functional
    of ``u_s`` w.r.t. ``ū``, the path SAC's actor loss uses; spec B §5.3) time of one batched
    call, median of ``--repeats``.  States: half uniform in ``[-1, 5]^2``, half within 0.25 m of
    a random obstacle's boundary, all with composite ``h >= 0`` (so that constraints are active);
    ``ū ~ U([-1, 1]^2)`` (the tanh-bounded action, ``u_max = 1``).  A cell whose call is
    predicted (linearly in B from the previous batch of the same method, I, mode) to exceed
    ``--cap`` seconds is skipped with the reason; a slow call is repeated only while the cell
    stays within ``--cell-budget`` seconds.
(b) **ATTS** (the paper's Table 1 metric): average wall time of one SAC training step (one
    environment step + one full SAC update at batch ``--atts-batch`` = 256, the layer used for
    acting, in the actor loss and in the critic target), per method and ``I``, measured side by
    side in this process after ``--atts-warmup`` warm-up steps (needs :class:`safegrad.algos.SAC`).
(c) **accuracy / safety**: on the instances of (a): max violation of the exact constraints (6)
    by each method's output, max difference of each QP backend to ``cbfqp``, the distance
    between the composite and the exact-QP action; on ``--states`` uniform states of
    ``[-1, 5]^2`` with ``min_i h_i >= 0``: the fraction the composite excludes
    (``h < 0 <= min_i h_i``, Lemma 1), and one-step safety of each layer's action.

Writes ``<out>/safety_layers.json``, ``<out>/safety_layers.md`` and ``<out>/safety_layers.png``
with the command, versions and the paper's Table 1 next to ours.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from safegrad.bench._meta import git_revision, versions  # noqa: F401 (re-exported)

__all__ = [
    "METHODS",
    "PAPER_TABLE1",
    "build_layer",
    "main",
    "sample_instance",
    "safeguard_spec",
]

METHODS: dict[str, str] = {
    "composite": "CompositeCBF (closed form, one composite row)",
    "cbfqp": "CBFQP, safegrad.qp (exact problem (6))",
    "qpth": "CBFQP, qpth QPFunction (exact problem (6))",
    "cvxpylayers": "CBFQP, cvxpylayers + Clarabel (exact problem (6))",
    "proxsuite": "CBFQP, ProxSuite QPLayer (exact problem (6))",
}
QP_METHODS = ("cbfqp", "qpth", "cvxpylayers", "proxsuite")
#: spec B §8.1, Table 1: average per-step training time [s] (the paper's hardware, unknown)
PAPER_TABLE1: dict[str, dict[int, float]] = {
    "composite": {3: 0.018, 10: 0.024, 30: 0.043},
    "qpth": {3: 0.13, 10: 0.25, 30: 0.40},
    "cvxpylayers": {3: 0.84, 10: 1.45, 30: 2.26},
}
#: issue 8 acceptance: ATTS ratios (paper minimum, our goal) and layer-level goals at B = 256
ATTS_GOALS = {"qpth": (7.0, 20.0), "cvxpylayers": (46.0, 100.0)}
LAYER_GOALS = {"qpth": 100.0, "cvxpylayers": 1000.0}
DEFAULT_OBSTACLES = (3, 10, 30)
DEFAULT_BATCHES = (1, 256, 4096)
MODES = ("fwd", "fwdbwd")
REGION = (-1.0, 5.0)  # the sampling square of the layout rule (spec B §7)


def _versions() -> dict[str, str]:
    return versions(
        "qpth", "cvxpylayers", "cvxpy", "diffcp", "clarabel", "proxsuite", cpu_count=True, git=True
    )


# ---------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------


def clarabel_args(tol: float, threads: int) -> dict[str, Any]:
    """diffcp solver arguments for the cvxpylayers baseline: Clarabel at tolerance ``tol``,
    ``threads`` forward jobs.  (diffcp's backward keeps its default job count: a forward-only
    call rejects ``n_jobs_backward``, and the same layer serves both in SAC.)  The settings of
    ``safegrad bench safeguards``' reference (:func:`safegrad.bench.safeguards._solver_args`)."""
    from safegrad.bench.safeguards import _solver_args

    return _solver_args(tol, threads, backward=False)


def safeguard_spec(
    method: str, *, clarabel_tol: float = 1e-10, threads: int = 1
) -> tuple[str, dict[str, Any]]:
    """``(name, kwargs)`` of ``method`` for :func:`safegrad._make.build_safeguard` (and SAC's
    ``policy_safeguard`` / ``policy_safeguard_kwargs``); ``kappa`` / ``alpha`` come from the
    task (``env.kappa = 2``, ``env.cbf_alpha = 5``, spec B §9)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {list(METHODS)}")
    if method == "composite":
        return "composite-cbf", {}
    if method == "cbfqp":
        return "cbf-qp", {}
    kw: dict[str, Any] = {"backend": method}
    if method == "cvxpylayers":
        kw["backend_options"] = {"solver_args": clarabel_args(clarabel_tol, threads)}
    return "cbf-qp", kw


def build_layer(method: str, env: Any, *, clarabel_tol: float = 1e-10, threads: int = 1):
    """The safeguard module of ``method`` for the task ``env`` (``kappa``, ``alpha`` of the
    task)."""
    from safegrad._make import build_safeguard

    name, kw = safeguard_spec(method, clarabel_tol=clarabel_tol, threads=threads)
    return build_safeguard(name, env, **kw)


def _available(method: str) -> str | None:
    """``None`` if the method can run here, else the reason."""
    if method in ("composite", "cbfqp"):
        return None
    from safegrad.qp.backends import get_backend

    try:
        get_backend(method)
    except ImportError as e:
        return str(e)
    return None


# ---------------------------------------------------------------------------------------------
# instances
# ---------------------------------------------------------------------------------------------


def _make_env(num_obstacles: int, batch: int, dtype, device, seed: int = 0):
    from safegrad import envs

    return envs.make(
        "ReachAvoid-v0",
        num_envs=batch,
        seed=seed,
        dtype=dtype,
        device=device,
        num_obstacles=num_obstacles,
    )


def sample_instance(
    num_obstacles: int, batch: int, *, seed: int = 0, dtype=torch.float64, device="cpu"
) -> dict[str, Any]:
    """A CBF-QP instance of the reach-avoid task (module docstring, part (a)).

    Returns ``env``, ``x (B, 2)``, ``h (B, I)``, ``lf (B, I)``, ``lg (B, I, 2)``, ``u_bar (B, 2)``,
    ``w (B, 2)`` (weights of the backward functional); all detached.
    """
    from safegrad.envs.navigation import composite_h

    env = _make_env(num_obstacles, batch, dtype, device)
    g = torch.Generator(device=device).manual_seed(1000 * num_obstacles + seed)
    fk = {"dtype": dtype, "device": device}
    centers, radii = env.obstacle_centers, env.obstacle_radii
    lo, hi = REGION

    def draw(n: int) -> torch.Tensor:
        uni = lo + (hi - lo) * torch.rand(n, 2, generator=g, **fk)
        j = torch.randint(0, centers.shape[0], (n,), generator=g, device=device)
        rad = radii[j] + 0.25 * torch.rand(n, generator=g, **fk)
        ang = 2 * math.pi * torch.rand(n, generator=g, **fk)
        near = centers[j] + rad.unsqueeze(-1) * torch.stack((ang.cos(), ang.sin()), -1)
        pick = (torch.arange(n, device=device) % 2 == 0).unsqueeze(-1)
        return torch.where(pick, uni, near)

    xs, got = [], 0
    for _ in range(1000):
        cand = draw(max(2 * batch, 64))
        ok = composite_h(env.obstacle_h(cand), env.kappa) >= 0
        xs.append(cand[ok])
        got += int(ok.sum())
        if got >= batch:
            break
    else:  # pragma: no cover - the layouts always leave room
        raise RuntimeError(f"could not sample {batch} states with composite h >= 0")
    x = torch.cat(xs)[:batch]
    h, lf, lg = env.cbf_constraints(x)
    return {
        "env": env,
        "x": x,
        "h": h.detach(),
        "lf": lf.detach(),
        "lg": lg.detach(),
        "u_bar": 2 * torch.rand(batch, 2, generator=g, **fk) - 1,
        "w": torch.randn(batch, 2, generator=g, **fk),
    }


def _call(layer, inst: dict, grad: bool):
    """One batched call; returns ``(u_s, info)`` (``u_s`` detached)."""
    from safegrad.safeguards import CBFConstraints

    cons = CBFConstraints(inst["h"], inst["lf"], inst["lg"])
    if not grad:
        with torch.no_grad():
            out, info = layer(inst["u_bar"], cons)
        return out, info
    a = inst["u_bar"].clone().requires_grad_(True)
    out, info = layer(a, cons)
    (out * inst["w"]).sum().backward()
    return out.detach(), info


def exact_violation(inst: dict, u: torch.Tensor, alpha: float) -> torch.Tensor:
    """``max_i (-(L_f h_i + L_g h_i u + α h_i))_+`` per element (units of ``h``/s), ``(B,)``."""
    slack = inst["lf"] + (inst["lg"] @ u.unsqueeze(-1)).squeeze(-1) + alpha * inst["h"]
    return (-slack).clamp_min(0).amax(-1)


def composite_violation(inst: dict, u: torch.Tensor, alpha: float, kappa: float) -> torch.Tensor:
    """Violation of the composite condition (18)-(19), ``(B,)``."""
    from safegrad.safeguards import composite_barrier

    h, lam = composite_barrier(inst["h"], kappa)
    lf = (lam * inst["lf"]).sum(-1)
    lg = (lam.unsqueeze(-1) * inst["lg"]).sum(-2)
    return (-(lf + (lg * u).sum(-1) + alpha * h)).clamp_min(0)


def _load_average() -> list[float] | None:
    """The machine's 1/5/15-minute load averages (``None`` where the OS has none): other jobs
    on the same cores inflate every time in this benchmark."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # pragma: no cover - not on Linux/macOS
        return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":  # pragma: no cover - no GPU in CI
        torch.cuda.synchronize(device)


def _timed(fn, device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# (a) + (c): layer timing and accuracy on the instances
# ---------------------------------------------------------------------------------------------


def run_layers(args, methods: list[str]) -> tuple[list[dict], list[dict]]:
    """Part (a) cells and the per-instance accuracy rows of part (c)."""
    dtype, device = getattr(torch, args.dtype), torch.device(args.device)
    cells, accuracy = [], []
    last: dict[tuple, tuple[int, float]] = {}
    for n_obs in args.obstacles:
        for B in sorted(args.batches):
            inst = sample_instance(n_obs, B, dtype=dtype, device=device)
            env = inst["env"]
            alpha, kappa = env.cbf_alpha, env.kappa
            outs: dict[str, torch.Tensor] = {}
            infos: dict[str, dict] = {}
            for method in methods:
                layer = build_layer(
                    method, env, clarabel_tol=args.clarabel_tol, threads=args.threads
                )
                for mode in MODES:
                    grad = mode == "fwdbwd"
                    cell: dict[str, Any] = {"method": method, "I": n_obs, "B": B, "mode": mode}
                    key = (method, n_obs, mode)
                    if key in last:
                        b0, t0 = last[key]
                        pred = t0 * B / b0
                        if pred > args.cap:
                            cell["skipped"] = (
                                f"predicted {pred:.1f} s per call (linear in B from {t0:.2f} s "
                                f"at B={b0}) > cap {args.cap} s"
                            )
                            cells.append(cell)
                            print(f"skip  {method:12s} I={n_obs:2d} B={B:5d} {mode:6s}", flush=True)
                            continue
                    try:
                        res: dict[str, Any] = {}

                        def once(layer=layer, grad=grad, res=res, inst=inst):
                            res["out"] = _call(layer, inst, grad)

                        first = _timed(once, device)  # warm-up (layer construction, caches)
                        times = [_timed(once, device)]
                        while (
                            len(times) < args.repeats
                            and first + sum(times) + times[-1] <= args.cell_budget
                        ):
                            times.append(_timed(once, device))
                    except Exception as e:  # a baseline failing is a result, not a crash
                        cell["skipped"] = f"error: {type(e).__name__}: {e}"[:300]
                        cells.append(cell)
                        print(f"fail  {method} I={n_obs} B={B} {mode}: {cell['skipped']}")
                        continue
                    sec = statistics.median(times)
                    last[key] = (B, min(times))
                    cell.update(seconds=sec, seconds_min=min(times), repeats=len(times))
                    cells.append(cell)
                    if not grad:
                        outs[method], infos[method] = res["out"]
                    print(
                        f"{method:12s} I={n_obs:2d} B={B:5d} {mode:6s} {sec * 1e3:10.3f} ms",
                        flush=True,
                    )
            accuracy.append(_instance_accuracy(inst, outs, infos, alpha, kappa, n_obs, B))
    return cells, accuracy


def _instance_accuracy(inst, outs, infos, alpha, kappa, n_obs, B) -> dict:
    row: dict[str, Any] = {"I": n_obs, "B": B, "methods": {}}
    ref = outs.get("cbfqp")
    for method, u in outs.items():
        u64 = u.double()
        r: dict[str, Any] = {
            "max_exact_violation": float(exact_violation(inst, u64, alpha).max()),
            "frac_exact_violated": float(
                (exact_violation(inst, u64, alpha) > 1e-6).double().mean()
            ),
            "max_composite_violation": float(composite_violation(inst, u64, alpha, kappa).max()),
            "intervened_frac": float(infos[method]["intervened"].double().mean()),
            "fallbacks": int(infos[method]["fallback"].sum()),
        }
        if ref is not None:
            d = torch.linalg.vector_norm(u64 - ref.double(), dim=-1)
            r["max_abs_diff_to_cbfqp"] = float((u64 - ref.double()).abs().max())
            r["mean_dist_to_cbfqp"] = float(d.mean())
        row["methods"][method] = r
    return row


def conservatism(args, obstacles: list[int], methods: list[str]) -> list[dict]:
    """Part (c) on uniform safe states: fraction excluded by the composite, action gap, one-step
    safety (``dt = env.dt``, explicit Euler as the task steps)."""
    from safegrad.envs.navigation import composite_h, obstacle_h

    dtype, device = getattr(torch, args.dtype), torch.device(args.device)
    rows = []
    for n_obs in obstacles:
        env = _make_env(n_obs, 1, dtype, device)
        g = torch.Generator(device=device).manual_seed(7 + n_obs)
        lo, hi = REGION
        x = lo + (hi - lo) * torch.rand(args.states, 2, generator=g, dtype=dtype, device=device)
        hi_ = env.obstacle_h(x)
        x = x[hi_.amin(-1) >= 0]
        h_i = env.obstacle_h(x)
        h = composite_h(h_i, env.kappa)
        excluded = h < 0
        row: dict[str, Any] = {
            "I": n_obs,
            "states": int(x.shape[0]),
            "frac_excluded": float(excluded.double().mean()),
            "max_gap_minh_minus_h": float((h_i.amin(-1) - h).max()),
            "lemma1_bound": math.log(n_obs) / env.kappa,
        }
        # actions on the states inside C = {h >= 0}: the composite's domain
        xc = x[~excluded]
        hc, lfc, lgc = (t.detach() for t in env.cbf_constraints(xc))
        u_bar = 2 * torch.rand(xc.shape[0], 2, generator=g, dtype=dtype, device=device) - 1
        inst = {"h": hc, "lf": lfc, "lg": lgc, "u_bar": u_bar}
        outs = {}
        for method in ("composite", "cbfqp"):
            if method not in methods:
                continue
            layer = build_layer(method, env, clarabel_tol=args.clarabel_tol, threads=args.threads)
            outs[method], info = _call(layer, inst, False)
            u = outs[method]
            x_next = xc + env.system.dt * env.system.gain * u  # p' = p + dt u_max u (no noise)
            nh = obstacle_h(x_next, env.obstacle_centers, env.obstacle_radii).amin(-1)
            ev = exact_violation(inst, u, env.cbf_alpha)
            row[method] = {
                "intervened_frac": float(info["intervened"].double().mean()),
                "fallbacks": int(info["fallback"].sum()),
                "frac_exact_violated": float((ev > 1e-6).double().mean()),
                "max_exact_violation": float(ev.max()),
                "one_step_min_h": float(nh.min()),
                "one_step_unsafe": int((nh < 0).sum()),
            }
        if "composite" in outs and "cbfqp" in outs:
            d = torch.linalg.vector_norm(outs["composite"] - outs["cbfqp"], dim=-1)
            act = (outs["composite"] != u_bar).any(-1) | (outs["cbfqp"] != u_bar).any(-1)
            row["dist_composite_exact"] = {
                "mean": float(d.mean()),
                "max": float(d.max()),
                "mean_where_either_active": float(d[act].mean()) if bool(act.any()) else 0.0,
            }
        rows.append(row)
        print(
            f"conservatism I={n_obs:2d}: {row['frac_excluded']:.1%} of safe states have h < 0; "
            f"action gap {row.get('dist_composite_exact', {}).get('mean', float('nan')):.3f}",
            flush=True,
        )
    return rows


# ---------------------------------------------------------------------------------------------
# (b) ATTS: average time per SAC training step
# ---------------------------------------------------------------------------------------------


GEMM_OPS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm", "aten::addbmm")


def gemm_seconds_per_step(agent: Any, steps: int) -> float:
    """Mean self time of the matrix products (:data:`GEMM_OPS`) in one SAC training step
    (``agent.learn(1)``, profiled over ``steps`` steps): the part of the step that every method
    runs alike and that no implementation of the safety layer can remove.

    Why it bounds the ATTS ratio: write a method's step as ``G + S + L`` (``G`` these products,
    ``S`` the rest of the shared SAC/env work, ``L`` the layer's own cost).  Then
    ``T_b / T_c = 1 + (T_b - T_c) / (G + S + L_c) <= 1 + (T_b - T_c) / G`` for any ``S, L_c >= 0``:
    even a free composite layer and a free SAC outside the products give at most that ratio."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            agent.learn(1)
    total_us = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in GEMM_OPS)
    return total_us * 1e-6 / steps


def atts_ratio_bound(baseline: float, composite: float, gemm: float) -> float:
    """Upper bound ``1 + max(T_b - T_c, 0) / G`` of the ATTS ratio ``T_b / T_c``
    (:func:`gemm_seconds_per_step`; a baseline faster than the composite has a ratio < 1)."""
    return 1.0 + max(baseline - composite, 0.0) / gemm


def run_atts(args, methods: list[str]) -> dict[str, Any]:
    """Part (b); ``{"skipped": reason}`` when SAC is not available.

    Per dtype and ``I``: one SAC agent per method (spec B §9 hyper-parameters,
    :data:`~safegrad.bench.reproduce_composite_cbf.SPEC_B_SAC`, batch ``--atts-batch``,
    ``--atts-warmup`` random steps then two updates to warm caches), then ``--atts-rounds``
    interleaved rounds over the methods, each timing single training steps (``learn(1)``: one
    env step + one critic, actor and temperature update, the layer in all three places), so
    that load drift on a shared machine hits every method alike.  A method stops early once its
    timed steps exceed ``--atts-budget`` seconds."""
    from safegrad.bench.reproduce_composite_cbf import SPEC_B_SAC, sac_class

    try:
        SAC = sac_class()
    except ImportError as e:
        return {"skipped": str(e)}
    device = torch.device(args.device)
    cells = []
    for dtype in args.atts_dtypes:
        for n_obs in args.atts_obstacles:
            agents, times, errors = {}, {}, {}
            for method in methods:
                name, kw = safeguard_spec(
                    method, clarabel_tol=args.clarabel_tol, threads=args.threads
                )
                env = _make_env(n_obs, 1, getattr(torch, dtype), args.device, seed=0)
                cfg = dict(SPEC_B_SAC)
                cfg.update(
                    buffer_size=max(10 * args.atts_warmup, 10_000),
                    batch_size=args.atts_batch,
                    learning_starts=args.atts_warmup,
                    policy_safeguard=name,
                    policy_safeguard_kwargs=kw,
                    seed=0,
                    dtype=dtype,
                    device=args.device,
                )
                try:
                    agent = SAC(env, **cfg)
                    agent.learn(args.atts_warmup + 2)
                except Exception as e:  # a baseline failing is a result, not a crash
                    errors[method] = f"error: {type(e).__name__}: {e}"[:300]
                    continue
                agents[method], times[method] = agent, []
            per_round = max(1, math.ceil(args.atts_steps / args.atts_rounds))
            for _ in range(args.atts_rounds):
                for method, agent in agents.items():
                    for _ in range(per_round):
                        if (
                            len(times[method]) >= args.atts_steps
                            or sum(times[method]) > args.atts_budget
                            or method in errors
                        ):
                            break
                        try:
                            times[method].append(_timed(lambda a=agent: a.learn(1), device))
                        except Exception as e:
                            errors[method] = f"error: {type(e).__name__}: {e}"[:300]
            gemm = None
            if "composite" in agents and "composite" not in errors and args.atts_floor_steps > 0:
                gemm = gemm_seconds_per_step(agents["composite"], args.atts_floor_steps)
            for method in methods:
                cell: dict[str, Any] = {"method": method, "I": n_obs, "dtype": dtype}
                if method == "composite" and gemm is not None:
                    cell["gemm_seconds_per_step"] = gemm
                if method in errors:
                    cell["skipped"] = errors[method]
                elif not times.get(method):
                    cell["skipped"] = "no timed step"
                else:
                    t = times[method]
                    cell.update(
                        seconds_per_step=sum(t) / len(t),
                        median_step=statistics.median(t),
                        steps=len(t),
                        training_violations=int(agents[method].violations),
                    )
                cells.append(cell)
                if "skipped" in cell:
                    print(f"ATTS fail {method} I={n_obs} {dtype}: {cell['skipped']}", flush=True)
                else:
                    print(
                        f"ATTS {dtype} {method:12s} I={n_obs:2d}: "
                        f"{cell['seconds_per_step'] * 1e3:8.2f} ms/step ({cell['steps']} steps)",
                        flush=True,
                    )
    return {
        "batch": args.atts_batch,
        "warmup_steps": args.atts_warmup,
        "timed_steps": args.atts_steps,
        "rounds": args.atts_rounds,
        "budget_s": args.atts_budget,
        "dtypes": list(args.atts_dtypes),
        "sac": {k: v for k, v in SPEC_B_SAC.items() if k not in ("buffer_size", "learning_starts")},
        "cells": cells,
    }


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def _fmt(v, spec=".2f") -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _ms(v) -> str:
    if v is None:
        return "skipped"
    ms = v * 1e3
    return f"{ms:.3f}" if ms < 1 else (f"{ms:.2f}" if ms < 100 else f"{ms:.0f}")


def layer_time(res: dict, method: str, I: int, B: int, mode: str) -> float | None:
    """Best-of-repeats time of one layer call (on a shared machine the minimum is the least
    load-biased estimate; the median is in the JSON as ``seconds``)."""
    for c in res["layers"]:
        if (c["method"], c["I"], c["B"], c["mode"]) == (method, I, B, mode):
            return c.get("seconds_min")
    return None


def atts_time(res: dict, method: str, I: int, dtype: str | None = None) -> float | None:
    """ATTS of ``method`` at ``I`` obstacles (``dtype``: default the first measured one)."""
    atts = res["atts"]
    if dtype is None:
        dtype = (atts.get("dtypes") or ["float64"])[0]
    for c in atts.get("cells", []):
        if (c["method"], c["I"], c.get("dtype", dtype)) == (method, I, dtype):
            return c.get("seconds_per_step")
    return None


def gemm_time(res: dict, I: int, dtype: str) -> float | None:
    """Matrix-product seconds per composite step (``None`` when not measured)."""
    for c in res["atts"].get("cells", []):
        if c["method"] == "composite" and c["I"] == I and c.get("dtype", "float64") == dtype:
            return c.get("gemm_seconds_per_step")
    return None


def _bound_lines(res: dict, dts: list[str], obs: list[int]) -> list[str]:
    """The 'how far can the ratio go' table (:func:`gemm_seconds_per_step`)."""
    rows = []
    for d in dts:
        for i in obs:
            g, c = gemm_time(res, i, d), atts_time(res, "composite", i, d)
            if not g or not c:
                continue
            row = f"| {d} | {i} | {c * 1e3:.2f} | {g * 1e3:.2f} ({100 * g / c:.0f} %) |"
            for m, (paper_min, _goal) in ATTS_GOALS.items():
                t = atts_time(res, m, i, d)
                if t:
                    b = atts_ratio_bound(t, c, g)
                    row += f" {b:.1f}x ({'>=' if b >= paper_min else '<'} {paper_min:.0f}x) |"
                else:
                    row += " — |"
            rows.append(row)
    if not rows:
        return []
    return [
        "**How far the ratio can go on this machine.** Every method runs the same SAC matrix "
        "products (2 x 256 ReLU networks at batch 256); the baselines' steps contain them too. "
        "With G their time in the composite step (profiled), T_c and T_b the composite and "
        "baseline ATTS, the ratio T_b / T_c cannot exceed 1 + (T_b - T_c) / G, whatever the "
        "composite layer and the rest of SAC cost (both >= 0; `gemm_seconds_per_step`). A "
        "bound below the paper's ratio means no implementation of the closed form reaches it "
        "with this SAC on this hardware; the paper's larger ratios come from slower baselines "
        "(its qpth and cvxpylayers steps are 3-6x ours while its closed-form step is about ours).",
        "",
        "| dtype | I | composite ATTS [ms] | matrix products G [ms] (share) |"
        + "".join(f" bound {m} / composite |" for m in ATTS_GOALS),
        "|---|---:|---:|---:|" + "---|" * len(ATTS_GOALS),
        *rows,
        "",
    ]


def to_markdown(res: dict) -> str:
    v, s = res["versions"], res["settings"]
    methods = res["methods"]
    lines = [
        "# Safety layers: closed-form composite CBF vs exact CBF-QP layers (spec B, issue 8)",
        "",
        f"Command: `{res['command']}`",
        "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if k != "platform") + ".  ",
        f"Platform: {v['platform']}.",
        "",
        f"Settings: {s['dtype']}, device {s['device']}, torch threads {s['threads']}, best of "
        f"up to {s['repeats']} calls (fewer if a cell would exceed {s['cell_budget']} s), cap "
        f"{s['cap']} s per call; cvxpylayers: Clarabel tol {s['clarabel_tol']:.0e}, "
        f"n_jobs_forward {s['threads']}; qpth eps 1e-12, maxIter 20; ProxSuite eps 1e-10. "
        "Task: ReachAvoid-v0 (single integrator, α(h) = 5h, κ = 2), layout seed 0; every QP "
        "baseline solves the plain problem (6), no bounds, no slack. The composite layer solves "
        "the one-row problem (18)-(19), a more conservative problem.",
        "",
    ]
    load = res.get("load_average") or {}
    if load.get("start") and load.get("end"):
        lines += [
            "Machine load (1/5/15-min load average, "
            f"{v.get('cpu_count', '?')} CPUs): {' / '.join(map(str, load['start']))} at the "
            f"start, {' / '.join(map(str, load['end']))} at the end; other jobs on the same "
            "cores inflate every time below, the ratios of interleaved measurements less so.",
            "",
        ]
    atts = res["atts"]
    lines += ["## Table 1: average time per SAC training step (ATTS) [s]", ""]
    if "skipped" in atts:
        lines += [f"Not measured: {atts['skipped']}.", ""]
    else:
        obs = sorted({c["I"] for c in atts["cells"]})
        dts = atts.get("dtypes", ["float64"])
        lines += [
            f"One environment step + one full SAC update (critics, actor, temperature) at batch "
            f"{atts['batch']}, the layer used for acting, in the actor loss and in the critic "
            f"target; mean over up to {atts['timed_steps']} single timed steps per method "
            f"({atts['rounds']} interleaved rounds over the methods, at most "
            f"{atts['budget_s']} s per method) after {atts['warmup_steps']} random warm-up "
            "steps; all methods in one process. SAC as spec B §9 (2 x 256 ReLU, Adam 3e-4, "
            "actor and target update every step). Paper: Table 1 (hardware, dtype and batch "
            "not stated).",
            "",
            "| method | "
            + " | ".join(f"I = {i} {d[5:]}-bit" for i in obs for d in dts)
            + " | "
            + " | ".join(f"I = {i} paper" for i in obs)
            + " |",
            "|---|" + "---:|" * (len(obs) * (len(dts) + 1)),
        ]
        for m in methods:
            row = f"| {m} |"
            row += "".join(f" {_fmt(atts_time(res, m, i, d), '.4f')} |" for i in obs for d in dts)
            row += "".join(f" {_fmt(PAPER_TABLE1.get(m, {}).get(i), '.3f')} |" for i in obs)
            lines.append(row)
        for m in methods:
            if m == "composite":
                continue
            row = f"| ratio {m} / composite |"
            for i in obs:
                for d in dts:
                    t, c = atts_time(res, m, i, d), atts_time(res, "composite", i, d)
                    row += f" {_fmt(t / c if t and c else None, '.1f')}x |"
            for i in obs:
                p, pc = PAPER_TABLE1.get(m, {}).get(i), PAPER_TABLE1["composite"][i]
                row += f" {_fmt(p / pc, '.1f') + 'x' if p else '—'} |"
            lines.append(row)
        lines.append("")
        goal_rows = []
        for m, (paper_min, goal) in ATTS_GOALS.items():
            for d in dts:
                for i in obs:
                    t, c = atts_time(res, m, i, d), atts_time(res, "composite", i, d)
                    if t and c:
                        r = t / c
                        goal_rows.append(
                            f"| {m} | {d} | {i} | {r:.1f}x | "
                            f"{'yes' if r >= paper_min else 'no'} (>= {paper_min:.0f}x) | "
                            f"{'yes' if r >= goal else 'no'} (>= {goal:.0f}x) |"
                        )
        if goal_rows:
            lines += [
                "| baseline | dtype | I | ATTS ratio | >= paper | >= goal |",
                "|---|---|---:|---:|---|---|",
                *goal_rows,
                "",
            ]
        lines += _bound_lines(res, dts, obs)
        for c in atts["cells"]:
            if "skipped" in c:
                lines.append(f"* ATTS {c['method']} I={c['I']}: {c['skipped']}")
        lines.append("")

    lines += [
        "## Layer-level time per batched call [ms]",
        "",
        "fwd = forward (no grad); fwd+bwd = forward + backward of a random linear functional "
        "w.r.t. ū. Best of the repeats (median in the JSON). x = method time / composite time.",
        "",
    ]
    head = "| I | B | mode |" + "".join(f" {m} |" for m in methods)
    head += "".join(f" x {m} |" for m in methods if m != "composite")
    lines += [head, "|---:|---:|---|" + "---:|" * (2 * len(methods) - 1)]
    for i in res["settings"]["obstacles"]:
        for B in res["settings"]["batches"]:
            for mode in MODES:
                row = f"| {i} | {B} | {'fwd+bwd' if mode == 'fwdbwd' else 'fwd'} |"
                for m in methods:
                    row += f" {_ms(layer_time(res, m, i, B, mode))} |"
                c = layer_time(res, "composite", i, B, mode)
                for m in methods:
                    if m == "composite":
                        continue
                    t = layer_time(res, m, i, B, mode)
                    row += f" {_fmt(t / c if t and c else None, '.0f')} |"
                lines.append(row)
    lines.append("")
    goal_rows = []
    for m, goal in LAYER_GOALS.items():
        for i in res["settings"]["obstacles"]:
            t = layer_time(res, m, i, 256, "fwdbwd")
            c = layer_time(res, "composite", i, 256, "fwdbwd")
            if t and c:
                goal_rows.append(
                    f"| {m} | {i} | {t / c:.0f}x | {'yes' if t / c >= goal else 'no'} "
                    f"(>= {goal:.0f}x) |"
                )
    if goal_rows:
        lines += [
            "Layer-level goal (issue 8, B = 256, fwd+bwd):",
            "",
            "| baseline | I | ratio | meets goal |",
            "|---|---:|---:|---|",
            *goal_rows,
            "",
        ]
    skipped = [c for c in res["layers"] if "skipped" in c]
    if skipped:
        lines += ["Skipped layer cells:", ""]
        lines += [
            f"* {c['method']} I={c['I']} B={c['B']} {c['mode']}: {c['skipped']}" for c in skipped
        ]
        lines.append("")
    for name, why in res["unavailable"].items():
        lines.append(f"* method {name} not run: {why}")

    lines += [
        "## Accuracy on the timing instances",
        "",
        "Max violation of the exact constraints (6) `max_i (-(L_f h_i + L_g h_i u + α h_i))_+` "
        "(units m²/s), fraction of elements violating some exact row by > 1e-6, violation of "
        "the composite row, max |u - u_cbfqp|, fraction changed by the layer, fallbacks.",
        "",
        "| I | B | method | exact viol. | frac exact viol. | composite viol. | max diff to cbfqp "
        "| mean dist to cbfqp | intervened | fallbacks |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in res["accuracy"]:
        for m, r in row["methods"].items():
            lines.append(
                f"| {row['I']} | {row['B']} | {m} | {r['max_exact_violation']:.1e} | "
                f"{r['frac_exact_violated']:.3f} | {r['max_composite_violation']:.1e} | "
                f"{_fmt(r.get('max_abs_diff_to_cbfqp'), '.1e')} | "
                f"{_fmt(r.get('mean_dist_to_cbfqp'), '.3f')} | {r['intervened_frac']:.3f} | "
                f"{r['fallbacks']} |"
            )
    lines += [
        "",
        "## Conservatism of the composite (uniform safe states in [-1, 5]², ū ~ U([-1, 1]²))",
        "",
        "excluded = fraction of states with min_i h_i >= 0 but composite h < 0 (Lemma 1: the "
        "gap is at most ln(I)/κ); the action gap and one-step safety are on the states with "
        "h >= 0. 'exact viol.' = fraction of composite actions violating an individual CBF "
        "row (allowed: the composite only enforces the weighted sum, spec B §6).",
        "",
        "| I | states | excluded | max gap | ln(I)/κ | mean ‖u_comp − u_qp‖ | max | "
        "mean where active | composite exact viol. | one-step min h_i (comp / qp) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in res["conservatism"]:
        d = r.get("dist_composite_exact", {})
        comp, qp = r.get("composite", {}), r.get("cbfqp", {})
        lines.append(
            f"| {r['I']} | {r['states']} | {r['frac_excluded']:.1%} | "
            f"{r['max_gap_minh_minus_h']:.2f} | {r['lemma1_bound']:.2f} | "
            f"{_fmt(d.get('mean'), '.3f')} | {_fmt(d.get('max'), '.3f')} | "
            f"{_fmt(d.get('mean_where_either_active'), '.3f')} | "
            f"{_fmt(comp.get('frac_exact_violated'), '.3f')} | "
            f"{_fmt(comp.get('one_step_min_h'), '.3f')} / {_fmt(qp.get('one_step_min_h'), '.3f')} |"
        )
    lines += ["", "Figure: `safety_layers.png`.", ""]
    return "\n".join(lines)


def plot(res: dict, path: Path) -> None:
    """Bar plot: layer fwd+bwd at B = 256 (left) and ATTS with the paper's values (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    methods = res["methods"]
    obs = res["settings"]["obstacles"]
    B = 256 if 256 in res["settings"]["batches"] else max(res["settings"]["batches"])
    has_atts = "skipped" not in res["atts"] and res["atts"].get("cells")
    fig, axes = plt.subplots(1, 2 if has_atts else 1, figsize=(12 if has_atts else 6.5, 4.2))
    axes = np.atleast_1d(axes)
    colours = dict(zip(METHODS, plt.cm.tab10.colors))
    width = 0.8 / len(methods)
    xs = np.arange(len(obs))
    ax = axes[0]
    for k, m in enumerate(methods):
        vals = [layer_time(res, m, i, B, "fwdbwd") for i in obs]
        ax.bar(
            xs + k * width,
            [np.nan if t is None else t * 1e3 for t in vals],
            width,
            label=m,
            color=colours[m],
        )
    ax.set_yscale("log")
    ax.set_xticks(xs + width * (len(methods) - 1) / 2, [f"I = {i}" for i in obs])
    ax.set_ylabel("ms per call (log)")
    ax.set_title(f"Layer forward + backward, batch {B}")
    ax.legend(fontsize=8)
    if has_atts:
        ax = axes[1]
        aobs = sorted({c["I"] for c in res["atts"]["cells"]})
        xs = np.arange(len(aobs))
        for k, m in enumerate(methods):
            vals = [atts_time(res, m, i) for i in aobs]
            ax.bar(
                xs + k * width,
                [np.nan if t is None else t for t in vals],
                width,
                label=f"{m} (ours)",
                color=colours[m],
            )
            paper = [PAPER_TABLE1.get(m, {}).get(i) for i in aobs]
            if any(p is not None for p in paper):
                ax.scatter(
                    xs + k * width,
                    [np.nan if p is None else p for p in paper],
                    marker="_",
                    s=300,
                    color="k",
                    zorder=3,
                    label="paper Table 1" if m == "composite" else None,
                )
        ax.set_yscale("log")
        ax.set_xticks(xs + width * (len(methods) - 1) / 2, [f"I = {i}" for i in aobs])
        ax.set_ylabel("s per SAC training step (log)")
        dt = (res["atts"].get("dtypes") or ["float64"])[0]
        ax.set_title(f"ATTS, {dt} (env step + SAC update, batch {res['atts']['batch']})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from e
    if not out or any(v < 1 for v in out):
        raise argparse.ArgumentTypeError(f"expected positive ints, got {text!r}")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="safegrad bench safety-layers",
        description="closed-form composite CBF vs exact CBF-QP layers (safegrad.qp, qpth, "
        "cvxpylayers, proxsuite): layer time, SAC step time (ATTS), accuracy (spec B)",
    )
    p.add_argument("--methods", default=",".join(METHODS), help="subset of " + ",".join(METHODS))
    p.add_argument("--obstacles", type=_ints, default=list(DEFAULT_OBSTACLES), help="I values")
    p.add_argument("--batches", type=_ints, default=list(DEFAULT_BATCHES), help="batch sizes")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per cell (median)")
    p.add_argument("--cap", type=float, default=10.0, help="skip calls predicted slower [s]")
    p.add_argument("--cell-budget", type=float, default=20.0, help="time budget per cell [s]")
    p.add_argument("--clarabel-tol", type=float, default=1e-10, help="cvxpylayers' Clarabel tol")
    p.add_argument("--states", type=int, default=20000, help="uniform states for part (c)")
    p.add_argument("--atts", choices=("auto", "off"), default="auto", help="part (b)")
    p.add_argument("--atts-obstacles", type=_ints, default=None, help="I for ATTS (default all)")
    p.add_argument("--atts-batch", type=int, default=256, help="SAC batch size for ATTS")
    p.add_argument("--atts-warmup", type=int, default=300, help="random steps before timing")
    p.add_argument("--atts-steps", type=int, default=50, help="timed training steps per cell")
    p.add_argument("--atts-budget", type=float, default=60.0, help="time budget per ATTS cell")
    p.add_argument("--atts-rounds", type=int, default=5, help="interleaved rounds over methods")
    p.add_argument(
        "--atts-floor-steps",
        type=int,
        default=10,
        help="profiled composite steps for the matrix-product floor (0: skip)",
    )
    p.add_argument(
        "--atts-dtypes",
        default="float64,float32",
        help="dtypes of the ATTS runs (network, env and layer); the first is the headline",
    )
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads (and diffcp jobs)")
    p.add_argument("--out", default="benchmarks", help="output directory")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run in seconds: I 3,10; B 1,16; 1 repeat; 2000 states; ATTS I=3, batch 32, "
        "2 steps",
    )
    p.add_argument(
        "--render",
        metavar="JSON",
        default=None,
        help="only redraw the markdown and the plot of an existing safety_layers.json (next to "
        "it); nothing is measured",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``safegrad bench safety-layers``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = build_parser()
    args = p.parse_args(argv)
    if args.render:
        path = Path(args.render)
        res = json.loads(path.read_text())
        path.with_suffix(".md").write_text(to_markdown(res))
        plot(res, path.with_suffix(".png"))
        print(f"redrew {path.with_suffix('.md')} and {path.with_suffix('.png')}")
        return 0
    if args.quick:
        args.obstacles, args.batches, args.repeats, args.states = [3, 10], [1, 16], 1, 2000
        args.atts_obstacles, args.atts_batch, args.atts_warmup, args.atts_steps = [3], 32, 40, 2
        args.atts_rounds, args.atts_dtypes = 2, "float64"
        args.atts_floor_steps = min(args.atts_floor_steps, 2)
        args.cell_budget = min(args.cell_budget, 5.0)
    if args.atts_obstacles is None:
        args.atts_obstacles = list(args.obstacles)
    args.atts_dtypes = [d for d in args.atts_dtypes.split(",") if d]
    if not args.atts_dtypes or any(d not in ("float64", "float32") for d in args.atts_dtypes):
        p.error(f"--atts-dtypes must be float64 and/or float32, got {args.atts_dtypes}")
    for name in ("repeats", "threads", "states", "atts_batch", "atts_steps", "atts_rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.atts_floor_steps < 0:
        p.error(f"--atts-floor-steps must be >= 0, got {args.atts_floor_steps}")
    if args.atts_warmup < args.atts_batch:
        p.error(f"--atts-warmup ({args.atts_warmup}) must be >= --atts-batch ({args.atts_batch})")
    methods, unavailable = [], {}
    for m in [m for m in args.methods.split(",") if m]:
        if m not in METHODS:
            p.error(f"--methods: unknown method {m!r}, expected a subset of {list(METHODS)}")
        why = _available(m)
        if why is None:
            methods.append(m)
        else:
            unavailable[m] = why
    if "composite" not in methods:
        p.error("--methods must include 'composite' (the ratios are relative to it)")
    n_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    load_start = _load_average()
    try:
        layers, accuracy = run_layers(args, methods)
        cons = conservatism(args, args.obstacles, methods)
        atts = run_atts(args, methods) if args.atts == "auto" else {"skipped": "--atts off"}
    finally:
        torch.set_num_threads(n_threads)
    res = {
        "benchmark": "safety-layers",
        "command": "safegrad bench safety-layers " + " ".join(argv),
        "versions": _versions(),
        "settings": {
            "dtype": args.dtype,
            "device": args.device,
            "threads": args.threads,
            "repeats": args.repeats,
            "cap": args.cap,
            "cell_budget": args.cell_budget,
            "clarabel_tol": args.clarabel_tol,
            "obstacles": args.obstacles,
            "batches": sorted(args.batches),
            "states": args.states,
            "task": "ReachAvoid-v0, layout seed 0, alpha 5, kappa 2",
        },
        "methods": methods,
        "method_descriptions": {m: METHODS[m] for m in methods},
        "unavailable": unavailable,
        "paper_table1": {m: {str(i): t for i, t in d.items()} for m, d in PAPER_TABLE1.items()},
        "layers": layers,
        "accuracy": accuracy,
        "conservatism": cons,
        "atts": atts,
        "total_seconds": time.perf_counter() - t_start,
        "load_average": {"start": load_start, "end": _load_average()},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "safety_layers.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "safety_layers.md").write_text(to_markdown(res))
    plot(res, out / "safety_layers.png")
    print(f"wrote {out / 'safety_layers.json'}, .md and .png ({res['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
