"""Batched, differentiable convex-set geometry in torch (spec A §2.2, §3.3-3.4).

Classes: :class:`Box`, :class:`Zonotope`, :class:`HPolytope`, :class:`Ball`, all subclasses of
:class:`ConvexSet`.  Every set carries a batch shape ``(*batch,)``; points and directions
``(*pbatch, n)`` broadcast against it.  Closed-form operations are plain tensor expressions (no
Python loops over the batch, no host syncs); solver-based ones call :mod:`safegrad.qp`.
See ``docs/sets.md`` for the user guide.
"""

from __future__ import annotations

from safegrad.sets._base import ConvexSet
from safegrad.sets._facets import HREP_MAX_SUBSETS
from safegrad.sets.ball import Ball
from safegrad.sets.box import Box
from safegrad.sets.hpolytope import HPolytope
from safegrad.sets.zonotope import HREP_AUTO_BUDGET, HREP_AUTO_MAX_DIM, Zonotope

__all__ = [
    "ConvexSet",
    "Box",
    "Zonotope",
    "HPolytope",
    "Ball",
    "HREP_MAX_SUBSETS",
    "HREP_AUTO_MAX_DIM",
    "HREP_AUTO_BUDGET",
]
