"""SHAC: short-horizon actor-critic through the differentiable simulator and the safeguard.

Spec A §4.2 (Xu et al., ICLR 2022, as used by the paper), §3.6 (regularisation, Eq. 17), §6
(evaluation), §8.1 (paper-era hyper-parameters), §9 (P2, P8, P10).  User guide:
``docs/algorithms.md``.

One learning episode (``T * N`` interactions):

1. detach the simulator state (truncated BPTT);
2. roll out ``T`` steps with gradients, ``a_t = tanh(mu(o_t) + sigma eps)``, through the
   safeguard (when the env is a :class:`~safegrad.safeguards.SafeguardWrapper`) and the dynamics;
   the target critic's ``V^(o_{t+1})`` is differentiable w.r.t. ``o`` only; ``t = T-1`` is a
   forced segment end; next-step autoreset slots are masked;
3. policy loss (:func:`shac_policy_objective`), one Adam step with gradient-norm clipping
   (norms logged before and after);
4. TD(lambda) targets (:func:`td_lambda_targets`);
5. critic fits (``vf_num_fits`` x ``vf_fit_num_batches`` contiguous mini-batches);
6. Polyak target update ``theta^ <- alpha theta^ + (1 - alpha) theta`` (target initialised as a
   copy, P8).
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
    check_device_dtype,
    check_learn_args,
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

__all__ = ["SHAC", "SHACConfig", "td_lambda_targets", "shac_policy_objective"]


@dataclass
class SHACConfig(ConfigMixin):
    """SHAC hyper-parameters.  Defaults: spec A §8.1 paper-era BalancePendulum values (the
    "Base" variant, ``c_reg = 0``; the "Regularised" variants use ``c_reg = 0.1``)."""

    horizon: int = 64
    """Short horizon ``T`` (``len_trajectories``): steps per differentiable rollout window."""
    gamma: float = 0.95
    """Discount ``gamma``."""
    td_lambda: float = 0.95
    """TD(lambda) weight ``lambda`` of the critic targets (spec A §4.2 step 4)."""
    polyak: float = 0.4
    """Polyak factor ``alpha``: ``theta_target <- alpha theta_target + (1 - alpha) theta_V``."""
    vf_num_fits: int = 50
    """Critic fit passes per learning episode."""
    vf_fit_num_batches: int = 1
    """Mini-batches per critic fit pass (contiguous slices of the time-major buffer)."""
    vf_shuffle: bool = False
    """Shuffle the critic buffer before each pass (original SHAC); the paper-era code does not."""
    actor_hidden: tuple[int, ...] = (128, 128)
    """Policy MLP hidden widths."""
    actor_activation: str = "elu"
    """Policy activation (``elu``, ``relu``, ``tanh``, ``silu``)."""
    actor_layer_norm: bool = True
    """LayerNorm after every hidden activation of the policy."""
    actor_lr: float = 4e-4
    """Policy Adam learning rate (initial value)."""
    actor_lr_schedule: str = "constant"
    """``constant`` or ``linear`` (annealed to ``lr_final`` over the ``learn`` call).  Paper era:
    constant; ``configs/shac_pendulum.yaml`` anneals it (``docs/algorithms.md``, choice 10)."""
    actor_betas: tuple[float, float] = (0.7, 0.95)
    """Policy Adam betas."""
    critic_hidden: tuple[int, ...] = (128, 128, 128)
    """Critic MLP hidden widths."""
    critic_activation: str = "elu"
    """Critic activation."""
    critic_layer_norm: bool = True
    """LayerNorm after every hidden activation of the critic."""
    critic_lr: float = 2e-3
    """Critic Adam learning rate (initial value)."""
    critic_lr_schedule: str = "linear"
    """``constant`` or ``linear`` (annealed to ``lr_final`` over the ``learn`` call)."""
    critic_betas: tuple[float, float] = (0.7, 0.95)
    """Critic Adam betas."""
    lr_final: float = 1e-5
    """Final learning rate of the ``linear`` schedules (spec A §8.1 "lin->1e-5")."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip of the policy and critic updates."""
    log_std_init: float = -1.0
    """Initial state-independent ``log_std`` of the policy (spec A §4.1)."""
    c_reg: float = 0.0
    """Weight of the regularisation ``c_reg * mean ||a_s - a||^2`` (Eq. 17); needs a safeguard."""
    reg_reduction: str = "mean"
    """``mean`` (spec: mean squared norm) or ``mse`` (also divided by ``m``, the reference code)."""
    seed: int = 0
    """Seed of the network initialisation, the exploration noise and the first env reset."""
    dtype: str = "float32"
    """``float32`` or ``float64``; the env must use the same dtype."""
    device: str = "cpu"
    """Torch device of the networks; the env must live on the same device."""

    def __post_init__(self) -> None:
        self._check_types()
        for name in ("horizon", "vf_num_fits", "vf_fit_num_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"SHACConfig.{name}={getattr(self, name)} must be >= 1")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"SHACConfig.gamma={self.gamma} must be in (0, 1]")
        if not 0.0 <= self.td_lambda <= 1.0:
            raise ValueError(f"SHACConfig.td_lambda={self.td_lambda} must be in [0, 1]")
        if not 0.0 <= self.polyak <= 1.0:
            raise ValueError(f"SHACConfig.polyak={self.polyak} must be in [0, 1]")
        for name in ("actor_lr", "critic_lr", "lr_final", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SHACConfig.{name}={getattr(self, name)} must be > 0")
        if self.c_reg < 0:
            raise ValueError(f"SHACConfig.c_reg={self.c_reg} must be >= 0")
        for name in ("actor_lr_schedule", "critic_lr_schedule"):
            if getattr(self, name) not in SCHEDULES:
                raise ValueError(
                    f"SHACConfig.{name}={getattr(self, name)!r}; expected one of {SCHEDULES}"
                )
        for name in ("actor_activation", "critic_activation"):
            if getattr(self, name) not in ACTIVATIONS:
                raise ValueError(
                    f"SHACConfig.{name}={getattr(self, name)!r}; expected one of "
                    f"{list(ACTIVATIONS)}"
                )
        if self.reg_reduction not in ("mean", "mse"):
            raise ValueError(
                f"SHACConfig.reg_reduction={self.reg_reduction!r}; expected 'mean' or 'mse'"
            )
        check_device_dtype(self)


# ---------------------------------------------------------------------------- pure functions
def td_lambda_targets(
    rewards: Tensor,
    next_values: Tensor,
    segment_end: Tensor,
    valid: Tensor,
    gamma: float,
    lam: float,
) -> Tensor:
    """TD(lambda) critic targets by the backward recursion of spec A §4.2 step 4.

    For each environment and each segment ending at ``e`` (bootstrap ``V^(o_{e+1})``):
    ``y_t = (1-lam) sum_{k=1}^{K-1} lam^{k-1} G_t^(k) + lam^{K-1} G_t^(K)``, ``K = e + 1 - t``,
    ``G_t^(k) = sum_{l<k} gamma^l r_{t+l} + gamma^k V^(o_{t+k})``.

    Recursion (per env, ``t = T-1 .. 0``): at a segment end ``Lam = 1, Acc = 0,
    G = r_t + gamma V^(o_{t+1})``; otherwise ``Lam <- lam Lam``,
    ``Acc <- lam gamma Acc + gamma V^(o_{t+1}) + c r_t`` with
    ``c = sum_{k<K-1} lam^k = (1 - Lam) / (1 - lam)`` (kept as a running sum so ``lam = 1`` is
    fine), ``G <- r_t + gamma G``; ``y_t = (1 - lam) Acc + Lam G``.

    Args:
        rewards: ``(T, N)`` ``r_t``.
        next_values: ``(T, N)`` ``V^(o_{t+1})`` (0 where the episode terminated).
        segment_end: ``(T, N)`` bool, ``t`` is the last real step of its segment (episode end or
            the forced end ``t = T-1``).
        valid: ``(T, N)`` bool, ``t`` is a real step (not a next-step-autoreset slot).
        gamma, lam: discount and TD weight.

    Returns:
        ``(T, N)`` targets; entries at invalid slots are 0 (no target is formed there).
    """
    T = rewards.shape[0]
    y = torch.zeros_like(rewards)
    zero = torch.zeros_like(rewards[0])
    one = torch.ones_like(rewards[0])
    lam_acc, acc, g, c = one, zero, zero, zero
    for t in range(T - 1, -1, -1):
        r, v, end = rewards[t], next_values[t], segment_end[t]
        boot = r + gamma * v
        c_new = torch.where(end, zero, 1.0 + lam * c)
        lam_new = torch.where(end, one, lam * lam_acc)
        acc_new = torch.where(end, zero, lam * gamma * acc + gamma * v + c_new * r)
        g_new = torch.where(end, boot, r + gamma * g)
        keep = valid[t]
        c = torch.where(keep, c_new, c)
        lam_acc = torch.where(keep, lam_new, lam_acc)
        acc = torch.where(keep, acc_new, acc)
        g = torch.where(keep, g_new, g)
        y[t] = torch.where(keep, (1.0 - lam) * acc + lam_acc * g, zero)
    return y


def shac_policy_objective(
    rewards: Tensor,
    boot_values: Tensor,
    segment_end: Tensor,
    valid: Tensor,
    gamma: float,
    normaliser: float | Tensor,
) -> Tensor:
    """SHAC return term of the policy loss (spec A §4.2 step 3), without the regulariser:

    ``-(1/Z) sum_n [ sum_{t real} gamma^{k_n(t)} r_{t,n} + sum_{ends e} gamma^{k_n(e)+1}
    V^(o_{e+1,n}) ]`` where ``k_n(t)`` counts the real steps since the start of the segment
    (window start or first step after a reset slot), i.e. a segment of ``K`` steps contributes
    ``sum_{k<K} gamma^k r + gamma^K V^`` (original SHAC's ``gamma^h V^(s_h)``).

    Args: ``rewards, boot_values (V^(o_{t+1}), 0 on termination), segment_end, valid``: ``(T, N)``;
    ``normaliser``: ``Z``.  Returns a scalar (differentiable through rewards and values).
    """
    T = rewards.shape[0]
    disc = torch.ones_like(rewards[0])
    total = torch.zeros_like(rewards[0])
    for t in range(T):
        real, end = valid[t], segment_end[t]
        total = total + torch.where(real, disc * rewards[t], 0.0)
        total = total + torch.where(end, disc * gamma * boot_values[t], 0.0)
        disc = torch.where(end, 1.0, torch.where(real, disc * gamma, disc))
    return -total.sum() / normaliser


# ---------------------------------------------------------------------------- the agent
class SHAC:
    """Short-horizon actor-critic (spec A §4.2) on a differentiable torch vector env.

    ``SHAC(env, config=None, **overrides)``: ``env`` is a safegrad task (``safegrad.make``), with
    or without a safeguard (a :class:`~safegrad.safeguards.SafeguardWrapper`: SHAC then
    back-propagates through the safeguard, and ``c_reg > 0`` adds Eq. 17 with the safe action
    returned explicitly in ``info["safe_action"]``, P2).  ``overrides`` replace config fields.

    Attributes: ``actor`` (:class:`TanhGaussianPolicy`), ``critic``, ``target_critic``
    (:class:`ValueCritic`), ``actor_opt``, ``critic_opt``, ``num_steps`` (interactions so far),
    ``num_episodes`` (learning episodes so far), ``logs`` (the last episode's log dict),
    ``violations`` (monitor violations during training).
    """

    def __init__(self, env: Any, config: SHACConfig | None = None, **overrides: Any) -> None:
        cfg = init_agent(self, env, config, SHACConfig, overrides)
        self.safeguarded = is_safeguarded(env)
        if cfg.c_reg > 0 and not self.safeguarded:
            raise ValueError(
                f"c_reg={cfg.c_reg} > 0 needs a safeguarded env (safegrad.make(..., "
                "safeguard=...)); this env has no safeguard"
            )
        # networks from a forked global RNG, noise from our own generator, Adam for both
        seeded_actor_value(self, cfg)
        # P8: the target critic is a copy of the critic, not a fresh initialisation
        self.target_critic = copy.deepcopy(self.critic)
        self.target_critic.requires_grad_(False)
        self.num_steps = 0
        self.num_episodes = 0
        self.violations = 0
        self.logs: dict[str, float] = {}
        self._obs: Tensor | None = None
        self._prev_done: Tensor | None = None

    # ------------------------------------------------------------------ helpers
    def _as_obs(self, obs: Any) -> Tensor:
        return torch.as_tensor(obs, dtype=self.dtype, device=self.device)

    def _ensure_started(self) -> None:
        if self._obs is None:
            obs, _ = self.env.reset(seed=self.config.seed)
            self._obs = self._as_obs(obs).detach()
            self._prev_done = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)

    # ------------------------------------------------------------------ one episode, by parts
    def _rollout(self) -> tuple[Tensor, dict[str, Tensor]]:
        """Steps 1-3 of spec A §4.2: detach, ``T``-step differentiable rollout, policy loss.

        Returns ``(loss, buf)``; ``buf`` holds ``obs (T, N, d)`` (detached), ``rewards``,
        ``next_values`` (target critic, detached), ``segment_end``, ``valid`` (``(T, N)``),
        ``actions``/``safe_actions`` (``(T, N, m)``, with graphs), ``objective`` (return term)
        and ``reg`` (the regularisation term, before ``c_reg``).
        """
        cfg = self.config
        self._ensure_started()
        env, T, N = self.env, cfg.horizon, self.num_envs
        env.detach()  # step 1: truncate BPTT at the window start
        obs = self._obs.detach()
        prev_done = self._prev_done
        obs_l, rew_l, val_l, end_l, valid_l, act_l, safe_l = [], [], [], [], [], [], []
        n_ends = torch.zeros((), dtype=torch.long, device=self.device)
        violations = torch.zeros((), dtype=torch.long, device=self.device)
        for t in range(T):
            eps = torch.randn(
                N, self.act_dim, generator=self.generator, dtype=self.dtype, device=self.device
            )
            a = self.actor.sample(obs, eps)
            nobs, r, term, trunc, info = env.step(a)
            nobs = self._as_obs(nobs)
            valid = ~prev_done  # a next-step-autoreset slot: action ignored, reward meaningless
            done = (term | trunc) & valid
            end = done | valid if t == T - 1 else done  # forced segment end at t = T-1
            v = self.target_critic(nobs)  # differentiable w.r.t. nobs only
            v = torch.where(term & valid, torch.zeros_like(v), v)
            obs_l.append(obs.detach())
            rew_l.append(r)
            val_l.append(v)
            end_l.append(end)
            valid_l.append(valid)
            act_l.append(a)
            safe_l.append(info["safe_action"] if "safe_action" in info else a)
            if "violation" in info:
                violations = violations + info["violation"].sum()
            n_ends = n_ends + done.sum()
            prev_done = done
            obs = nobs
        self._obs = obs.detach()
        self._prev_done = prev_done
        buf = {
            "obs": torch.stack(obs_l),
            "rewards": torch.stack(rew_l),
            "values": torch.stack(val_l),
            "segment_end": torch.stack(end_l),
            "valid": torch.stack(valid_l),
            "actions": torch.stack(act_l),
            "safe_actions": torch.stack(safe_l),
        }
        z = N * T + n_ends.to(self.dtype)  # Z = N T + number of episode ends in the window
        objective = shac_policy_objective(
            buf["rewards"], buf["values"], buf["segment_end"], buf["valid"], cfg.gamma, z
        )
        loss = objective
        reg = torch.zeros((), dtype=self.dtype, device=self.device)
        if cfg.c_reg > 0:
            reg = (buf["safe_actions"] - buf["actions"]).pow(2).sum(-1).mean()
            if cfg.reg_reduction == "mse":
                reg = reg / self.act_dim
            loss = loss + cfg.c_reg * reg
        buf["objective"] = objective
        buf["reg"] = reg
        buf["normaliser"] = z
        buf["violations"] = violations
        return loss, buf

    def _policy_update(self, loss: Tensor) -> tuple[float, float]:
        """Backward, clip, Adam step; returns the gradient norms before and after clipping."""
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.actor.parameters() if p.grad is not None]
        before = torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        after = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(p.grad) for p in params])
        )
        self.actor_opt.step()
        return float(before), float(after)

    def _critic_targets(self, buf: dict[str, Tensor]) -> Tensor:
        cfg = self.config
        with torch.no_grad():
            return td_lambda_targets(
                buf["rewards"].detach(),
                buf["values"].detach(),
                buf["segment_end"],
                buf["valid"],
                cfg.gamma,
                cfg.td_lambda,
            )

    def _critic_fit(self, buf: dict[str, Tensor], targets: Tensor) -> tuple[float, float]:
        """Spec A §4.2 step 5: ``vf_num_fits`` passes of ``vf_fit_num_batches`` mini-batches over
        the valid ``(t, n)`` of the window (time-major); returns (last mean loss, last grad
        norm before clipping)."""
        cfg = self.config
        mask = buf["valid"].reshape(-1)
        obs = buf["obs"].reshape(-1, self.obs_dim)[mask]
        y = targets.reshape(-1)[mask]
        n = obs.shape[0]
        nb = min(cfg.vf_fit_num_batches, max(n, 1))
        losses, gnorm = [], torch.zeros(())
        for _ in range(cfg.vf_num_fits):
            if cfg.vf_shuffle:
                order = torch.randperm(n, generator=self.generator, device=self.device)
            else:
                order = torch.arange(n, device=self.device)
            pass_loss = torch.zeros((), dtype=self.dtype, device=self.device)
            for idx in torch.tensor_split(order, nb):
                loss = (self.critic(obs[idx]) - y[idx]).pow(2).mean()
                self.critic_opt.zero_grad(set_to_none=True)
                loss.backward()
                gnorm = torch.nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
                self.critic_opt.step()
                pass_loss = pass_loss + loss.detach()
            losses.append(pass_loss / nb)
        return float(losses[-1]), float(gnorm)

    @torch.no_grad()
    def _update_target(self) -> None:
        """``theta^ <- alpha theta^ + (1 - alpha) theta`` (spec A §4.2 step 6)."""
        a = self.config.polyak
        for pt, p in zip(self.target_critic.parameters(), self.critic.parameters(), strict=True):
            pt.mul_(a).add_(p, alpha=1.0 - a)

    # ------------------------------------------------------------------ public API
    def learn(
        self,
        total_steps: int,
        callback: Callable[[SHAC, dict[str, float]], bool | None] | None = None,
        reset_num_timesteps: bool = True,
    ) -> SHAC:
        """Train for at least ``total_steps`` interactions (summed over the N environments;
        whole learning episodes of ``T * N``).

        ``callback(agent, logs)`` runs after every learning episode; returning ``False`` stops.
        ``logs``: ``step``, ``episode``, ``policy_loss``, ``objective``, ``reg``,
        ``grad_norm_before``, ``grad_norm_after``, ``critic_loss``, ``critic_grad_norm``,
        ``actor_lr``, ``critic_lr``, ``log_std``, ``mean_reward``, ``violations`` (this episode),
        ``steps_per_s``.  Linear LR schedules anneal over this call's ``total_steps``
        (``reset_num_timesteps=False``: continue the earlier calls' schedule, SB3 semantics;
        :func:`~safegrad.algos._common.schedule_window`).
        """
        check_learn_args(total_steps, callback)
        cfg = self.config
        per_episode = cfg.horizon * self.num_envs
        n_episodes = math.ceil(total_steps / per_episode)
        origin, span = schedule_window(self, total_steps, per_episode, reset_num_timesteps)
        for _ in range(n_episodes):
            t0 = time.perf_counter()
            frac = (self.num_steps - origin) / span
            lr_a = scheduled_lr(cfg.actor_lr, cfg.lr_final, cfg.actor_lr_schedule, frac)
            lr_c = scheduled_lr(cfg.critic_lr, cfg.lr_final, cfg.critic_lr_schedule, frac)
            set_lr(self.actor_opt, lr_a)
            set_lr(self.critic_opt, lr_c)
            loss, buf = self._rollout()
            gn_before, gn_after = self._policy_update(loss)
            targets = self._critic_targets(buf)
            c_loss, c_gn = self._critic_fit(buf, targets)
            self._update_target()
            self.num_steps += per_episode
            self.num_episodes += 1
            viol = int(buf["violations"])
            self.violations += viol
            valid = buf["valid"]
            dt = time.perf_counter() - t0
            self.logs = {
                "step": self.num_steps,
                "episode": self.num_episodes,
                "policy_loss": float(loss.detach()),
                "objective": float(buf["objective"].detach()),
                "reg": float(buf["reg"].detach()),
                "grad_norm_before": gn_before,
                "grad_norm_after": gn_after,
                "critic_loss": c_loss,
                "critic_grad_norm": c_gn,
                "actor_lr": lr_a,
                "critic_lr": lr_c,
                "log_std": float(self.actor.log_std.detach().mean()),
                "mean_reward": float(buf["rewards"].detach()[valid].mean()),
                "violations": viol,
                "steps_per_s": per_episode / max(dt, 1e-12),
            }
            if callback is not None and callback(self, self.logs) is False:
                break
        self.env.detach()
        return self

    @torch.no_grad()
    def predict(self, obs: Any, deterministic: bool = True) -> Tensor:
        """Action ``(*batch, m)`` for ``obs (*batch, obs_dim)``: ``tanh(mu(o))`` if
        ``deterministic`` else a sample (agent's generator)."""
        o = self._as_obs(obs)
        if o.shape[-1] != self.obs_dim:
            raise ValueError(f"obs has shape {tuple(o.shape)}; expected (..., {self.obs_dim})")
        if deterministic:
            return self.actor.deterministic(o)
        eps = torch.randn(
            (*o.shape[:-1], self.act_dim),
            generator=self.generator,
            dtype=self.dtype,
            device=self.device,
        )
        return self.actor.sample(o, eps)

    def evaluate(self, env: Any, episodes: int = 1, seed: int = 0) -> dict[str, Any]:
        """Undiscounted episode return of the deterministic policy (spec A §6, P10).

        Runs ``ceil(episodes / env.num_envs)`` rounds of ``env.reset(seed=seed + round)`` and
        counts each environment's first episode (through ``env``'s safeguard, if any).
        ``env`` must not be the training env (that would break the rollout state).

        Returns ``{"returns": list of floats (episodes), "mean": float, "violations": int,
        "interventions": int}`` (the last two from ``info`` when ``env`` is safeguarded).
        """
        return evaluate_policy(
            env,
            self.actor.deterministic,
            train_env=self.env,
            episodes=episodes,
            seed=seed,
            dtype=self.dtype,
            device=self.device,
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Save config, networks (actor, critic, target), optimisers, RNG state, counters and
        the rollout position (``env.get_rollout_state()``: state, step counters, autoreset flags,
        generators), so that :meth:`load` resumes identically."""
        ckpt = {
            "algo": "SHAC",
            "config": self.config.to_dict(),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "generator": self.generator.get_state(),
            "num_steps": self.num_steps,
            "lr_origin": getattr(self, "_lr_origin", None),
            "num_episodes": self.num_episodes,
            "violations": self.violations,
            "obs": None if self._obs is None else self._obs.clone(),
            "prev_done": None if self._prev_done is None else self._prev_done.clone(),
            "env": None if self._obs is None else env_rollout_state(self.env),
        }
        torch.save(ckpt, path)

    @classmethod
    def load(cls, path: str | Path, env: Any, **overrides: Any) -> SHAC:
        """A new agent on ``env`` (same task, ``num_envs``, dtype) from :meth:`save`'s file;
        ``overrides`` replace config fields (e.g. ``device``)."""
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(ckpt, dict) or ckpt.get("algo") != "SHAC":
            raise ValueError(f"{path} is not a SHAC checkpoint")
        config = SHACConfig.from_dict(ckpt["config"]).replace(**overrides)
        agent = cls(env, config)
        if int(env.num_envs) != (agent.num_envs if ckpt["obs"] is None else ckpt["obs"].shape[0]):
            raise ValueError(
                f"env has num_envs={env.num_envs}, the checkpoint {ckpt['obs'].shape[0]}"
            )
        agent.actor.load_state_dict(ckpt["actor"])
        agent.critic.load_state_dict(ckpt["critic"])
        agent.target_critic.load_state_dict(ckpt["target_critic"])
        load_adam_state(agent.actor_opt, ckpt["actor_opt"], agent.device)
        load_adam_state(agent.critic_opt, ckpt["critic_opt"], agent.device)
        agent.generator.set_state(ckpt["generator"])
        agent.num_steps = ckpt["num_steps"]
        agent._lr_origin = ckpt.get("lr_origin")
        agent.num_episodes = ckpt["num_episodes"]
        agent.violations = ckpt["violations"]
        if ckpt["obs"] is not None:
            agent._obs = ckpt["obs"].to(agent.device)
            agent._prev_done = ckpt["prev_done"].to(agent.device)
            restore_env_rollout_state(agent.env, ckpt["env"])
        return agent

    def __repr__(self) -> str:
        changed = {
            f.name: getattr(self.config, f.name)
            for f in dataclasses.fields(self.config)
            if getattr(self.config, f.name) != f.default
        }
        return f"SHAC(env={self.env!r}, steps={self.num_steps}, overrides={changed})"
