"""``safegrad rci compute|verify ENV_ID`` (wired into the ``safegrad`` command by the lead).

* ``compute ENV_ID``: synthesise the task's RCI set (:func:`~safegrad.invariance.compute_rci`),
  check its certificate, run the falsification (``--transitions``, default 1e5) and write the
  versioned set file (default: the shipped ``safegrad/data/rci/<name>_v1.json``; ``--out PATH``).
* ``verify ENV_ID``: load the shipped set (or ``--path``), check the certificate and run the
  falsification on the nonlinear simulator; exit status 0 only if both pass.  ``--scale 1.1``
  verifies the set scaled up by 10 % instead (it must fail: the check can fail).
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main"]


def _problem(env_id: str):
    from safegrad.invariance.compute import RCI_PROBLEMS

    if env_id not in RCI_PROBLEMS:
        raise SystemExit(
            f"safegrad rci: no RCI set for {env_id!r}; available: {', '.join(sorted(RCI_PROBLEMS))}"
        )
    return RCI_PROBLEMS[env_id]


def _print(title: str, data: dict) -> None:
    print(f"{title}:")
    for k, v in data.items():
        if isinstance(v, float):
            v = f"{v:.6g}"
        elif isinstance(v, list) and v and isinstance(v[0], float):
            v = "[" + ", ".join(f"{x:.6g}" for x in v) + "]"
        print(f"  {k}: {v}")


def _compute(args) -> int:
    from safegrad.invariance.compute import compute_rci
    from safegrad.invariance.rciset import save_rci
    from safegrad.invariance.verify import falsify

    problem = _problem(args.env_id)
    cmd = "safegrad rci compute " + args.env_id
    if args.out:
        cmd += f" --out {args.out}"
    rci = compute_rci(problem, verbose=not args.quiet, command=cmd)
    _print("certificate", rci.meta["certificate"])
    system = problem.system_factory()
    fals = falsify(rci, system, num_transitions=args.transitions, seed=args.seed)
    rci.meta["falsification"] = fals
    _print("falsification", fals)
    if not fals["passed"]:
        print("safegrad rci compute: falsification FAILED; the set was not written")
        return 1
    path = save_rci(rci, args.out)
    print(f"wrote {path}")
    return 0


def _verify(args) -> int:
    from safegrad.invariance.rciset import load_rci
    from safegrad.invariance.verify import check_certificate, falsify

    problem = _problem(args.env_id)
    rci = load_rci(args.path or problem.name)
    if args.scale != 1.0:
        rci = rci.scaled(args.scale)
    system = problem.system_factory()
    cert = check_certificate(rci, system)
    _print("certificate", cert)
    fals = falsify(rci, system, num_transitions=args.transitions, seed=args.seed)
    _print("falsification", fals)
    ok = cert["passed"] and fals["passed"]
    if args.json:
        print(json.dumps({"certificate": cert, "falsification": fals, "passed": ok}))
    verdict = "PASSED" if ok else "FAILED"
    print(f"{args.env_id}: {verdict} ({rci.name}, {rci.num_generators} generators)")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="safegrad rci", description="Robust control invariant sets: compute and verify."
    )
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    c = sub.add_parser("compute", help="synthesise, certify, falsify and write a task's RCI set")
    c.add_argument("env_id")
    c.add_argument("--out", default=None, help="output path (default: the shipped file)")
    c.add_argument("--transitions", type=int, default=100_000)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--quiet", action="store_true")
    v = sub.add_parser("verify", help="check a set's certificate and run the falsification")
    v.add_argument("env_id")
    v.add_argument("--path", default=None, help="set file (default: the shipped one)")
    v.add_argument("--transitions", type=int, default=100_000)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--scale", type=float, default=1.0, help="verify the set scaled by this")
    v.add_argument("--json", action="store_true", help="also print the result as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``main(["verify", "BalancePendulum-v0"]) -> exit status``."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.transitions < 1:
        raise SystemExit(f"--transitions must be >= 1, got {args.transitions}")
    return _compute(args) if args.verb == "compute" else _verify(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
