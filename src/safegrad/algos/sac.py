"""SAC: soft actor-critic with twin critics, with a safeguard on the environment side (spec A
§4.3, the paper's baseline) or as the policy's last layer (spec B §3, §6, §9).

User guide: ``docs/algorithms.md``.  One *vector step* executes ``N`` transitions (one per
environment; spec A §4.3 calls it a learning episode):

1. act: uniform random actions in ``[-1, 1]^m`` during the first ``learning_starts`` vector
   steps, then ``a = tanh(mu(o) + sigma eps)``; with a policy-side safeguard the task executes
   ``a_s = layer(x, a)`` (``x = env.state``), with an environment-side one the wrapper
   executes ``g(a, x)``;
2. store the valid transitions (not the next-step-autoreset slots) in the replay buffer: ``o``,
   the action (:attr:`SACConfig.store_action`), ``r``, ``o'``, ``terminated`` and, for the
   policy side, the task states ``x``, ``x'``;
3. every ``train_freq`` vector steps, ``utd`` gradient steps per vector step taken after
   ``learning_starts``.  Each: critic step on

   ``y = r + gamma (1 - terminated) (min_j Q^_j(o', a'_s) - alpha log pi(a'|o'))``,
   ``a' ~ pi(.|o')``, ``a'_s = layer(x', a')`` (policy side) or ``a'`` (env side),
   ``L_Q = 1/2 sum_j mean (Q_j(o, a) - y)^2``;

   every ``policy_frequency`` critic steps, ``policy_frequency`` actor and temperature steps
   (on the same batch): ``L_pi = mean(alpha log pi(a|o) - min_j Q_j(o, a_s))`` with ``a``
   reparameterised, ``a_s = layer(x, a)`` (gradient through the layer, log-prob of the
   *pre-filter* sample, spec B §6) and ``L_alpha = -mean(alpha (log pi(a|o) + H_target))``,
   ``alpha = exp(log_alpha)`` (P8), ``H_target = -m``; every ``target_frequency`` critic steps
   ``theta^ <- tau theta + (1 - tau) theta^`` (targets initialised as copies, P8).

Implementation (the same maths, fewer passes over memory): the twin critics are one
:class:`~safegrad.algos.networks.QEnsemble` (stacked weights, one batched matmul per layer; ``q1``
/ ``q2`` are views), ReLU networks run through :func:`~safegrad.algos.networks.relu_mlp`
(in-place activations and masks; the actor loss evaluates the critics with detached parameters,
so no critic weight gradient is formed), Adam takes its fused step on CPU / CUDA, the temperature
gradient is the closed form ``dL_alpha / dlog_alpha = L_alpha``, the Polyak update is one
``_foreach_lerp_`` and a replay sample is one gather of packed rows.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from safegrad.algos._common import (
    SCHEDULES,
    ActionExecutor,
    build_policy_layer,
    check_device_dtype,
    check_learn_args,
    check_safeguard_fields,
    env_rollout_state,
    evaluate_policy,
    init_agent,
    is_safeguarded,
    load_adam_state,
    make_adam,
    restore_env_rollout_state,
    schedule_window,
    scheduled_lr,
    seeded_actor_value,
    set_lr,
)
from safegrad.algos._config import ConfigMixin
from safegrad.algos.networks import ACTIVATIONS, QEnsemble

__all__ = ["SAC", "SACConfig", "ReplayBuffer", "sac_critic_target", "polyak_update"]

_STORE = ("auto", "raw", "safe")


@dataclass
class SACConfig(ConfigMixin):
    """SAC hyper-parameters.  Defaults: spec A §8.1 paper-era BalancePendulum values (8 envs,
    1e5 interactions); ``configs/sac_reachavoid.yaml`` holds spec B §9's values."""

    buffer_size: int = 60_000
    """Replay capacity in transitions (ring buffer on ``device``)."""
    batch_size: int = 64
    """Transitions per gradient step (sampled uniformly with replacement)."""
    gamma: float = 0.99
    """Discount ``gamma``."""
    tau: float = 0.673
    """Target update ``theta^ <- tau theta + (1 - tau) theta^`` (spec A §8.1's Polyak ``rho``,
    read in this convention: its tuning range ``[0.1, 1]`` includes 1 = hard copy)."""
    learning_starts: int = 64
    """Vector steps (``N`` transitions each, spec A §4.3's learning episodes) with uniform random
    actions and no gradient steps at the start of training."""
    train_freq: int = 1
    """Vector steps between two update phases (one ``learn`` iteration, one log/callback)."""
    utd: int = 1
    """Critic gradient steps per vector step (update-to-data ratio per ``N`` transitions)."""
    policy_frequency: int = 6
    """Every ``policy_frequency`` critic steps, ``policy_frequency`` actor (+ temperature) steps
    (delayed policy update, spec A §4.3)."""
    target_frequency: int = 7
    """Critic steps between target updates."""
    alpha_init: float = 0.2
    """Initial entropy temperature ``alpha_e`` (stored as ``log_alpha``, P8)."""
    autotune: bool = True
    """Learn ``log_alpha`` towards the target entropy; ``False`` keeps ``alpha_init``."""
    target_entropy: float | None = None
    """Target entropy; ``None`` = ``-m`` (the action dimension)."""
    alpha_lr: float | None = None
    """Temperature Adam learning rate (constant); ``None`` = ``critic_lr`` with
    ``critic_betas`` (the paper-era code used the critic optimiser settings, P8)."""
    actor_hidden: tuple[int, ...] = (173, 173, 173, 173)
    """Policy MLP hidden widths."""
    actor_activation: str = "relu"
    """Policy activation (``elu``, ``relu``, ``tanh``, ``silu``)."""
    actor_layer_norm: bool = False
    """LayerNorm after every hidden activation of the policy (spec A §8.1: none for SAC)."""
    actor_lr: float = 2e-3
    """Policy Adam learning rate (initial value)."""
    actor_lr_schedule: str = "linear"
    """``constant`` or ``linear`` (annealed to ``lr_final`` over the ``learn`` call)."""
    actor_betas: tuple[float, float] = (0.9, 0.999)
    """Policy Adam betas."""
    critic_hidden: tuple[int, ...] = (135, 135, 135, 135)
    """Hidden widths of each Q critic (input ``[o, a]``)."""
    critic_activation: str = "relu"
    """Critic activation."""
    critic_layer_norm: bool = False
    """LayerNorm after every hidden activation of the critics."""
    critic_lr: float = 2e-3
    """Critic Adam learning rate (initial value)."""
    critic_lr_schedule: str = "constant"
    """``constant`` or ``linear``."""
    critic_betas: tuple[float, float] = (0.7, 0.95)
    """Critic Adam betas."""
    lr_final: float = 1e-5
    """Final learning rate of the ``linear`` schedules."""
    max_grad_norm: float | None = None
    """Gradient-norm clip of the actor and critic steps; ``None`` = no clipping (spec A)."""
    log_std_init: float = -1.0
    """Initial state-independent ``log_std`` (spec A §4.1)."""
    state_dependent_std: bool = False
    """``True``: ``log_std`` from a second policy head, smoothly bounded to ``[-5, 2]`` (the
    usual SAC policy, e.g. SAC-RCBF, spec B §9); ``False``: spec A §4.1's learnable vector."""
    store_action: str = "auto"
    """Action stored in the buffer (the critic's input).  Environment side: ``raw`` (the
    policy's own sample; the safeguard is part of the environment, spec A §4.3) or ``safe``
    (the executed action ``info["safe_action"]``); ``auto`` = ``raw``.  Policy side: the
    critic sees the layer's safe action (spec B Eq. 22), so ``auto`` = ``safe``; ``raw`` is
    rejected."""
    policy_safeguard: str | None = None
    """Safeguard name (``safegrad.SAFEGUARDS``, e.g. ``composite-cbf``, ``boundary-projection``)
    used as the policy's last layer (spec B §3); the env must then not safeguard itself."""
    policy_safeguard_kwargs: dict[str, Any] | None = None
    """Constructor options of the policy-side safeguard (e.g. ``{"grad_mode": "passthrough"}``)."""
    seed: int = 0
    """Seed of the network initialisation, the sampling noise, the batches and the first reset."""
    dtype: str = "float32"
    """``float32`` or ``float64``; the env must use the same dtype."""
    device: str = "cpu"
    """Torch device of the networks and the buffer; the env must live on the same device."""

    def __post_init__(self) -> None:
        self._check_types()
        name = type(self).__name__
        for f in ("buffer_size", "batch_size", "train_freq", "utd"):
            if getattr(self, f) < 1:
                raise ValueError(f"{name}.{f}={getattr(self, f)} must be >= 1")
        for f in ("policy_frequency", "target_frequency"):
            if getattr(self, f) < 1:
                raise ValueError(f"{name}.{f}={getattr(self, f)} must be >= 1")
        if self.learning_starts < 0:
            raise ValueError(f"{name}.learning_starts={self.learning_starts} must be >= 0")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"{name}.gamma={self.gamma} must be in (0, 1]")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"{name}.tau={self.tau} must be in (0, 1]")
        for f in ("actor_lr", "critic_lr", "lr_final", "alpha_init"):
            if not getattr(self, f) > 0:
                raise ValueError(f"{name}.{f}={getattr(self, f)} must be > 0")
        for f in ("alpha_lr", "max_grad_norm"):
            v = getattr(self, f)
            if v is not None and not v > 0:
                raise ValueError(f"{name}.{f}={v} must be > 0 or None")
        for f in ("actor_lr_schedule", "critic_lr_schedule"):
            if getattr(self, f) not in SCHEDULES:
                raise ValueError(f"{name}.{f}={getattr(self, f)!r}; expected one of {SCHEDULES}")
        for f in ("actor_activation", "critic_activation"):
            if getattr(self, f) not in ACTIVATIONS:
                raise ValueError(
                    f"{name}.{f}={getattr(self, f)!r}; expected one of {list(ACTIVATIONS)}"
                )
        check_safeguard_fields(self, _STORE)
        check_device_dtype(self)


# ---------------------------------------------------------------------------- pure pieces
def sac_critic_target(
    reward: Tensor,
    terminated: Tensor,
    next_q1: Tensor,
    next_q2: Tensor,
    next_log_prob: Tensor,
    alpha: float | Tensor,
    gamma: float,
) -> Tensor:
    """Soft TD target ``y = r + gamma (1 - terminated) (min(Q^_1, Q^_2) - alpha log pi(a'|o'))``
    (spec A §4.3; spec B Eqs. 22-23).  All ``(B,)``; ``terminated`` as 0/1 floats (truncation
    bootstraps)."""
    soft_v = torch.minimum(next_q1, next_q2) - alpha * next_log_prob
    return reward + gamma * (1.0 - terminated) * soft_v


@torch.no_grad()
def polyak_update(target: Any, source: Any, tau: float) -> None:
    """``theta^ <- tau theta + (1 - tau) theta^`` (in place) over ``parameters()`` of two modules
    (or :class:`~safegrad.algos.networks.QEnsembleMember` views) of the same structure."""
    tp, sp = list(target.parameters()), list(source.parameters())
    if len(tp) != len(sp):
        raise ValueError(f"polyak_update: {len(tp)} target vs {len(sp)} source parameters")
    torch._foreach_lerp_(tp, sp, tau)


class ReplayBuffer:
    """Ring buffer of transitions as preallocated tensors on one device (no Python loop over
    environments).

    ``fields``: name -> row width (0 for scalars).  :meth:`add` writes the rows where ``valid``
    (a ``(B,)`` mask) at the write pointer, wrapping around; :meth:`sample` returns the rows at
    given indices.  ``size`` (filled rows) and ``ptr`` (next write row) are Python ints.

    All fields share one ``(capacity, sum of widths)`` tensor (``data[name]`` are column views
    of it), so that a sample is one gather of whole rows (a few cache lines each) and its
    fields are views of that gather.
    """

    def __init__(
        self,
        capacity: int,
        fields: dict[str, int],
        *,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity={capacity} must be >= 1")
        self.capacity = int(capacity)
        self.fields = dict(fields)
        for k, w in self.fields.items():
            if isinstance(w, bool) or not isinstance(w, int) or w < 0:
                raise ValueError(f"field {k!r} has width {w!r}; expected an int >= 0")
        self._columns: dict[str, slice | int] = {}
        col = 0
        for k, w in self.fields.items():
            self._columns[k] = slice(col, col + w) if w else col
            col += max(w, 1)
        self._storage = torch.zeros((self.capacity, col), dtype=dtype, device=device)
        self.data = {k: self._storage[:, c] for k, c in self._columns.items()}
        self.ptr = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, valid: Tensor | None = None, **rows: Tensor) -> int:
        """Append the rows of ``rows`` (every field, ``(B, ...)``) where ``valid``; returns the
        number of rows written.  More rows than the capacity keep the last ``capacity``."""
        if set(rows) != set(self.fields):
            raise ValueError(f"add needs the fields {sorted(self.fields)}, got {sorted(rows)}")
        if valid is not None and not bool(valid.all()):
            rows = {k: v[valid] for k, v in rows.items()}
        k = int(next(iter(rows.values())).shape[0])
        if k == 0:
            return 0
        if k > self.capacity:
            rows = {n: v[-self.capacity :] for n, v in rows.items()}
            k = self.capacity
        first = min(k, self.capacity - self.ptr)
        for name, v in rows.items():
            buf = self.data[name]
            buf[self.ptr : self.ptr + first] = v[:first]
            if first < k:
                buf[: k - first] = v[first:]
        self.ptr = (self.ptr + k) % self.capacity
        self.size = min(self.size + k, self.capacity)
        return k

    def sample(self, idx: Tensor) -> dict[str, Tensor]:
        """The rows ``idx`` (``(batch,)`` long, ``< size``) of every field (views of one
        gather)."""
        rows = self._storage[idx]
        return {k: rows[:, c] for k, c in self._columns.items()}

    def state_dict(self) -> dict[str, Any]:
        """Filled rows only (``[:size]``), plus ``ptr`` / ``size`` / ``capacity``."""
        return {
            "capacity": self.capacity,
            "ptr": self.ptr,
            "size": self.size,
            "data": {k: v[: self.size].clone() for k, v in self.data.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(
                f"replay buffer capacity {self.capacity} != the checkpoint's {state['capacity']}"
            )
        if set(state["data"]) != set(self.data):
            raise ValueError(
                f"replay buffer fields {sorted(self.data)} != the checkpoint's "
                f"{sorted(state['data'])}"
            )
        for k, v in state["data"].items():
            self.data[k].zero_()
            self.data[k][: v.shape[0]] = v.to(self.data[k])
        self.ptr = int(state["ptr"])
        self.size = int(state["size"])


def _stack_critic_opt_state(state: dict[str, Any], critic: QEnsemble) -> dict[str, Any]:
    """Adam state of two separate critics (checkpoints before the batched ensemble: the
    parameters of ``q1`` then ``q2`` in QCritic order) as the state of ``critic``'s stacked
    parameters."""
    keys = critic._member_keys  # (QCritic key, group, layer) in QCritic order
    n, E = len(keys), critic.num_critics
    old_ids = state["param_groups"][0]["params"]
    if len(state["param_groups"]) != 1 or len(old_ids) != E * n:
        raise ValueError(
            f"critic optimiser state has {len(old_ids)} parameters; expected "
            f"{len(list(critic.parameters()))} (ensemble) or {E * n} (separate critics)"
        )
    pos = {(group, layer): i for i, (_, group, layer) in enumerate(keys)}
    names = [name.rsplit(".", 1) for name, _ in critic.named_parameters()]
    new_state = {}
    for new_id, (group, layer) in enumerate(names):
        olds = [state["state"].get(old_ids[j * n + pos[(group, int(layer))]]) for j in range(E)]
        if any(o is None for o in olds):
            continue  # no step taken yet
        new_state[new_id] = {
            k: (torch.stack([o[k] for o in olds]) if k != "step" else olds[0][k]) for k in olds[0]
        }
    group = dict(state["param_groups"][0], params=list(range(len(names))))
    return {"state": new_state, "param_groups": [group]}


# ---------------------------------------------------------------------------- the agent
class SAC:
    """Soft actor-critic (spec A §4.3; spec B §3) on a safegrad torch vector env.

    ``SAC(env, config=None, **overrides)``.  ``env`` is a task from ``safegrad.make``:

    * bare (no safeguard), or a :class:`~safegrad.safeguards.SafeguardWrapper` (environment
      side: the safeguard is part of the environment; the buffer stores the raw or the safe
      action, :attr:`SACConfig.store_action`);
    * with ``policy_safeguard`` set, the env must not safeguard itself; the
      :class:`~safegrad.safeguards.SafeguardLayer` on the task's state is the policy's last
      layer (acting, actor loss, critic target); an own
      :class:`~safegrad.invariance.SafetyMonitor` checks every transition unless the env is an
      (unsafeguarded) ``SafeguardWrapper`` that monitors already.

    Attributes: ``actor`` (:class:`TanhGaussianPolicy`), ``critic`` / ``critic_target`` (the
    twin critics as one :class:`~safegrad.algos.networks.QEnsemble`), ``q1``, ``q2``,
    ``q1_target``, ``q2_target`` (QCritic-like views of the members), ``log_alpha``,
    ``actor_opt``, ``critic_opt``, ``alpha_opt`` (Adam, fused step on CPU / CUDA), ``buffer``
    (:class:`ReplayBuffer`), ``policy_layer`` (or ``None``),
    ``num_steps`` (interactions so far), ``num_vector_steps``, ``num_updates`` (critic steps),
    ``violations`` / ``interventions`` (training totals), ``logs``.
    """

    algo_name = "SAC"

    def __init__(self, env: Any, config: SACConfig | None = None, **overrides: Any) -> None:
        cfg = init_agent(self, env, config, SACConfig, overrides)
        if cfg.buffer_size < self.num_envs:
            raise ValueError(
                f"SACConfig.buffer_size={cfg.buffer_size} must be >= num_envs={self.num_envs}"
            )
        self.policy_layer = None
        if cfg.policy_safeguard is not None:
            if cfg.store_action == "raw":
                raise ValueError(
                    "SACConfig.store_action='raw' with a policy-side safeguard: the critic sees "
                    "the layer's safe action (spec B Eq. 22); use store_action='auto' or 'safe'"
                )
            self.policy_layer = build_policy_layer(
                env, cfg.policy_safeguard, cfg.policy_safeguard_kwargs, replayed=True, algo="SAC"
            )
        self.safeguarded = self.policy_layer is not None or is_safeguarded(env)
        self.store_safe = cfg.store_action == "safe" or (
            cfg.store_action == "auto" and self.policy_layer is not None
        )
        self.executor = ActionExecutor(env, self.policy_layer)
        self.target_entropy = (
            float(-self.act_dim) if cfg.target_entropy is None else float(cfg.target_entropy)
        )
        fk = {"dtype": self.dtype, "device": self.device}
        # networks from a forked global RNG, sampling from our own generator; the twin critics
        # as one batched ensemble, initialised as two QCritic in turn
        seeded_actor_value(
            self,
            cfg,
            lambda **kw: QEnsemble(
                self.obs_dim,
                self.act_dim,
                cfg.critic_hidden,
                cfg.critic_activation,
                cfg.critic_layer_norm,
                num_critics=2,
                **kw,
            ),
            state_dependent_std=cfg.state_dependent_std,
            fused=True,
        )
        # P8: targets are copies of the critics
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.q1, self.q2 = self.critic.member(0), self.critic.member(1)
        self.q1_target, self.q2_target = self.critic_target.member(0), self.critic_target.member(1)
        self.log_alpha = torch.tensor(math.log(cfg.alpha_init), requires_grad=cfg.autotune, **fk)
        dev = self.device
        self.alpha_opt = make_adam(
            [self.log_alpha],
            cfg.critic_lr if cfg.alpha_lr is None else cfg.alpha_lr,
            cfg.critic_betas,
            dev,
        )
        fields = {
            "obs": self.obs_dim,
            "action": self.act_dim,
            "reward": 0,
            "next_obs": self.obs_dim,
            "terminated": 0,
        }
        if self.policy_layer is not None:
            n = int(env.state.shape[-1])
            fields.update(state=n, next_state=n)
        self.buffer = ReplayBuffer(cfg.buffer_size, fields, **fk)
        self.num_steps = 0
        self.num_vector_steps = 0
        self.num_updates = 0
        self.num_iterations = 0
        self.violations = 0
        self.interventions = 0
        self.logs: dict[str, float] = {}
        self._obs: Tensor | None = None
        self._prev_done: Tensor | None = None
        self._acted_log_std: Tensor | None = None

    # ------------------------------------------------------------------ helpers
    def _as_obs(self, obs: Any) -> Tensor:
        return torch.as_tensor(obs, dtype=self.dtype, device=self.device)

    def _ensure_started(self) -> None:
        if self._obs is None:
            obs, _ = self.env.reset(seed=self.config.seed)
            self._obs = self._as_obs(obs).detach()
            self._prev_done = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)

    def _randn(self, *shape: int) -> Tensor:
        return torch.randn(*shape, generator=self.generator, dtype=self.dtype, device=self.device)

    @property
    def alpha(self) -> Tensor:
        """Entropy temperature ``exp(log_alpha)`` (detached scalar tensor)."""
        return self.log_alpha.detach().exp()

    def _safe(self, state: Tensor | None, action: Tensor) -> Tensor:
        """``layer(state, action)`` on the policy side, else ``action``."""
        if self.policy_layer is None:
            return action
        return self.policy_layer(state, action)[0]

    @torch.no_grad()
    def _env_step(self, acc: dict[str, Tensor]) -> None:
        """One vector step: act, execute, store the valid transitions; accumulate the step's
        reward / violation / intervention sums into ``acc``."""
        cfg = self.config
        obs = self._obs
        if self.num_vector_steps < cfg.learning_starts:
            a = (
                2.0
                * torch.rand(
                    self.num_envs,
                    self.act_dim,
                    generator=self.generator,
                    dtype=self.dtype,
                    device=self.device,
                )
                - 1.0
            )
        else:  # = self.actor.sample(obs, eps), keeping log_std for the logs
            mu, log_std = self.actor.dist(obs)
            a = torch.tanh(mu + log_std.exp() * self._randn(self.num_envs, self.act_dim))
            self._acted_log_std = log_std.detach()
        res = self.executor.step(a)
        nobs = self._as_obs(res.obs)
        valid = ~self._prev_done  # next-step-autoreset slots carry no transition
        done = (res.terminated | res.truncated) & valid
        rows = {
            "obs": obs,
            "action": res.executed if self.store_safe else a,
            "reward": res.reward.to(self.dtype),
            "next_obs": nobs,
            "terminated": res.terminated.to(self.dtype),
        }
        if self.policy_layer is not None:
            rows.update(state=res.state, next_state=res.next_state)
        self.buffer.add(valid, **rows)
        acc["reward"] = acc["reward"] + torch.where(valid, res.reward.to(self.dtype), 0.0).sum()
        acc["valid"] = acc["valid"] + valid.sum()
        if res.violation is not None:
            acc["violations"] = acc["violations"] + res.violation.sum()
        if res.intervened is not None:
            acc["interventions"] = acc["interventions"] + res.intervened.sum()
        self._obs = nobs
        self._prev_done = done
        self.num_vector_steps += 1
        self.num_steps += self.num_envs

    def _update(self) -> dict[str, Tensor]:
        """One critic step (+ delayed actor/temperature steps, target update); returns detached
        scalars for the logs."""
        cfg = self.config
        out: dict[str, Tensor] = {}
        idx = torch.randint(
            0, len(self.buffer), (cfg.batch_size,), generator=self.generator, device=self.device
        )
        b = self.buffer.sample(idx)
        B = cfg.batch_size
        alpha = self.alpha
        with torch.no_grad():
            a2, _, logp2 = self.actor.rsample(b["next_obs"], self._randn(B, self.act_dim))
            a2 = self._safe(b.get("next_state"), a2)
            q_next = self.critic_target(b["next_obs"], a2)  # (2, B): Q^_1, Q^_2
            y = sac_critic_target(
                b["reward"], b["terminated"], q_next[0], q_next[1], logp2, alpha, cfg.gamma
            )
        q = self.critic(b["obs"], b["action"])  # (2, B): Q_1, Q_2 in one batched pass
        critic_loss = 0.5 * (q - y).pow(2).mean(-1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        if cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
        self.critic_opt.step()
        self.num_updates += 1
        out["critic_loss"] = critic_loss.detach()
        out["q"] = q.detach().mean()

        if self.num_updates % cfg.policy_frequency == 0:
            actor_params = list(self.actor.parameters())
            for _ in range(cfg.policy_frequency):
                a, _, logp = self.actor.rsample(b["obs"], self._randn(B, self.act_dim))
                a_s = self._safe(b.get("state"), a)
                # the critics' parameters get no gradient here: evaluate them detached
                q_pi = self.critic(b["obs"], a_s, detach_params=True)
                actor_loss = (alpha * logp - torch.minimum(q_pi[0], q_pi[1])).mean()
                self.actor_opt.zero_grad(set_to_none=True)
                actor_loss.backward(inputs=actor_params)
                if cfg.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(actor_params, cfg.max_grad_norm)
                self.actor_opt.step()
                logp = logp.detach()
                out["actor_loss"] = actor_loss.detach()
                out["entropy"] = -logp.mean()
                if cfg.autotune:
                    # L_alpha = -mean(exp(log_alpha) (log pi + H)) = -exp(log_alpha) mean(...),
                    # so dL_alpha / dlog_alpha = L_alpha: the gradient without a graph
                    alpha_loss = -(self.log_alpha.detach().exp() * (logp + self.target_entropy))
                    alpha_loss = alpha_loss.mean()
                    self.log_alpha.grad = alpha_loss.clone()
                    self.alpha_opt.step()
                    alpha = self.alpha
                    out["alpha_loss"] = alpha_loss
        if self.num_updates % cfg.target_frequency == 0:
            polyak_update(self.critic_target, self.critic, cfg.tau)
        return out

    # ------------------------------------------------------------------ public API
    def learn(
        self,
        total_steps: int,
        callback: Callable[[SAC, dict[str, float]], bool | None] | None = None,
        reset_num_timesteps: bool = True,
    ) -> SAC:
        """Train for at least ``total_steps`` interactions (summed over the ``N`` environments;
        whole iterations of ``train_freq * N``).

        ``callback(agent, logs)`` runs after every iteration; returning ``False`` stops.
        ``logs``: ``step``, ``iteration``, ``updates``, ``critic_loss``, ``actor_loss``,
        ``alpha_loss`` (the last of the iteration; NaN when none ran), ``q`` (mean Q of the last
        batch), ``entropy`` (``-mean log pi``), ``alpha``, ``log_std`` (mean policy log-std at
        the last observations acted on by the policy; at the current ones before
        ``learning_starts``), ``actor_lr``,
        ``critic_lr``, ``buffer_size``, ``mean_reward`` (valid slots), ``violations``,
        ``interventions`` (this iteration), ``steps_per_s``.  Linear LR schedules anneal over
        this call's ``total_steps`` (``reset_num_timesteps=False``: continue the earlier calls'
        schedule, SB3 semantics; :func:`~safegrad.algos._common.schedule_window`).
        """
        check_learn_args(total_steps, callback)
        cfg = self.config
        self._ensure_started()
        per_iter = cfg.train_freq * self.num_envs
        n_iter = math.ceil(total_steps / per_iter)
        origin, span = schedule_window(self, total_steps, per_iter, reset_num_timesteps)
        nan = float("nan")
        for _ in range(n_iter):
            t0 = time.perf_counter()
            frac = (self.num_steps - origin) / span
            lr_a = scheduled_lr(cfg.actor_lr, cfg.lr_final, cfg.actor_lr_schedule, frac)
            lr_c = scheduled_lr(cfg.critic_lr, cfg.lr_final, cfg.critic_lr_schedule, frac)
            set_lr(self.actor_opt, lr_a)
            set_lr(self.critic_opt, lr_c)
            acc = {
                k: torch.zeros((), dtype=dt, device=self.device)
                for k, dt in (
                    ("reward", self.dtype),
                    ("valid", torch.long),
                    ("violations", torch.long),
                    ("interventions", torch.long),
                )
            }
            n_upd = 0
            self._acted_log_std = None
            for _ in range(cfg.train_freq):
                if self.num_vector_steps >= cfg.learning_starts:
                    n_upd += cfg.utd
                self._env_step(acc)
            out: dict[str, Tensor] = {}
            for _ in range(n_upd if len(self.buffer) else 0):
                out.update(self._update())
            self.num_iterations += 1
            viol = int(acc["violations"])
            inter = int(acc["interventions"])
            self.violations += viol
            self.interventions += inter
            nvalid = int(acc["valid"])
            self.logs = {
                "step": self.num_steps,
                "iteration": self.num_iterations,
                "updates": self.num_updates,
                "critic_loss": float(out["critic_loss"]) if "critic_loss" in out else nan,
                "actor_loss": float(out["actor_loss"]) if "actor_loss" in out else nan,
                "alpha_loss": float(out["alpha_loss"]) if "alpha_loss" in out else nan,
                "q": float(out["q"]) if "q" in out else nan,
                "entropy": float(out["entropy"]) if "entropy" in out else nan,
                "alpha": float(self.alpha),
                "log_std": float(
                    self.actor.mean_log_std(self._obs)
                    if self._acted_log_std is None
                    else self._acted_log_std.mean()
                ),
                "actor_lr": lr_a,
                "critic_lr": lr_c,
                "buffer_size": len(self.buffer),
                "mean_reward": float(acc["reward"]) / nvalid if nvalid else nan,
                "violations": viol,
                "interventions": inter,
                "steps_per_s": per_iter / max(time.perf_counter() - t0, 1e-12),
            }
            if callback is not None and callback(self, self.logs) is False:
                break
        return self

    @torch.no_grad()
    def predict(self, obs: Any, deterministic: bool = True, state: Tensor | None = None) -> Tensor:
        """Action ``(B, m)`` for ``obs (B, obs_dim)``: ``tanh(mu(o))`` if ``deterministic`` else
        a sample (agent's generator).  With a policy-side safeguard and the task's ``state
        (B, n)`` the layer's safe action; without ``state`` the pre-filter action."""
        o = self._as_obs(obs)
        if o.shape[-1] != self.obs_dim:
            raise ValueError(f"obs has shape {tuple(o.shape)}; expected (..., {self.obs_dim})")
        if deterministic:
            a = self.actor.deterministic(o)
        else:
            a = self.actor.sample(o, self._randn(*o.shape[:-1], self.act_dim))
        if state is not None and self.policy_layer is not None:
            a = self.policy_layer(self._as_obs(state), a)[0]
        return a

    def evaluate(self, env: Any, episodes: int = 1, seed: int = 0) -> dict[str, Any]:
        """Undiscounted episode return of ``tanh(mu(o))`` (spec A §6, P10), through the policy
        layer (built on ``env``'s task) and/or ``env``'s safeguard.  ``env`` must not be the
        training env.  Returns ``{"returns", "mean", "violations", "interventions"}``."""
        layer = self.policy_layer
        return evaluate_policy(
            env,
            self.actor.deterministic,
            train_env=self.env,
            episodes=episodes,
            seed=seed,
            dtype=self.dtype,
            device=self.device,
            policy_safeguard=None if layer is None else layer.safeguard,
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Save config, networks (actor, critics, targets, ``log_alpha``), optimisers, the
        replay buffer, the generator, counters and the rollout position (carried observation,
        reset-slot flags, ``env.get_rollout_state()``), so that :meth:`load` resumes
        identically."""
        ckpt = {
            "algo": self.algo_name,
            "config": self.config.to_dict(),
            "actor": self.actor.state_dict(),
            "q1": self.q1.state_dict(),
            "q2": self.q2.state_dict(),
            "q1_target": self.q1_target.state_dict(),
            "q2_target": self.q2_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "buffer": self.buffer.state_dict(),
            "generator": self.generator.get_state(),
            "counters": {
                "num_steps": self.num_steps,
                "_lr_origin": getattr(self, "_lr_origin", None),
                "num_vector_steps": self.num_vector_steps,
                "num_updates": self.num_updates,
                "num_iterations": self.num_iterations,
                "violations": self.violations,
                "interventions": self.interventions,
            },
            "num_envs": self.num_envs,
            "obs": None if self._obs is None else self._obs.clone(),
            "prev_done": None if self._prev_done is None else self._prev_done.clone(),
            "env": None if self._obs is None else env_rollout_state(self.env),
        }
        torch.save(ckpt, path)

    @classmethod
    def load(cls, path: str | Path, env: Any, **overrides: Any) -> SAC:
        """A new agent on ``env`` (same task, ``num_envs``, dtype; a freshly made one) from
        :meth:`save`'s file; ``overrides`` replace config fields (e.g. ``device``)."""
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(ckpt, dict) or ckpt.get("algo") != cls.algo_name:
            raise ValueError(f"{path} is not a {cls.algo_name} checkpoint")
        if int(env.num_envs) != ckpt["num_envs"]:
            raise ValueError(f"env has num_envs={env.num_envs}, the checkpoint {ckpt['num_envs']}")
        config = SACConfig.from_dict(ckpt["config"]).replace(**overrides)
        agent = cls(env, config)
        for name in ("actor", "q1", "q2", "q1_target", "q2_target"):
            getattr(agent, name).load_state_dict(ckpt[name])
        with torch.no_grad():
            agent.log_alpha.copy_(ckpt["log_alpha"])
        critic_opt = ckpt["critic_opt"]
        if len(critic_opt["param_groups"][0]["params"]) != len(list(agent.critic.parameters())):
            critic_opt = _stack_critic_opt_state(critic_opt, agent.critic)  # pre-ensemble file
        load_adam_state(agent.actor_opt, ckpt["actor_opt"], agent.device)
        load_adam_state(agent.critic_opt, critic_opt, agent.device)
        load_adam_state(agent.alpha_opt, ckpt["alpha_opt"], agent.device)
        agent.buffer.load_state_dict(ckpt["buffer"])
        agent.generator.set_state(ckpt["generator"])
        for k, v in ckpt["counters"].items():
            setattr(agent, k, v)
        if ckpt["obs"] is not None:
            agent._obs = ckpt["obs"].to(device=agent.device, dtype=agent.dtype)
            agent._prev_done = ckpt["prev_done"].to(agent.device)
            restore_env_rollout_state(agent.env, ckpt["env"])
        return agent

    def __repr__(self) -> str:
        changed = {
            f.name: getattr(self.config, f.name)
            for f in dataclasses.fields(self.config)
            if getattr(self.config, f.name) != f.default
        }
        side = (
            f"policy:{self.config.policy_safeguard}"
            if self.policy_layer is not None
            else ("env" if is_safeguarded(self.env) else "none")
        )
        return (
            f"{self.algo_name}(env={self.env!r}, safeguard={side}, steps={self.num_steps}, "
            f"overrides={changed})"
        )
