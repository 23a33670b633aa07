"""The learning algorithms the experiment runner knows, imported only when chosen.

Each entry names the module, the agent class and its config dataclass (the algorithm contract of
``docs/algorithms.md``: ``Algo(env, config)``, ``learn``, ``save``/``load``, ``evaluate``).
Importing :mod:`safegrad.experiments` never imports an algorithm, so a run of SHAC works in an
installation whose SAC or PPO module is missing or broken.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from dataclasses import dataclass

__all__ = ["AlgoSpec", "ALGOS", "AlgorithmUnavailableError", "get_algo"]


class AlgorithmUnavailableError(ImportError):
    """The chosen algorithm's module cannot be imported in this installation."""


@dataclass(frozen=True)
class AlgoSpec:
    """Where an algorithm lives.

    Attributes:
        name: CLI name (``"shac"``).
        module: module path (``"safegrad.algos.shac"``).
        agent: agent class name in ``module``.
        config: config dataclass name in ``module`` (a ``ConfigMixin``).
        description: one line for ``--help``.
    """

    name: str
    module: str
    agent: str
    config: str
    description: str

    def load(self) -> tuple[type, type]:
        """``(AgentClass, ConfigClass)``; :class:`AlgorithmUnavailableError` if the module is
        missing (the message says which)."""
        try:
            mod = importlib.import_module(self.module)
        except ModuleNotFoundError as err:
            if err.name is not None and self.module.startswith(err.name):
                raise AlgorithmUnavailableError(
                    f"algorithm {self.name!r} ({self.module}) is not available in this "
                    f"installation of safegrad; available: {available_algos() or 'none'}"
                ) from err
            raise
        try:
            return getattr(mod, self.agent), getattr(mod, self.config)
        except AttributeError as err:
            raise AlgorithmUnavailableError(
                f"{self.module} has no {self.agent}/{self.config} (algorithm {self.name!r})"
            ) from err


#: name -> :class:`AlgoSpec` (spec A §4)
ALGOS: dict[str, AlgoSpec] = {
    "shac": AlgoSpec(
        "shac",
        "safegrad.algos.shac",
        "SHAC",
        "SHACConfig",
        "short-horizon actor-critic through the differentiable simulator (spec A §4.2)",
    ),
    "sac": AlgoSpec(
        "sac",
        "safegrad.algos.sac",
        "SAC",
        "SACConfig",
        "soft actor-critic; safeguard in the env or as the last policy layer (spec A §4.3)",
    ),
    "ppo": AlgoSpec(
        "ppo",
        "safegrad.algos.ppo",
        "PPO",
        "PPOConfig",
        "proximal policy optimisation; safeguard in the env or the policy (spec A §4.4)",
    ),
}


def get_algo(name: str) -> AlgoSpec:
    """The :class:`AlgoSpec` for ``name`` (``ValueError`` naming the close match otherwise)."""
    if isinstance(name, str) and name.lower() in ALGOS:
        return ALGOS[name.lower()]
    close = difflib.get_close_matches(str(name).lower(), list(ALGOS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown algo {name!r}.{hint} Expected one of {list(ALGOS)}")


def available_algos() -> list[str]:
    """Names whose module imports (used in error messages)."""
    out = []
    for name, spec in ALGOS.items():
        if importlib.util.find_spec(spec.module) is not None:
            out.append(name)
    return out
