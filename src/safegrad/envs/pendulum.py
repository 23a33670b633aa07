"""``BalancePendulum-v0``: keep the inverted pendulum upright (spec A §5.1)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from safegrad.envs import render as _render
from safegrad.envs._rci import RCITaskMixin
from safegrad.envs.base import TorchVectorEnv
from safegrad.systems import Pendulum

__all__ = ["BalancePendulum"]


class BalancePendulum(RCITaskMixin, TorchVectorEnv):
    """Inverted pendulum, spec A §5.1.

    * state ``(theta, theta_dot)``, ``theta = 0`` upright, ``S = [-pi, pi] x [-8, 8]``;
      action: normalised torque (``tau = 30 a``); disturbance ``w ~ U[-0.1, 0.1]`` on
      ``theta_ddot``.
    * observation ``(sin theta, cos theta, theta_dot)`` (3).
    * reward ``-(theta'^2 + 0.1 theta_dot'^2 + 0.001 a^2)`` on the new state and the executed
      normalised action (maximum 0).
    * 3000-step episodes, all environments truncate together, ``terminated`` always False.
    * safe set: the shipped RCI zonotope (``rci="default"``, ``safegrad/data/rci/pendulum_v1.json``,
      hull ``theta ±2.64``, ``theta_dot ±7.99``); ``safe_action_set(state)`` is the interval of
      torques whose next state stays in it for every disturbance (docs/invariance.md).
    * reset: in the RCI set, ``beta ~ U([-1, 1]^8)`` (spec A §5.1; ``reset_sampling="uniform"``
      for uniform in the set); with an explicit ``reset_box``, uniform in that box.
    * info: ``state_margin`` (normalised margin of ``theta_dot`` to ``[-8, 8]`` before the clamp;
      ``theta`` is wrapped and cannot leave S) and ``clamped``.
    """

    env_id = "BalancePendulum-v0"

    def __init__(
        self,
        *,
        num_envs: int = 8,
        max_episode_steps: int = 3000,
        seed: int | None = None,
        device: Any = "cpu",
        dtype: Any = torch.float32,
        reset_box: Any = None,
        check_nan: bool = True,
        clip_actions: bool = False,
        render_mode: str | None = None,
        render_env_index: int = 0,
        system: Pendulum | None = None,
        rci: Any = "default",
        reset_sampling: str = "generators",
    ) -> None:
        system = Pendulum() if system is None else system
        self.system = system
        self._init_rci(rci, reset_sampling, reset_box)
        vmax = float(system.state_high[1])
        super().__init__(
            system,
            num_envs=num_envs,
            max_episode_steps=max_episode_steps,
            obs_low=[-1.0, -1.0, -vmax],
            obs_high=[1.0, 1.0, vmax],
            seed=seed,
            device=device,
            dtype=dtype,
            reset_box=reset_box,
            check_nan=check_nan,
            clip_actions=clip_actions,
            render_mode=render_mode,
            render_env_index=render_env_index,
        )
        self._reward_w = torch.tensor([1.0, 0.1], device=self.device, dtype=self.dtype)
        self._check_rci_system()

    rci_name = "pendulum"

    def _box_default_reset(self):
        return [-1.0, -2.0], [1.0, 2.0]

    def _observe(self, x: torch.Tensor) -> torch.Tensor:
        th = x[:, :1]
        return torch.cat((torch.sin(th), torch.cos(th), x[:, 1:]), dim=-1)

    def _reward(self, x: torch.Tensor, a: torch.Tensor, x_next: torch.Tensor) -> torch.Tensor:
        # -(theta'^2 + 0.1 theta_dot'^2 + 0.001 a^2)   (spec A §5.1). Element-wise, not a
        # matmul: BLAS threads stall badly on an oversubscribed CPU at large batch sizes.
        cost = (x_next * x_next * self._reward_w).sum(-1)
        return torch.add(cost, (a * a).sum(-1), alpha=0.001).neg()

    def _render_frame(self, env_index: int) -> np.ndarray:
        theta = float(self.state[env_index, 0])
        return _render.pendulum(theta)
