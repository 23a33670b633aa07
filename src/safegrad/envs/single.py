"""``SingleEnvView``: a one-environment ``gymnasium.Env`` with numpy observations and actions.

For tools that expect the single-environment API (``gymnasium.utils.env_checker.check_env``,
classic RL libraries). Wraps a :class:`~safegrad.envs.base.TorchVectorEnv` with ``num_envs=1``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from safegrad.envs.base import TorchVectorEnv

__all__ = ["SingleEnvView"]


def _to_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        arr = value.detach().cpu().numpy()[0]
        return arr.copy() if isinstance(arr, np.ndarray) else arr
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    return value


class SingleEnvView(gym.Env):
    """Single-environment view of a one-environment vector env.

    ``reset``/``step`` take and return numpy arrays (copies; no gradient), ``reward`` is a
    float, ``terminated``/``truncated`` are bools, ``info`` holds numpy values of environment 0.
    As for any ``gymnasium.Env``, call ``reset()`` after an episode ends (stepping on would
    trigger the vector env's next-step autoreset).

    Args:
        env: a :class:`TorchVectorEnv` with ``num_envs == 1``, or a registry id (then
            ``make(env, num_envs=1, **make_kwargs)`` is called).
    """

    def __init__(self, env: TorchVectorEnv | str, **make_kwargs: Any) -> None:
        if isinstance(env, str):
            from safegrad.envs.registry import make

            env = make(env, num_envs=1, **make_kwargs)
        elif make_kwargs:
            raise TypeError(f"make kwargs {sorted(make_kwargs)} given with an env instance")
        if not isinstance(env, TorchVectorEnv):
            raise TypeError(f"env must be a TorchVectorEnv or an env id, got {type(env).__name__}")
        if env.num_envs != 1:
            raise ValueError(f"SingleEnvView needs num_envs == 1, got {env.num_envs}")
        self.vector_env = env
        self.observation_space = env.single_observation_space
        self.action_space = env.single_action_space
        renderable = type(env)._render_frame is not TorchVectorEnv._render_frame
        self.metadata = {
            "render_modes": ["rgb_array"] if renderable else [],
            "render_fps": env.metadata.get("render_fps", 20),
        }
        self.render_mode = env.render_mode if renderable else None
        self._np_dtype = self.observation_space.dtype

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs, info = self.vector_env.reset(seed=seed, options=options)
        return _to_numpy(obs), _to_numpy(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.asarray(action, dtype=self._np_dtype)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action has shape {a.shape}; expected {self.action_space.shape}")
        t = torch.as_tensor(a, device=self.vector_env.device).unsqueeze(0)
        obs, reward, terminated, truncated, info = self.vector_env.step(t)
        return (
            _to_numpy(obs),
            float(reward[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            _to_numpy(info),
        )

    def render(self) -> np.ndarray:
        return self.vector_env.render(0)

    def close(self) -> None:
        self.vector_env.close()
