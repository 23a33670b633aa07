"""``safegrad.make``: build a task, optionally wrapped in a safeguard (issue 5 item 6).

``make(env_id, ..., safeguard=None)`` is exactly :func:`safegrad.envs.make`;
``make(env_id, ..., safeguard="ray-mask")`` returns a
:class:`~safegrad.safeguards.SafeguardWrapper` around it (``docs/safeguards.md``).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["make", "SAFEGUARDS", "build_safeguard"]

#: safeguard names accepted by :func:`make` -> one-line description
SAFEGUARDS: dict[str, str] = {
    "boundary-projection": "BoundaryProjection(): Euclidean projection onto A ∩ A_s",
    "ray-mask": "RayMask('linear', centre='zonotope')",
    "ray-mask-tanh": "RayMask('tanh', centre='zonotope') (hyperbolic ray mask)",
    "composite-cbf": "CompositeCBF(kappa=env.kappa, alpha=env.cbf_alpha) (CBF tasks only)",
    "cbf-qp": "CBFQP(alpha=env.cbf_alpha) (CBF tasks only)",
}
_CBF = ("composite-cbf", "cbf-qp")


def _choices() -> str:
    return ", ".join(repr(k) for k in SAFEGUARDS) + " or None"


def build_safeguard(name: str, env: Any = None, **kwargs: Any):
    """The safeguard module for ``name`` (see :data:`SAFEGUARDS`).

    For the CBF layers ``kappa`` / ``alpha`` default to the task's ``env.kappa`` /
    ``env.cbf_alpha`` (the values its ``safe_action_set`` and reset use) when ``env`` has them.
    ``kwargs`` go to the constructor (``grad_mode``, ``centre``, ``action_box``, ...).
    """
    from safegrad import safeguards as sg

    if not isinstance(name, str) or name not in SAFEGUARDS:
        raise ValueError(f"unknown safeguard {name!r}; expected one of {_choices()}")
    if name == "boundary-projection":
        return sg.BoundaryProjection(**kwargs)
    if name in ("ray-mask", "ray-mask-tanh"):
        if "map" in kwargs:
            raise TypeError(
                f"safeguard {name!r} fixes the map; use 'ray-mask' (linear) or 'ray-mask-tanh'"
            )
        return sg.RayMask("linear" if name == "ray-mask" else "tanh", **kwargs)
    if name == "composite-cbf":
        if env is not None and hasattr(env, "kappa"):
            kwargs.setdefault("kappa", env.kappa)
        if env is not None and hasattr(env, "cbf_alpha"):
            kwargs.setdefault("alpha", env.cbf_alpha)
        return sg.CompositeCBF(**kwargs)
    if env is not None and hasattr(env, "cbf_alpha"):
        kwargs.setdefault("alpha", env.cbf_alpha)
    return sg.CBFQP(**kwargs)


def make(
    env_id: str,
    num_envs: int | None = None,
    seed: int | None = None,
    device: Any = "cpu",
    dtype: Any = torch.float32,
    *,
    safeguard: Any = None,
    safeguard_kwargs: dict[str, Any] | None = None,
    **task_kwargs: Any,
):
    """Build a registered task, optionally behind a safeguard.

    Args:
        env_id, num_envs, seed, device, dtype, **task_kwargs: as :func:`safegrad.envs.make`.
        safeguard: ``None`` (the bare task), one of ``"boundary-projection"``, ``"ray-mask"``,
            ``"ray-mask-tanh"``, ``"composite-cbf"``, ``"cbf-qp"`` (the last two only for tasks
            with ``cbf_constraints``, i.e. ``ReachAvoid-v0``), or a
            :class:`~safegrad.safeguards.Safeguard` instance.
        safeguard_kwargs: constructor options of the safeguard, e.g.
            ``{"grad_mode": "passthrough"}`` or ``{"centre": "chebyshev"}``.

    Returns:
        the task (``safeguard=None``) or a :class:`~safegrad.safeguards.SafeguardWrapper`.

    Raises:
        ValueError: unknown safeguard name (the message lists the valid ones), a CBF safeguard
            for a task without CBF constraints, or ``safeguard_kwargs`` without a safeguard.
        TypeError: ``safeguard_kwargs`` not a dict, or a bad safeguard object.
    """
    from safegrad import envs
    from safegrad.safeguards import Safeguard, SafeguardWrapper

    if safeguard_kwargs is not None and not isinstance(safeguard_kwargs, dict):
        raise TypeError(f"safeguard_kwargs must be a dict or None, got {safeguard_kwargs!r}")
    if safeguard is None:
        if safeguard_kwargs:
            raise ValueError(
                f"safeguard_kwargs={safeguard_kwargs!r} given without a safeguard; pass "
                f"safeguard= one of {_choices()}"
            )
        return envs.make(env_id, num_envs, seed, device, dtype, **task_kwargs)
    if isinstance(safeguard, Safeguard):
        if safeguard_kwargs:
            raise ValueError("safeguard_kwargs only apply to a safeguard given by name")
    elif not isinstance(safeguard, str):
        raise TypeError(
            f"safeguard must be a name ({_choices()}) or a Safeguard instance, got "
            f"{type(safeguard).__name__}"
        )
    elif safeguard not in SAFEGUARDS:
        raise ValueError(f"unknown safeguard {safeguard!r}; expected one of {_choices()}")
    elif safeguard in _CBF:
        cls = envs.env_spec(env_id).load()
        if not callable(getattr(cls, "cbf_constraints", None)):
            cbf_tasks = [
                e
                for e in envs.list_envs()
                if callable(getattr(envs.env_spec(e).load(), "cbf_constraints", None))
            ]
            raise ValueError(
                f"safeguard {safeguard!r} needs a task with CBF constraints "
                f"({', '.join(cbf_tasks)}); {env_id} has none. Use 'boundary-projection', "
                "'ray-mask' or 'ray-mask-tanh'"
            )
    env = envs.make(env_id, num_envs, seed, device, dtype, **task_kwargs)
    if isinstance(safeguard, str):
        safeguard = build_safeguard(safeguard, env, **(safeguard_kwargs or {}))
    return SafeguardWrapper(env, safeguard)
