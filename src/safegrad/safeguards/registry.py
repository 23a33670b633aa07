"""Safeguards by name: :data:`SAFEGUARDS` and :func:`build_safeguard` (issue 5 item 6).

Used by :func:`safegrad.make` (environment side) and by the learning algorithms' policy-side
option (``policy_safeguard`` of ``SACConfig`` / ``PPOConfig``); ``safegrad._make`` re-exports
both names.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SAFEGUARDS", "CBF_SAFEGUARDS", "build_safeguard", "safeguard_choices"]

#: safeguard names -> one-line description
SAFEGUARDS: dict[str, str] = {
    "boundary-projection": "BoundaryProjection(): Euclidean projection onto A ∩ A_s",
    "ray-mask": "RayMask('linear', centre='zonotope')",
    "ray-mask-tanh": "RayMask('tanh', centre='zonotope') (hyperbolic ray mask)",
    "composite-cbf": "CompositeCBF(kappa=env.kappa, alpha=env.cbf_alpha) (CBF tasks only)",
    "cbf-qp": "CBFQP(alpha=env.cbf_alpha) (CBF tasks only)",
}

#: the names that need a task with ``cbf_constraints`` (ReachAvoid-v0)
CBF_SAFEGUARDS: tuple[str, ...] = ("composite-cbf", "cbf-qp")


def safeguard_choices() -> str:
    """The valid names, quoted, for error messages."""
    return ", ".join(repr(k) for k in SAFEGUARDS) + " or None"


def build_safeguard(name: str, env: Any = None, **kwargs: Any):
    """The safeguard module for ``name`` (see :data:`SAFEGUARDS`).

    For the CBF layers ``kappa`` / ``alpha`` default to the task's ``env.kappa`` /
    ``env.cbf_alpha`` (the values its ``safe_action_set`` and reset use) when ``env`` has them.
    ``kwargs`` go to the constructor (``grad_mode``, ``centre``, ``action_box``, ...).
    """
    from safegrad.safeguards.cbf import CBFQP, CompositeCBF
    from safegrad.safeguards.projection import BoundaryProjection
    from safegrad.safeguards.ray_mask import RayMask

    if not isinstance(name, str) or name not in SAFEGUARDS:
        raise ValueError(f"unknown safeguard {name!r}; expected one of {safeguard_choices()}")
    if name == "boundary-projection":
        return BoundaryProjection(**kwargs)
    if name in ("ray-mask", "ray-mask-tanh"):
        if "map" in kwargs:
            raise TypeError(
                f"safeguard {name!r} fixes the map; use 'ray-mask' (linear) or 'ray-mask-tanh'"
            )
        return RayMask("linear" if name == "ray-mask" else "tanh", **kwargs)
    if name == "composite-cbf":
        if env is not None and hasattr(env, "kappa"):
            kwargs.setdefault("kappa", env.kappa)
        if env is not None and hasattr(env, "cbf_alpha"):
            kwargs.setdefault("alpha", env.cbf_alpha)
        return CompositeCBF(**kwargs)
    if env is not None and hasattr(env, "cbf_alpha"):
        kwargs.setdefault("alpha", env.cbf_alpha)
    return CBFQP(**kwargs)
