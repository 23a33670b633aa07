"""The ``safegrad`` command (user guide: ``docs/cli.md``).

    safegrad train [PRESET ...] [flags]   train one run (presets, flags, --set key=value)
    safegrad train --resume RUN_DIR       continue a run from its last checkpoint
    safegrad eval RUN_DIR                 evaluate a run's newest checkpoint
    safegrad sweep [SWEEP.yaml] [flags]   a grid of runs, local process pool or Ray
    safegrad tune [PRESET ...] [flags]    Optuna search; writes the best config as a preset
    safegrad plot RUN_DIR ...             learning curves, safety margins, trajectories, timing
    safegrad report RUN_DIR ...           markdown table: return, steps-to-95 %, stuck runs
    safegrad demo                         a short tour of the set geometry and the QP solver
    safegrad envs                         list the registered tasks
    safegrad bench qp|envs|safeguards|shac-timing  benchmarks
    safegrad rci compute|verify ENV_ID    robust control invariant sets
    safegrad reproduce analytic-gradients paper A's grid (Tables 2-5, timing) and its report
    safegrad reproduce composite-cbf      paper B's safe-SAC experiment (Figs. 3-4, success)

Each verb has ``--help``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

BENCHMARKS = {
    "qp": ("safegrad.bench.qp", "batched QP/LP solver vs the reference backends"),
    "envs": ("safegrad.bench.envs", "vector-environment throughput and differentiable rollouts"),
    "safeguards": ("safegrad.bench.safeguards", "safeguards vs their cvxpylayers formulation"),
    "safety-layers": (
        "safegrad.bench.safety_layers",
        "paper B Table 1: composite-CBF layer vs CBF-QP, qpth, cvxpylayers, proxsuite (+ ATTS)",
    ),
    "shac-timing": (
        "safegrad.bench.shac_timing",
        "SHAC s/learning episode: unsafe vs our safeguards vs cvxpylayers",
    ),
}

# Verbs whose arguments are parsed by the module that implements them.
FORWARDED = {
    "rci": ("safegrad.invariance.cli", "robust control invariant sets: compute | verify ENV_ID"),
    "reproduce": (
        "safegrad.experiments.reproduce",
        "reproduce a paper's experiment grid and report: analytic-gradients, composite-cbf",
    ),
}
#: ``reproduce EXPERIMENT`` verbs implemented outside safegrad.experiments.reproduce
REPRODUCTIONS = {
    "composite-cbf": (
        "safegrad.bench.reproduce_composite_cbf",
        "paper B: SAC + composite-CBF layer on ReachAvoid-v0, Figs. 3-4, success, violations",
    ),
}

_EPILOG_TRAIN = """\
examples:
  safegrad train configs/runs/quickstart.yaml
  safegrad train --env BalancePendulum-v0 --algo shac --safeguard ray-mask --steps 20000
  safegrad train configs/shac_quadrotor.yaml --safeguard boundary-projection --set c_reg=0.1
  safegrad train configs/runs/pendulum_shac_raymask.yaml --set algo_config.horizon=32 \\
      --set eval_every=5000 --out runs/h32
  safegrad train --resume runs/h32

Presets apply left to right, then the flags, then --set.  A preset is either a run preset
(TrainConfig keys, configs/runs/*.yaml) or an algorithm preset (configs/<algo>_<task>.yaml).
--set KEY=VALUE takes any TrainConfig key (total_steps=5000), a dotted key
(algo_config.horizon=8, env_kwargs.max_episode_steps=200, safeguard_kwargs.grad_mode=passthrough)
or a bare algorithm field (horizon=8).  Values are YAML: 1e-3, true, null, [64, 64].
"""

_EPILOG_SWEEP = """\
examples:
  safegrad sweep --env BalancePendulum-v0 --algo shac sac --safeguard none ray-mask \\
      --seeds 0 1 2 --steps 20000 --out runs/sweep1 --workers 2
  safegrad sweep sweeps/table3.yaml --backend ray --address auto

A sweep file holds `preset`, `set`, `grid` (key -> list of values, any --set key) and `out`;
flags add to it.  Re-launching the same sweep skips finished runs and resumes interrupted ones.
"""

_EPILOG_TUNE = """\
examples:
  safegrad tune configs/runs/pendulum_shac_raymask.yaml --steps 20000 --trials 50
  safegrad tune --env BalanceQuadrotor-v0 --algo shac --space space.yaml \\
      --storage postgresql://user@host/db --study quad_shac --trials 20   # on each machine

Each trial is a training run in OUT/trials/; the pruner sees every evaluation return.  The best
configuration is written to OUT/best_run.yaml (run preset) and OUT/best_<algo>.yaml (algorithm
preset).  Needs Optuna: pip install 'safegrad[tune]'.
"""


# --------------------------------------------------------------------------- helpers
def _fail(msg: str, code: int = 2) -> int:
    print(f"safegrad: error: {msg}", file=sys.stderr)
    return code


def _add_config_flags(p: argparse.ArgumentParser, steps_help: str = "training budget") -> None:
    g = p.add_argument_group("run configuration (override the presets)")
    g.add_argument("--env", help="task id (safegrad envs)")
    g.add_argument("--algo", help="shac, sac or ppo")
    g.add_argument(
        "--safeguard",
        help="boundary-projection, ray-mask, ray-mask-tanh, composite-cbf, cbf-qp or none",
    )
    g.add_argument(
        "--safeguard-side",
        choices=("env", "policy"),
        help="env: wrap the environment (default); policy: last policy layer (SAC/PPO)",
    )
    g.add_argument("--steps", type=int, help=f"{steps_help} (interactions summed over envs)")
    g.add_argument("--num-envs", type=int, help="parallel training environments N")
    g.add_argument("--device", help="torch device: cpu, cuda, cuda:1")
    g.add_argument("--dtype", choices=("float32", "float64"))
    g.add_argument("--threads", type=int, help="torch threads (default 1)")
    g.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key (repeatable; see the examples)",
    )


def _flag_overrides(args: argparse.Namespace, seed: bool = True, axes: bool = True) -> list[str]:
    """The flags as ``key=value`` strings (before ``--set``); ``--algo`` first.

    ``axes=False`` (sweeps) leaves out ``--env --algo --safeguard``: there they are grid axes
    (lists), applied per combination by :func:`~safegrad.experiments.sweep.expand_grid`."""
    from safegrad.experiments.config import parse_value

    out: list[tuple[str, Any]] = []
    if axes and getattr(args, "algo", None):
        out.append(("algo", args.algo))
    pairs = {"env": "env", "safeguard": "safeguard"} if axes else {}
    pairs |= {
        "safeguard_side": "safeguard_side",
        "steps": "total_steps",
        "num_envs": "num_envs",
        "device": "device",
        "dtype": "dtype",
        "threads": "threads",
    }
    if seed:
        pairs["seed"] = "seed"
    for attr, key in pairs.items():
        v = getattr(args, attr, None)
        if v is not None:
            out.append((key, v))
    items = list(out)
    for s in args.overrides:
        if "=" not in s:
            raise ValueError(f"--set {s!r} must look like KEY=VALUE")
        k, _, v = s.partition("=")
        items.append((k.strip(), parse_value(v)))
    return items


def _build_config(args: argparse.Namespace, seed: bool = True):
    from safegrad.experiments.config import load_config

    items = _flag_overrides(args, seed)
    return load_config(args.presets, dict(_ordered(items)))


def _ordered(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    # later items win; keep the order of last occurrence (dict keeps first insertion order)
    out: dict[str, Any] = {}
    for k, v in items:
        out.pop(k, None)
        out[k] = v
    return list(out.items())


# --------------------------------------------------------------------------- verbs
def _cmd_demo(args: argparse.Namespace) -> int:
    from safegrad.demo import run_demo

    return run_demo(device=args.device, seed=args.seed)


def _cmd_envs(args: argparse.Namespace) -> int:
    from safegrad.envs import list_envs

    for env_id in list_envs():
        print(env_id)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from safegrad.experiments import ConfigError, train

    if args.resume is not None:
        flags = ("env", "algo", "safeguard", "safeguard_side", "steps", "num_envs", "device")
        if (
            args.presets
            or args.overrides
            or args.print_config
            or any(getattr(args, k) is not None for k in (*flags, "dtype", "seed", "out"))
        ):
            return _fail(
                "--resume continues a run with its stored config.yaml; drop the presets and "
                "flags (only --threads may change)"
            )
        return _resume(args)
    try:
        cfg = _build_config(args)
    except (ConfigError, TypeError, ValueError, ImportError) as err:
        return _fail(str(err))
    if args.print_config:
        print(cfg.resolved().to_yaml(), end="")
        return 0
    out = args.out
    if out is None:
        name = cfg.resolved().name
        out = Path("runs") / f"{name}__{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        summary = train(cfg, out)
    except (FileExistsError, ConfigError) as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: safegrad train --resume {out}", file=sys.stderr)
        return 130
    _print_summary(summary, out)
    return 0


def _resume(args: argparse.Namespace) -> int:
    from safegrad.experiments import ConfigError, TrainConfig, train
    from safegrad.experiments.rundir import RunDir

    rd = RunDir(args.resume)
    if not rd.exists():
        return _fail(f"--resume {args.resume}: no run there (config.yaml missing)")
    cfg = None
    if args.threads:
        cfg = TrainConfig.from_yaml(rd.config)
        cfg.threads = args.threads
    try:
        summary = train(cfg, args.resume, resume=True)
    except ConfigError as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: safegrad train --resume {args.resume}")
        return 130
    _print_summary(summary, args.resume)
    return 0


def _print_summary(summary: dict[str, Any], out: Any) -> None:
    keys = (
        "final_return",
        "best_return",
        "steps_to_95",
        "env_steps",
        "wall_time_s",
        "safety_violations",
        "interventions",
    )
    print(json.dumps({k: summary.get(k) for k in keys}, indent=2))
    print(f"run directory: {out}  (summary.json, progress.csv, plots/learning_curve.png)")


def _cmd_eval(args: argparse.Namespace) -> int:
    from safegrad.experiments import evaluate_run

    try:
        res = evaluate_run(args.run_dir, episodes=args.episodes, seed=args.seed)
    except (FileNotFoundError, ValueError) as err:
        return _fail(str(err))
    text = json.dumps(res, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from safegrad.experiments import ConfigError
    from safegrad.experiments.config import _merge, apply_override, read_preset
    from safegrad.experiments.sweep import expand_grid, load_sweep_file, run_sweep

    try:
        base: dict[str, Any] = {}
        grid: dict[str, list[Any]] = {}
        out = None
        if args.sweep_file is not None:
            base, grid, out = load_sweep_file(args.sweep_file)
        for p in args.preset:
            base = _merge(base, read_preset(p, base))
        for flag, key in (
            ("env", "env"),
            ("algo", "algo"),
            ("safeguard", "safeguard"),
            ("seeds", "seed"),
        ):
            vals = getattr(args, flag)
            if vals:
                if key == "safeguard":
                    vals = [None if str(v).lower() in ("none", "null") else v for v in vals]
                grid[key] = list(vals)
        for k, v in _ordered(_flag_overrides(args, seed=False, axes=False)):
            apply_override(base, k, v)
        out = args.out or out
        if out is None:
            return _fail("sweep needs --out DIR (or `out:` in the sweep file)")
        if not grid:
            grid = {"seed": [base.get("seed", 0)]}
        jobs = expand_grid(base, grid, out)
    except (ConfigError, TypeError, ValueError, ImportError) as err:
        return _fail(str(err))
    if args.dry_run:
        for j in jobs:
            print(j.run_dir)
        return 0
    try:
        results = run_sweep(jobs, args.workers, args.backend, args.address, out=out)
    except RuntimeError as err:
        return _fail(str(err))
    counts: dict[str, int] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print(json.dumps({"out": str(out), "runs": len(results), **counts}))
    return 1 if counts.get("failed") else 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from safegrad.experiments import ConfigError
    from safegrad.experiments.tune import OPTUNA_HINT, tune

    try:
        import optuna  # noqa: F401
    except ImportError:
        return _fail(OPTUNA_HINT)
    try:
        cfg = _build_config(args)
    except (ConfigError, TypeError, ValueError, ImportError) as err:
        return _fail(str(err))
    out = args.out or str(Path("runs") / "tune" / f"{cfg.env}__{cfg.algo}")
    try:
        res = tune(
            cfg.to_dict(),
            out,
            trials=args.trials,
            storage=args.storage,
            study_name=args.study,
            space=args.space,
            objective=args.objective,
            pruner=args.pruner,
            sampler_seed=args.sampler_seed,
            startup_trials=args.startup_trials,
            timeout=args.timeout,
            write_preset=args.write_preset,
        )
    except (ConfigError, RuntimeError, ValueError) as err:
        return _fail(str(err))
    print(json.dumps(res, indent=2))
    return 0 if res["best_value"] is not None else 1


def _cmd_plot(args: argparse.Namespace) -> int:
    from safegrad.analysis.plots import plot_run, plot_runs
    from safegrad.analysis.runs import find_run_dirs

    try:
        dirs = find_run_dirs(args.run_dirs)
        if not dirs:
            return _fail(f"no run directories in {args.run_dirs}")
        if len(dirs) == 1 and not args.group_by:
            written = plot_run(dirs[0], args.out)
        else:
            written = plot_runs(dirs, args.out or "plots", by=args.group_by or None)
    except (FileNotFoundError, KeyError, ValueError) as err:
        return _fail(str(err))
    for p in written:
        print(p)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from safegrad.analysis.report import report

    try:
        text = report(
            args.run_dirs,
            out=args.out,
            by=args.group_by or None,
            stuck_fraction=args.stuck_fraction,
            stuck_threshold=args.stuck_threshold,
            n_resamples=args.resamples,
            per_run=not args.no_runs,
        )
    except (FileNotFoundError, KeyError, ValueError) as err:
        return _fail(str(err))
    print(text, end="")
    if args.out:
        print(f"(written to {args.out})", file=sys.stderr)
    return 0


def _run_module(module_name: str, rest: list[str]) -> int:
    import importlib

    module = importlib.import_module(module_name)
    return int(module.main(rest) or 0)


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="safegrad",
        description="Provably safe reinforcement learning with differentiable safeguards.",
        epilog="quickstart: safegrad train configs/runs/quickstart.yaml  (docs/cli.md)",
    )
    from safegrad import __version__

    parser.add_argument("--version", action="version", version=f"safegrad {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    fmt = argparse.RawDescriptionHelpFormatter

    # ---- train
    tr = sub.add_parser(
        "train",
        help="train one run (presets + flags + --set), or --resume RUN_DIR",
        description="Train one run into a run directory: config.yaml, progress.csv, "
        "TensorBoard events (tb/), checkpoints/, summary.json and plots/learning_curve.png.",
        epilog=_EPILOG_TRAIN,
        formatter_class=fmt,
    )
    tr.add_argument("presets", nargs="*", metavar="PRESET", help="YAML presets, applied in order")
    _add_config_flags(tr)
    tr.add_argument("--seed", type=int, help="seed of the run")
    tr.add_argument(
        "--out", help="run directory (default runs/<env>__<algo>__<safeguard>__seed<s>__<time>)"
    )
    tr.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue RUN_DIR from its newest checkpoint (stored config; --threads may change)",
    )
    tr.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config as YAML and exit (a run preset)",
    )

    # ---- eval
    ev = sub.add_parser(
        "eval",
        help="evaluate a run's newest checkpoint",
        description="Evaluate the deterministic policy of RUN_DIR's newest checkpoint on a fresh "
        "evaluation env behind the run's safeguard (spec A §6: undiscounted episode return).",
    )
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--episodes", type=int, help="episodes (default: the run's eval_episodes)")
    ev.add_argument("--seed", type=int, help="reset seed (default: the run's eval_seed)")
    ev.add_argument("--out", help="also write the result JSON here")

    # ---- sweep
    sw = sub.add_parser(
        "sweep",
        help="a grid of runs (tasks x algos x safeguards x seeds), local pool or Ray",
        description="Run a grid of training runs; finished runs are skipped on re-launch and "
        "interrupted ones resumed.",
        epilog=_EPILOG_SWEEP,
        formatter_class=fmt,
    )
    sw.add_argument("sweep_file", nargs="?", metavar="SWEEP.yaml", help="sweep file (optional)")
    sw.add_argument("--preset", action="append", default=[], help="base preset (repeatable)")
    g = sw.add_argument_group("grid axes (lists)")
    g.add_argument("--env", nargs="+", help="tasks")
    g.add_argument("--algo", nargs="+", help="algorithms")
    g.add_argument("--safeguard", nargs="+", help="safeguards ('none' for unsafeguarded)")
    g.add_argument("--seeds", nargs="+", type=int, help="seeds")
    g2 = sw.add_argument_group("fixed settings")
    g2.add_argument("--safeguard-side", choices=("env", "policy"))
    g2.add_argument("--steps", type=int, help="training budget per run")
    g2.add_argument("--num-envs", type=int)
    g2.add_argument("--device")
    g2.add_argument("--dtype", choices=("float32", "float64"))
    g2.add_argument("--threads", type=int, help="torch threads per run (default 1)")
    g2.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    sw.add_argument("--out", help="sweep directory")
    sw.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    sw.add_argument("--backend", choices=("local", "ray"), default="local")
    sw.add_argument(
        "--address", help="Ray address (auto, ray://host:10001); default: a local Ray instance"
    )
    sw.add_argument("--dry-run", action="store_true", help="list the run directories and exit")

    # ---- tune
    tu = sub.add_parser(
        "tune",
        help="Optuna search (TPE + pruning); writes the best config as a preset",
        description="Hyper-parameter search with Optuna over one run configuration.",
        epilog=_EPILOG_TUNE,
        formatter_class=fmt,
    )
    tu.add_argument("presets", nargs="*", metavar="PRESET", help="base presets")
    _add_config_flags(tu, "training budget per trial")
    tu.add_argument("--seed", type=int, help="seed of every trial's run")
    tu.add_argument("--trials", type=int, default=20, help="trials run by this process")
    tu.add_argument("--study", help="study name (default <env>__<algo>__<safeguard>)")
    tu.add_argument(
        "--storage", help="Optuna storage URL (default sqlite:///OUT/study.db; any RDB URL)"
    )
    tu.add_argument("--space", help="search-space YAML (default: the algorithm's space)")
    tu.add_argument("--objective", choices=("best", "final"), default="best")
    tu.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median")
    tu.add_argument("--sampler-seed", type=int, default=0, help="TPE seed")
    tu.add_argument("--startup-trials", type=int, default=10, help="random trials before TPE")
    tu.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    tu.add_argument("--out", help="study directory (default runs/tune/<env>__<algo>)")
    tu.add_argument("--write-preset", help="also write the best run preset to this path")

    # ---- plot
    pl = sub.add_parser(
        "plot",
        help="plots of one run or many (learning curves with CIs, safety margins, ...)",
        description="One run: RUN_DIR/plots/ (learning_curve, safety_margins, trajectories). "
        "Several runs (or a sweep directory): seeds of one configuration are grouped; "
        "learning_curves, safety_margins, interventions and timing PNGs go to --out.",
    )
    pl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run or sweep directories")
    pl.add_argument("--out", help="output directory (default RUN_DIR/plots or ./plots)")
    pl.add_argument(
        "--group-by", nargs="+", metavar="KEY", help="config keys to group on (default: all)"
    )

    # ---- report
    rp = sub.add_parser(
        "report",
        help="markdown table: return and steps-to-95 %% with bootstrap CIs, stuck runs",
        description="Markdown tables in the papers' format from run directories (spec A §6).",
    )
    rp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run or sweep directories")
    rp.add_argument("--out", help="write the markdown here")
    rp.add_argument("--group-by", nargs="+", metavar="KEY")
    rp.add_argument(
        "--stuck-fraction",
        type=float,
        default=0.5,
        help="a run is stuck below this fraction of its group's median improvement (0.5)",
    )
    rp.add_argument(
        "--stuck-threshold", type=float, help="instead: stuck when the final return is below"
    )
    rp.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (1000)")
    rp.add_argument("--no-runs", action="store_true", help="leave out the per-run table")

    # ---- existing verbs
    demo = sub.add_parser("demo", help="a short tour of the sets and the QP solver")
    demo.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    demo.add_argument("--seed", type=int, default=0)

    sub.add_parser("envs", help="list the registered tasks")

    bench = sub.add_parser(
        "bench",
        help="run a benchmark (extra arguments go to the benchmark; try `bench qp --help`)",
        description="Benchmarks: " + "; ".join(f"{k}: {v[1]}" for k, v in BENCHMARKS.items()),
    )
    bench.add_argument("which", choices=sorted(BENCHMARKS))
    for verb, (_, text) in FORWARDED.items():
        sub.add_parser(verb, help=text + " (try `safegrad " + verb + " --help`)", add_help=False)
    return parser


_COMMANDS = {
    "train": _cmd_train,
    "eval": _cmd_eval,
    "sweep": _cmd_sweep,
    "tune": _cmd_tune,
    "plot": _cmd_plot,
    "report": _cmd_report,
    "demo": _cmd_demo,
    "envs": _cmd_envs,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `bench NAME ...` forwards everything after NAME to the benchmark's own parser.
    if len(argv) >= 2 and argv[0] == "bench" and argv[1] in BENCHMARKS:
        return _run_module(BENCHMARKS[argv[1]][0], argv[2:])
    if len(argv) >= 2 and argv[0] == "reproduce" and argv[1] in REPRODUCTIONS:
        return _run_module(REPRODUCTIONS[argv[1]][0], argv[2:])
    if argv and argv[0] in FORWARDED:
        return _run_module(FORWARDED[argv[0]][0], argv[1:])
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 0
    cmd = _COMMANDS.get(args.verb)
    if cmd is None:
        parser.error(f"unknown verb {args.verb!r}")
    return cmd(args)


if __name__ == "__main__":
    sys.exit(main())
