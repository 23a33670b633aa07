"""Policy-side integration point: :class:`SafeguardLayer`, the last layer of a policy
(spec B §3 Fig. 2a, §6 "log-prob of filtered actions"; spec A §4.3; issue 5 item 6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from safegrad.safeguards._base import Safeguard
from safegrad.safeguards.wrapper import env_safe_set_fn

__all__ = ["SafeguardLayer"]


class SafeguardLayer(nn.Module):
    """``(state, raw action) -> (safe action, info)``: a safeguard as the last policy layer.

    ``forward(x, action)`` builds the safe set ``set_fn(x)`` and returns
    ``safeguard(action, set_fn(x), fallback=fallback_fn(x))``.  With the default gradient mode
    (``exact``) gradients flow into the action (the policy) and, through the set, into ``x``.

    Conventions (spec B §3, §6; spec A §4.3):

    * the **critic sees the safe action** (``Q(x, u_s)``), the environment executes it;
    * the **log-probability stays the pre-filter one**: ``log π(a | x)`` of the raw
      (tanh-Gaussian) action ``a``.  When the layer intervenes it is a non-invertible map, so
      ``u_s`` has no proper density; this layer therefore computes no log-prob and does not
      change the distribution object.  SAC's actor loss is
      ``α_e log π(a|x) - Q(x, layer(x, a))`` and PPO's ratio uses ``log π(a|x)`` of the stored
      raw action.

    For a task, :meth:`for_env` uses the same safe set as :class:`SafeguardWrapper`
    (``env.safe_action_set`` or ``env.cbf_constraints``), so for the same state and raw action
    the layer returns exactly the action the wrapper executes.  Sets that depend on per-episode
    parameters (``NavigateSeeker-v0``'s obstacle) are those of the task's current episodes, so
    ``x`` must then be the batch of the task's environments, in order.

    Args:
        safeguard: a :class:`~safegrad.safeguards.Safeguard` module.
        set_fn: ``x (B, ...) -> safe set`` (an ``HPolytope`` / ``Box`` / ``Zonotope`` in action
            space, or :class:`~safegrad.safeguards.CBFConstraints` for the CBF layers).  ``x`` is
            whatever the policy is given (state or observation) as long as ``set_fn`` maps it.
        fallback_fn: optional ``x -> (B, m)`` certified fallback action.
    """

    def __init__(
        self,
        safeguard: Safeguard,
        set_fn: Callable[[Tensor], Any],
        *,
        fallback_fn: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(safeguard, Safeguard):
            raise TypeError(
                "safeguard must be a safegrad.safeguards.Safeguard (BoundaryProjection, RayMask, "
                f"CompositeCBF, CBFQP), got {type(safeguard).__name__}"
            )
        if not callable(set_fn):
            raise TypeError(f"set_fn must be callable (x -> safe set), got {set_fn!r}")
        if fallback_fn is not None and not callable(fallback_fn):
            raise TypeError(f"fallback_fn must be callable or None, got {fallback_fn!r}")
        self.safeguard = safeguard
        self.set_fn = set_fn
        self.fallback_fn = fallback_fn

    @classmethod
    def for_env(cls, env: Any, safeguard: Safeguard, **kw) -> SafeguardLayer:
        """The layer with the task's safe set (``x`` = the task's state ``(B, n)``); the same
        set as :class:`SafeguardWrapper` (:func:`~safegrad.safeguards.wrapper.env_safe_set_fn`).
        A :class:`SafeguardWrapper` is unwrapped to its task."""
        inner = getattr(env, "unwrapped", env)
        return cls(safeguard, env_safe_set_fn(inner, safeguard), **kw)

    def forward(self, x: Tensor, action: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Args: ``x (B, ...)`` the policy input for ``set_fn``; ``action (B, m)`` raw actions.

        Returns:
            ``safe_action (B, m)`` and the safeguard's ``info`` (``intervened``, ``raw_unsafe``,
            ``fallback``, ``distance``, ...; detached, ``(B,)``)."""
        fb = None if self.fallback_fn is None else self.fallback_fn(x)
        return self.safeguard(action, self.set_fn(x), fallback=fb)

    def extra_repr(self) -> str:
        return f"set_fn={getattr(self.set_fn, '__name__', type(self.set_fn).__name__)}"
