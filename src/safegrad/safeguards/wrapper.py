"""Environment-side integration point: :class:`SafeguardWrapper` (spec A §3.1, §4.2-4.4;
issue 5 item 6; pitfalls P1, P2, P13).

``step(a)`` computes the task's safe set for the *current* state, applies the safeguard
differentiably, executes ``env.step(a_s)`` and checks the executed transition with the
independent :class:`~safegrad.invariance.SafetyMonitor`.  User guide: ``docs/safeguards.md``
("Integration points").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium.vector import VectorEnv, VectorWrapper
from torch import Tensor

from safegrad.invariance.monitor import SafetyMonitor
from safegrad.safeguards._base import Safeguard, regularisation_loss
from safegrad.safeguards.cbf import CBFQP, CBFConstraints, CompositeCBF

__all__ = ["SafeguardWrapper", "LastActions", "env_safe_set_fn", "uses_cbf_constraints"]


class LastActions(NamedTuple):
    """Raw and safe action of the last :meth:`SafeguardWrapper.step` (both ``(B, m)``, with
    their autograd graphs): the input of the regularisation term (spec A Eq. 17, P2)."""

    raw: Tensor
    safe: Tensor


def uses_cbf_constraints(safeguard: Any) -> bool:
    """Whether ``safeguard`` consumes :class:`CBFConstraints` (the CBF layers) rather than an
    action-space set (``HPolytope`` / ``Box`` / ``Zonotope``)."""
    return isinstance(safeguard, (CompositeCBF, CBFQP))


def env_safe_set_fn(env: Any, safeguard: Any) -> Callable[[Tensor], Any]:
    """The safe-set function ``state (B, n) -> safe set`` of a task for a safeguard.

    * CBF layers (:class:`CompositeCBF`, :class:`CBFQP`):
      ``CBFConstraints(*env.cbf_constraints(state))`` (spec B Eq. 5); the task must provide
      ``cbf_constraints`` (``ReachAvoid-v0``), else ``TypeError``.
    * every other safeguard: ``env.safe_action_set(state)`` (an ``HPolytope`` in action space,
      spec A §2.3).

    Both keep the autograd graph from ``state`` to the set's tensors (the state path of SHAC).
    """
    if uses_cbf_constraints(safeguard):
        cbf = getattr(env, "cbf_constraints", None)
        if not callable(cbf):
            raise TypeError(
                f"{type(safeguard).__name__} needs a task with cbf_constraints(state) "
                f"(e.g. ReachAvoid-v0); {_env_name(env)} has none. Use an action-set safeguard "
                "(BoundaryProjection, RayMask) instead"
            )
        return lambda state: CBFConstraints(*cbf(state))
    sas = getattr(env, "safe_action_set", None)
    if not callable(sas):
        raise TypeError(f"{_env_name(env)} has no safe_action_set(state)")
    return lambda state: sas(state)


def _env_name(env: Any) -> str:
    return getattr(env, "env_id", "") or type(env).__name__


class SafeguardWrapper(VectorWrapper):
    """A task whose ``step`` always safeguards the action (spec A §3.1, issue 5 item 6).

    ``step(a)``:

    1. ``x = env.state``; ``S = set_fn(x)``: ``env.safe_action_set(x)`` (``HPolytope``), or for
       the CBF layers ``CBFConstraints(*env.cbf_constraints(x))`` (:func:`env_safe_set_fn`);
       the set keeps its dependence on ``x`` (SHAC back-propagates through it);
    2. ``a_s, sg_info = safeguard(a, S, fallback=fallback_fn(env, x))`` with the safeguard's
       gradient mode (``exact`` / ``passthrough`` / ``none``);
    3. ``env.step(a_s)``;
    4. the independent :class:`~safegrad.invariance.SafetyMonitor` checks
       ``(x, a_s, next_state)`` against the task's *true* safe set (``env.safety_margin``).

    Always safeguards (pitfall P1): there is no feasibility gate and the raw action is never
    executed silently.  Where no certified safe action exists (empty set, failed solve,
    uncertifiable CBF state), the safeguard's documented fallback is executed (the
    ``fallback_fn`` action if given, else the least-violating action-box point or ``ū``; see
    ``docs/safeguards.md``) and ``info["fallback"]`` is set; with ``strict=True`` on the
    safeguard it raises :class:`~safegrad.safeguards.SafeguardInfeasibleError` instead.

    ``safeguard=None`` is the explicit *unsafeguarded* baseline: the raw action is executed and
    only the monitor runs (``intervened`` is always False).  It exists to measure unsafe
    training (spec A Table 2), never as a silent default.

    Returns ``obs, reward, terminated, truncated, info`` as the task (torch tensors) with these
    extra ``info`` keys (shape ``(B,)`` unless stated):

    * ``safe_action`` ``(B, m)``: the executed action **with its autograd graph** (the only
      non-detached info entry; use it for the regularisation term, spec A Eq. 17);
    * ``intervened`` (bool): the safeguard changed the action (``||a_s - a|| > 0``);
    * ``raw_unsafe`` (bool): the raw action violated the safe set / CBF condition;
    * ``fallback`` (bool): the fallback was executed;
    * ``violation`` (bool): the monitor found the transition unsafe;
    * ``safety_margin``: the monitor's margin of the next state (``>= -tol`` safe);
    * ``safeguard_info``: the safeguard's full (detached) info dict (diagnostics).

    On autoreset steps (gymnasium next-step mode) the task ignores the action; the safeguard
    still runs and those steps count in the totals (their transition is the reset, which the
    monitor checks like any other).

    Running totals (since construction or :meth:`reset_totals`): ``steps`` (vector steps),
    ``transitions`` (``steps * num_envs``), ``interventions``, ``raw_unsafe``, ``fallbacks``,
    ``violations``; :meth:`totals` returns them as a dict.

    Regularisation (P2: returned explicitly, no attribute-name probing): :attr:`last_actions`
    (:class:`LastActions` ``(raw, safe)`` of the last step, with graphs) and
    :meth:`regularisation_loss`.  Over a rollout window, collect ``(a_t, info["safe_action"])``
    yourself and call :func:`~safegrad.safeguards.regularisation_loss` on the stacked tensors.

    Everything else behaves like the task: ``reset``, ``detach``, ``render(env_index=None)``,
    ``close``, the spaces, ``num_envs``, ``state`` (get and set), ``device``, ``dtype``,
    ``safe_action_set``, ``safety_margin`` (and any other public attribute of the task, read
    through).

    Args:
        env: a :class:`~safegrad.envs.TorchVectorEnv` (a gymnasium ``VectorEnv`` with ``state``,
            ``safe_action_set`` / ``cbf_constraints`` and ``safety_margin``).
        safeguard: a :class:`~safegrad.safeguards.Safeguard` module, or ``None`` (see above).
        set_fn: optional ``state (B, n) -> safe set`` overriding :func:`env_safe_set_fn`
            (e.g. for a custom safeguard class or a custom safe set).
        fallback_fn: optional ``(env, state) -> (B, m)`` certified fallback action (e.g. an RCI
            set's paired control), passed to the safeguard as ``fallback=``.
        monitor: a :class:`~safegrad.invariance.SafetyMonitor` (default: a new one on ``env``).
        monitor_tol: tolerance of the default monitor (default 1e-9 float64, 1e-5 float32).
    """

    def __init__(
        self,
        env: Any,
        safeguard: Safeguard | None,
        *,
        set_fn: Callable[[Tensor], Any] | None = None,
        fallback_fn: Callable[[Any, Tensor], Tensor] | None = None,
        monitor: SafetyMonitor | None = None,
        monitor_tol: float | None = None,
    ) -> None:
        if not isinstance(env, VectorEnv):
            raise TypeError(
                f"env must be a gymnasium VectorEnv (a safegrad task), got {type(env).__name__}"
            )
        if not isinstance(getattr(env, "state", None), Tensor):
            raise TypeError(f"env must expose its state tensor as env.state ({_env_name(env)})")
        if safeguard is not None and not isinstance(safeguard, Safeguard):
            raise TypeError(
                "safeguard must be a safegrad.safeguards.Safeguard (BoundaryProjection, RayMask, "
                f"CompositeCBF, CBFQP) or None, got {type(safeguard).__name__}"
            )
        if set_fn is not None and not callable(set_fn):
            raise TypeError(f"set_fn must be callable or None, got {set_fn!r}")
        if fallback_fn is not None and not callable(fallback_fn):
            raise TypeError(f"fallback_fn must be callable or None, got {fallback_fn!r}")
        if monitor is not None and not isinstance(monitor, SafetyMonitor):
            raise TypeError(f"monitor must be a SafetyMonitor or None, got {monitor!r}")
        super().__init__(env)
        self.safeguard = safeguard
        if safeguard is None:
            self.set_fn = None
        else:
            self.set_fn = set_fn if set_fn is not None else env_safe_set_fn(env, safeguard)
        self.fallback_fn = fallback_fn
        self.monitor = monitor if monitor is not None else SafetyMonitor(env, tol=monitor_tol)
        self._last: LastActions | None = None
        self.reset_totals()

    # ------------------------------------------------------------------ bookkeeping
    def reset_totals(self) -> None:
        """Zero the running totals (and the monitor's)."""
        self.steps = 0
        self.transitions = 0
        self.interventions = 0
        self.raw_unsafe = 0
        self.fallbacks = 0
        self.violations = 0
        self.monitor.reset()

    def totals(self) -> dict[str, int | float]:
        """``steps, transitions, interventions, raw_unsafe, fallbacks, violations`` and the
        rates ``intervention_rate``, ``violation_rate`` (per transition)."""
        n = max(self.transitions, 1)
        return {
            "steps": self.steps,
            "transitions": self.transitions,
            "interventions": self.interventions,
            "raw_unsafe": self.raw_unsafe,
            "fallbacks": self.fallbacks,
            "violations": self.violations,
            "intervention_rate": self.interventions / n,
            "violation_rate": self.violations / n,
        }

    @property
    def last_actions(self) -> LastActions | None:
        """``(raw, safe)`` actions of the last step (with autograd graphs), ``None`` before the
        first step or after :meth:`detach`."""
        return self._last

    def regularisation_loss(self, coef: float = 0.1, reduction: str = "mean") -> Tensor:
        """``coef * mean ||a_s - a||^2`` of the last step (spec A Eq. 17); see
        :func:`~safegrad.safeguards.regularisation_loss`."""
        if self._last is None:
            raise RuntimeError("regularisation_loss: no step since the last reset()/detach()")
        return regularisation_loss(self._last.raw, self._last.safe, coef, reduction)

    # ------------------------------------------------------------------ API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the task (running totals are kept; see :meth:`reset_totals`)."""
        self._last = None
        return self.env.reset(seed=seed, options=options)

    def _as_action(self, actions: Any) -> Tensor:
        env = self.env
        if not isinstance(actions, Tensor):
            try:
                actions = torch.as_tensor(
                    np.asarray(actions, dtype=np.float64), dtype=env.dtype, device=env.device
                )
            except (TypeError, ValueError) as err:
                raise TypeError(
                    f"actions of type {type(actions).__name__} are not numeric ({err})"
                ) from None
        shape = (self.num_envs, int(self.single_action_space.shape[0]))
        if tuple(actions.shape) != shape:
            raise ValueError(
                f"actions have shape {tuple(actions.shape)}; expected {shape} "
                f"= (num_envs, action_dim) for {_env_name(env)}"
            )
        if actions.dtype != env.dtype or actions.device != env.device:
            if not actions.dtype.is_floating_point:
                raise TypeError(f"actions have dtype {actions.dtype}; expected a float dtype")
            actions = actions.to(dtype=env.dtype, device=env.device)
        return actions

    def step(self, actions: Any):
        """Safeguard and execute ``actions (B, m)`` (class docstring)."""
        env = self.env
        a = self._as_action(actions)
        x = env.state
        if self.safeguard is None:
            a_s = a
            with torch.no_grad():
                z = torch.zeros(self.num_envs, dtype=torch.bool, device=a.device)
                sg_info = {
                    "intervened": z,
                    "raw_unsafe": z,
                    "fallback": z,
                    "distance": torch.zeros(self.num_envs, dtype=a.dtype, device=a.device),
                }
        else:
            safe_set = self.set_fn(x)
            fb = None if self.fallback_fn is None else self.fallback_fn(env, x)
            a_s, sg_info = self.safeguard(a, safe_set, fallback=fb)
        obs, reward, terminated, truncated, info = env.step(a_s)
        check = self.monitor.check(x.detach(), a_s.detach(), env.state.detach(), info)
        info = dict(info)
        info["safe_action"] = a_s
        info["intervened"] = sg_info["intervened"]
        info["raw_unsafe"] = sg_info["raw_unsafe"]
        info["fallback"] = sg_info["fallback"]
        info["violation"] = check["violation"]
        info["safety_margin"] = check["margin"]
        info["safeguard_info"] = sg_info
        self._last = LastActions(a, a_s)
        self.steps += 1
        self.transitions += self.num_envs
        self.interventions += int(sg_info["intervened"].sum())
        self.raw_unsafe += int(sg_info["raw_unsafe"].sum())
        self.fallbacks += int(sg_info["fallback"].sum())
        self.violations += int(check["violation"].sum())
        return obs, reward, terminated, truncated, info

    def detach(self) -> None:
        """Cut the autograd graph (the task's state) and drop the last actions' graphs."""
        self.env.detach()
        if self._last is not None:
            self._last = LastActions(self._last.raw.detach(), self._last.safe.detach())

    def get_rollout_state(self) -> dict[str, Any]:
        """The task's :meth:`~safegrad.envs.TorchVectorEnv.get_rollout_state` (the safeguard
        is stateless; the running totals are diagnostics and not part of it)."""
        return self.env.get_rollout_state()

    def set_rollout_state(self, state: dict[str, Any]) -> None:
        """Restore the task's rollout state (and forget the last actions)."""
        self.env.set_rollout_state(state)
        self._last = None

    def render(self, env_index: int | None = None):
        """The task's RGB frame of ``env_index`` (default ``render_env_index``)."""
        return self.env.render(env_index)

    # ------------------------------------------------------------------ passthrough
    @property
    def state(self) -> Tensor:
        """The task's state ``(B, n)`` (with its autograd graph)."""
        return self.env.state

    @state.setter
    def state(self, value: Tensor) -> None:
        self.env.state = value

    def __getattr__(self, name: str):
        # Read-through of the task's public attributes (device, dtype, state_dim, action_dim,
        # safe_action_set, safety_margin, cbf_constraints, episode_params, ...).  Only called
        # when normal lookup fails; private names are not forwarded.
        if name.startswith("_") or name == "env":
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self.env, name)

    def __repr__(self) -> str:
        sg = "None" if self.safeguard is None else repr(self.safeguard)
        return f"SafeguardWrapper({self.env!r}, safeguard={sg})"
