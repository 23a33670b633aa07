"""PPO: clipped-surrogate policy optimisation with GAE, with a safeguard on the environment side
(spec A §4.4, the paper's baseline) or as the policy's last layer (spec B §6's log-prob rule).

User guide: ``docs/algorithms.md``.  One iteration (``T * N`` interactions):

1. roll out ``T`` steps of the ``N`` environments without gradients:
   ``u = mu(o) + sigma eps``, raw action ``a = tanh(u)``; the task executes ``a`` (bare),
   ``g(a, x)`` (environment-side wrapper) or ``layer(x, a)`` (policy side); store ``o``, the
   pre-squash sample ``u`` (:attr:`PPOConfig.store_action`), ``log pi``, ``V(o)``, ``r``,
   ``terminated``, ``done`` and the reset-slot mask (next-step autoreset);
2. GAE (:func:`gae_advantages`): ``delta_t = r_t + gamma (1 - term_t) V(o_{t+1}) - V(o_t)``,
   ``A_t = delta_t + gamma lam (1 - done_t) A_{t+1}`` (truncation bootstraps from the final
   observation); returns ``R_t = A_t + V(o_t)``; reset slots get no target;
3. ``num_epochs`` passes over ``num_batches`` shuffled mini-batches of the valid slots: policy
   step on ``max(-A r, -A clip(r, 1 +- eps)) - c_ent H`` with ``r = exp(clamp(log pi - log
   pi_old, +-20))`` and normalised ``A`` (per mini-batch); critic step on the clipped value
   loss ``1/2 max((V - R)^2, (V_old + clip(V - V_old, +-eps) - R)^2)``; gradient-norm clipping.
"""

from __future__ import annotations

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
    RunningMeanStd,
    build_policy_layer,
    check_device_dtype,
    check_learn_args,
    check_safeguard_fields,
    env_rollout_state,
    evaluate_policy,
    init_agent,
    is_safeguarded,
    load_adam_state,
    restore_env_rollout_state,
    schedule_window,
    scheduled_lr,
    seeded_actor_value,
    set_lr,
)
from safegrad.algos._config import ConfigMixin
from safegrad.algos.networks import ACTIVATIONS

__all__ = ["PPO", "PPOConfig", "gae_advantages"]

_STORE = ("auto", "raw", "safe")
_LOG_RATIO_CLAMP = 20.0  # spec A §4.4


@dataclass
class PPOConfig(ConfigMixin):
    """PPO hyper-parameters.  Defaults: spec A §8.1 paper-era BalancePendulum values (8 envs,
    1e5 interactions)."""

    horizon: int = 1700
    """Rollout length ``T`` per environment and iteration (``T * N`` interactions)."""
    gamma: float = 0.95
    """Discount ``gamma``."""
    gae_lambda: float = 0.94
    """GAE weight ``lambda``."""
    clip_coef: float = 0.2
    """Surrogate ratio clip ``eps`` (also the value clip with ``clip_vloss``)."""
    clip_vloss: bool = True
    """Clipped value loss (spec A §8.1)."""
    ent_coef: float = 0.09
    """Entropy bonus weight (Gaussian entropy, spec A §4.1)."""
    max_grad_norm: float = 1.45
    """Gradient-norm clip of the policy and critic steps."""
    num_epochs: int = 32
    """Passes over the rollout per iteration (spec A's ``num_fits``)."""
    num_batches: int = 45
    """Shuffled mini-batches per pass."""
    norm_adv: bool = True
    """Normalise the advantages per mini-batch (spec A §8.1)."""
    target_kl: float | None = None
    """Stop the epochs of an iteration once the approximate KL exceeds it; ``None`` = never."""
    normalize_obs: bool = False
    """Running mean/std observation normalisation (clipped to +-10), saved with the agent."""
    actor_hidden: tuple[int, ...] = (256, 256, 256, 256)
    """Policy MLP hidden widths."""
    actor_activation: str = "tanh"
    """Policy activation (``elu``, ``relu``, ``tanh``, ``silu``)."""
    actor_layer_norm: bool = False
    """LayerNorm after every hidden activation of the policy."""
    actor_lr: float = 3e-4
    """Policy Adam learning rate (initial value)."""
    actor_lr_schedule: str = "constant"
    """``constant`` or ``linear`` (annealed to ``lr_final`` over the ``learn`` call)."""
    actor_betas: tuple[float, float] = (0.9, 0.999)
    """Policy Adam betas."""
    critic_hidden: tuple[int, ...] = (200, 200)
    """Value MLP hidden widths."""
    critic_activation: str = "elu"
    """Critic activation."""
    critic_layer_norm: bool = True
    """LayerNorm after every hidden activation of the critic."""
    critic_lr: float = 2e-3
    """Critic Adam learning rate (initial value)."""
    critic_lr_schedule: str = "linear"
    """``constant`` or ``linear``."""
    critic_betas: tuple[float, float] = (0.7, 0.95)
    """Critic Adam betas."""
    lr_final: float = 1e-5
    """Final learning rate of the ``linear`` schedules."""
    log_std_init: float = -1.0
    """Initial state-independent ``log_std`` (spec A §4.1)."""
    store_action: str = "auto"
    """Action whose log-prob enters the ratio.  Environment side: ``raw`` (the policy's own
    sample, spec A §4.4) or ``safe`` (the executed ``info["safe_action"]``, mapped back by
    ``atanh`` of the action clamped to ``+-(1 - 1e-6)``; an off-policy approximation);
    ``auto`` = ``raw``.  Policy side: always the raw, pre-filter sample (spec B §6); ``safe``
    is rejected."""
    policy_safeguard: str | None = None
    """Safeguard name (``safegrad.SAFEGUARDS``) used as the policy's last layer at acting time;
    the env must then not safeguard itself."""
    policy_safeguard_kwargs: dict[str, Any] | None = None
    """Constructor options of the policy-side safeguard."""
    seed: int = 0
    """Seed of the network initialisation, the sampling noise, the shuffles and the first
    reset."""
    dtype: str = "float32"
    """``float32`` or ``float64``; the env must use the same dtype."""
    device: str = "cpu"
    """Torch device of the networks and the rollout storage; the env must live there too."""

    def __post_init__(self) -> None:
        self._check_types()
        name = type(self).__name__
        for f in ("horizon", "num_epochs", "num_batches"):
            if getattr(self, f) < 1:
                raise ValueError(f"{name}.{f}={getattr(self, f)} must be >= 1")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"{name}.gamma={self.gamma} must be in (0, 1]")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"{name}.gae_lambda={self.gae_lambda} must be in [0, 1]")
        for f in ("clip_coef", "max_grad_norm", "actor_lr", "critic_lr", "lr_final"):
            if not getattr(self, f) > 0:
                raise ValueError(f"{name}.{f}={getattr(self, f)} must be > 0")
        if self.ent_coef < 0:
            raise ValueError(f"{name}.ent_coef={self.ent_coef} must be >= 0")
        if self.target_kl is not None and not self.target_kl > 0:
            raise ValueError(f"{name}.target_kl={self.target_kl} must be > 0 or None")
        for f in ("actor_lr_schedule", "critic_lr_schedule"):
            if getattr(self, f) not in SCHEDULES:
                raise ValueError(f"{name}.{f}={getattr(self, f)!r}; expected one of {SCHEDULES}")
        for f in ("actor_activation", "critic_activation"):
            if getattr(self, f) not in ACTIVATIONS:
                raise ValueError(
                    f"{name}.{f}={getattr(self, f)!r}; expected one of {list(ACTIVATIONS)}"
                )
        check_safeguard_fields(self, _STORE)
        if self.policy_safeguard is not None and self.store_action == "safe":
            raise ValueError(
                "PPOConfig.store_action='safe' with a policy-side safeguard: the ratio uses the "
                "log-prob of the raw, pre-filter sample (spec B §6); use 'auto' or 'raw'"
            )
        check_device_dtype(self)


# ---------------------------------------------------------------------------- pure pieces
def gae_advantages(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    done: Tensor,
    valid: Tensor,
    gamma: float,
    lam: float,
) -> Tensor:
    """Generalised advantage estimates under next-step autoreset (spec A §4.4).

    Backward over ``t``: ``delta_t = r_t + gamma (1 - term_t) V(o_{t+1}) - V(o_t)``,
    ``A_t = delta_t + gamma lam (1 - done_t) A_{t+1}`` where ``A_T = 0``; ``A_t = 0`` at
    invalid (reset) slots, so no chain crosses an episode end.

    Args:
        rewards, values (``V(o_t)``), next_values (``V(o_{t+1})``, the final observation's value
            at an episode end): ``(T, N)``.
        terminated, done (``terminated | truncated``), valid: ``(T, N)`` bool.
        gamma, lam: discount and GAE weight.

    Returns:
        ``(T, N)`` advantages.
    """
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in range(T - 1, -1, -1):
        nonterm = (~terminated[t]).to(rewards.dtype)
        cont = (~done[t]).to(rewards.dtype)
        delta = rewards[t] + gamma * nonterm * next_values[t] - values[t]
        last = torch.where(valid[t], delta + gamma * lam * cont * last, 0.0)
        adv[t] = last
    return adv


def _atanh_clamped(a: Tensor) -> Tensor:
    lim = 1.0 - 1e-6
    return torch.atanh(a.clamp(-lim, lim))


# ---------------------------------------------------------------------------- the agent
class PPO:
    """Proximal policy optimisation (spec A §4.4) on a safegrad torch vector env.

    ``PPO(env, config=None, **overrides)``.  Safeguard options as :class:`~safegrad.algos.SAC`:
    environment side (a :class:`~safegrad.safeguards.SafeguardWrapper` env; ``store_action``
    ``raw`` or ``safe``) or policy side (``policy_safeguard``: the task executes
    ``layer(x, a)``, the ratio uses the raw sample's log-prob; an own safety monitor checks the
    transitions unless the env is an unsafeguarded ``SafeguardWrapper``).  With the raw action
    stored, the two sides train identically; they differ in where the filter lives.

    Attributes: ``actor`` (:class:`TanhGaussianPolicy`), ``critic`` (:class:`ValueCritic`),
    ``actor_opt``, ``critic_opt``, ``obs_rms`` (:class:`RunningMeanStd` or ``None``),
    ``policy_layer``, ``num_steps``, ``num_iterations``, ``violations``, ``interventions``,
    ``logs``.
    """

    algo_name = "PPO"

    def __init__(self, env: Any, config: PPOConfig | None = None, **overrides: Any) -> None:
        cfg = init_agent(self, env, config, PPOConfig, overrides)
        self.policy_layer = None
        if cfg.policy_safeguard is not None:
            self.policy_layer = build_policy_layer(
                env, cfg.policy_safeguard, cfg.policy_safeguard_kwargs, replayed=False, algo="PPO"
            )
        self.safeguarded = self.policy_layer is not None or is_safeguarded(env)
        self.store_safe = cfg.store_action == "safe"
        self.executor = ActionExecutor(env, self.policy_layer)
        fk = {"dtype": self.dtype, "device": self.device}
        seeded_actor_value(self, cfg)
        self.obs_rms = RunningMeanStd(self.obs_dim, **fk) if cfg.normalize_obs else None
        self.num_steps = 0
        self.num_iterations = 0
        self.violations = 0
        self.interventions = 0
        self.logs: dict[str, float] = {}
        self._obs: Tensor | None = None
        self._prev_done: Tensor | None = None

    # ------------------------------------------------------------------ helpers
    def _as_obs(self, obs: Any) -> Tensor:
        return torch.as_tensor(obs, dtype=self.dtype, device=self.device)

    def _norm(self, obs: Tensor) -> Tensor:
        return obs if self.obs_rms is None else self.obs_rms.normalise(obs)

    def _ensure_started(self) -> None:
        if self._obs is None:
            obs, _ = self.env.reset(seed=self.config.seed)
            self._obs = self._as_obs(obs).detach()
            self._prev_done = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)

    @torch.no_grad()
    def _rollout(self) -> dict[str, Tensor]:
        """Step 1: ``T`` vector steps without gradients; returns the ``(T, N, ...)`` storage plus
        ``next_values`` and the iteration's reward / violation / intervention sums."""
        cfg = self.config
        self._ensure_started()
        T, N, m = cfg.horizon, self.num_envs, self.act_dim
        fk = {"dtype": self.dtype, "device": self.device}
        buf = {
            "obs": torch.empty(T, N, self.obs_dim, **fk),
            "u": torch.empty(T, N, m, **fk),
            "logp": torch.empty(T, N, **fk),
            "values": torch.empty(T, N, **fk),
            "rewards": torch.empty(T, N, **fk),
        }
        for k in ("terminated", "done", "valid"):
            buf[k] = torch.empty(T, N, dtype=torch.bool, device=self.device)
        viol = torch.zeros((), dtype=torch.long, device=self.device)
        inter = torch.zeros((), dtype=torch.long, device=self.device)
        obs, prev_done = self._obs, self._prev_done
        for t in range(T):
            if self.obs_rms is not None:
                self.obs_rms.update(obs)
            o = self._norm(obs)
            eps = torch.randn(N, m, generator=self.generator, **fk)
            a, u, logp = self.actor.rsample(o, eps)
            res = self.executor.step(a)
            if self.store_safe:
                u = _atanh_clamped(res.executed)
                logp = self.actor.log_prob_pre_tanh(o, u)
            valid = ~prev_done
            done = (res.terminated | res.truncated) & valid
            buf["obs"][t] = o
            buf["u"][t] = u
            buf["logp"][t] = logp
            buf["values"][t] = self.critic(o)
            buf["rewards"][t] = res.reward.to(self.dtype)
            buf["terminated"][t] = res.terminated & valid
            buf["done"][t] = done
            buf["valid"][t] = valid
            if res.violation is not None:
                viol = viol + res.violation.sum()
            if res.intervened is not None:
                inter = inter + res.intervened.sum()
            obs, prev_done = self._as_obs(res.obs), done
        self._obs, self._prev_done = obs, prev_done
        last_v = self.critic(self._norm(obs))
        buf["next_values"] = torch.cat((buf["values"][1:], last_v[None]), 0)
        buf["violations"] = viol
        buf["interventions"] = inter
        return buf

    def _update(self, buf: dict[str, Tensor]) -> dict[str, float]:
        """Steps 2-3: GAE, then the clipped-surrogate and value epochs."""
        cfg = self.config
        with torch.no_grad():
            adv = gae_advantages(
                buf["rewards"],
                buf["values"],
                buf["next_values"],
                buf["terminated"],
                buf["done"],
                buf["valid"],
                cfg.gamma,
                cfg.gae_lambda,
            )
            ret = adv + buf["values"]
        mask = buf["valid"].reshape(-1)
        obs = buf["obs"].reshape(-1, self.obs_dim)[mask]
        u = buf["u"].reshape(-1, self.act_dim)[mask]
        logp_old = buf["logp"].reshape(-1)[mask]
        v_old = buf["values"].reshape(-1)[mask]
        adv, ret = adv.reshape(-1)[mask], ret.reshape(-1)[mask]
        M = int(obs.shape[0])
        nb = min(cfg.num_batches, max(M, 1))
        actor_params = list(self.actor.parameters())
        critic_params = list(self.critic.parameters())
        stats: dict[str, Tensor] = {}
        kls, clipfracs = [], []
        epochs = 0
        for _ in range(cfg.num_epochs if M else 0):
            epochs += 1
            perm = torch.randperm(M, generator=self.generator, device=self.device)
            for idx in torch.tensor_split(perm, nb):
                logp = self.actor.log_prob_pre_tanh(obs[idx], u[idx])
                log_ratio = (logp - logp_old[idx]).clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
                ratio = log_ratio.exp()
                with torch.no_grad():
                    kls.append(((ratio - 1.0) - log_ratio).mean())
                    clipfracs.append(((ratio - 1.0).abs() > cfg.clip_coef).to(self.dtype).mean())
                a = adv[idx]
                if cfg.norm_adv and a.numel() > 1:
                    a = (a - a.mean()) / (a.std() + 1e-8)
                pg = torch.maximum(
                    -a * ratio, -a * ratio.clamp(1.0 - cfg.clip_coef, 1.0 + cfg.clip_coef)
                ).mean()
                ent = self.actor.entropy(obs[idx]).mean()
                actor_loss = pg - cfg.ent_coef * ent
                self.actor_opt.zero_grad(set_to_none=True)
                actor_loss.backward()
                gn_a = torch.nn.utils.clip_grad_norm_(actor_params, cfg.max_grad_norm)
                self.actor_opt.step()

                v = self.critic(obs[idx])
                v_loss = (v - ret[idx]).pow(2)
                if cfg.clip_vloss:
                    v_clip = v_old[idx] + (v - v_old[idx]).clamp(-cfg.clip_coef, cfg.clip_coef)
                    v_loss = torch.maximum(v_loss, (v_clip - ret[idx]).pow(2))
                v_loss = 0.5 * v_loss.mean()
                self.critic_opt.zero_grad(set_to_none=True)
                v_loss.backward()
                gn_c = torch.nn.utils.clip_grad_norm_(critic_params, cfg.max_grad_norm)
                self.critic_opt.step()
                stats = {
                    "policy_loss": pg.detach(),
                    "value_loss": v_loss.detach(),
                    "entropy": ent.detach(),
                    "grad_norm_actor": gn_a,
                    "grad_norm_critic": gn_c,
                }
            if cfg.target_kl is not None and float(kls[-1]) > cfg.target_kl:
                break
        nan = float("nan")
        out = {k: float(v) for k, v in stats.items()}
        for k in ("policy_loss", "value_loss", "entropy", "grad_norm_actor", "grad_norm_critic"):
            out.setdefault(k, nan)
        out["approx_kl"] = float(kls[-1]) if kls else nan
        out["clipfrac"] = float(torch.stack(clipfracs).mean()) if clipfracs else nan
        var_y = ret.var() if M > 1 else torch.tensor(nan)
        out["explained_variance"] = (
            float(1.0 - (ret - v_old).var() / var_y) if M > 1 and float(var_y) > 0 else nan
        )
        out["epochs"] = epochs
        return out

    # ------------------------------------------------------------------ public API
    def learn(
        self,
        total_steps: int,
        callback: Callable[[PPO, dict[str, float]], bool | None] | None = None,
        reset_num_timesteps: bool = True,
    ) -> PPO:
        """Train for at least ``total_steps`` interactions (summed over the ``N`` environments;
        whole iterations of ``horizon * N``).

        ``callback(agent, logs)`` runs after every iteration; returning ``False`` stops.
        ``logs``: ``step``, ``iteration``, ``policy_loss``, ``value_loss``, ``entropy``,
        ``approx_kl``, ``clipfrac``, ``explained_variance``, ``grad_norm_actor`` /
        ``grad_norm_critic`` (last mini-batch, before clipping), ``epochs``, ``actor_lr``,
        ``critic_lr``, ``log_std``, ``mean_reward`` (valid slots), ``violations``,
        ``interventions`` (this iteration), ``steps_per_s``.  Linear LR schedules anneal over
        this call's ``total_steps`` (``reset_num_timesteps=False``: continue the earlier calls'
        schedule, SB3 semantics; :func:`~safegrad.algos._common.schedule_window`).
        """
        check_learn_args(total_steps, callback)
        cfg = self.config
        per_iter = cfg.horizon * self.num_envs
        n_iter = math.ceil(total_steps / per_iter)
        origin, span = schedule_window(self, total_steps, per_iter, reset_num_timesteps)
        for _ in range(n_iter):
            t0 = time.perf_counter()
            frac = (self.num_steps - origin) / span
            lr_a = scheduled_lr(cfg.actor_lr, cfg.lr_final, cfg.actor_lr_schedule, frac)
            lr_c = scheduled_lr(cfg.critic_lr, cfg.lr_final, cfg.critic_lr_schedule, frac)
            set_lr(self.actor_opt, lr_a)
            set_lr(self.critic_opt, lr_c)
            buf = self._rollout()
            out = self._update(buf)
            self.num_steps += per_iter
            self.num_iterations += 1
            viol, inter = int(buf["violations"]), int(buf["interventions"])
            self.violations += viol
            self.interventions += inter
            valid = buf["valid"]
            nvalid = int(valid.sum())
            mean_r = float(buf["rewards"][valid].sum()) / nvalid if nvalid else float("nan")
            self.logs = {
                "step": self.num_steps,
                "iteration": self.num_iterations,
                **out,
                "actor_lr": lr_a,
                "critic_lr": lr_c,
                "log_std": float(self.actor.mean_log_std()),
                "mean_reward": mean_r,
                "violations": viol,
                "interventions": inter,
                "steps_per_s": per_iter / max(time.perf_counter() - t0, 1e-12),
            }
            if callback is not None and callback(self, self.logs) is False:
                break
        return self

    @torch.no_grad()
    def predict(self, obs: Any, deterministic: bool = True, state: Tensor | None = None) -> Tensor:
        """Action ``(B, m)`` for raw ``obs (B, obs_dim)`` (normalised internally when
        ``normalize_obs``): ``tanh(mu(o))`` if ``deterministic`` else a sample (agent's
        generator).  With a policy-side safeguard and the task's ``state (B, n)`` the layer's
        safe action; without ``state`` the pre-filter action."""
        o = self._as_obs(obs)
        if o.shape[-1] != self.obs_dim:
            raise ValueError(f"obs has shape {tuple(o.shape)}; expected (..., {self.obs_dim})")
        o = self._norm(o)
        if deterministic:
            a = self.actor.deterministic(o)
        else:
            eps = torch.randn(
                (*o.shape[:-1], self.act_dim),
                generator=self.generator,
                dtype=self.dtype,
                device=self.device,
            )
            a = self.actor.sample(o, eps)
        if state is not None and self.policy_layer is not None:
            a = self.policy_layer(self._as_obs(state), a)[0]
        return a

    def evaluate(self, env: Any, episodes: int = 1, seed: int = 0) -> dict[str, Any]:
        """Undiscounted episode return of ``tanh(mu(o))`` (spec A §6, P10), through the policy
        layer (built on ``env``'s task) and/or ``env``'s safeguard; observations normalised
        with the current statistics (not updated).  ``env`` must not be the training env.
        Returns ``{"returns", "mean", "violations", "interventions"}``."""
        layer = self.policy_layer
        return evaluate_policy(
            env,
            lambda o: self.actor.deterministic(self._norm(o)),
            train_env=self.env,
            episodes=episodes,
            seed=seed,
            dtype=self.dtype,
            device=self.device,
            policy_safeguard=None if layer is None else layer.safeguard,
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Save config, actor, critic, both Adam states, the observation normaliser, the
        generator, counters and the rollout position (carried observation, reset-slot flags,
        ``env.get_rollout_state()``), so that :meth:`load` resumes identically."""
        ckpt = {
            "algo": self.algo_name,
            "config": self.config.to_dict(),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "obs_rms": None if self.obs_rms is None else self.obs_rms.state_dict(),
            "generator": self.generator.get_state(),
            "counters": {
                "num_steps": self.num_steps,
                "_lr_origin": getattr(self, "_lr_origin", None),
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
    def load(cls, path: str | Path, env: Any, **overrides: Any) -> PPO:
        """A new agent on ``env`` (same task, ``num_envs``, dtype; a freshly made one) from
        :meth:`save`'s file; ``overrides`` replace config fields (e.g. ``device``)."""
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(ckpt, dict) or ckpt.get("algo") != cls.algo_name:
            raise ValueError(f"{path} is not a {cls.algo_name} checkpoint")
        if int(env.num_envs) != ckpt["num_envs"]:
            raise ValueError(f"env has num_envs={env.num_envs}, the checkpoint {ckpt['num_envs']}")
        config = PPOConfig.from_dict(ckpt["config"]).replace(**overrides)
        agent = cls(env, config)
        agent.actor.load_state_dict(ckpt["actor"])
        agent.critic.load_state_dict(ckpt["critic"])
        load_adam_state(agent.actor_opt, ckpt["actor_opt"], agent.device)
        load_adam_state(agent.critic_opt, ckpt["critic_opt"], agent.device)
        if ckpt["obs_rms"] is not None:
            if agent.obs_rms is None:
                raise ValueError("the checkpoint normalises observations; keep normalize_obs=True")
            agent.obs_rms.load_state_dict(ckpt["obs_rms"])
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
