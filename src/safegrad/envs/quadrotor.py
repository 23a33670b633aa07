"""``BalanceQuadrotor-v0``: hover the planar quadrotor at its initial position (spec A §5.2)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from safegrad.envs import render as _render
from safegrad.envs._rci import RCITaskMixin
from safegrad.envs.base import TorchVectorEnv
from safegrad.systems import PlanarQuadrotor

__all__ = ["BalanceQuadrotor"]


class BalanceQuadrotor(RCITaskMixin, TorchVectorEnv):
    """Planar quadrotor hover task, spec A §5.2.

    * state ``(x, z, phi, x_dot, z_dot, phi_dot)``,
      ``S = [±8] x [±8] x [±pi/12] x [±0.8] x [±1.0] x [±pi/2]``; action ``(thrust, roll
      command)`` normalised; disturbance ``(w_x, w_z) ~ U[-0.1, 0.1]^2``.
    * observation: state (6) and goal ``(x_g, z_g)`` (2) = 8. The goal is each environment's
      initial position (hover task), stored in ``episode_params["goal"]``.
    * reward ``-2.5 ||(x, z) - goal|| - 0.1 (phi^2 + x_dot^2 + z_dot^2 + phi_dot^2)
      - 0.002 T^2 - 0.001 phi_cmd^2`` on the new state, ``T = (6/7) a_0 + g``,
      ``phi_cmd = (pi/12) a_1`` in physical units (a perfect episode scores about -46).
    * 240-step episodes, truncate together, ``terminated`` always False.
    * safe set: the shipped RCI zonotope (``rci="default"``,
      ``safegrad/data/rci/quadrotor_v1.json``, 14 generators, 124 facets);
      ``safe_action_set(state)`` is an H-polytope in the 2-D action space (one row per facet,
      exact one-step model with the per-state ``B(x)``, spec A P6).
    * reset: in the RCI set, ``beta ~ U([-1, 1]^p)`` (spec A §5.2; ``reset_sampling="uniform"``
      for uniform in the set); with an explicit ``reset_box``, uniform in that box.
    * info: ``state_margin``, ``clamped``, ``distance_to_goal``.
    """

    env_id = "BalanceQuadrotor-v0"
    info_keys = ("state_margin", "clamped", "distance_to_goal")

    def __init__(
        self,
        *,
        num_envs: int = 16,
        max_episode_steps: int = 240,
        seed: int | None = None,
        device: Any = "cpu",
        dtype: Any = torch.float32,
        reset_box: Any = None,
        check_nan: bool = True,
        clip_actions: bool = False,
        render_mode: str | None = None,
        render_env_index: int = 0,
        system: PlanarQuadrotor | None = None,
        rci: Any = "default",
        reset_sampling: str = "generators",
    ) -> None:
        system = PlanarQuadrotor() if system is None else system
        self.system = system
        self._init_rci(rci, reset_sampling, reset_box)
        lo = system.state_low.tolist()
        hi = system.state_high.tolist()
        super().__init__(
            system,
            num_envs=num_envs,
            max_episode_steps=max_episode_steps,
            obs_low=lo + lo[:2],
            obs_high=hi + hi[:2],
            seed=seed,
            device=device,
            dtype=dtype,
            reset_box=reset_box,
            check_nan=check_nan,
            clip_actions=clip_actions,
            render_mode=render_mode,
            render_env_index=render_env_index,
        )
        self._thrust_gain = float(system.thrust_gain)
        self._g = float(system.g)
        self._roll_gain = float(system.roll_gain)
        self._reward_w = torch.tensor([0.0, 0.0, 0.1, 0.1, 0.1, 0.1], **self._fk)
        self._check_rci_system()

    rci_name = "quadrotor"

    def _box_default_reset(self):
        half = [0.25, 0.35, 0.08, 0.15, 0.3, 0.75]
        return [-h for h in half], half

    def _sample_reset(self, num: int, state=None):
        x, _ = super()._sample_reset(num, state)
        return x, {"goal": x[:, :2].clone()}

    def _observe(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.episode_params["goal"]), dim=-1)

    def _reward(self, x: torch.Tensor, a: torch.Tensor, x_next: torch.Tensor) -> torch.Tensor:
        # spec A §5.2
        dist = torch.linalg.vector_norm(x_next[:, :2] - self.episode_params["goal"], dim=-1)
        thrust = a[:, 0] * self._thrust_gain + self._g
        roll = a[:, 1] * self._roll_gain
        r = torch.add((x_next * x_next * self._reward_w).sum(-1), dist, alpha=2.5)
        r = torch.add(r, thrust * thrust, alpha=0.002)
        return torch.add(r, roll * roll, alpha=0.001).neg()

    def _task_info(self, x_raw, x, info) -> None:
        goal = self.episode_params["goal"].detach()
        info["distance_to_goal"] = torch.linalg.vector_norm(x[:, :2] - goal, dim=-1)

    def _render_frame(self, env_index: int) -> np.ndarray:
        s = self.state[env_index].detach().cpu().tolist()
        goal = self.episode_params["goal"][env_index].detach().cpu().tolist()
        return _render.quadrotor(s[0], s[1], s[2], goal=goal)
