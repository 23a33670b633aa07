"""Torch-native Gymnasium vector environments, the task registry and the tasks.

``make("BalancePendulum-v0", num_envs=8, seed=0)`` builds a task; :func:`list_envs` lists them.
See ``docs/tasks.md`` for every task's state, action, observation, reward, episode and reset.
"""

from __future__ import annotations

from safegrad.envs.base import TorchVectorEnv
from safegrad.envs.registry import EnvSpec, env_spec, list_envs, make, register
from safegrad.envs.single import SingleEnvView

__all__ = [
    "TorchVectorEnv",
    "SingleEnvView",
    "EnvSpec",
    "env_spec",
    "list_envs",
    "make",
    "register",
    "BalancePendulum",
    "BalanceQuadrotor",
    "ManageHousehold",
    "BalanceCartPole",
    "SwingUpCartPole",
    "NavigateSeeker",
    "ReachAvoid",
]

_TASKS = {
    "BalancePendulum": "safegrad.envs.pendulum",
    "BalanceQuadrotor": "safegrad.envs.quadrotor",
    "ManageHousehold": "safegrad.envs.household",
    "BalanceCartPole": "safegrad.envs.cartpole",
    "SwingUpCartPole": "safegrad.envs.cartpole",
    "NavigateSeeker": "safegrad.envs.navigation",
    "ReachAvoid": "safegrad.envs.navigation",
}


def __getattr__(name: str):
    # Task classes are imported on first use (keeps ``import safegrad.envs`` cheap).
    if name in _TASKS:
        import importlib

        return getattr(importlib.import_module(_TASKS[name]), name)
    raise AttributeError(f"module 'safegrad.envs' has no attribute {name!r}")
