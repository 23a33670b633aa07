"""``safegrad bench qp``: safegrad.qp vs qpth / cvxpylayers(Clarabel) / proxsuite, side by side.

For every batch size B, problem size (n variables, m inequalities) and mode (``fwd``: forward
only; ``fwdbwd``: forward + backward of a random linear functional of ``x`` w.r.t. Q, p, G, h) all
solvers are timed in the same process, one after the other, on the same random strictly convex
QPs (:func:`safegrad.qp.random_qp`, known optimum). Accuracy per cell: the largest constraint
violation ``max(Gx - h)_+`` and the largest distance ``|x - x*|_inf`` to the constructed optimum
``x*`` (exact up to rounding; it is checked against cvxpy + Clarabel at tolerance 1e-12 on the
first problems of each size, column ``ref_check``).

A baseline cell whose single call is predicted (linearly in B from the previous batch size of the
same solver/size/mode) to exceed ``--cap`` seconds is skipped and recorded with the reason.
Writes ``<out>/qp.json`` and ``<out>/qp.md`` with the command line and library versions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from safegrad.bench._meta import versions, write_results
from safegrad.qp import random_qp, solve_qp

__all__ = ["main", "reference_solve"]

DEFAULT_BATCHES = (1, 64, 256, 4096)
DEFAULT_SIZES = tuple((n, m) for n in (2, 4, 8) for m in (4, 16, 64))
SOLVERS = ("safegrad", "qpth", "cvxpylayers", "proxsuite")


def reference_solve(Q, p, G=None, h=None, A=None, b=None, tol: float = 1e-12):
    """Tight-tolerance reference: cvxpy + Clarabel, one problem at a time (tests/benchmarks only).

    Shapes as :func:`safegrad.qp.solve_qp` with one batch dim ``(B, ...)`` (all inputs batched).
    Returns ``(x (B, n) float64, status list[str])``; ``x`` is NaN where Clarabel did not solve.
    """
    import cvxpy as cp
    import numpy as np

    B, n = p.shape
    xs, stats = [], []
    for i in range(B):
        x = cp.Variable(n)
        obj = p[i].detach().cpu().double().numpy() @ x
        if Q is not None:
            Qi = Q[i].detach().cpu().double().numpy()
            obj = obj + 0.5 * cp.quad_form(x, cp.psd_wrap(0.5 * (Qi + Qi.T)))
        cons = []
        if G is not None:
            cons.append(G[i].detach().cpu().double().numpy() @ x <= h[i].detach().cpu().numpy())
        if A is not None:
            cons.append(A[i].detach().cpu().double().numpy() @ x == b[i].detach().cpu().numpy())
        prob = cp.Problem(cp.Minimize(obj), cons)
        prob.solve(
            solver="CLARABEL",
            tol_gap_abs=tol,
            tol_gap_rel=tol,
            tol_feas=tol,
            tol_infeas_abs=tol,
            tol_infeas_rel=tol,
            tol_ktratio=1e-10,
        )
        stats.append(prob.status)
        xs.append(x.value if x.value is not None else np.full(n, np.nan))
    return torch.as_tensor(np.stack(xs), dtype=torch.float64), stats


def _versions() -> dict[str, str]:
    return versions(
        "qpth",
        "cvxpylayers",
        "cvxpy",
        "clarabel",
        "diffcp",
        "proxsuite",
        cpu_count=True,
        threads=True,
    )


def _solver(name: str):
    if name == "safegrad":
        return solve_qp
    from safegrad.qp.backends import get_backend

    return get_backend(name)


def _run(fn, P, mode: str, weight):
    names = ("Q", "p", "G", "h")
    args = [P[k].clone().requires_grad_(mode == "fwdbwd") for k in names]
    t0 = time.perf_counter()
    if mode == "fwd":
        with torch.no_grad():
            x = fn(*args)
    else:
        x = fn(*args)
        (x * weight).sum().backward()
    return time.perf_counter() - t0, x.detach()


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        try:
            n, m = item.lower().split("x")
            out.append((int(n), int(m)))
        except ValueError as e:
            raise argparse.ArgumentTypeError(
                f"sizes must look like '2x4,8x64', got {item!r}"
            ) from e
    return out


def _parse_ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from e


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="safegrad bench qp",
        description="Time safegrad.qp against installed differentiable QP layers (CPU).",
    )
    ap.add_argument(
        "--batches",
        type=_parse_ints,
        default=list(DEFAULT_BATCHES),
        help="comma-separated batch sizes (default 1,64,256,4096)",
    )
    ap.add_argument(
        "--sizes",
        type=_parse_sizes,
        default=list(DEFAULT_SIZES),
        help="comma-separated NxM (variables x inequalities), default n in {2,4,8} x "
        "m in {4,16,64}",
    )
    ap.add_argument("--modes", default="fwd,fwdbwd", help="fwd and/or fwdbwd (default both)")
    ap.add_argument(
        "--solvers",
        default=",".join(SOLVERS),
        help="subset of safegrad,qpth,cvxpylayers,proxsuite (missing ones are recorded as skipped)",
    )
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per cell (median)")
    ap.add_argument(
        "--cap",
        type=float,
        default=10.0,
        help="skip a baseline cell whose single call is predicted to take longer "
        "than this many seconds (default 10)",
    )
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--ref-check",
        type=int,
        default=8,
        help="problems per size checked against cvxpy+Clarabel (0 disables)",
    )
    ap.add_argument(
        "--safeguard-sizes",
        action="store_true",
        help="also time the sizes of the safeguards' projections: n in {1,2,3} x m in "
        "{4,8,30} at batch 16",
    )
    ap.add_argument("--out", default="benchmarks", help="output directory (qp.json, qp.md)")
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: batches 1,64, sizes 2x4,8x16, 1 repeat"
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``safegrad bench qp``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    argv_list = sys.argv[1:] if argv is None else list(argv)
    if args.quick:
        args.batches, args.sizes, args.repeats = [1, 64], [(2, 4), (8, 16)], 1
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = [m for m in args.modes.split(",") if m]
    for mode in modes:
        if mode not in ("fwd", "fwdbwd"):
            raise SystemExit(f"--modes: unknown mode {mode!r}, expected fwd and/or fwdbwd")
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    solvers, skipped_solvers = [], {}
    for name in args.solvers.split(","):
        if name not in SOLVERS:
            raise SystemExit(f"--solvers: unknown solver {name!r}, expected one of {SOLVERS}")
        try:
            _solver(name)
            solvers.append(name)
        except ImportError as e:
            skipped_solvers[name] = str(e)

    cells, ref_checks = [], {}
    last: dict[tuple, tuple[int, float]] = {}  # (solver, n, m, mode) -> (B, seconds per call)
    t_start = time.perf_counter()
    jobs = [(n, m, sorted(args.batches)) for n, m in args.sizes]
    if args.safeguard_sizes:
        jobs += [(n, m, [16]) for n in (1, 2, 3) for m in (4, 8, 30)]
    for n, m, batches in jobs:
        if args.ref_check:
            P = random_qp(args.ref_check, n, m, seed=args.seed + 1000)
            xr, _ = reference_solve(P["Q"], P["p"], P["G"], P["h"])
            ref_checks[f"{n}x{m}"] = float((xr - P["x"]).abs().max())
        for B in batches:
            P = random_qp(B, n, m, seed=args.seed, dtype=dtype, device=device)
            weight = torch.randn(B, n, generator=torch.Generator().manual_seed(1), dtype=dtype)
            weight = weight.to(device)
            for mode in modes:
                for name in solvers:
                    key = (name, n, m, mode)
                    cell = dict(solver=name, batch=B, n=n, m=m, mode=mode)
                    if name != "safegrad" and key in last:
                        b0, t0 = last[key]
                        pred = t0 * B / b0
                        if pred > args.cap:
                            cell.update(
                                skipped=f"predicted {pred:.1f} s per call (from "
                                f"{t0:.2f} s at batch {b0}) > cap {args.cap} s"
                            )
                            cells.append(cell)
                            print(
                                f"skip {name:12s} B={B:5d} n={n} m={m:3d} {mode}: "
                                f"{cell['skipped']}",
                                flush=True,
                            )
                            continue
                    fn = _solver(name)
                    try:
                        t_first, x = _run(fn, P, mode, weight)
                        reps = args.repeats if t_first < 0.5 else 1
                        times = [_run(fn, P, mode, weight)[0] for _ in range(reps)]
                    except Exception as e:  # a baseline failing is a result, not a crash
                        cell.update(skipped=f"error: {type(e).__name__}: {e}"[:300])
                        cells.append(cell)
                        print(f"fail {name} B={B} n={n} m={m} {mode}: {cell['skipped']}")
                        continue
                    last[key] = (B, min(times))
                    xd = x.to(torch.float64)
                    viol = (P["G"].double() @ xd.unsqueeze(-1)).squeeze(-1) - P["h"].double()
                    cell.update(
                        seconds=statistics.median(times),
                        seconds_min=min(times),
                        repeats=len(times),
                        max_violation=float(viol.clamp_min(0).max()),
                        max_err=float(
                            torch.nan_to_num((xd - P["x"].double()).abs(), nan=1e300).max()
                        ),
                    )
                    cells.append(cell)
                    print(
                        f"{name:12s} B={B:5d} n={n} m={m:3d} {mode:6s} "
                        f"{cell['seconds'] * 1e3:10.2f} ms  err {cell['max_err']:.1e}  "
                        f"viol {cell['max_violation']:.1e}",
                        flush=True,
                    )
    result = dict(
        command="safegrad bench qp " + " ".join(argv_list),
        versions=_versions(),
        dtype=args.dtype,
        device=str(device),
        repeats=args.repeats,
        cap_seconds=args.cap,
        skipped_solvers=skipped_solvers,
        reference_check=ref_checks,
        total_seconds=time.perf_counter() - t_start,
        cells=cells,
    )
    write_results(args.out, "qp", result, to_markdown(result))
    return 0


def to_markdown(result: dict) -> str:
    """Markdown report: one row per (mode, batch, size), one column group per solver."""
    cells = result["cells"]
    solvers = [s for s in SOLVERS if any(c["solver"] == s for c in cells)]
    index = {(c["solver"], c["mode"], c["batch"], c["n"], c["m"]): c for c in cells}
    keys = sorted(
        {(c["mode"], c["batch"], c["n"], c["m"]) for c in cells},
        key=lambda k: (k[0] != "fwdbwd", k[1], k[2], k[3]),
    )
    v = result["versions"]
    lines = [
        "# safegrad.qp benchmark",
        "",
        f"Command: `{result['command']}`  ",
        f"dtype {result['dtype']}, device {result['device']}, torch threads "
        f"{v['torch_threads']}, {v['cpu_count']} CPUs, median of up to {result['repeats']} "
        f"repeats (1 if a call takes > 0.5 s), cap {result['cap_seconds']} s per call, total "
        f"{result['total_seconds']:.0f} s.  ",
        "Versions: "
        + ", ".join(
            f"{k} {val}"
            for k, val in v.items()
            if k not in ("platform", "torch_threads", "cpu_count")
        )
        + ".  ",
        f"Platform: {v['platform']}.",
        "",
        "Times in ms per call; `x` = baseline time / safegrad time; err = max |x - x*|_inf over "
        "the batch; viol = max constraint violation.",
        "",
    ]
    head = "| mode | B | n | m | safegrad ms | err | viol |"
    sep = "|---|---:|---:|---:|---:|---:|---:|"
    for s in solvers[1:]:
        head += f" {s} ms | x | err |"
        sep += "---:|---:|---:|"
    lines += [head, sep]
    for mode, B, n, m in keys:
        ours = index.get(("safegrad", mode, B, n, m))
        row = f"| {mode} | {B} | {n} | {m} |"
        if ours and "seconds" in ours:
            row += (
                f" {ours['seconds'] * 1e3:.2f} | {ours['max_err']:.0e} | "
                f"{ours['max_violation']:.0e} |"
            )
        else:
            row += " - | - | - |"
        for s in solvers[1:]:
            c = index.get((s, mode, B, n, m))
            if c is None or "seconds" not in c:
                row += " skipped | | |"
                continue
            ratio = c["seconds"] / ours["seconds"] if ours and "seconds" in ours else float("nan")
            row += f" {c['seconds'] * 1e3:.1f} | {ratio:.1f} | {c['max_err']:.0e} |"
        lines.append(row)
    skipped = [c for c in cells if "skipped" in c]
    if skipped:
        lines += ["", "Skipped cells:", ""]
        lines += [
            f"- {c['solver']} B={c['batch']} n={c['n']} m={c['m']} {c['mode']}: {c['skipped']}"
            for c in skipped
        ]
    for name, why in result["skipped_solvers"].items():
        lines.append(f"- solver {name} not run: {why}")
    if result["reference_check"]:
        lines += [
            "",
            "Constructed optimum x* vs cvxpy+Clarabel (tol 1e-12), max |diff|: "
            + ", ".join(f"{k}: {val:.0e}" for k, val in result["reference_check"].items()),
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
