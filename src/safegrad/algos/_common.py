"""Pieces shared by the learning algorithms (SHAC, SAC, PPO): dtype table, config and env
checks, safeguard lookup (environment side) and construction (policy side), the rollout-state
snapshot, the evaluation loop (spec A §6, P10), learning-rate schedules and the running
observation normaliser.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DTYPES",
    "SCHEDULES",
    "SAFE_SET_NOT_REPLAYABLE",
    "check_device_dtype",
    "check_env",
    "check_learn_args",
    "check_safeguard_fields",
    "unwrap",
    "find_safeguard_wrapper",
    "is_safeguarded",
    "build_policy_layer",
    "env_rollout_state",
    "restore_env_rollout_state",
    "ActionExecutor",
    "StepResult",
    "evaluate_policy",
    "scheduled_lr",
    "schedule_window",
    "set_lr",
    "RunningMeanStd",
]

#: config ``dtype`` names -> torch dtypes
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}
#: learning-rate schedules (``constant``, ``linear`` to ``lr_final`` over the ``learn`` call)
SCHEDULES = ("constant", "linear")

#: tasks whose safe action set is not a function of the state alone, with the reason; a
#: policy-side safeguard inside an off-policy update (SAC: actor loss and critic target on replayed
#: states) cannot rebuild their sets from the buffer
SAFE_SET_NOT_REPLAYABLE: dict[str, str] = {
    "NavigateSeeker-v0": "its obstacle and goal are per-episode parameters (episode_params)",
    "ManageHousehold-v0": "its safe state box depends on the hour of the episode (env._t)",
}


# ---------------------------------------------------------------------------- checks
def check_device_dtype(cfg: Any) -> None:
    """``cfg.dtype`` in :data:`DTYPES` and ``cfg.device`` a torch device (``ValueError``)."""
    name = type(cfg).__name__
    if cfg.dtype not in DTYPES:
        raise ValueError(f"{name}.dtype={cfg.dtype!r}; expected one of {list(DTYPES)}")
    try:
        torch.device(cfg.device)
    except RuntimeError as err:
        raise ValueError(f"{name}.device={cfg.device!r} is not a torch device") from err


def init_agent(agent: Any, env: Any, config: Any, cls: type, overrides: dict[str, Any]) -> Any:
    """The common start of every algorithm's ``__init__``: ``config`` (``None`` -> ``cls()``,
    else a ``cls`` instance) with ``overrides`` applied, then ``agent.config / dtype / device /
    env / num_envs / obs_dim / act_dim`` after :func:`check_env`.  Returns the config."""
    if config is None:
        config = cls()
    if not isinstance(config, cls):
        raise TypeError(f"config must be a {cls.__name__} or None, got {type(config).__name__}")
    if overrides:
        config = config.replace(**overrides)
    agent.config = config
    agent.dtype = DTYPES[config.dtype]
    agent.device = torch.device(config.device)
    check_env(env, agent.dtype, agent.device, config)
    agent.env = env
    agent.num_envs = int(env.num_envs)
    agent.obs_dim = int(np.prod(env.single_observation_space.shape))
    agent.act_dim = int(np.prod(env.single_action_space.shape))
    return config


def seeded_actor_value(agent: Any, cfg: Any, make_critic: Any = None, **actor_kw: Any) -> None:
    """``agent.actor`` (:class:`~safegrad.algos.networks.TanhGaussianPolicy`, extra keyword
    arguments ``actor_kw``) and then ``agent.critic`` (``make_critic(**fk)``, default a
    :class:`~safegrad.algos.networks.ValueCritic`) initialised from the global RNG seeded with
    ``cfg.seed`` inside a fork (the caller's RNG is untouched), then the agent's own noise
    generator seeded with ``cfg.seed`` and the Adam optimisers ``actor_opt`` / ``critic_opt``
    (:func:`make_adam`).  SHAC and PPO use the value critic; SAC passes its twin-critic
    ensemble."""
    from safegrad.algos.networks import TanhGaussianPolicy, ValueCritic

    fk = {"dtype": agent.dtype, "device": agent.device}
    if make_critic is None:

        def make_critic(**kw):
            return ValueCritic(
                agent.obs_dim, cfg.critic_hidden, cfg.critic_activation, cfg.critic_layer_norm, **kw
            )

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        agent.actor = TanhGaussianPolicy(
            agent.obs_dim,
            agent.act_dim,
            cfg.actor_hidden,
            cfg.actor_activation,
            cfg.actor_layer_norm,
            cfg.log_std_init,
            **actor_kw,
            **fk,
        )
        agent.critic = make_critic(**fk)
    agent.generator = torch.Generator(device=agent.device)
    agent.generator.manual_seed(cfg.seed)
    agent.actor_opt = make_adam(
        agent.actor.parameters(), cfg.actor_lr, cfg.actor_betas, agent.device
    )
    agent.critic_opt = make_adam(
        agent.critic.parameters(), cfg.critic_lr, cfg.critic_betas, agent.device
    )


def check_env(env: Any, dtype: torch.dtype, device: torch.device, cfg: Any) -> None:
    """The env is a safegrad torch vector env on ``device`` with ``dtype`` (else
    ``TypeError`` / ``ValueError`` naming the mismatch)."""
    for attr in ("state", "detach", "num_envs", "single_observation_space"):
        if not hasattr(env, attr):
            raise TypeError(
                f"env must be a safegrad torch vector env (with {attr!r}), got {type(env).__name__}"
            )
    if getattr(env, "dtype", dtype) != dtype:
        raise ValueError(
            f"env dtype {env.dtype} != config dtype {cfg.dtype}; make the env with "
            f"dtype=torch.{cfg.dtype} or set dtype={str(env.dtype).split('.')[-1]!r}"
        )
    env_dev = torch.device(getattr(env, "device", device))
    if env_dev.type != device.type or (
        env_dev.index is not None and device.index is not None and env_dev.index != device.index
    ):
        raise ValueError(f"env device {env_dev} != config device {cfg.device}")


def check_safeguard_fields(cfg: Any, store_choices: tuple[str, ...]) -> None:
    """Shared by SACConfig and PPOConfig: ``store_action``, ``policy_safeguard(_kwargs)``."""
    from safegrad.safeguards.registry import SAFEGUARDS

    name = type(cfg).__name__
    if cfg.store_action not in store_choices:
        raise ValueError(
            f"{name}.store_action={cfg.store_action!r}; expected one of {list(store_choices)}"
        )
    if cfg.policy_safeguard is not None and cfg.policy_safeguard not in SAFEGUARDS:
        raise ValueError(
            f"{name}.policy_safeguard={cfg.policy_safeguard!r}; expected one of "
            f"{list(SAFEGUARDS)} or None"
        )
    kw = cfg.policy_safeguard_kwargs
    if kw is not None:
        if not isinstance(kw, dict) or not all(isinstance(k, str) for k in kw):
            raise TypeError(
                f"{name}.policy_safeguard_kwargs={kw!r} must be a dict with str keys or None"
            )
        if cfg.policy_safeguard is None and kw:
            raise ValueError(
                f"{name}.policy_safeguard_kwargs={kw!r} given without policy_safeguard"
            )


def check_learn_args(total_steps: Any, callback: Any) -> None:
    if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)):
        raise TypeError(f"total_steps must be an int, got {total_steps!r}")
    if total_steps < 0:
        raise ValueError(f"total_steps={total_steps} must be >= 0")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {callback!r}")


# ---------------------------------------------------------------------------- safeguards
def unwrap(env: Any) -> Any:
    """The task under any wrappers (``env.unwrapped``)."""
    return getattr(env, "unwrapped", env)


def find_safeguard_wrapper(env: Any) -> Any:
    """The outermost :class:`~safegrad.safeguards.SafeguardWrapper` around the task, or
    ``None``."""
    from safegrad.safeguards import SafeguardWrapper

    e = env
    while e is not None:
        if isinstance(e, SafeguardWrapper):
            return e
        e = getattr(e, "env", None)
    return None


def is_safeguarded(env: Any) -> bool:
    """Whether ``env`` safeguards its actions (a ``SafeguardWrapper`` with a safeguard; the
    unsafeguarded ``SafeguardWrapper(task, None)`` only monitors)."""
    w = find_safeguard_wrapper(env)
    return w is not None and w.safeguard is not None


def build_policy_layer(
    env: Any,
    name: str,
    kwargs: dict[str, Any] | None,
    *,
    replayed: bool,
    algo: str,
) -> Any:
    """The policy-side :class:`~safegrad.safeguards.SafeguardLayer` ``(state, raw action) ->
    safe action`` for ``env``'s task (spec B §3; the layer's input is the task's *state*).

    Raises ``ValueError`` when ``env`` already safeguards on the environment side (both sides
    at once), and, with ``replayed=True`` (SAC: the layer runs on states from the replay buffer),
    for tasks in :data:`SAFE_SET_NOT_REPLAYABLE` or with per-episode parameters.
    """
    from safegrad.safeguards import SafeguardLayer
    from safegrad.safeguards.registry import CBF_SAFEGUARDS, SAFEGUARDS, build_safeguard

    if name not in SAFEGUARDS:
        raise ValueError(
            f"{algo}Config.policy_safeguard={name!r}; expected one of {list(SAFEGUARDS)} or None"
        )
    if is_safeguarded(env):
        raise ValueError(
            f"{algo}Config.policy_safeguard={name!r} on an env that already safeguards its "
            f"actions ({find_safeguard_wrapper(env).safeguard!r}); use one side only: make "
            "the env without safeguard= (or safeguard=None) for the policy side, or set "
            "policy_safeguard=None for the environment side"
        )
    task = unwrap(env)
    env_id = getattr(task, "env_id", "") or type(task).__name__
    if name in CBF_SAFEGUARDS and not callable(getattr(task, "cbf_constraints", None)):
        raise ValueError(
            f"{algo}Config.policy_safeguard={name!r} needs a task with CBF constraints "
            f"(ReachAvoid-v0); {env_id} has none. Use 'boundary-projection' or 'ray-mask'"
        )
    if replayed:
        reason = SAFE_SET_NOT_REPLAYABLE.get(env_id)
        if reason is None and getattr(task, "episode_params", None):
            reason = "its safe set may depend on per-episode parameters (episode_params)"
        if reason is not None:
            raise ValueError(
                f"{algo}Config.policy_safeguard={name!r} is not supported on {env_id}: {reason}, "
                "which the replay buffer does not store, so the safety layer cannot be "
                "re-evaluated on replayed states. Use the environment side (safegrad.make(..., "
                f"safeguard={name!r}), policy_safeguard=None)"
            )
    safeguard = build_safeguard(name, task, **(kwargs or {}))
    if safeguard.grad_mode == "none":
        raise ValueError(
            f"{algo}Config.policy_safeguard_kwargs grad_mode='none' detaches the safety layer; "
            "as the policy's last layer it needs 'exact' or 'passthrough'"
        )
    return SafeguardLayer.for_env(task, safeguard)


# ---------------------------------------------------------------------------- rollout state
def env_rollout_state(env: Any) -> dict[str, Any]:
    """``env.get_rollout_state()`` (the task's, through any wrapper)."""
    getter = getattr(env, "get_rollout_state", None)
    if getter is None:
        getter = unwrap(env).get_rollout_state
    return getter()


def restore_env_rollout_state(env: Any, state: dict[str, Any]) -> None:
    setter = getattr(env, "set_rollout_state", None)
    if setter is None:
        setter = unwrap(env).set_rollout_state
    setter(state)


# ---------------------------------------------------------------------------- acting
class StepResult(NamedTuple):
    """One vector step through :class:`ActionExecutor` (all detached, ``(B, ...)``)."""

    obs: Tensor
    reward: Tensor
    terminated: Tensor
    truncated: Tensor
    info: dict[str, Any]
    executed: Tensor
    """the action the task executed (the policy layer's or the wrapper's safe action)"""
    intervened: Tensor | None
    """the safeguard changed the action (layer or wrapper); ``None`` without a safeguard"""
    violation: Tensor | None
    """the monitor's verdict on the transition; ``None`` without a monitor"""
    state: Tensor | None
    """the task's state before the step (when ``keep_states``)"""
    next_state: Tensor | None
    """the task's state after the step (the final state on an episode end, next-step
    autoreset; when ``keep_states``)"""


class ActionExecutor:
    """Executes raw policy actions on ``env`` (no gradient): through the policy-side ``layer``
    when given (``a_s = layer(env.state, a)``), then ``env.step`` (whose own safeguard, if any,
    acts on the environment side), and checks the transition with the wrapper's monitor or,
    with a layer on an env without :class:`~safegrad.safeguards.SafeguardWrapper`, with an own
    :class:`~safegrad.invariance.SafetyMonitor` on the task (every safeguarded run is
    monitored)."""

    def __init__(self, env: Any, layer: Any = None, *, keep_states: bool = False) -> None:
        self.env = env
        self.layer = layer
        self.keep_states = keep_states or layer is not None
        self.wrapper = find_safeguard_wrapper(env)
        self.monitor = None
        if layer is not None and self.wrapper is None:
            from safegrad.invariance.monitor import SafetyMonitor

            self.monitor = SafetyMonitor(unwrap(env))

    @torch.no_grad()
    def step(self, action: Tensor) -> StepResult:
        env = self.env
        x = env.state.detach().clone() if self.keep_states else None
        intervened = None
        a_exec = action
        if self.layer is not None:
            a_exec, linfo = self.layer(x, action)
            intervened = linfo["intervened"]
        obs, r, term, trunc, info = env.step(a_exec)
        if "safe_action" in info:
            a_exec = info["safe_action"].detach()
            if self.wrapper is not None and self.wrapper.safeguard is not None:
                w_int = info["intervened"]
                intervened = w_int if intervened is None else (intervened | w_int)
        violation = info.get("violation")
        x_next = env.state.detach().clone() if self.keep_states or self.monitor else None
        if self.monitor is not None:
            violation = self.monitor.check(x, a_exec, x_next, info)["violation"]
        return StepResult(obs, r, term, trunc, info, a_exec, intervened, violation, x, x_next)


# ---------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_policy(
    env: Any,
    act: Callable[[Tensor], Tensor],
    *,
    train_env: Any,
    episodes: int,
    seed: int,
    dtype: torch.dtype,
    device: torch.device,
    policy_safeguard: Any = None,
) -> dict[str, Any]:
    """Undiscounted episode return of a deterministic policy (spec A §6, P10).

    Runs ``ceil(episodes / env.num_envs)`` rounds of ``env.reset(seed=seed + round)`` and counts
    each environment's first episode.  ``act(obs) -> raw action``; with ``policy_safeguard``
    (a :class:`~safegrad.safeguards.Safeguard`) the action goes through
    ``SafeguardLayer.for_env(env, policy_safeguard)`` first (and the transitions are monitored,
    :class:`ActionExecutor`).  ``violations`` / ``interventions`` count the monitor's verdicts
    and the safeguards' interventions (layer and/or ``env``'s wrapper) over the counted
    episodes.

    Returns ``{"returns": list of floats (episodes), "mean": float, "violations": int,
    "interventions": int}``.
    """
    if env is train_env:
        raise ValueError("evaluate on a separate env, not the training env (agent.env)")
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive int, got {episodes!r}")
    layer = None
    if policy_safeguard is not None:
        from safegrad.safeguards import SafeguardLayer

        layer = SafeguardLayer.for_env(env, policy_safeguard)
    ex = ActionExecutor(env, layer)
    n = int(env.num_envs)
    returns: list[float] = []
    violations = interventions = 0
    rnd = 0
    while len(returns) < episodes:
        obs, _ = env.reset(seed=seed + rnd)
        rnd += 1
        ret = torch.zeros(n, dtype=dtype, device=device)
        active = torch.ones(n, dtype=torch.bool, device=device)
        while bool(active.any()):
            res = ex.step(act(torch.as_tensor(obs, dtype=dtype, device=device)))
            obs = res.obs
            ret = ret + torch.where(active, res.reward.to(dtype), 0.0)
            if res.violation is not None:
                violations += int((res.violation & active).sum())
            if res.intervened is not None:
                interventions += int((res.intervened & active).sum())
            active = active & ~(res.terminated | res.truncated)
        returns.extend(ret.tolist())
    env.detach()
    returns = returns[:episodes]
    return {
        "returns": returns,
        "mean": float(np.mean(returns)),
        "violations": violations,
        "interventions": interventions,
    }


# ---------------------------------------------------------------------------- schedules
def schedule_window(agent: Any, total_steps: int, per_iter: int, reset: bool) -> tuple[int, int]:
    """``(origin, span)`` of the learning-rate schedules for one ``learn`` call (SB3's
    ``reset_num_timesteps`` semantics): the progress of an iteration that starts at
    ``agent.num_steps`` is ``(num_steps - origin) / span``.

    ``reset=True`` starts a new schedule at the current ``num_steps`` that runs over this call
    (``ceil(total_steps / per_iter)`` whole iterations).  ``reset=False`` continues the schedule
    of the earlier calls: the origin stays (``agent._lr_origin``, saved with the agent) and the
    span grows to cover this call, so ``learn(a)`` then ``learn(b, reset_num_timesteps=False)``
    (or a save/load in between) anneals exactly like one ``learn(a + b)`` call when ``a`` is a
    whole number of iterations.
    """
    n = math.ceil(total_steps / per_iter) * per_iter
    origin = getattr(agent, "_lr_origin", None)
    if reset or origin is None:
        origin = agent.num_steps
    agent._lr_origin = origin
    return origin, max(agent.num_steps - origin + n, 1)


def scheduled_lr(initial: float, final: float, schedule: str, frac: float) -> float:
    """``constant``: ``initial``; ``linear``: ``initial + (final - initial) * frac`` (``frac``
    clamped to ``[0, 1]``: the fraction of the current ``learn`` call done)."""
    if schedule == "constant":
        return initial
    return initial + (final - initial) * min(max(frac, 0.0), 1.0)


#: devices with a fused Adam step (one kernel per parameter list; the same update rule)
FUSED_ADAM_DEVICES = ("cpu", "cuda")


def make_adam(params: Any, lr: float, betas: Any, device: torch.device) -> torch.optim.Adam:
    """Adam (Kingma & Ba; PyTorch's update rule) with the fused single-kernel step where
    ``device`` has one (CPU, CUDA), else PyTorch's default implementation.  The fused step
    computes the same update with fewer passes over memory; results agree to rounding, not
    bitwise, with the unfused step (a run and its resumed continuation use the same one)."""
    fused = True if torch.device(device).type in FUSED_ADAM_DEVICES else None
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), fused=fused)


def load_adam_state(opt: torch.optim.Optimizer, state: dict, device: torch.device) -> None:
    """``opt.load_state_dict(state)`` keeping this agent's implementation flags (a checkpoint
    written with or without the fused step, or on another device, loads either way)."""
    opt.load_state_dict(state)
    fused = True if torch.device(device).type in FUSED_ADAM_DEVICES else None
    for group in opt.param_groups:
        group["fused"] = fused
        group["foreach"] = None


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


# ---------------------------------------------------------------------------- normaliser
class RunningMeanStd:
    """Running mean and variance of observations (batched parallel update, Chan et al.), on
    the agent's device and dtype; ``normalise(x) = clip((x - mean) / sqrt(var + eps), ±clip)``.

    ``count`` starts at ``eps_count`` (1e-4, as Gymnasium's ``NormalizeObservation``), so the
    first update is (almost) the batch's own statistics.  State: :meth:`state_dict` /
    :meth:`load_state_dict`.
    """

    def __init__(
        self,
        dim: int,
        *,
        dtype: torch.dtype,
        device: torch.device,
        clip: float = 10.0,
        eps: float = 1e-8,
        eps_count: float = 1e-4,
    ) -> None:
        self.mean = torch.zeros(dim, dtype=dtype, device=device)
        self.var = torch.ones(dim, dtype=dtype, device=device)
        self.count = float(eps_count)
        self.clip = float(clip)
        self.eps = float(eps)

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Fold the batch ``x (B, dim)`` into the statistics."""
        x = x.detach().reshape(-1, self.mean.shape[0])
        b = x.shape[0]
        if b == 0:
            return
        b_mean = x.mean(0)
        b_var = x.var(0, unbiased=False)
        delta = b_mean - self.mean
        tot = self.count + b
        self.mean = self.mean + delta * (b / tot)
        m2 = self.var * self.count + b_var * b + delta.pow(2) * (self.count * b / tot)
        self.var = m2 / tot
        self.count = tot

    def normalise(self, x: Tensor) -> Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + self.eps)).clamp(-self.clip, self.clip)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = state["mean"].to(self.mean).clone()
        self.var = state["var"].to(self.var).clone()
        self.count = float(state["count"])
