"""safegrad: provably safe reinforcement learning with differentiable safeguards.

Packages (dependency direction, an import only points down this list; see
``../shared/design/ARCHITECTURE.md``)::

    cli -> experiments/analysis/bench -> algos -> safeguards -> envs -> invariance
        -> systems -> sets -> qp
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "make", "list_envs"]


def __getattr__(name: str):
    # Lazy: ``import safegrad`` stays cheap, and ``safegrad.qp`` never pulls in the envs.
    if name == "make":
        from safegrad._make import make

        return make
    if name == "list_envs":
        from safegrad import envs

        return envs.list_envs
    raise AttributeError(f"module 'safegrad' has no attribute {name!r}")
