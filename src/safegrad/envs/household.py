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
    * safe set (``safe_set=``):

      - ``"invariant"`` (default, certified): ``Ω = [0, 10] x Ω_th``, the maximal robust control
        invariant set of the (linear) dynamics inside ``S`` for outside temperatures in the
        episode window's recorded range widened by ``t_out_margin`` (0.5 degC)
        (:func:`safegrad.invariance.household.household_invariant_set`, computed exactly at
        construction; ``env.invariant_set``).  ``safe_action_set(state)`` keeps the next state in
        ``Ω`` for every ``T_out`` in the recorded range: from every state of ``Ω`` it is
        non-empty and every action in it keeps the state in ``Ω ⊆ S`` forever, so a safeguard
        never needs a fallback and the monitor sees no violation.  Resets are drawn in
        ``reset_box ∩ Ω`` (rejection).  A data window whose outside temperature exceeds what
        the heat pump (heating only) can hold raises ``ValueError``.
      - ``"paper"``: the paper-era state- and time-dependent box :meth:`safe_state_box`
        (spec A §5.3, two-step temperature look-ahead, formula as stated) for the next state,
        for every ``T_out`` in ``W``; not invariant: the set can be empty (reported by
        ``return_info=True``) and safeguarded runs see fallbacks and violations.
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
        safe_set: str = "invariant",
        t_out_margin: float = 0.5,
    ) -> None:
        if safe_set not in ("invariant", "paper"):
            raise ValueError(f"safe_set={safe_set!r} must be 'invariant' or 'paper'")
        if (
            isinstance(t_out_margin, bool)
            or not isinstance(t_out_margin, (int, float))
            or not (t_out_margin >= 0)
        ):
            raise ValueError(f"t_out_margin={t_out_margin!r} must be a float >= 0")
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
        self.safe_set = safe_set
        self.t_out_margin = float(t_out_margin)
        self.invariant_set = None
        if safe_set == "invariant":
            self._init_invariant_set(d64.t_out[k])

    # ------------------------------------------------------------------ certified safe set
    def _init_invariant_set(self, t_out: torch.Tensor) -> None:
        from safegrad.invariance.household import household_invariant_set

        w_lo, w_hi = float(t_out.min()), float(t_out.max())
        try:
            self.invariant_set = household_invariant_set(
                self.system, w_lo - self.t_out_margin, w_hi + self.t_out_margin
            )
        except ValueError as exc:
            raise ValueError(
                f"ManageHousehold: no certified (invariant) safe set for the recorded outside "
                f"temperatures {w_lo:.1f}..{w_hi:.1f} degC of hours {self.start_index}.."
                f"{self.start_index + self.max_episode_steps} ({exc}); choose another window or "
                "pass safe_set='paper' (the paper's non-invariant look-ahead box)"
            ) from None
        C, d = self.invariant_set.state_rows()
        self._omega = (torch.tensor(C, **self._fk), torch.tensor(d, **self._fk))
        # the safe action set guards against the recorded range (Ω has t_out_margin to spare)
        self._w_range = (w_lo, w_hi)

    def in_invariant_set(self, x: torch.Tensor, tol: float = 1e-9) -> torch.Tensor:
        """``(B,)`` bool: states ``x (B, 3)`` in ``Ω`` (``safe_set="invariant"`` only)."""
        if self.invariant_set is None:
            raise RuntimeError("in_invariant_set needs safe_set='invariant'")
        C, d = self._omega
        return ((x @ C.T.to(x.dtype)) - d.to(x.dtype) <= tol).all(-1)

    def _sample_reset(self, num: int, state=None):
        if state is not None or self.invariant_set is None:
            return super()._sample_reset(num, state)
        x = self._uniform(num, self._r_low, self._r_width)
        for _ in range(200):  # rejection: uniform in reset_box ∩ Ω
            out = ~self.in_invariant_set(x)
            if not bool(out.any()):
                return x, {}
            fresh = self._uniform(num, self._r_low, self._r_width)
            x = torch.where(out.unsqueeze(-1), fresh, x)
        raise RuntimeError(
            "ManageHousehold: the reset box hardly intersects the invariant set Ω "
            f"(reset_box={self.reset_box}); pass a reset_box inside env.invariant_set"
        )

    def default_reset_box(self):
        return [5 - 5 / 3, 20.0, 40.0], [5 + 5 / 3, 22.0, 70.0]

    def safe_state_box(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The paper-era safe state box ``S_s(s_i, t)`` for the next state (spec A §5.3).

        With ``c_a = 1 - (H_FH + H_OUT) dt / (H_OUT tau)``, ``c_b = H_FH dt / (H_OUT tau)``,
        ``c_c = H_FH dt / C_W_FH``, ``k = COP dt / C_W_FH`` and the current state's ``T_in``,
        ``T_ret``, this hour's and the next hour's recorded outside temperatures ``T_out``,
        ``T_out+``::

            SoC   in [0, 10]
            T_ret in [(T_ret,min - c_c T_in - k P_hp,min) / (1 - c_c),
                      (T_ret,max - c_c T_in - k P_hp,max) / (1 - c_c)]
            T_in  in [(T_in,min - c_b k P_hp,min - T_ret (c_a c_b + c_b (1 - c_c))
                       - T_out c_a dt / tau - T_out+ dt / tau) / (c_a^2 + c_b c_c), same with max]

        each intersected with ``S``.  The spec states the formula without derivation; it is
        reproduced as stated, reading ``T_in``/``T_ret`` as the current state's (the only
        reading that gives a box).

        Args:
            x: ``(B, 3)`` states.

        Returns:
            ``low (B, 3)``, ``high (B, 3)``.
        """
        sysm = self.system
        dt = float(sysm.dt)
        c_a = 1.0 - sysm.c0 * dt
        c_b = sysm.c1 * dt
        c_c = sysm.c2 * dt
        k = sysm.c4 * dt
        tau = float(sysm.tau)
        t = min(self._t, self._t_out.shape[0] - 1)
        t_next = min(t + 1, self._t_out.shape[0] - 1)
        t_out, t_out_next = self._t_out[t, 0], self._t_out[t_next, 0]
        p_min, p_max = float(sysm.p_hp_min), float(sysm.p_hp_max)
        lo_s, hi_s = self._s_low, self._s_high
        t_in, t_ret = x[:, 1], x[:, 2]
        ret_lo = (lo_s[2] - c_c * t_in - k * p_min) / (1.0 - c_c)
        ret_hi = (hi_s[2] - c_c * t_in - k * p_max) / (1.0 - c_c)
        den = c_a * c_a + c_b * c_c
        common = (
            t_ret * (c_a * c_b + c_b * (1.0 - c_c))
            + t_out * (c_a * dt / tau)
            + t_out_next * (dt / tau)
        )
        in_lo = (lo_s[1] - c_b * k * p_min - common) / den
        in_hi = (hi_s[1] - c_b * k * p_max - common) / den
        low = torch.stack(
            (
                lo_s[0].expand_as(t_in),
                torch.maximum(in_lo, lo_s[1]),
                torch.maximum(ret_lo, lo_s[2]),
            ),
            -1,
        )
        high = torch.stack(
            (
                hi_s[0].expand_as(t_in),
                torch.minimum(in_hi, hi_s[1]),
                torch.minimum(ret_hi, hi_s[2]),
            ),
            -1,
        )
        return low, high

    def _safe_action_set(self, x: torch.Tensor):
        from safegrad.invariance.safe_action import (
            action_box_rows,
            box_safe_action_set,
            one_step_affine,
        )
        from safegrad.sets import HPolytope

        if self.invariant_set is None:  # the paper's look-ahead box
            low, high = self.safe_state_box(x)
            return box_safe_action_set(self.system, x, low, high)
        # next state in Ω for every T_out in the recorded range:
        # F(x, a, w) = f0 + B a + E (w - c_W)  (exact, linear dynamics)
        f0, Bm, E, _ = one_step_affine(self.system, x)
        C, d = self._omega
        C, d = C.to(x.dtype), d.to(x.dtype)
        c_w = float(self.system.disturbance_centre[0])
        ce = (C @ E).squeeze(-1)  # (k,)
        worst = torch.maximum(ce * (self._w_range[0] - c_w), ce * (self._w_range[1] - c_w))
        Ca = C @ Bm  # (B, k, 2)
        da = d - f0 @ C.T - worst
        Cb, db = action_box_rows(int(self.system.action_dim), x, x.shape[:-1])
        return HPolytope(torch.cat([Ca, Cb], -2), torch.cat([da, db], -1), validate=False)

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
