"""``safegrad.make``: build a task, optionally wrapped in a safeguard (issue 5 item 6).

``make(env_id, ..., safeguard=None)`` is exactly :func:`safegrad.envs.make`;
``make(env_id, ..., safeguard="ray-mask")`` returns a
:class:`~safegrad.safeguards.SafeguardWrapper` around it (``docs/safeguards.md``).
"""

from __future__ import annotations

from typing import Any

import torch

# the names live in safegrad.safeguards.registry (algos build policy-side safeguards there);
# re-exported here: safegrad._make.SAFEGUARDS / build_safeguard stay importable
from safegrad.safeguards.registry import CBF_SAFEGUARDS as _CBF
from safegrad.safeguards.registry import SAFEGUARDS, build_safeguard
from safegrad.safeguards.registry import safeguard_choices as _choices

__all__ = ["make", "SAFEGUARDS", "build_safeguard"]


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
