"""``ManageHousehold-v0``: battery + heat pump, electricity cost and thermal comfort (spec A §5.3).

Reward (``r = -cost - comfort``, on the new state and the executed action, ``k`` = data hour of
the step)::

    default (physical units, PV offsets load; spec A §9 P9):
        P_grid = P_ess + P_hp + load_k - pv_k                                   [kW]
    paper_compat=True (the paper-era formula, exactly):
        P_grid = a_0 + a_1 + load_k + pv_k        (normalised actions, PV with a plus sign)
    cost    = dt * P_grid * (buy_price(hour_k) if P_grid >= 0 else 0.08)       [EUR]
    comfort = 100 * (T_in' - 21)^2
"""

from __future__ import annotations

from typing import Any

import torch

from safegrad.envs.base import TorchVectorEnv
from safegrad.systems.household import (
    HOUSEHOLD_BUY_PRICE_BY_HOUR,
    HOUSEHOLD_COP,
    HOUSEHOLD_SELL_PRICE,
    HouseholdData,
    HouseholdEnergy,
    load_household_data,
)

__all__ = ["ManageHousehold"]


class ManageHousehold(TorchVectorEnv):
    """Household energy management, paper-era ``LoadBalanceHousehold`` (spec A §5.3).

    * state ``(SoC [kWh], T_in [degC], T_ret [degC])``, ``S = [0, 10] x [18, 24] x [10, 100]``
      (clamped); action ``(battery, heat pump)`` normalised (``P_ess = 2 a_0`` kW,
      ``P_hp = 2.5 a_1 + 2.5`` kW with the default system); the disturbance is the recorded
      outside temperature of the step's hour (not sampled).
    * data: hourly ``load``, ``pv``, ``t_out`` from ``load_household_data(data_path)`` (or a
      :class:`HouseholdData` via ``data``); every episode of every environment covers the
      same hours ``start_index .. start_index + 719`` (default 7800, late November).
    * observation (``3 + 5 * forecast_hours`` = 23): state, then for the hours ``k .. k+3`` of the
      next step: load, PV, outside temperature, COP (constant 3.01) and buying price.
    * reward: see the module docstring; ``paper_compat=True`` reproduces the paper-era formula.
    * 720-step (30-day) episodes, truncate together, ``terminated`` always False.
    * reset: uniform in ``reset_box``, default centre ``(5, 21, 55)``, half-widths
      ``(5/3, 1, 15)`` (spec A §5.3).
    * info: ``state_margin``, ``clamped``, ``cost`` [EUR], ``comfort`` (the penalty),
      ``grid_power`` (``P_grid`` of the reward formula).
    """

    env_id = "ManageHousehold-v0"
    metadata = {**TorchVectorEnv.metadata, "render_modes": []}
    info_keys = ("state_margin", "clamped", "cost", "comfort", "grid_power")

    def __init__(
        self,
        *,
        num_envs: int = 8,
        max_episode_steps: int = 720,
        seed: int | None = None,
        device: Any = "cpu",
        dtype: Any = torch.float32,
        reset_box: Any = None,
        check_nan: bool = True,
        clip_actions: bool = False,
        render_mode: str | None = None,
        render_env_index: int = 0,
        paper_compat: bool = False,
        data_path: Any = None,
        data: HouseholdData | None = None,
        start_index: int = 7800,
        forecast_hours: int = 4,
        comfort_weight: float = 100.0,
        t_in_target: float = 21.0,
        system: HouseholdEnergy | None = None,
    ) -> None:
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r}: ManageHousehold-v0 has no renderer")
        if not isinstance(paper_compat, bool):
            raise TypeError(f"paper_compat={paper_compat!r} must be a bool")
        if data is not None and data_path is not None:
            raise ValueError("pass either data or data_path, not both")
        system = HouseholdEnergy() if system is None else system
        if data is None:
            data = load_household_data(data_path)
        elif not isinstance(data, HouseholdData):
            raise TypeError(f"data must be a HouseholdData, got {type(data).__name__}")
        for name, value in (("start_index", start_index), ("forecast_hours", forecast_hours)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}={value!r} must be a non-negative int")
        if forecast_hours < 1:
            raise ValueError(f"forecast_hours={forecast_hours} must be >= 1")
        if isinstance(max_episode_steps, int) and not isinstance(max_episode_steps, bool):
            need = start_index + max_episode_steps + forecast_hours
            if need > len(data):
                raise ValueError(
                    f"start_index={start_index} + max_episode_steps={max_episode_steps} + "
                    f"forecast_hours={forecast_hours} = {need} exceeds the {len(data)} hours "
                    f"of data ({data.source})"
                )

        d64 = data.to(dtype=torch.float64, device="cpu")
        f = forecast_hours
        price_table = torch.tensor(HOUSEHOLD_BUY_PRICE_BY_HOUR, dtype=torch.float64)
        price = price_table[d64.hour_of_day]
        cop = torch.full_like(d64.t_out, HOUSEHOLD_COP)
        series = (d64.load, d64.pv, d64.t_out, cop, price)
        lo = system.state_low.tolist()
        hi = system.state_high.tolist()
        for s in series:
            lo += [float(s.min())] * f
            hi += [float(s.max())] * f
        # the COP is a constant; give its column a nominal range (a Box needs low < high)
        lo[3 + 3 * f : 3 + 4 * f] = [0.0] * f
        hi[3 + 3 * f : 3 + 4 * f] = [10.0] * f
        super().__init__(
            system,
            num_envs=num_envs,
            max_episode_steps=max_episode_steps,
            obs_low=lo,
            obs_high=hi,
            seed=seed,
            device=device,
            dtype=dtype,
            reset_box=reset_box,
            check_nan=check_nan,
            clip_actions=clip_actions,
            render_mode=None,
            render_env_index=render_env_index,
        )
        self.paper_compat = paper_compat
        self.data = data
        self.start_index = start_index
        self.forecast_hours = f
        self.comfort_weight = float(comfort_weight)
        self.t_in_target = float(t_in_target)
        T = self.max_episode_steps
        k = torch.arange(start_index, start_index + T + 1)
        win = k[:, None] + torch.arange(f)[None, :]  # (T+1, f)
        # per step t: [load k..k+f-1, pv ..., t_out ..., cop ..., price ...]  (T+1, 5f)
        self._forecast = torch.cat([s[win] for s in series], dim=-1).to(**self._fk)
        self._load = d64.load[k].to(**self._fk)
        self._pv = d64.pv[k].to(**self._fk)
        self._price = price[k].to(**self._fk)
        self._t_out = d64.t_out[k].to(**self._fk)[:, None]  # (T+1, 1)
        self._p_ess_max = float(system.p_ess_max)
        self._hp_mid = 0.5 * (float(system.p_hp_min) + float(system.p_hp_max))
        self._hp_half = 0.5 * (float(system.p_hp_max) - float(system.p_hp_min))
        self._dt = float(system.dt)
        self._last: tuple[torch.Tensor, ...] | None = None

    def default_reset_box(self):
        return [5 - 5 / 3, 20.0, 40.0], [5 + 5 / 3, 22.0, 70.0]

    @property
    def hour_index(self) -> int:
        """Data row of the next step, ``start_index + elapsed steps``."""
        return self.start_index + self._t

    def _sample_disturbance(self) -> torch.Tensor:
        # the recorded outside temperature of this hour, for every environment (spec A §5.3)
        return self._t_out[self._t].expand(self.num_envs, 1)

    def _observe(self, x: torch.Tensor) -> torch.Tensor:
        fc = self._forecast[self._t].expand(x.shape[0], -1)
        return torch.cat((x, fc), dim=-1)

    def _reward(self, x: torch.Tensor, a: torch.Tensor, x_next: torch.Tensor) -> torch.Tensor:
        t = self._t
        if self.paper_compat:
            # paper era (spec A §9 P9): normalised actions, PV added as if it were consumption
            p_grid = a[:, 0] + a[:, 1] + (self._load[t] + self._pv[t])
        else:
            p_ess = a[:, 0] * self._p_ess_max
            p_hp = a[:, 1] * self._hp_half + self._hp_mid
            p_grid = p_ess + p_hp + (self._load[t] - self._pv[t])
        price = torch.where(p_grid >= 0, self._price[t], HOUSEHOLD_SELL_PRICE)
        cost = p_grid * price * self._dt
        dev = x_next[:, 1] - self.t_in_target
        comfort = self.comfort_weight * dev * dev
        self._last = (cost.detach(), comfort.detach(), p_grid.detach())
        return -(cost + comfort)

    def _task_info(self, x_raw, x, info) -> None:
        if self._last is None:
            zero = torch.zeros(self.num_envs, **self._fk)
            cost, comfort, p_grid = zero, zero.clone(), zero.clone()
        else:
            cost, comfort, p_grid = self._last
            self._last = None
        info["cost"] = cost
        info["comfort"] = comfort
        info["grid_power"] = p_grid
