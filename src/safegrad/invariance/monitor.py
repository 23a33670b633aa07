"""Safety monitor: checks executed transitions against the true safe set (spec A §11.6;
ARCHITECTURE principle 3), independently of the safeguard that chose the action."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["SafetyMonitor"]


class SafetyMonitor:
    """Counts safety violations of transitions ``(state, action, next_state)``.

    The true safe state set comes from the task (``env.safety_margin(x)``: the RCI set's facet
    distance for the balance tasks, the normalised margin to ``S`` for the box tasks, the
    obstacle clearance ``min_i ||p - p_i|| - r_i`` (and the box) for the navigation tasks); it is
    evaluated on the *next state*, never on anything the safeguard computed.  ``info`` from
    ``env.step`` may be passed: its ``state_margin`` (before the clamp to ``S``) catches
    transitions that left ``S`` and were clamped back.

    Args:
        env: a task with ``safety_margin(x) -> (B,)`` (every :class:`TorchVectorEnv`).
        tol: tolerance on the margin (default 1e-9 float64, 1e-5 float32 of the env dtype).

    Attributes:
        transitions, violations: running totals; ``worst_margin``: smallest margin seen.
    """

    def __init__(self, env: Any, tol: float | None = None) -> None:
        if not callable(getattr(env, "safety_margin", None)):
            raise TypeError(
                f"SafetyMonitor needs an env with safety_margin(x), got {type(env).__name__}"
            )
        self.env = env
        dtype = getattr(env, "dtype", torch.float64)
        self.tol = float(tol) if tol is not None else (1e-9 if dtype == torch.float64 else 1e-5)
        self.reset()

    def reset(self) -> None:
        """Zero the running totals."""
        self.transitions = 0
        self.violations = 0
        self.worst_margin = float("inf")

    @torch.no_grad()
    def check(
        self,
        state: Tensor,
        action: Tensor,
        next_state: Tensor,
        info: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Check a batch of transitions and update the totals.

        Args:
            state: ``(B, n)``; action: ``(B, m)`` the executed action; next_state: ``(B, n)``.
            info: optional ``env.step`` info (uses ``state_margin``, ``collision``).

        Returns:
            ``{"violation": (B,) bool, "margin": (B,)}``; ``margin >= -tol`` is safe.
        """
        for name, t in (("state", state), ("action", action), ("next_state", next_state)):
            if not isinstance(t, Tensor) or t.dim() != 2:
                raise ValueError(f"SafetyMonitor.check: {name} must be a (B, d) tensor")
        if state.shape[0] != next_state.shape[0] or action.shape[0] != state.shape[0]:
            raise ValueError("SafetyMonitor.check: state, action, next_state batch sizes differ")
        margin = self.env.safety_margin(next_state.detach())
        violation = margin < -self.tol
        if info is not None:
            if "state_margin" in info:
                violation = violation | (info["state_margin"].detach() < -self.tol)
            if "collision" in info:
                violation = violation | info["collision"].detach()
        self.transitions += int(violation.numel())
        self.violations += int(violation.sum())
        if margin.numel():
            self.worst_margin = min(self.worst_margin, float(margin.min()))
        return {"violation": violation, "margin": margin}

    def summary(self) -> dict[str, float]:
        """``transitions``, ``violations``, ``violation_rate``, ``worst_margin``."""
        rate = self.violations / self.transitions if self.transitions else 0.0
        return {
            "transitions": self.transitions,
            "violations": self.violations,
            "violation_rate": rate,
            "worst_margin": self.worst_margin,
        }
