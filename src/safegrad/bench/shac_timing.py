"""``safegrad bench shac-timing``: wall time of one SHAC learning episode, unsafe vs through our
safeguards vs through the cvxpylayers formulation the public reference code uses (issue 9 item
3; spec A §7.6, pitfall P15).

Per task (``BalancePendulum``, ``BalanceQuadrotor``, ``ManageHousehold``) SHAC runs with the
paper-era hyper-parameters (``configs/shac_<task>.yaml``, spec A §8.1) and the paper's number of
environments N (spec A §6), seed 0, on the CPU, for ``--warmup`` untimed and ``--episodes`` timed
learning episodes (one episode = ``T`` differentiable steps of the N envs through the safeguard,
the policy backward and Adam step, the critic fits), in five settings:

* ``none``: no safeguard (the monitor only);
* ``BP``, ``RM``: ours (:class:`~safegrad.safeguards.BoundaryProjection`,
  :class:`~safegrad.safeguards.RayMask` linear with the zonotopic centre);
* ``BP-ref``, ``RM-ref``: the same safeguards as CvxpyLayers solved by Clarabel through diffcp
  (:mod:`safegrad.bench.reference_safeguards`; float64 inside, Clarabel's default tolerances
  unless ``--ref-tol``), as the reference code builds them.

Reported per cell: median seconds per learning episode, seconds of safeguard forward calls per
episode (a forward hook; the backward through the safeguard is inside the episode time), the
ratio to the unsafe episode, ours vs reference, and the first episode's policy objective (ours
and the reference start from the same weights and noise, so equal objectives show that both
trained through the same safeguard).  Writes ``<out>/shac_timing.json`` and
``<out>/shac_timing.md``.  ``--quick``: 2 envs, horizon 4, 16-unit networks, 1 episode (a smoke
test in seconds; its times mean nothing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from safegrad.bench._meta import versions, write_results

__all__ = ["main", "run", "to_markdown", "TASKS", "VARIANTS"]

#: task key -> (env id, paper N)
TASKS = {
    "pendulum": ("BalancePendulum-v0", 8),
    "quadrotor": ("BalanceQuadrotor-v0", 16),
    "household": ("ManageHousehold-v0", 8),
}
VARIANTS = ("none", "BP", "RM", "BP-ref", "RM-ref")
#: default (warm-up, timed) learning episodes per task: a household episode (T = 550, 5 000
#: critic mini-batch steps on 512-unit networks) takes about a minute on one core
EPISODES = {"pendulum": (1, 3), "quadrotor": (1, 3), "household": (0, 1)}
_QUICK = {
    "horizon": 4,
    "actor_hidden": [16, 16],
    "critic_hidden": [16, 16],
    "vf_num_fits": 1,
    "vf_fit_num_batches": 1,
}


def _versions() -> dict[str, str]:
    return versions("cvxpy", "cvxpylayers", "diffcp", "clarabel")


def default_configs_dir() -> Path:
    """``configs/`` of the source checkout (the paper-era presets), else ``./configs``."""
    here = Path(__file__).resolve().parents[3] / "configs"
    return here if here.is_dir() else Path("configs")


def shac_config(task: str, configs: Path, quick: bool, seed: int = 0):
    """``SHACConfig`` of ``configs/shac_<task>.yaml`` (spec A §8.1), ``--quick`` shrunk."""
    from safegrad.algos.shac import SHACConfig

    path = Path(configs) / f"shac_{task}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: --configs must name the directory with the presets shac_<task>.yaml"
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    data = {k: v for k, v in data.items() if k in SHACConfig.field_names()}
    data.update(seed=seed, device="cpu", c_reg=0.0)
    if quick:
        data.update(_QUICK)
    return SHACConfig.from_dict(data)


def _safeguard(variant: str, ref_tol: float | None, threads: int):
    from safegrad.bench.reference_safeguards import ReferenceBoundaryProjection, ReferenceRayMask
    from safegrad.safeguards import BoundaryProjection, RayMask

    if variant == "none":
        return None
    if variant == "BP":
        return BoundaryProjection()
    if variant == "RM":
        return RayMask("linear", centre="zonotope")
    if variant == "BP-ref":
        return ReferenceBoundaryProjection(tol_solver=ref_tol, threads=threads)
    if variant == "RM-ref":
        return ReferenceRayMask("linear", tol_solver=ref_tol, threads=threads)
    raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")


def time_cell(
    task: str,
    variant: str,
    episodes: int,
    warmup: int,
    configs: Path,
    quick: bool,
    ref_tol: float | None,
    threads: int,
) -> dict[str, Any]:
    """Time ``warmup + episodes`` SHAC learning episodes of one (task, variant)."""
    from safegrad import envs
    from safegrad.algos.shac import SHAC
    from safegrad.safeguards import SafeguardWrapper

    env_id, n_envs = TASKS[task]
    if quick:
        n_envs = 2
    cfg = shac_config(task, configs, quick)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    sg = _safeguard(variant, ref_tol, threads)
    env = SafeguardWrapper(envs.make(env_id, n_envs, 0, "cpu", dtype), sg)
    sg_time = [0.0]
    if sg is not None:
        start: list[float] = []
        sg.register_forward_pre_hook(lambda m, a: start.append(time.perf_counter()))
        sg.register_forward_hook(
            lambda m, a, o: sg_time.__setitem__(0, sg_time[0] + time.perf_counter() - start.pop())
        )
    agent = SHAC(env, cfg)
    per_episode = cfg.horizon * n_envs
    times: list[float] = []
    sg_times: list[float] = []
    objectives: list[float] = []

    def callback(ag: Any, logs: dict[str, float]) -> None:
        times.append(per_episode / logs["steps_per_s"])
        sg_times.append(sg_time[0])
        sg_time[0] = 0.0
        objectives.append(logs["objective"])

    t0 = time.perf_counter()
    agent.learn(per_episode * (warmup + episodes), callback=callback)
    total = time.perf_counter() - t0
    timed, timed_sg = times[warmup:], sg_times[warmup:]
    tot = env.totals()
    return {
        "task": task,
        "env_id": env_id,
        "variant": variant,
        "num_envs": n_envs,
        "horizon": cfg.horizon,
        "interactions_per_episode": per_episode,
        "dtype": cfg.dtype,
        "episodes_timed": len(timed),
        "warmup": warmup,
        "episode_s": timed,
        "median_episode_s": statistics.median(timed) if timed else None,
        "safeguard_fwd_s_per_episode": (statistics.median(timed_sg) if timed_sg else None)
        if sg is not None
        else 0.0,
        "warmup_episode_s": times[:warmup],
        "total_s": total,
        "first_objective": objectives[0] if objectives else None,
        "violations": int(tot["violations"]),
        "interventions": int(tot["interventions"]),
        "intervention_rate": float(tot["intervention_rate"]),
        "fallbacks": int(tot["fallbacks"]),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    cells = []
    for task in args.tasks:
        for variant in args.variants:
            warm, eps = EPISODES[task]
            c = time_cell(
                task,
                variant,
                eps if args.episodes is None else args.episodes,
                warm if args.warmup is None else args.warmup,
                Path(args.configs),
                args.quick,
                args.ref_tol,
                args.threads,
            )
            cells.append(c)
            print(_line(c), flush=True)
    summary = []
    for task in args.tasks:
        by = {c["variant"]: c for c in cells if c["task"] == task}
        t = {v: by[v]["median_episode_s"] for v in by}
        row = {"task": task}
        for v in VARIANTS:
            row[f"{v}_s"] = t.get(v)
            row[f"{v}_over_none"] = _ratio(t.get(v), t.get("none"))
        for v in ("BP", "RM"):
            row[f"{v}_ref_over_ours"] = _ratio(t.get(f"{v}-ref"), t.get(v))
            oa, ob = by.get(v), by.get(f"{v}-ref")
            if oa and ob and oa["first_objective"] is not None:
                row[f"{v}_objective_diff"] = abs(oa["first_objective"] - ob["first_objective"])
        summary.append(row)
    return {
        "benchmark": "shac-timing",
        "command": "safegrad bench shac-timing " + " ".join(args.argv),
        "versions": _versions(),
        "settings": {
            "threads": args.threads,
            "episodes": {c["task"]: c["episodes_timed"] for c in cells},
            "warmup": {c["task"]: c["warmup"] for c in cells},
            "quick": args.quick,
            "device": "cpu",
            "reference": "cvxpylayers (diffcp) + Clarabel, float64",
            "reference_tol": args.ref_tol,
            "cpu_count": os.cpu_count(),
        },
        "cells": cells,
        "summary": summary,
    }


def _f(v: float | None, spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


def _line(c: dict[str, Any]) -> str:
    return (
        f"{c['task']:<10} {c['variant']:<7} {_f(c['median_episode_s'])} s/episode "
        f"(safeguard fwd {_f(c['safeguard_fwd_s_per_episode'])} s), {c['episodes_timed']} timed, "
        f"violations {c['violations']}, interventions {c['intervention_rate']:.3f}"
    )


def to_markdown(res: dict[str, Any]) -> str:
    v, s = res["versions"], res["settings"]
    L = [
        "# SHAC wall time per learning episode: unsafe vs our safeguards vs cvxpylayers",
        "",
        f"Command: `{res['command']}`",
        "",
        f"Versions: safegrad {v['safegrad']}, torch {v['torch']}, cvxpylayers {v['cvxpylayers']}, "
        f"diffcp {v['diffcp']}, clarabel {v['clarabel']}; Python {v['python']}; {v['platform']}; "
        f"{s['cpu_count']} CPUs.",
        "",
        f"Settings: CPU, torch threads = {s['threads']} (diffcp jobs = {s['threads']}), "
        "untimed + timed learning episodes per cell (median of the timed): "
        + ", ".join(f"{t} {s['warmup'][t]} + {s['episodes'][t]}" for t in s["episodes"])
        + "; SHAC "
        "with the paper-era hyper-parameters of `configs/shac_<task>.yaml` (spec A §8.1) and the "
        "paper's N (§6), seed 0. Reference: the same safeguards as CvxpyLayers + Clarabel "
        "(`safegrad.bench.reference_safeguards`, float64 inside, Clarabel "
        + ("default tolerances" if s["reference_tol"] is None else f"tol {s['reference_tol']:g}")
        + "), the formulation of the public reference code (spec A §7.6, P15)."
        + (" **--quick: smoke-test sizes, times mean nothing.**" if s["quick"] else ""),
        "",
        "One learning episode = T differentiable steps of the N environments through the "
        "safeguard, the policy backward pass and Adam step, and the critic fits. "
        "'sg fwd' = time inside the safeguard's forward calls per episode (its backward is part "
        "of the episode time only).",
        "",
        "## Seconds per learning episode",
        "",
        "| task | T x N | none | BP ours | RM ours | BP ref | RM ref | BP/none ours | RM/none ours "
        "| BP/none ref | RM/none ref | BP ref/ours | RM ref/ours |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in res["summary"]:
        c0 = next(c for c in res["cells"] if c["task"] == row["task"])
        L.append(
            f"| {row['task']} | {c0['horizon']} x {c0['num_envs']} | {_f(row.get('none_s'))} | "
            f"{_f(row.get('BP_s'))} | {_f(row.get('RM_s'))} | {_f(row.get('BP-ref_s'))} | "
            f"{_f(row.get('RM-ref_s'))} | {_f(row.get('BP_over_none'), '.2f')}x | "
            f"{_f(row.get('RM_over_none'), '.2f')}x | {_f(row.get('BP-ref_over_none'), '.1f')}x | "
            f"{_f(row.get('RM-ref_over_none'), '.1f')}x | "
            f"{_f(row.get('BP_ref_over_ours'), '.1f')}x | "
            f"{_f(row.get('RM_ref_over_ours'), '.1f')}x |"
        )
    L += [
        "",
        "## Cells",
        "",
        "| task | variant | s/episode (median) | timed episodes | sg fwd s/episode | warm-up "
        "episode s | interventions / transition | violations | fallbacks | first objective |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in res["cells"]:
        warm = ", ".join(_f(x, ".2f") for x in c["warmup_episode_s"]) or "—"
        L.append(
            f"| {c['task']} | {c['variant']} | {_f(c['median_episode_s'])} | "
            f"{c['episodes_timed']} | {_f(c['safeguard_fwd_s_per_episode'])} | {warm} | "
            f"{c['intervention_rate']:.3f} | {c['violations']} | {c['fallbacks']} | "
            f"{_f(c['first_objective'], '.6g')} |"
        )
    diffs = [
        (r["task"], v, r.get(f"{v}_objective_diff"))
        for r in res["summary"]
        for v in ("BP", "RM")
        if r.get(f"{v}_objective_diff") is not None
    ]
    if diffs:
        L += [
            "",
            "First-episode policy objective, |ours - reference| (same weights, noise and "
            "states; a difference at solver-tolerance level means both trained through the same "
            "safeguard): " + "; ".join(f"{t} {v} {d:.1e}" for t, v, d in diffs) + ".",
        ]
    return "\n".join(L) + "\n"


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="safegrad bench shac-timing",
        description="SHAC seconds per learning episode: unsafe, our safeguards (BP, RM) and "
        "their cvxpylayers + Clarabel formulation (reference code), per task",
    )
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument(
        "--episodes",
        type=int,
        help="timed learning episodes per cell (default 3, household 1)",
    )
    p.add_argument(
        "--warmup", type=int, help="untimed learning episodes first (default 1, household 0)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads and diffcp jobs (1)")
    p.add_argument(
        "--ref-tol",
        type=float,
        default=None,
        help="Clarabel tolerances of the reference (default: Clarabel's defaults)",
    )
    p.add_argument("--configs", default=str(default_configs_dir()), help="preset directory")
    p.add_argument("--out", default="benchmarks", help="output directory")
    p.add_argument(
        "--quick", action="store_true", help="smoke test: 2 envs, T=4, tiny nets, 1 episode"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.episodes, args.warmup = 1, 0
    for name, val in (("--episodes", args.episodes), ("--threads", args.threads)):
        if val is not None and val < 1:
            p.error(f"{name} must be >= 1, got {val}")
    if args.warmup is not None and args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.ref_tol is not None and not args.ref_tol > 0:
        p.error(f"--ref-tol must be > 0, got {args.ref_tol}")
    args.argv = list(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    res = run(args)
    write_results(args.out, "shac_timing", res, to_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
