"""Household energy system: battery + heat pump (paper-era ``LoadBalanceHousehold``, spec A §5.3).

Also the hourly data loader (:func:`load_household_data`) and the electricity price schedule used by
the environment's reward (:data:`HOUSEHOLD_BUY_PRICE_BY_HOUR`, :data:`HOUSEHOLD_SELL_PRICE`).
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from importlib import resources

import torch
from torch import Tensor

from safegrad.systems.base import ControlSystem

__all__ = [
    "HouseholdEnergy",
    "HouseholdData",
    "load_household_data",
    "household_buy_price",
    "HOUSEHOLD_BUY_PRICE_BY_HOUR",
    "HOUSEHOLD_SELL_PRICE",
    "HOUSEHOLD_COP",
    "HOUSEHOLD_T_OUT_CENTRE",
    "HOUSEHOLD_T_OUT_HALFWIDTH",
    "HOUSEHOLD_DATA_COLUMNS",
]

#: Buying price [EUR/kWh] by hour of day 0..23 (spec A §5.3): 0.2 (00-05), 0.4 (06-10),
#: 0.2 (11-16), 0.5 (17-21), 0.2 (22-23).
HOUSEHOLD_BUY_PRICE_BY_HOUR: tuple[float, ...] = (
    (0.2,) * 6 + (0.4,) * 5 + (0.2,) * 6 + (0.5,) * 5 + (0.2,) * 2
)
#: Selling (feed-in) price [EUR/kWh] (spec A §5.3).
HOUSEHOLD_SELL_PRICE: float = 0.08
#: Fixed heat-pump coefficient of performance (spec A §5.3).
HOUSEHOLD_COP: float = 3.01
#: Disturbance box W for the outside temperature [degC]: centre and half-width (spec A §5.3).
HOUSEHOLD_T_OUT_CENTRE: float = 10.8985
HOUSEHOLD_T_OUT_HALFWIDTH: float = 20.1985
#: Columns a household data CSV must have (others are ignored).
HOUSEHOLD_DATA_COLUMNS: tuple[str, ...] = ("hour_of_day", "t_out", "load", "pv")


def household_buy_price(hour_of_day: Tensor, *, dtype: torch.dtype | None = None) -> Tensor:
    """Buying price [EUR/kWh] for integer hours of day ``(*batch,)`` (spec A §5.3).

    Args:
        hour_of_day: integer tensor with values in ``0..23``.
        dtype: floating dtype of the result (default float64).
    """
    if not isinstance(hour_of_day, Tensor) or hour_of_day.is_floating_point():
        raise TypeError("hour_of_day must be an integer torch.Tensor with values in 0..23")
    table = torch.tensor(
        HOUSEHOLD_BUY_PRICE_BY_HOUR, dtype=dtype or torch.float64, device=hour_of_day.device
    )
    return table[hour_of_day.remainder(24)]


class HouseholdEnergy(ControlSystem):
    """Battery + floor-heating heat pump, paper-era version (spec A §5.3), physical units.

    State ``x = (SoC [kWh], T_in [degC], T_ret [degC])``; action ``u in [-1, 1]^2`` with battery
    power ``P_ess = p_ess_max u_0`` [kW] (charging > 0) and heat-pump electrical power
    ``P_hp = p_hp_min + (p_hp_max - p_hp_min) (u_1 + 1) / 2`` [kW] (paper era: ``2.5 u_1 + 2.5 in
    [0, 5]``, i.e. ``P_hp >= 0``; HEAD's ``2.5 u_1`` is ``p_hp_min=-2.5, p_hp_max=2.5``);
    disturbance ``w = T_out`` [degC] (the environment feeds the recorded hourly outside
    temperature).  Explicit Euler with ``dt = 1`` h::

        SoC'   = SoC   + dt P_ess
        T_in'  = T_in  + dt (-C0 T_in + C1 T_ret + T_out / tau)
        T_ret' = T_ret + dt ( C2 T_in - C2 T_ret + C4 P_hp)

    ``C0 = (H_FH + H_OUT) / (H_OUT tau)``, ``C1 = H_FH / (H_OUT tau)``, ``C2 = H_FH / C_W_FH``,
    ``C4 = COP / C_W_FH``.  ``S = [0, 10] x [18, 24] x [10, 100]``;
    ``W = [10.8985 - 20.1985, 10.8985 + 20.1985]``.  Linear in ``(x, u, w)`` (hence exactly
    control-affine); the linearisation is exact everywhere.

    The paper-era reward quirks (normalised actions and PV with a plus sign, spec A §9 P9) concern
    the reward only and live in the environment; the dynamics here are the paper-era dynamics.

    Args:
        dt: step [h] (1).  h_fh: floor-heating heat transfer [kW/K] (1.1).  h_out: envelope heat
        transfer [kW/K] (0.26).  tau: building time constant [h] (240).  c_w_fh: floor-heating
        water capacity [kWh/K] (1.1625).  cop: coefficient of performance (3.01).
        p_ess_max: battery power per unit action [kW] (2).  p_hp_min, p_hp_max: heat-pump power
        range [kW] (0, 5).  soc_max: battery capacity [kWh] (10).  t_in_bounds: (18, 24).
        t_ret_bounds: (10, 100).  t_out_centre (10.8985), t_out_halfwidth (20.1985): the box W.
    """

    name = "household"
    state_dim = 3
    action_dim = 2
    disturbance_dim = 1
    state_names = ("soc", "t_in", "t_ret")
    action_names = ("p_ess", "p_hp")
    disturbance_names = ("t_out",)
    angle_indices = ()
    integrator = "explicit_euler"
    is_control_affine = True

    def __init__(
        self,
        *,
        dt: float = 1.0,
        h_fh: float = 1.1,
        h_out: float = 0.26,
        tau: float = 240.0,
        c_w_fh: float = 1.1625,
        cop: float = HOUSEHOLD_COP,
        p_ess_max: float = 2.0,
        p_hp_min: float = 0.0,
        p_hp_max: float = 5.0,
        soc_max: float = 10.0,
        t_in_bounds: tuple[float, float] = (18.0, 24.0),
        t_ret_bounds: tuple[float, float] = (10.0, 100.0),
        t_out_centre: float = HOUSEHOLD_T_OUT_CENTRE,
        t_out_halfwidth: float = HOUSEHOLD_T_OUT_HALFWIDTH,
    ) -> None:
        pos = dict(
            dt=dt, h_fh=h_fh, h_out=h_out, tau=tau, c_w_fh=c_w_fh, cop=cop,
            p_ess_max=p_ess_max, soc_max=soc_max,
        )  # fmt: skip
        for k, v in pos.items():
            if not v > 0:
                raise ValueError(f"HouseholdEnergy: {k} must be > 0, got {v}")
        if not p_hp_max > p_hp_min:
            raise ValueError(
                f"HouseholdEnergy: need p_hp_max > p_hp_min, got {p_hp_min}, {p_hp_max}"
            )
        if not t_out_halfwidth >= 0:
            raise ValueError(
                f"HouseholdEnergy: t_out_halfwidth must be >= 0, got {t_out_halfwidth}"
            )
        self.dt = float(dt)
        self.h_fh, self.h_out, self.tau = float(h_fh), float(h_out), float(tau)
        self.c_w_fh, self.cop = float(c_w_fh), float(cop)
        self.p_ess_max = float(p_ess_max)
        self.p_hp_min, self.p_hp_max = float(p_hp_min), float(p_hp_max)
        self.c0 = (self.h_fh + self.h_out) / (self.h_out * self.tau)
        self.c1 = self.h_fh / (self.h_out * self.tau)
        self.c2 = self.h_fh / self.c_w_fh
        self.c4 = self.cop / self.c_w_fh
        # P_hp = hp_mid + hp_half * u_1
        self._hp_mid = 0.5 * (self.p_hp_min + self.p_hp_max)
        self._hp_half = 0.5 * (self.p_hp_max - self.p_hp_min)
        lo = (0.0, float(t_in_bounds[0]), float(t_ret_bounds[0]))
        hi = (float(soc_max), float(t_in_bounds[1]), float(t_ret_bounds[1]))
        c, h = float(t_out_centre), float(t_out_halfwidth)
        self._init_boxes(lo, hi, (c - h,), (c + h,))

    def _next_state(self, x: Tensor, u: Tensor, w: Tensor, wrap: bool) -> Tensor:
        dt = self.dt
        soc, t_in, t_ret = x[..., 0], x[..., 1], x[..., 2]
        soc_n = torch.add(soc, u[..., 0], alpha=dt * self.p_ess_max)
        t_in_n = (1.0 - dt * self.c0) * t_in + (dt * self.c1) * t_ret + (dt / self.tau) * w[..., 0]
        t_ret_n = (
            (dt * self.c2) * t_in
            + (1.0 - dt * self.c2) * t_ret
            + (dt * self.c4) * (self._hp_mid + self._hp_half * u[..., 1])
        )
        return torch.stack((soc_n, t_in_n, t_ret_n), dim=-1)

    def control_affine(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``xdot = f(x) + g(x) u`` at ``T_out = c_W`` [1/h]; ``f (*B, 3)``, ``g (*B, 3, 2)``."""
        x = self._check(x, self.state_dim, "x (state)")
        t_in, t_ret = x[..., 1], x[..., 2]
        f = torch.stack(
            (
                torch.zeros_like(t_in),
                -self.c0 * t_in + self.c1 * t_ret + self._w_centre[0] / self.tau,
                self.c2 * (t_in - t_ret) + self.c4 * self._hp_mid,
            ),
            dim=-1,
        )
        return f, self._consts(x.device, x.dtype)["g"].expand(*x.shape[:-1], 3, 2)

    def _extra_consts(self, device: torch.device, dtype: torch.dtype) -> dict[str, Tensor]:
        g = [[self.p_ess_max, 0.0], [0.0, 0.0], [0.0, self.c4 * self._hp_half]]
        return {"g": torch.tensor(g, dtype=dtype, device=device)}

    def physical_action(self, u: Tensor) -> Tensor:
        """``(P_ess, P_hp)`` [kW], ``(*batch, 2)``."""
        u = self._check(u, self.action_dim, "u (normalised action)")
        return torch.stack(
            (self.p_ess_max * u[..., 0], self._hp_mid + self._hp_half * u[..., 1]), dim=-1
        )


# ---------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class HouseholdData:
    """Hourly household series (spec A §5.3 "data"; our own real-data replacement, docs/systems.md).

    Attributes:
        t_out: ``(T,)`` outside air temperature [degC].
        load: ``(T,)`` household electrical load (without heat pump) [kW], hourly mean.
        pv: ``(T,)`` PV AC power [kW], hourly mean, ``>= 0``.
        hour_of_day: ``(T,)`` int64 hour of day ``0..23`` (start of the hour, local time).
        source: where the data came from (a path).
    """

    t_out: Tensor
    load: Tensor
    pv: Tensor
    hour_of_day: Tensor
    source: str = ""

    def __len__(self) -> int:
        return int(self.t_out.shape[0])

    def to(self, *, dtype: torch.dtype | None = None, device=None) -> HouseholdData:
        """Move the float columns to ``dtype``/``device`` (``hour_of_day`` stays int64)."""
        return HouseholdData(
            self.t_out.to(device=device, dtype=dtype),
            self.load.to(device=device, dtype=dtype),
            self.pv.to(device=device, dtype=dtype),
            self.hour_of_day.to(device=device),
            self.source,
        )


_DEFAULT_DATA = "data/household.csv"


def _read_text(path: str | os.PathLike | None) -> tuple[str, str]:
    if path is None:
        ref = resources.files("safegrad").joinpath(_DEFAULT_DATA)
        return ref.read_text(encoding="utf-8"), f"safegrad/{_DEFAULT_DATA}"
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise FileNotFoundError(f"household data file not found: {p!r}")
    with open(p, encoding="utf-8") as fh:
        return fh.read(), p


def load_household_data(
    path: str | os.PathLike | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> HouseholdData:
    """Load hourly ``t_out``, ``load``, ``pv``, ``hour_of_day`` from a CSV file.

    The default (``path=None``) is the shipped ``safegrad/data/household.csv``: one typical year
    (8760 h) built by ``scripts/make_household_data.py`` from the DWD test reference year and the
    BDEW H0 standard load profile (provenance in ``safegrad/data/household_README.md`` and
    ``docs/systems.md``).

    A user CSV needs a header row with at least the columns ``hour_of_day`` (integer 0..23,
    consecutive rows one hour apart), ``t_out`` [degC], ``load`` [kW, >= 0] and ``pv``
    [kW, >= 0]; other columns are ignored and lines starting with ``#`` are skipped.

    Args:
        path: CSV path, or ``None`` for the shipped data.
        dtype: floating dtype of ``t_out``, ``load``, ``pv``.
        device: device of all tensors.

    Returns:
        :class:`HouseholdData` with ``(T,)`` tensors.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: missing columns, non-numeric or non-finite values, negative load/PV, hours of
            day outside 0..23 or not consecutive, or no data rows.
    """
    text, source = _read_text(path)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"{source}: empty household data file (expected a header row)")
    reader = csv.reader(io.StringIO("\n".join(lines)))
    header = [h.strip() for h in next(reader)]
    missing = [c for c in HOUSEHOLD_DATA_COLUMNS if c not in header]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {missing}; required {list(HOUSEHOLD_DATA_COLUMNS)}, "
            f"found {header}"
        )
    idx = {c: header.index(c) for c in HOUSEHOLD_DATA_COLUMNS}
    cols: dict[str, list[float]] = {c: [] for c in HOUSEHOLD_DATA_COLUMNS}
    for row_no, row in enumerate(reader, start=2):
        if len(row) != len(header):
            raise ValueError(
                f"{source}: data row {row_no} has {len(row)} fields, header has {len(header)}"
            )
        for c, i in idx.items():
            s = row[i].strip()
            try:
                v = float(s)
            except ValueError:
                raise ValueError(
                    f"{source}: data row {row_no}, column {c!r}: {s!r} is not a number"
                ) from None
            if not math.isfinite(v):
                raise ValueError(f"{source}: data row {row_no}, column {c!r}: {s!r} is not finite")
            cols[c].append(v)
    n = len(cols["t_out"])
    if n == 0:
        raise ValueError(f"{source}: no data rows after the header")
    for c in ("load", "pv"):
        bad = next((k for k, v in enumerate(cols[c]) if v < 0), None)
        if bad is not None:
            raise ValueError(
                f"{source}: column {c!r} must be >= 0 kW, got {cols[c][bad]} in data row {bad + 2}"
            )
    hours = cols["hour_of_day"]
    for k, h in enumerate(hours):
        if h != int(h) or not 0 <= h <= 23:
            raise ValueError(
                f"{source}: hour_of_day must be an integer in 0..23, got {h} in data row {k + 2}"
            )
        if k > 0 and int(h) != (int(hours[k - 1]) + 1) % 24:
            raise ValueError(
                f"{source}: rows must be consecutive hours; hour_of_day goes from "
                f"{int(hours[k - 1])} to {int(h)} at data row {k + 2}"
            )
    return HouseholdData(
        t_out=torch.tensor(cols["t_out"], dtype=dtype, device=device),
        load=torch.tensor(cols["load"], dtype=dtype, device=device),
        pv=torch.tensor(cols["pv"], dtype=dtype, device=device),
        hour_of_day=torch.tensor([int(h) for h in hours], dtype=torch.int64, device=device),
        source=source,
    )
