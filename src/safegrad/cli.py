"""The ``safegrad`` command.

Verbs available in this release (the full training CLI comes with the experiments package):

    safegrad demo                 a short tour of the set geometry and the batched QP solver
    safegrad envs                 list the registered tasks
    safegrad bench qp [...]       QP/LP solver benchmark (ours vs qpth, cvxpylayers, proxsuite)
    safegrad bench envs [...]     environment throughput benchmark
    safegrad bench safeguards     safeguards vs their cvxpylayers formulation
    safegrad rci compute ENV_ID   synthesise a task's robust control invariant set
    safegrad rci verify ENV_ID    check a shipped set's certificate + falsification run

Each verb has ``--help``.
"""

from __future__ import annotations

import argparse
import sys

BENCHMARKS = {
    "qp": ("safegrad.bench.qp", "batched QP/LP solver vs the reference backends"),
    "envs": ("safegrad.bench.envs", "vector-environment throughput and differentiable rollouts"),
    "safeguards": ("safegrad.bench.safeguards", "safeguards vs their cvxpylayers formulation"),
}

# Verbs whose arguments are parsed by the module that implements them.
FORWARDED = {
    "rci": ("safegrad.invariance.cli", "robust control invariant sets: compute | verify ENV_ID"),
}


def _cmd_demo(args: argparse.Namespace) -> int:
    from safegrad.demo import run_demo

    return run_demo(device=args.device, seed=args.seed)


def _cmd_envs(args: argparse.Namespace) -> int:
    from safegrad.envs import list_envs

    for env_id in list_envs():
        print(env_id)
    return 0


def _run_module(module_name: str, rest: list[str]) -> int:
    import importlib

    module = importlib.import_module(module_name)
    return int(module.main(rest) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="safegrad",
        description="Provably safe reinforcement learning with differentiable safeguards.",
    )
    from safegrad import __version__

    parser.add_argument("--version", action="version", version=f"safegrad {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")

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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `bench NAME ...` forwards everything after NAME to the benchmark's own parser.
    if len(argv) >= 2 and argv[0] == "bench" and argv[1] in BENCHMARKS:
        return _run_module(BENCHMARKS[argv[1]][0], argv[2:])
    if argv and argv[0] in FORWARDED:
        return _run_module(FORWARDED[argv[0]][0], argv[1:])
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 0
    if args.verb == "demo":
        return _cmd_demo(args)
    if args.verb == "envs":
        return _cmd_envs(args)
    parser.error(f"unknown verb {args.verb!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
