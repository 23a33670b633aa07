"""Torch-native Gymnasium vector environment base (spec A §5, common simulator semantics).

A task is ``system + reward + observation + reset distribution + safety diagnostics``. The
:class:`TorchVectorEnv` base implements the semantics every task shares:

* the state is one tensor ``state: (num_envs, n)`` on the configured device and dtype, and the
  autograd graph flows through :meth:`TorchVectorEnv.step` (from the action and the previous state
  to the observation, the reward and the new state) until :meth:`TorchVectorEnv.detach` cuts it
  (truncated back-propagation, as SHAC needs);
* per step: the disturbance ``w ~ U(W)`` is drawn by the environment from its own
  ``torch.Generator`` (seeded by ``reset(seed=...)``), the system's integrator
  (``ControlSystem.step``) gives the raw next state, the state is clamped to ``S``, and the
  reward is evaluated on the **new** state and the executed action (spec A §5);
* episodes end by truncation after ``max_episode_steps`` (all environments together, since they
  share one step counter; ``terminated`` is always False for the spec-A tasks) or, for tasks with
  ``has_termination = True`` (ReachAvoid), per environment by termination;
* autoreset is Gymnasium's **next-step** mode (``metadata["autoreset_mode"]``): the observation
  returned with ``terminated | truncated`` is the final observation of the episode (there is no
  ``final_obs`` key in next-step mode); the following ``step`` call ignores the action of the
  finished environments, resets them and returns their first observation with reward 0 and
  ``terminated = truncated = False``.

``step`` returns torch tensors: ``obs (B, obs_dim)``, ``reward (B,)``, ``terminated (B,)`` bool,
``truncated (B,)`` bool and an ``info`` dict of per-environment tensors (see each task and
``docs/tasks.md``).

Hot path cost. ``step`` validates the action's shape (Python only, no device sync) and, with
``check_nan=True`` (default), raises ``ValueError`` on non-finite actions; that check is one
``isfinite().all()`` reduction and one host sync (a few microseconds on CPU, a device sync on
CUDA). Pass ``check_nan=False`` to skip it; non-finite actions then propagate into the state.
"""

from __future__ import annotations

import copy
import math
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space
from gymnasium.vector.vector_env import AutoresetMode

__all__ = ["TorchVectorEnv", "resolve_device", "resolve_dtype"]

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
_DTYPE_NAMES = {
    "float32": torch.float32,
    "float": torch.float32,
    "torch.float32": torch.float32,
    "float64": torch.float64,
    "double": torch.float64,
    "torch.float64": torch.float64,
}


def resolve_dtype(dtype: Any) -> torch.dtype:
    """Return ``torch.float32`` or ``torch.float64`` for ``dtype`` (a torch/numpy dtype or name)."""
    if isinstance(dtype, torch.dtype):
        if dtype in _NUMPY_DTYPES:
            return dtype
    elif isinstance(dtype, str) and dtype in _DTYPE_NAMES:
        return _DTYPE_NAMES[dtype]
    elif dtype in (np.float32, np.float64) or (
        isinstance(dtype, np.dtype) and dtype in (np.float32, np.float64)
    ):
        return torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    raise ValueError(f"dtype={dtype!r} is not supported; expected torch.float32 or torch.float64")


def resolve_device(device: Any) -> torch.device:
    """Return a ``torch.device`` for ``device`` and check that it is usable."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a valid torch device ({err})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available")
    return dev


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed={seed!r} must be a non-negative int or None")
    seed = int(seed)
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed={seed} must be in [0, 2**63)")
    return seed


class TorchVectorEnv(VectorEnv):
    """Batched, differentiable task on a :class:`safegrad.systems.ControlSystem` (spec A §5).

    Subclasses set the class attributes and implement :meth:`_observe` and :meth:`_reward`, and
    may override :meth:`_sample_reset`, :meth:`_terminated`, :meth:`_task_info` and
    :meth:`_render_frame`.

    Args:
        system: the dynamics (``ControlSystem`` interface: ``step``, ``state_low/high``,
            ``disturbance_low/high``, ``angle_indices``, ``state_dim``, ``action_dim``).
        num_envs: number of parallel environments ``B``.
        max_episode_steps: episode length (truncation).
        obs_low, obs_high: bounds of one observation, ``(obs_dim,)``.
        seed: seeds the environment's generators; ``make(seed=s)`` then ``reset()`` equals
            ``reset(seed=s)``. ``None`` draws a fresh seed from the OS.
        device, dtype: where the state lives (float32 or float64).
        reset_box: ``(low, high)`` with ``(n,)`` array-likes (or an object with ``low``/``high``):
            the initial state is uniform in this box. Must lie inside ``S`` (wrapped angle
            coordinates excepted, they are wrapped after sampling). ``None`` uses the task's
            documented default (``docs/tasks.md``).
        check_nan: raise ``ValueError`` on non-finite actions (one host sync per step).
        clip_actions: clamp actions to the action box ``[-1, 1]^m`` before executing them
            (gradient zero outside). Off by default: actions are executed as given, keeping the
            safeguard's guarantee and gradient intact (spec B §6, actuator limits).
        render_mode: ``None`` or ``"rgb_array"``.
        render_env_index: which environment :meth:`render` draws by default.
    """

    metadata: dict[str, Any] = {
        "autoreset_mode": AutoresetMode.NEXT_STEP,
        "render_modes": ["rgb_array"],
        "render_fps": 20,
    }

    #: registry id of the task (set by subclasses)
    env_id: str = ""
    #: whether episodes can terminate per environment (then per-environment autoreset)
    has_termination: bool = False
    #: names of the task's info keys (documentation and tests)
    info_keys: tuple[str, ...] = ("state_margin", "clamped")

    def __init__(
        self,
        system: Any,
        *,
        num_envs: int,
        max_episode_steps: int,
        obs_low: Sequence[float] | np.ndarray,
        obs_high: Sequence[float] | np.ndarray,
        seed: int | None = None,
        device: Any = "cpu",
        dtype: Any = torch.float32,
        reset_box: Any = None,
        check_nan: bool = True,
        clip_actions: bool = False,
        render_mode: str | None = None,
        render_env_index: int = 0,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise TypeError(f"num_envs={num_envs!r} must be a positive int")
        if num_envs < 1:
            raise ValueError(f"num_envs={num_envs} must be >= 1")
        if isinstance(max_episode_steps, bool) or not isinstance(
            max_episode_steps, (int, np.integer)
        ):
            raise TypeError(f"max_episode_steps={max_episode_steps!r} must be a positive int")
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps={max_episode_steps} must be >= 1")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; expected None or 'rgb_array'"
            )
        for flag_name, flag in (("check_nan", check_nan), ("clip_actions", clip_actions)):
            if not isinstance(flag, bool):
                raise TypeError(f"{flag_name}={flag!r} must be a bool")

        self.system = system
        self.num_envs = int(num_envs)
        self.max_episode_steps = int(max_episode_steps)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.check_nan = check_nan
        self.clip_actions = clip_actions
        self.render_mode = render_mode
        self.render_env_index = self._check_env_index(render_env_index)

        n, m = int(system.state_dim), int(system.action_dim)
        self.state_dim, self.action_dim = n, m
        self._action_shape = (self.num_envs, m)
        fk = {"device": self.device, "dtype": self.dtype}
        self._fk = fk

        # --- cached constants (spec A §5: S, W) -----------------------------------------
        s_low = torch.as_tensor(system.state_low, dtype=torch.float64).reshape(n)
        s_high = torch.as_tensor(system.state_high, dtype=torch.float64).reshape(n)
        self._s_low64, self._s_high64 = s_low, s_high
        self._s_low, self._s_high = s_low.to(**fk), s_high.to(**fk)
        self.angle_indices = tuple(int(i) for i in getattr(system, "angle_indices", ()))
        # coordinates whose bound can be violated (wrapped angles with bounds [-pi, pi] cannot)
        wrapped_full = {
            i
            for i in self.angle_indices
            if float(s_low[i]) <= -math.pi + 1e-9 and float(s_high[i]) >= math.pi - 1e-9
        }
        margin_dims = [i for i in range(n) if i not in wrapped_full]
        if len(margin_dims) == n:
            self._margin_index: Any = None
        elif margin_dims == list(range(margin_dims[0], margin_dims[-1] + 1)):
            self._margin_index = slice(margin_dims[0], margin_dims[-1] + 1)
        else:
            self._margin_index = torch.tensor(margin_dims, device=self.device)
        centre = 0.5 * (s_low + s_high)
        inv_half = 1.0 / (0.5 * (s_high - s_low))
        # margin = 1 - max_i |x_i - c_i| / h_i = 1 - max_i |x_i / h_i - c_i / h_i|
        self._margin_inv_half = inv_half[margin_dims].to(**fk)
        self._margin_offset = (-centre * inv_half)[margin_dims].to(**fk)
        self._wrapped_full = tuple(sorted(wrapped_full))

        w_low = torch.as_tensor(system.disturbance_low, dtype=torch.float64).reshape(-1)
        w_high = torch.as_tensor(system.disturbance_high, dtype=torch.float64).reshape(-1)
        self.disturbance_dim = int(w_low.numel())
        self._w_low, self._w_width = w_low.to(**fk), (w_high - w_low).to(**fk)
        self._w_deterministic = bool(torch.all(w_high == w_low))
        self._w_const = w_low.to(**fk).expand(self.num_envs, self.disturbance_dim)

        # --- reset box ------------------------------------------------------------------
        self.reset_box = self._resolve_reset_box(reset_box)
        self._r_low = self.reset_box[0].to(**fk)
        self._r_width = (self.reset_box[1] - self.reset_box[0]).to(**fk)

        # --- spaces ---------------------------------------------------------------------
        np_dtype = _NUMPY_DTYPES[self.dtype]
        obs_low = np.asarray(obs_low, dtype=np.float64)
        obs_high = np.asarray(obs_high, dtype=np.float64)
        self.single_observation_space = spaces.Box(
            obs_low.astype(np_dtype), obs_high.astype(np_dtype), dtype=np_dtype
        )
        self.single_action_space = spaces.Box(-1.0, 1.0, shape=(m,), dtype=np_dtype)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.obs_dim = int(obs_low.shape[0])

        # --- generators and episode bookkeeping ----------------------------------------
        seed = _check_seed(seed)
        self._initial_seed = secrets.randbits(63) if seed is None else seed
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(self._initial_seed)
        super().reset(seed=self._initial_seed)  # gymnasium's np_random, kept in step with ours
        self.state = torch.zeros(self.num_envs, n, **fk)
        self.episode_params: dict[str, torch.Tensor] = {}
        self._t = 0  # shared step counter (tasks without termination)
        self._elapsed = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self._autoreset_all = False
        self._done = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self._any_done = False
        self._needs_reset = True
        self._zeros_b = torch.zeros(self.num_envs, **fk)

    # ------------------------------------------------------------------ helpers
    def _check_env_index(self, env_index: Any) -> int:
        if isinstance(env_index, bool) or not isinstance(env_index, (int, np.integer)):
            raise TypeError(f"env_index={env_index!r} must be an int")
        if not 0 <= env_index < self.num_envs:
            raise ValueError(f"env_index={env_index} is out of range for num_envs={self.num_envs}")
        return int(env_index)

    def default_reset_box(self) -> tuple[Sequence[float], Sequence[float]]:
        """The task's default reset box ``(low, high)``; subclasses override (docs/tasks.md)."""
        return self._s_low64.tolist(), self._s_high64.tolist()

    def _resolve_reset_box(self, box: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if box is None:
            box = self.default_reset_box()
        if hasattr(box, "low") and hasattr(box, "high"):
            low, high = box.low, box.high
        elif isinstance(box, (tuple, list)) and len(box) == 2:
            low, high = box
        else:
            raise TypeError(
                f"reset_box={box!r} must be a (low, high) pair of length-{self.state_dim} "
                "array-likes or an object with `low` and `high` attributes"
            )
        n = self.state_dim
        try:
            low = torch.as_tensor(np.asarray(low, dtype=np.float64)).reshape(-1)
            high = torch.as_tensor(np.asarray(high, dtype=np.float64)).reshape(-1)
        except (TypeError, ValueError) as err:
            raise TypeError(f"reset_box={box!r} is not numeric ({err})") from None
        if low.numel() == 1:
            low = low.expand(n).clone()
        if high.numel() == 1:
            high = high.expand(n).clone()
        if low.numel() != n or high.numel() != n:
            raise ValueError(
                f"reset_box bounds have {low.numel()} and {high.numel()} entries; "
                f"expected state_dim={n}"
            )
        if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
            raise ValueError(f"reset_box=({low.tolist()}, {high.tolist()}) must be finite")
        if torch.any(low > high):
            raise ValueError(f"reset_box low {low.tolist()} exceeds high {high.tolist()}")
        check = [i for i in range(n) if i not in self._wrapped_full]
        tol = 1e-9
        bad = [
            i for i in check if low[i] < self._s_low64[i] - tol or high[i] > self._s_high64[i] + tol
        ]
        if bad:
            raise ValueError(
                f"reset_box=({low.tolist()}, {high.tolist()}) leaves the state box S="
                f"({self._s_low64.tolist()}, {self._s_high64.tolist()}) in coordinates {bad}; "
                "initial states must lie in S (spec A §9 P7)"
            )
        return low, high

    def _uniform(self, num: int, low: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
        u = torch.rand(num, low.shape[-1], generator=self._generator, **self._fk)
        return torch.addcmul(low, u, width)

    def _wrap_angles(self, x: torch.Tensor) -> torch.Tensor:
        if not self.angle_indices:
            return x
        idx = list(self.angle_indices)
        x = x.clone()
        x[:, idx] = torch.remainder(x[:, idx] + math.pi, 2 * math.pi) - math.pi
        return x

    # ------------------------------------------------------------------ task hooks
    def _sample_reset(
        self, num: int, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Initial states ``(num, n)`` and per-environment episode parameters.

        Default: uniform in ``reset_box`` (angles wrapped), no episode parameters. ``state``
        (already validated) replaces the sampled initial states; episode parameters that
        depend on the initial state must follow it.
        """
        if state is not None:
            return state, {}
        x = self._wrap_angles(self._uniform(num, self._r_low, self._r_width))
        return x, {}

    def _sample_disturbance(self) -> torch.Tensor:
        """``w ~ U(W)``, ``(B, q)``, drawn from the environment's generator (spec A §5)."""
        if self._w_deterministic:
            return self._w_const
        return self._uniform(self.num_envs, self._w_low, self._w_width)

    def _observe(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Observation ``(B, obs_dim)`` of states ``x: (B, n)``."""
        raise NotImplementedError

    def _reward(
        self, x: torch.Tensor, a: torch.Tensor, x_next: torch.Tensor
    ) -> torch.Tensor:  # pragma: no cover - abstract
        """Reward ``(B,)`` of the transition ``x -> x_next`` under the executed action ``a``."""
        raise NotImplementedError

    def _terminated(self, x_next: torch.Tensor) -> torch.Tensor:
        """Per-environment termination ``(B,)`` bool (only used if ``has_termination``)."""
        return torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)

    def _task_info(self, x_raw: torch.Tensor, x: torch.Tensor, info: dict[str, Any]) -> None:
        """Add task-specific diagnostics to ``info`` (in place)."""

    # ------------------------------------------------------------------ safety (issue 4)
    def safe_action_set(self, state: torch.Tensor | None = None, *, return_info: bool = False):
        """The state-dependent safe action set ``A_s(x)`` as an H-polytope in action space
        (spec A §2.1, §2.3; ``docs/invariance.md``).

        Args:
            state: ``(B, n)`` states (default: the current ``env.state``, with its autograd
                graph, so SHAC can differentiate through the set's parameters).
            return_info: also return ``{"empty": (B,) bool, "state_safe": (B,) bool}``:
                whether the set is empty (no safe action exists; closed form for one action
                dimension, an LP otherwise) and whether the state itself lies in the safe state
                set (``safety_margin >= 0``).

        Returns:
            :class:`safegrad.sets.HPolytope` ``{a : C a <= d}`` with batch ``(B,)``, on the
            env's device and dtype (or ``(polytope, info)``).
        """
        x = self.state if state is None else state
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[-1] != self.state_dim:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"safe_action_set: state must be a (B, {self.state_dim}) tensor, got {shape}"
            )
        if x.dtype != self.dtype or x.device != self.device:
            x = x.to(**self._fk)
        P = self._safe_action_set(x)
        if not return_info:
            return P
        from safegrad.invariance.safe_action import action_set_empty

        tol = 1e-9 if self.dtype == torch.float64 else 1e-5
        with torch.no_grad():
            info = {
                "empty": action_set_empty(P),
                "state_safe": self.safety_margin(x.detach()) >= -tol,
            }
        return P, info

    def _safe_action_set(self, x: torch.Tensor):
        """Task hook: the safe action set at states ``x (B, n)`` (default: stay in ``S``,
        one step ahead, for every disturbance; wrapped angle coordinates left out)."""
        from safegrad.invariance.safe_action import box_safe_action_set

        dims = [i for i in range(self.state_dim) if i not in self._wrapped_full]
        return box_safe_action_set(self.system, x, self._s_low, self._s_high, dims=dims)

    def safety_margin(self, x: torch.Tensor) -> torch.Tensor:
        """Margin ``(B,)`` of states ``x (B, n)`` to the task's true safe state set
        (``>= 0`` safe); used by :class:`safegrad.invariance.SafetyMonitor`.  Default: the
        normalised margin to ``S`` (:meth:`state_margin`)."""
        return self.state_margin(x)

    # ------------------------------------------------------------------ diagnostics
    def state_margin(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised margin of ``x: (*B, n)`` to ``S``: ``min_i (1 - |x_i - c_i| / h_i)``.

        ``c``, ``h`` are the centre and half-widths of ``S``; wrapped angle coordinates with bounds
        ``[-pi, pi]`` are left out (they cannot leave ``S``). 1 at the centre, 0 on the
        boundary, negative outside. Shape ``(*B,)``.
        """
        idx = self._margin_index
        if isinstance(idx, slice):
            x = x[..., idx]
        elif idx is not None:
            x = x.index_select(-1, idx)
        z = torch.addcmul(self._margin_offset, x, self._margin_inv_half).abs_()
        return z.amax(-1).neg_().add_(1.0)

    def _info(self, x_raw: torch.Tensor, x: torch.Tensor) -> dict[str, Any]:
        x_raw, x = x_raw.detach(), x.detach()
        margin = self.state_margin(x_raw)
        info: dict[str, Any] = {"state_margin": margin, "clamped": margin < 0}
        self._task_info(x_raw, x, info)
        return info

    # ------------------------------------------------------------------ properties
    @property
    def elapsed_steps(self) -> torch.Tensor:
        """Steps taken in the current episode of each environment, ``(B,)`` long."""
        if self.has_termination:
            return self._elapsed.clone()
        return torch.full((self.num_envs,), self._t, dtype=torch.long, device=self.device)

    @property
    def seed(self) -> int:
        """The seed given at construction (or drawn, if none was given)."""
        return self._initial_seed

    # ------------------------------------------------------------------ API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset all environments (or those in ``options["reset_mask"]``).

        Args:
            seed: reseeds the environment's torch generator (initial states and disturbances)
                and Gymnasium's ``np_random``. ``None`` continues the current streams.
            options: ``{"state": (B, n) or (n,) tensor}`` resets to given states (inside ``S``);
                ``{"reset_mask": (B,) bool}`` resets only the marked environments (tasks with
                per-environment episodes only, i.e. ``has_termination``).

        Returns:
            ``obs: (B, obs_dim)`` and ``info`` (same keys as ``step``'s info).
        """
        seed = _check_seed(seed)
        if seed is not None:
            super().reset(seed=seed)
            self._generator.manual_seed(seed)
        options = {} if options is None else options
        if not isinstance(options, dict):
            raise TypeError(f"options={options!r} must be a dict or None")
        unknown = set(options) - {"state", "reset_mask"}
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {sorted(unknown)}; supported: 'state', 'reset_mask'"
            )
        given = self._check_state(options["state"]) if "state" in options else None
        x0, params = self._sample_reset(self.num_envs, given)
        mask = options.get("reset_mask")
        if mask is None:
            self.state = x0
            self.episode_params = params
            self._t = 0
            self._elapsed = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        else:
            mask = self._check_mask(mask)
            if self._needs_reset:
                raise RuntimeError("call reset() without reset_mask before the first partial reset")
            self._partial_reset(mask, x0, params)
        self._autoreset_all = False
        self._done = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self._any_done = False
        self._needs_reset = False
        return self._observe(self.state), self._info(self.state, self.state)

    def _check_state(self, state: Any) -> torch.Tensor:
        x = torch.as_tensor(state, **self._fk)
        if x.shape == (self.state_dim,):
            x = x.expand(self.num_envs, self.state_dim)
        if x.shape != (self.num_envs, self.state_dim):
            raise ValueError(
                f"reset state has shape {tuple(x.shape)}; expected ({self.num_envs}, "
                f"{self.state_dim}) or ({self.state_dim},)"
            )
        if not torch.isfinite(x).all():
            raise ValueError("reset state contains non-finite values")
        tol = 1e-6 if self.dtype == torch.float32 else 1e-12
        outside = (x < self._s_low - tol) | (x > self._s_high + tol)
        if outside.any():
            env, dim = (int(v) for v in outside.nonzero()[0])
            raise ValueError(
                f"reset state[{env}, {dim}]={float(x[env, dim])} lies outside S "
                f"[{float(self._s_low[dim])}, {float(self._s_high[dim])}]"
            )
        return x.clone()

    def _check_mask(self, mask: Any) -> torch.Tensor:
        if not self.has_termination:
            raise ValueError(
                f"{self.env_id or type(self).__name__} shares one step counter across its "
                "environments (they truncate together); reset_mask is only supported by tasks "
                "with per-environment episodes"
            )
        m = torch.as_tensor(mask, device=self.device)
        if m.dtype != torch.bool or m.shape != (self.num_envs,):
            raise ValueError(
                f"reset_mask must be a bool array of shape ({self.num_envs},); got dtype "
                f"{m.dtype} and shape {tuple(m.shape)}"
            )
        return m

    def _partial_reset(
        self, mask: torch.Tensor, x0: torch.Tensor, params: dict[str, torch.Tensor]
    ) -> None:
        self.state = torch.where(mask[:, None], x0, self.state)
        for key, value in params.items():
            old = self.episode_params[key]
            shape = (-1,) + (1,) * (value.dim() - 1)
            self.episode_params[key] = torch.where(mask.view(shape), value, old)
        self._elapsed = torch.where(mask, torch.zeros_like(self._elapsed), self._elapsed)

    def _check_action(self, actions: Any) -> torch.Tensor:
        if not isinstance(actions, torch.Tensor):
            try:
                actions = torch.as_tensor(np.asarray(actions, dtype=np.float64), **self._fk)
            except (TypeError, ValueError) as err:
                raise TypeError(
                    f"actions of type {type(actions).__name__} are not numeric ({err})"
                ) from None
        if actions.shape != self._action_shape:
            raise ValueError(
                f"actions have shape {tuple(actions.shape)}; expected {self._action_shape} "
                f"= (num_envs, action_dim) for {self.env_id or type(self).__name__}"
            )
        if actions.dtype != self.dtype or actions.device != self.device:
            if actions.dtype.is_complex or actions.dtype == torch.bool:
                raise TypeError(f"actions have dtype {actions.dtype}; expected a real dtype")
            actions = actions.to(**self._fk)
        if self.check_nan and not bool(torch.isfinite(actions).all()):
            bad = (~torch.isfinite(actions.detach())).nonzero()[0]
            env, dim = int(bad[0]), int(bad[1])
            raise ValueError(
                f"actions[{env}, {dim}]={float(actions[env, dim])} is not finite; actions must "
                "be finite (pass check_nan=False to the environment to skip this check)"
            )
        if self.clip_actions:
            actions = actions.clamp(-1.0, 1.0)
        return actions

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Advance every environment by one step (spec A §5).

        Args:
            actions: ``(B, m)`` normalised actions (torch tensor; numpy arrays are converted,
                without gradient). Executed as given unless ``clip_actions=True``.

        Returns:
            ``obs (B, obs_dim)``, ``reward (B,)``, ``terminated (B,)`` bool,
            ``truncated (B,)`` bool, ``info`` (dict of per-environment tensors).
        """
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        a = self._check_action(actions)
        if self.has_termination:
            return self._step_per_env(a)
        if self._autoreset_all:
            return self._autoreset_step()
        x = self.state
        x_raw = self.system.step(x, a, self._sample_disturbance())
        x_next = torch.clamp(x_raw, self._s_low, self._s_high)
        reward = self._reward(x, a, x_next)
        self.state = x_next
        self._t += 1
        truncated = self._t >= self.max_episode_steps
        self._autoreset_all = truncated
        return (
            self._observe(x_next),
            reward,
            torch.zeros(self.num_envs, dtype=torch.bool, device=self.device),
            torch.full((self.num_envs,), truncated, dtype=torch.bool, device=self.device),
            self._info(x_raw, x_next),
        )

    def _autoreset_step(self):
        x0, params = self._sample_reset(self.num_envs)
        self.state, self.episode_params = x0, params
        self._t = 0
        self._autoreset_all = False
        false = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        return self._observe(x0), self._zeros_b.clone(), false, false.clone(), self._info(x0, x0)

    def _step_per_env(self, a: torch.Tensor):
        x = self.state
        x_raw = self.system.step(x, a, self._sample_disturbance())
        x_next = torch.clamp(x_raw, self._s_low, self._s_high)
        reward = self._reward(x, a, x_next)
        elapsed = self._elapsed + 1
        if self._any_done:
            done = self._done
            x0, params = self._sample_reset(self.num_envs)
            self.state = x_next
            self._elapsed = elapsed
            self._partial_reset(done, x0, params)
            x_next, elapsed = self.state, self._elapsed
            x_raw = torch.where(done[:, None], x0, x_raw)
            reward = torch.where(done, self._zeros_b, reward)
            terminated = self._terminated(x_next) & ~done
        else:
            self.state, self._elapsed = x_next, elapsed
            terminated = self._terminated(x_next)
        truncated = (elapsed >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        self._done = done
        self._any_done = bool(done.any())
        return self._observe(x_next), reward, terminated, truncated, self._info(x_raw, x_next)

    def detach(self) -> None:
        """Cut the autograd graph: the state (and episode parameters) become leaves.

        Call it between back-propagation windows (truncated BPTT, e.g. SHAC's horizon).
        """
        self.state = self.state.detach()
        self.episode_params = {k: v.detach() for k, v in self.episode_params.items()}

    # ------------------------------------------------------------------ rollout state
    def get_rollout_state(self) -> dict[str, Any]:
        """Everything needed to continue the current rollout identically (checkpoints).

        A dict of detached copies: ``state (B, n)``, ``episode_params``, the step counters
        (``t`` shared, ``elapsed (B,)`` per environment), the next-step autoreset flags
        (``autoreset_all``, ``done (B,)``, ``any_done``, ``needs_reset``), the disturbance/reset
        generator's state and Gymnasium's ``np_random`` state, plus ``env_id``, ``num_envs``,
        ``state_dim`` and ``device_type`` for the checks of :meth:`set_rollout_state`.
        ``set_rollout_state(get_rollout_state())`` on a freshly made environment of the same
        task, ``num_envs``, dtype and device type makes its next ``step`` calls return exactly
        what this one's would.  Subclasses with more per-rollout state extend both methods.
        """
        return {
            "env_id": self.env_id,
            "num_envs": self.num_envs,
            "state_dim": self.state_dim,
            "device_type": self.device.type,
            "state": self.state.detach().clone(),
            "episode_params": {k: v.detach().clone() for k, v in self.episode_params.items()},
            "t": int(self._t),
            "elapsed": self._elapsed.clone(),
            "autoreset_all": bool(self._autoreset_all),
            "done": self._done.clone(),
            "any_done": bool(self._any_done),
            "needs_reset": bool(self._needs_reset),
            "generator": self._generator.get_state(),
            "np_random": copy.deepcopy(self.np_random.bit_generator.state),
        }

    def set_rollout_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`get_rollout_state` dict (moved to this env's device and dtype).

        Raises ``ValueError`` when it comes from another task, ``num_envs``, state dimension or
        device type (a generator state does not transfer between CPU and CUDA), and
        ``TypeError`` when ``state`` is not such a dict.
        """
        keys = {
            "env_id", "num_envs", "state_dim", "device_type", "state", "episode_params", "t",
            "elapsed", "autoreset_all", "done", "any_done", "needs_reset", "generator",
            "np_random",
        }  # fmt: skip
        if not isinstance(state, dict) or not keys <= set(state):
            missing = sorted(keys - set(state)) if isinstance(state, dict) else sorted(keys)
            raise TypeError(
                f"set_rollout_state needs a dict from get_rollout_state(); missing {missing}"
            )
        mine = {
            "env_id": self.env_id,
            "num_envs": self.num_envs,
            "state_dim": self.state_dim,
            "device_type": self.device.type,
        }
        for key, value in mine.items():
            if state[key] != value:
                raise ValueError(
                    f"set_rollout_state: the saved rollout has {key}={state[key]!r}, this "
                    f"environment {value!r}; restore it into the same task, num_envs and device"
                )
        dev = self.device
        self.state = state["state"].to(**self._fk).clone()
        self.episode_params = {
            k: v.to(device=dev, dtype=self.dtype if v.is_floating_point() else v.dtype).clone()
            for k, v in state["episode_params"].items()
        }
        self._t = int(state["t"])
        self._elapsed = state["elapsed"].to(device=dev, dtype=torch.long).clone()
        self._autoreset_all = bool(state["autoreset_all"])
        self._done = state["done"].to(device=dev, dtype=torch.bool).clone()
        self._any_done = bool(state["any_done"])
        self._needs_reset = bool(state["needs_reset"])
        self._generator.set_state(state["generator"])
        self.np_random.bit_generator.state = copy.deepcopy(state["np_random"])

    # ------------------------------------------------------------------ rendering
    def render(self, env_index: int | None = None) -> np.ndarray:
        """RGB frame ``(H, W, 3)`` uint8 of environment ``env_index`` (default
        ``render_env_index``). Drawn off-screen with PIL; never opens a window."""
        idx = self.render_env_index if env_index is None else self._check_env_index(env_index)
        return self._render_frame(idx)

    def _render_frame(self, env_index: int) -> np.ndarray:
        raise NotImplementedError(f"{self.env_id or type(self).__name__} has no renderer")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.env_id!r}, num_envs={self.num_envs}, "
            f"device={self.device}, dtype={self.dtype})"
        )
