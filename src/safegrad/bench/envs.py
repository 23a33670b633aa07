"""``safegrad bench envs``: vector-environment throughput and differentiable rollouts.

For every task and every batch size ``B`` (default 1, 8, 64, 1024, and 4096 for the pendulum):

* **no autograd**: ``env.step`` under ``torch.no_grad()`` with random actions in ``[-1, 1]``;
* **autograd**: actions that require grad and the state's graph kept across a 64-step window
  (``env.detach()`` between windows, no backward), i.e. the forward cost SHAC pays;

reported as environment steps per second (``B`` x calls per second) and microseconds per call.
Plus one 64-step differentiable rollout + ``backward()`` of the summed reward per task at the
task's default ``num_envs`` (median of repeats). Results go to ``benchmarks/envs.json`` and
``benchmarks/envs.md`` with the command line and versions. Wall-clock figures depend on the
machine and its load; the markdown says which machine made them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["main", "bench_step", "bench_rollout"]

DEFAULT_SIZES = (1, 8, 64, 1024)
PENDULUM_EXTRA = (4096,)
#: benchmark goals from the issue (env steps per second, pendulum, no autograd)
GOALS = {8: 10_000, 4096: 1_000_000}


def _versions() -> dict[str, str]:
    import gymnasium
    import numpy
    import torch

    import safegrad

    return {
        "safegrad": safegrad.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "gymnasium": gymnasium.__version__,
        "python": platform.python_version(),
    }


def _machine() -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def bench_step(
    env_id: str,
    num_envs: int,
    *,
    autograd: bool,
    seconds: float,
    device: str = "cpu",
    dtype: Any = None,
    window: int = 64,
    min_calls: int = 20,
) -> dict[str, Any]:
    """Time ``env.step`` for about ``seconds``; returns calls, env steps/s and us per call."""
    import torch

    from safegrad.envs import make

    dtype = torch.float32 if dtype is None else dtype
    env = make(env_id, num_envs=num_envs, seed=0, device=device, dtype=dtype)
    env.reset()
    g = torch.Generator(device="cpu").manual_seed(0)
    pool = (2 * torch.rand(window, num_envs, env.action_dim, generator=g, dtype=dtype) - 1).to(
        device
    )
    if autograd:
        pool.requires_grad_(True)

    def run(n: int) -> None:
        for i in range(n):
            if autograd and i % window == 0:
                env.detach()
            env.step(pool[i % window])

    ctx = torch.no_grad() if not autograd else torch.enable_grad()
    with ctx:
        run(min(10, min_calls))  # warm-up
        calls, elapsed = 0, 0.0
        chunk = min_calls
        while elapsed < seconds or calls < min_calls:
            if device != "cpu":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            run(chunk)
            if device != "cpu":
                torch.cuda.synchronize()
            elapsed += time.perf_counter() - t0
            calls += chunk
            chunk = min(chunk * 2, 4096)
    env.close()
    return {
        "task": env_id,
        "num_envs": num_envs,
        "autograd": autograd,
        "calls": calls,
        "seconds": elapsed,
        "us_per_call": 1e6 * elapsed / calls,
        "env_steps_per_s": calls * num_envs / elapsed,
    }


def bench_rollout(
    env_id: str,
    *,
    num_envs: int | None = None,
    steps: int = 64,
    repeats: int = 5,
    device: str = "cpu",
    dtype: Any = None,
) -> dict[str, Any]:
    """Median time of a ``steps``-step differentiable rollout and of its ``backward()``."""
    import torch

    from safegrad.envs import make

    dtype = torch.float32 if dtype is None else dtype
    env = make(env_id, num_envs=num_envs, seed=0, device=device, dtype=dtype)
    g = torch.Generator(device="cpu").manual_seed(0)
    fwd, bwd = [], []
    for _ in range(repeats + 1):  # the first run is a warm-up
        env.reset(seed=0)
        actions = (
            (
                0.5
                * (
                    2 * torch.rand(steps, env.num_envs, env.action_dim, generator=g, dtype=dtype)
                    - 1
                )
            )
            .to(device)
            .requires_grad_(True)
        )
        t0 = time.perf_counter()
        total = torch.zeros((), dtype=dtype, device=device)
        for a in actions:
            _, r, _, _, _ = env.step(a)
            total = total + r.sum()
        t1 = time.perf_counter()
        total.backward()
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
    fwd, bwd = fwd[1:], bwd[1:]
    return {
        "task": env_id,
        "num_envs": env.num_envs,
        "steps": steps,
        "repeats": repeats,
        "forward_ms": 1e3 * statistics.median(fwd),
        "backward_ms": 1e3 * statistics.median(bwd),
        "total_ms": 1e3 * statistics.median(f + b for f, b in zip(fwd, bwd)),
    }


def _fmt_rate(v: float) -> str:
    return f"{v:,.0f}"


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Environment benchmark",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()) + "  ",
        f"Machine: {report['machine']['platform']}, {report['machine']['cpu_count']} CPUs, "
        f"torch threads {report['machine']['torch_threads']}; device {report['device']}, "
        f"dtype {report['dtype']}  ",
        f"Each figure: `env.step` repeated for at least {report['seconds']} s "
        "(random actions in [-1, 1]); env steps/s = num_envs x calls/s. "
        "Autograd: actions require grad and the graph is kept over 64-step windows "
        "(`env.detach()` between windows), no backward.",
        "",
        "## Steps per second",
        "",
    ]
    sizes = sorted({r["num_envs"] for r in report["results"]})
    header = "| task | mode | " + " | ".join(f"B={b}" for b in sizes) + " |"
    lines += [header, "|" + "---|" * (2 + len(sizes))]
    tasks = list(dict.fromkeys(r["task"] for r in report["results"]))
    for task in tasks:
        for autograd in (False, True):
            cells = []
            for b in sizes:
                hit = [
                    r
                    for r in report["results"]
                    if r["task"] == task and r["num_envs"] == b and r["autograd"] == autograd
                ]
                cells.append(
                    f"{_fmt_rate(hit[0]['env_steps_per_s'])} ({hit[0]['us_per_call']:.0f} us)"
                    if hit
                    else "-"
                )
            mode = "autograd" if autograd else "no grad"
            lines.append(f"| {task} | {mode} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Cells: env steps/s (microseconds per `step` call). Timings on a shared machine vary "
        "with its load; at large B torch's intra-op threads can contend with other processes "
        "(seen on the shared 2-core box with 2 threads: pendulum B=4096 at 2-26 ms per call "
        "instead of about 0.2 ms); "
        "`--threads 1` avoids that.",
        "",
        "## 64-step differentiable rollout + backward",
        "",
        "| task | num_envs | forward [ms] | backward [ms] | total [ms] |",
        "|---|---|---|---|---|",
    ]
    for r in report["rollouts"]:
        lines.append(
            f"| {r['task']} | {r['num_envs']} | {r['forward_ms']:.1f} | {r['backward_ms']:.1f} "
            f"| {r['total_ms']:.1f} |"
        )
    if report.get("goals"):
        lines += ["", "## Goals (BalancePendulum-v0, no autograd)", ""]
        for g in report["goals"]:
            status = "met" if g["met"] else "NOT met"
            lines.append(
                f"- B={g['num_envs']}: {_fmt_rate(g['measured'])} env steps/s "
                f"(goal >= {_fmt_rate(g['goal'])}): {status}"
            )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="safegrad bench envs",
        description="Throughput of the vector environments (steps/s with and without autograd) "
        "and the cost of a 64-step differentiable rollout + backward.",
    )
    p.add_argument("--tasks", nargs="+", default=None, help="task ids (default: all)")
    p.add_argument(
        "--num-envs",
        nargs="+",
        type=int,
        default=list(DEFAULT_SIZES),
        help="batch sizes (default 1 8 64 1024; the pendulum also gets 4096)",
    )
    p.add_argument("--seconds", type=float, default=0.5, help="time per measurement (0.5)")
    p.add_argument("--rollout-steps", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5, help="rollout repeats (median)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads for the run (default: leave torch's default)",
    )
    p.add_argument("--out-dir", default="benchmarks", help="where envs.json / envs.md go")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--quick", action="store_true", help="smoke run: B in (1, 8), 0.02 s, 1 repeat")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``safegrad bench envs``; returns the exit status."""
    from safegrad.envs import list_envs
    from safegrad.envs.base import resolve_dtype

    args = build_parser().parse_args(argv)
    if args.threads is not None:
        import torch

        if args.threads < 1:
            print(f"--threads={args.threads} must be >= 1", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    tasks = args.tasks or list_envs()
    unknown = [t for t in tasks if t not in list_envs()]
    if unknown:
        print(f"unknown task(s) {unknown}; registered: {', '.join(list_envs())}", file=sys.stderr)
        return 2
    sizes = [b for b in args.num_envs if b > 0]
    seconds, repeats = args.seconds, args.repeats
    if args.quick:
        sizes, seconds, repeats = [1, 8], 0.02, 1
    dtype = resolve_dtype(args.dtype)
    results, rollouts = [], []
    for task in tasks:
        task_sizes = list(sizes)
        if task == "BalancePendulum-v0" and not args.quick:
            task_sizes += [b for b in PENDULUM_EXTRA if b not in task_sizes]
        for b in task_sizes:
            for autograd in (False, True):
                r = bench_step(
                    task, b, autograd=autograd, seconds=seconds, device=args.device, dtype=dtype
                )
                results.append(r)
                print(
                    f"{task:22s} B={b:5d} {'autograd' if autograd else 'no grad ':8s} "
                    f"{r['env_steps_per_s']:14,.0f} env steps/s  {r['us_per_call']:9.1f} us/call",
                    flush=True,
                )
        ro = bench_rollout(
            task, steps=args.rollout_steps, repeats=repeats, device=args.device, dtype=dtype
        )
        rollouts.append(ro)
        print(
            f"{task:22s} rollout {ro['steps']} steps x {ro['num_envs']} envs: forward "
            f"{ro['forward_ms']:.1f} ms, backward {ro['backward_ms']:.1f} ms",
            flush=True,
        )
    goals = []
    for b, goal in GOALS.items():
        hit = [
            r
            for r in results
            if r["task"] == "BalancePendulum-v0" and r["num_envs"] == b and not r["autograd"]
        ]
        if hit:
            goals.append(
                {
                    "num_envs": b,
                    "goal": goal,
                    "measured": hit[0]["env_steps_per_s"],
                    "met": hit[0]["env_steps_per_s"] >= goal,
                }
            )
    report = {
        "command": "safegrad bench envs" + ("" if not argv else " " + " ".join(argv)),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": _versions(),
        "machine": _machine(),
        "device": args.device,
        "dtype": str(dtype).replace("torch.", ""),
        "seconds": seconds,
        "results": results,
        "rollouts": rollouts,
        "goals": goals,
    }
    md = _markdown(report)
    if not args.no_write:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "envs.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "envs.md").write_text(md)
        print(f"wrote {out / 'envs.json'} and {out / 'envs.md'}")
    else:
        print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
