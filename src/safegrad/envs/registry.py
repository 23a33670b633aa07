"""Task registry: ``make(env_id, num_envs=..., seed=..., device=..., dtype=..., **task_kwargs)``.

Entry points are ``"module:Class"`` strings resolved on first use, so ``import safegrad.envs``
stays cheap and one broken task cannot break the others.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch

from safegrad.envs.base import TorchVectorEnv

__all__ = ["EnvSpec", "register", "make", "list_envs", "env_spec"]

#: constructor arguments handled by ``make`` itself (not task kwargs)
_COMMON = ("num_envs", "seed", "device", "dtype")


@dataclass(frozen=True)
class EnvSpec:
    """What ``make`` needs to build a task.

    Attributes:
        env_id: registry id, ``"Name-vN"``.
        entry_point: ``"module:Class"`` of a :class:`TorchVectorEnv` subclass (or the class).
        default_num_envs: ``num_envs`` when ``make`` gets none (the paper's N, spec A §5).
        max_episode_steps: episode length (documentation; the class holds the default).
        description: one line for ``list_envs(verbose=True)`` / docs.
        kwargs: default task kwargs passed to the constructor (overridable).
    """

    env_id: str
    entry_point: Any
    default_num_envs: int
    max_episode_steps: int
    description: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)

    def load(self) -> type[TorchVectorEnv]:
        """Import and return the task class."""
        if not isinstance(self.entry_point, str):
            return self.entry_point
        module_name, _, attr = self.entry_point.partition(":")
        return getattr(importlib.import_module(module_name), attr)


_REGISTRY: dict[str, EnvSpec] = {}


def register(
    env_id: str,
    entry_point: Any,
    *,
    default_num_envs: int,
    max_episode_steps: int,
    description: str = "",
    kwargs: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> EnvSpec:
    """Add a task to the registry (raises ``ValueError`` if ``env_id`` exists, unless
    ``overwrite``)."""
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env_id={env_id!r} must be a non-empty string")
    if env_id in _REGISTRY and not overwrite:
        raise ValueError(f"env_id {env_id!r} is already registered (pass overwrite=True)")
    spec = EnvSpec(
        env_id,
        entry_point,
        int(default_num_envs),
        int(max_episode_steps),
        description,
        dict(kwargs or {}),
    )
    _REGISTRY[env_id] = spec
    return spec


def list_envs() -> list[str]:
    """Registered task ids, sorted."""
    return sorted(_REGISTRY)


def env_spec(env_id: str) -> EnvSpec:
    """The :class:`EnvSpec` of ``env_id``; unknown ids raise ``ValueError`` with close matches."""
    if not isinstance(env_id, str):
        raise TypeError(f"env_id={env_id!r} must be a string")
    spec = _REGISTRY.get(env_id)
    if spec is None:
        lowered = {k.lower(): k for k in _REGISTRY}
        close = difflib.get_close_matches(env_id.lower(), list(lowered), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(lowered[c]) for c in close)}?" if close else ""
        raise ValueError(f"unknown env id {env_id!r}.{hint} Registered: {', '.join(list_envs())}")
    return spec


def _task_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """Keyword parameters of ``cls.__init__``, following ``**kwargs`` up the MRO."""
    out: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is TorchVectorEnv:
            continue
        params = dict(inspect.signature(klass.__init__).parameters)
        params.pop("self", None)
        for k, p in params.items():
            if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
                out.setdefault(k, p)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            break
    return out


def make(
    env_id: str,
    num_envs: int | None = None,
    seed: int | None = None,
    device: Any = "cpu",
    dtype: Any = torch.float32,
    **task_kwargs: Any,
) -> TorchVectorEnv:
    """Build a registered task.

    Args:
        env_id: e.g. ``"BalancePendulum-v0"`` (see :func:`list_envs`).
        num_envs: parallel environments (default: the task's paper value, ``docs/tasks.md``).
        seed: seeds initial states and disturbances (``reset()`` after ``make(seed=s)`` equals
            ``reset(seed=s)``).
        device, dtype: where the state lives (float32 or float64).
        **task_kwargs: task options (``reset_box``, ``check_nan``, ``clip_actions``,
            ``render_mode``, ``max_episode_steps``, and task-specific ones); unknown names raise
            ``TypeError`` listing the accepted ones.

    Returns:
        The environment (not yet reset: call ``reset()`` first).
    """
    spec = env_spec(env_id)
    cls = spec.load()
    accepted = _task_parameters(cls)
    for name in task_kwargs:
        if name in _COMMON or name not in accepted:
            options = sorted(k for k in accepted if k not in _COMMON)
            close = difflib.get_close_matches(name, options, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise TypeError(
                f"{env_id} got an unexpected keyword argument {name!r}.{hint} "
                f"Accepted task kwargs: {', '.join(options)}"
            )
    kwargs = {**spec.kwargs, **task_kwargs}
    num = spec.default_num_envs if num_envs is None else num_envs
    env = cls(num_envs=num, seed=seed, device=device, dtype=dtype, **kwargs)
    env.env_id = env_id
    return env


# --------------------------------------------------------------------------- the tasks
register(
    "BalancePendulum-v0",
    "safegrad.envs.pendulum:BalancePendulum",
    default_num_envs=8,
    max_episode_steps=3000,
    description="inverted pendulum, keep upright (spec A §5.1)",
)
register(
    "BalanceQuadrotor-v0",
    "safegrad.envs.quadrotor:BalanceQuadrotor",
    default_num_envs=16,
    max_episode_steps=240,
    description="planar quadrotor, hover at the initial position (spec A §5.2)",
)
register(
    "ManageHousehold-v0",
    "safegrad.envs.household:ManageHousehold",
    default_num_envs=8,
    max_episode_steps=720,
    description="household battery + heat pump, cost and comfort (spec A §5.3)",
)
register(
    "BalanceCartPole-v0",
    "safegrad.envs.cartpole:BalanceCartPole",
    default_num_envs=16,
    max_episode_steps=240,
    description="cart-pole, balance upright (spec A §5.4)",
)
register(
    "SwingUpCartPole-v0",
    "safegrad.envs.cartpole:SwingUpCartPole",
    default_num_envs=32,
    max_episode_steps=240,
    description="cart-pole, swing up from hanging (spec A §5.4)",
)
register(
    "NavigateSeeker-v0",
    "safegrad.envs.navigation:NavigateSeeker",
    default_num_envs=64,
    max_episode_steps=400,
    description="2-D seeker, one ball obstacle (spec A §5.4)",
)
register(
    "ReachAvoid-v0",
    "safegrad.envs.navigation:ReachAvoid",
    default_num_envs=1,
    max_episode_steps=200,
    description="2-D reach-avoid, goal circle and circular obstacles (spec B §7)",
)
