"""Cart-pole tasks ``BalanceCartPole-v0`` and ``SwingUpCartPole-v0`` (spec A §5.4)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from safegrad.envs import render as _render
from safegrad.envs._rci import RCITaskMixin
from safegrad.envs.base import TorchVectorEnv
from safegrad.systems import CartPole

__all__ = ["BalanceCartPole", "SwingUpCartPole"]


class BalanceCartPole(RCITaskMixin, TorchVectorEnv):
    """Cart-pole balance task, spec A §5.4.

    * state ``(x, theta, x_dot, theta_dot)``, ``theta = 0`` upright,
      ``S = [±10] x [±pi] x [±10] x [±10]``; action: normalised force (``F = 10 a``);
      disturbance ``w ~ U[-0.1, 0.1]`` on ``theta_ddot`` (applied, spec A §9 P4).
    * observation ``(x, sin theta, cos theta, x_dot, theta_dot)`` (5).
    * reward ``-(0.05 x^2 + 0.1 x_dot^2 + theta^2 + 0.1 theta_dot^2)`` on the new state.
    * 240-step episodes, truncate together, ``terminated`` always False.
    * safe set: our RCI zonotope (``rci="default"``, ``safegrad/data/rci/cartpole_v1.json``;
      the paper's asset is a placeholder), hull ``x ±9.99, theta ±0.30, x_dot ±3.66,
      theta_dot ±1.37``; ``safe_action_set(state)``: interval of forces keeping the next state in
      it.  ``rci=None``: the safe set is ``S`` (one step ahead).
    * reset: in the RCI set, ``beta ~ U([-1, 1]^p)`` (``reset_sampling="uniform"``: uniform in
      the set); with an explicit ``reset_box`` (or ``rci=None``: default ``U(±0.05)`` around
      0), uniform in that box.
    * info: ``state_margin`` (``x``, ``x_dot``, ``theta_dot``; ``theta`` is wrapped), ``clamped``.
    """

    env_id = "BalanceCartPole-v0"

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
        system: CartPole | None = None,
        rci: Any = "default",
        reset_sampling: str = "generators",
    ) -> None:
        system = CartPole() if system is None else system
        self.system = system
        self._init_rci(rci, reset_sampling, reset_box)
        lo = system.state_low.tolist()
        hi = system.state_high.tolist()
        super().__init__(
            system,
            num_envs=num_envs,
            max_episode_steps=max_episode_steps,
            obs_low=[lo[0], -1.0, -1.0, lo[2], lo[3]],
            obs_high=[hi[0], 1.0, 1.0, hi[2], hi[3]],
            seed=seed,
            device=device,
            dtype=dtype,
            reset_box=reset_box,
            check_nan=check_nan,
            clip_actions=clip_actions,
            render_mode=render_mode,
            render_env_index=render_env_index,
        )
        self._reward_w = torch.tensor([0.05, 1.0, 0.1, 0.1], **self._fk)
        self._check_rci_system()

    rci_name = "cartpole"

    def _box_default_reset(self):
        return [-0.05] * 4, [0.05] * 4

    def _observe(self, x: torch.Tensor) -> torch.Tensor:
        th = x[:, 1:2]
        return torch.cat((x[:, :1], torch.sin(th), torch.cos(th), x[:, 2:]), dim=-1)

    def _reward(self, x: torch.Tensor, a: torch.Tensor, x_next: torch.Tensor) -> torch.Tensor:
        # -(0.05 x^2 + theta^2 + 0.1 x_dot^2 + 0.1 theta_dot^2)   (spec A §5.4)
        return ((x_next * x_next * self._reward_w).sum(-1)).neg()

    def _render_frame(self, env_index: int) -> np.ndarray:
        s = self.state[env_index].detach().cpu().tolist()
        return _render.cartpole(s[0], s[1], x_bound=float(self.system.state_high[0]))


class SwingUpCartPole(BalanceCartPole):
    """Cart-pole swing-up, spec A §5.4: as :class:`BalanceCartPole`, but 32 environments by
    default and the reset box is ``U(±0.05)`` around ``(0, pi, 0, 0)`` (hanging down; ``theta``
    wrapped to ``[-pi, pi)`` after sampling). The safe set is ``S``: ``safe_action_set(state)``
    keeps the next state in ``S`` (``x``, ``x_dot``, ``theta_dot``; ``theta`` is wrapped) for
    every disturbance; there is no invariant set, so it can be empty near ``S``'s boundary
    (reported by ``return_info=True``)."""

    env_id = "SwingUpCartPole-v0"

    def __init__(self, *, num_envs: int = 32, **kwargs: Any) -> None:
        if "rci" in kwargs:
            raise TypeError("SwingUpCartPole-v0 has no RCI set (its safe set is S); drop rci=")
        super().__init__(num_envs=num_envs, rci=None, **kwargs)

    def _box_default_reset(self):
        return [-0.05, math.pi - 0.05, -0.05, -0.05], [0.05, math.pi + 0.05, 0.05, 0.05]
