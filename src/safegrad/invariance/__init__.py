"""Robust control invariant (RCI) sets, safe action sets and the safety monitor.

Spec A §2.3-2.4 (linearised one-step model, RCI sets), §9 P6/P7 and §11.1-11.2 (beyond the
paper: certified linearisation remainder, our own RCI sets with certificates); spec B Eq. 5 (CBF
rows).  See ``docs/invariance.md``.

* :class:`RCISet`, :func:`load_rci`, :func:`save_rci`: the shipped, versioned set files.
* :func:`compute_rci` (offline; cvxpy + Clarabel + scipy), :func:`check_certificate`,
  :func:`falsify`, :func:`verify_rci`.
* :mod:`safegrad.invariance.safe_action`: safe action sets as ``HPolytope`` s in action space.
* :class:`SafetyMonitor`: independent check of executed transitions.
* CLI: :func:`safegrad.invariance.cli.main` (``safegrad rci compute|verify ENV_ID``).
"""

from __future__ import annotations

from safegrad.invariance.monitor import SafetyMonitor
from safegrad.invariance.rciset import RCISet, load_rci, rci_path, save_rci
from safegrad.invariance.safe_action import (
    action_set_empty,
    box_safe_action_set,
    cbf_safe_action_set,
    one_step_affine,
    polytope_safe_action_set,
)

__all__ = [
    "RCISet",
    "load_rci",
    "save_rci",
    "rci_path",
    "compute_rci",
    "check_certificate",
    "falsify",
    "verify_rci",
    "SafetyMonitor",
    "action_set_empty",
    "box_safe_action_set",
    "cbf_safe_action_set",
    "one_step_affine",
    "polytope_safe_action_set",
]


def __getattr__(name: str):
    # synthesis/verification import scipy (and cvxpy) lazily: only offline tools need them
    if name == "compute_rci":
        from safegrad.invariance.compute import compute_rci

        return compute_rci
    if name in ("check_certificate", "falsify", "verify_rci"):
        from safegrad.invariance import verify

        return getattr(verify, name)
    raise AttributeError(f"module 'safegrad.invariance' has no attribute {name!r}")
