"""Batched differentiable dynamics ``x' = F(x, u, w)`` (spec A §2.1, §2.3, §5; spec B §7).

Every system takes the normalised action ``u in [-1, 1]^m``, a disturbance ``w in W`` and a state
``x`` of shape ``(*batch, n)``; see :class:`ControlSystem` and ``docs/systems.md``.
"""

from __future__ import annotations

from safegrad.systems.base import ControlSystem, wrap_angle
from safegrad.systems.cartpole import CartPole
from safegrad.systems.household import (
    HOUSEHOLD_BUY_PRICE_BY_HOUR,
    HOUSEHOLD_SELL_PRICE,
    HouseholdData,
    HouseholdEnergy,
    household_buy_price,
    load_household_data,
)
from safegrad.systems.pendulum import Pendulum
from safegrad.systems.quadrotor import PlanarQuadrotor
from safegrad.systems.single_integrator import SingleIntegrator

__all__ = [
    "ControlSystem",
    "Pendulum",
    "CartPole",
    "PlanarQuadrotor",
    "HouseholdEnergy",
    "SingleIntegrator",
    "HouseholdData",
    "load_household_data",
    "household_buy_price",
    "HOUSEHOLD_BUY_PRICE_BY_HOUR",
    "HOUSEHOLD_SELL_PRICE",
    "wrap_angle",
]
