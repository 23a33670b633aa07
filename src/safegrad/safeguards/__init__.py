"""safegrad.safeguards: differentiable maps from any proposed action to a provably safe one.

Spec A (``safeguards-analytic-gradients.md`` §3) and spec B (``composite-cbf-closed-form.md``
§4-§6); user guide ``docs/safeguards.md``.

Every safeguard is a parameter-free ``torch.nn.Module`` with
``forward(action, safe_set, *, fallback=None, **kw) -> (safe_action, info)``:

* :class:`BoundaryProjection` -- Euclidean projection onto ``A ∩ A_s`` (Eq. 12, Theorem 1);
* :class:`RayMask` -- radial map towards a safe centre, linear or tanh (§3.3-3.4, Eq. 32);
* :class:`CompositeCBF` -- closed-form log-sum-exp composite CBF layer (spec B Eq. 14-21);
* :class:`CBFQP` -- exact multi-constraint CBF-QP (spec B Eq. 6).

``safe_set`` is a :mod:`safegrad.sets` object in action space (:class:`~safegrad.sets.HPolytope`,
:class:`~safegrad.sets.Box`, :class:`~safegrad.sets.Zonotope`) for the first two and a
:class:`CBFConstraints` for the CBF layers.  Gradient modes ``exact | passthrough | none`` and
:func:`regularisation_loss` (Eq. 17) apply to all of them.

Integration points (issue 5 item 6): :class:`SafeguardWrapper` (environment side, ``step``
safeguards and monitors) and :class:`SafeguardLayer` (policy side, the last policy layer);
``safegrad.make(env_id, safeguard=...)`` builds the wrapped task.
"""

from __future__ import annotations

from safegrad.safeguards._base import (
    GRAD_MODES,
    PASSTHROUGH_SCOPES,
    Safeguard,
    SafeguardInfeasibleError,
    regularisation_loss,
)
from safegrad.safeguards._geometry import default_directions
from safegrad.safeguards.cbf import (
    CBFQP,
    CBFConstraints,
    CompositeCBF,
    composite_barrier,
    project_halfspace_box,
)
from safegrad.safeguards.layer import SafeguardLayer
from safegrad.safeguards.projection import BoundaryProjection
from safegrad.safeguards.ray_mask import CENTRES, RAY_MAPS, RayMask, ray_profile
from safegrad.safeguards.wrapper import LastActions, SafeguardWrapper, env_safe_set_fn

__all__ = [
    "Safeguard",
    "SafeguardInfeasibleError",
    "BoundaryProjection",
    "RayMask",
    "CompositeCBF",
    "CBFQP",
    "CBFConstraints",
    "regularisation_loss",
    "SafeguardWrapper",
    "SafeguardLayer",
    "LastActions",
    "env_safe_set_fn",
    "composite_barrier",
    "project_halfspace_box",
    "ray_profile",
    "default_directions",
    "GRAD_MODES",
    "PASSTHROUGH_SCOPES",
    "RAY_MAPS",
    "CENTRES",
]
