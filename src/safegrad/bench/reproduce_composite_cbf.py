"""Reproduction of paper B's safety experiment (spec B §7, §8.2-8.3, §9; issue 8 item 2).

SAC with the closed-form composite-CBF layer as the policy's last layer
(``policy_safeguard="composite-cbf"``: acting, actor loss and critic target; log-prob of the
pre-filter sample, spec B §6) on ``ReachAvoid-v0`` with the 3-obstacle layout of spec B §7,
``--episodes`` (1000) training episodes of at most ``--max-steps`` (200) steps, then
``--test-trials`` (200) deterministic test trials from seeded starts near the origin.

Logged per training step (spec B §8.3): every ``h_i`` and the composite ``h`` of the new state,
the layer's ``η``, whether it was active, ``||u_s - ū||`` and ``max|u_s|``.  Safety is checked by
two monitors independent of the layer: SAC's own :class:`~safegrad.invariance.SafetyMonitor`
(obstacle clearance of every executed transition) and this module's count of steps with
``min_i h_i < 0``.

Outputs under ``--out`` (default ``benchmarks/reproduce_composite_cbf``):

* ``results.json`` (command, versions, SAC config, wall time, per-episode and per-trial
  summaries), ``README.md`` (the summary next to the paper's claims);
* ``fig3a_min_h_per_episode.png`` (per episode: min over steps of ``min_i h_i`` and of ``h``),
  ``fig3b_test_trajectories.png`` (test trajectories over the obstacles and the goal),
  ``fig4_h_vs_step.png`` (``h_1..h_3`` and ``h`` against the step, one curve per episode),
  ``training.png`` (return and success per episode).

Command: ``safegrad reproduce composite-cbf --threads 1`` (the same as ``python -m
safegrad.bench.reproduce_composite_cbf --threads 1``; ``--budget tiny`` / ``--quick``: a smoke
run in seconds).  ``--seeds 0 1 2 3 4 --out DIR``: one run per seed in ``DIR/seed<k>``, then the
seed table; ``--aggregate DIR ... --out DIR``: the seed table of finished runs
(``DIR/seeds.json``, ``DIR/seeds.md``, and the ``<!-- seeds -->`` block of ``DIR/README.md``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from safegrad.envs.navigation import ReachAvoid, composite_h

__all__ = [
    "SPEC_B_SAC",
    "RecordingReachAvoid",
    "aggregate_seeds",
    "main",
    "run",
    "sac_class",
    "seeds_markdown",
]

#: spec B §9 (SAC-RCBF defaults where the paper is silent): the SAC config of this reproduction
SPEC_B_SAC: dict[str, Any] = {
    "buffer_size": 1_000_000,
    "batch_size": 256,
    "gamma": 0.99,
    "tau": 0.005,
    "learning_starts": 5000,
    "train_freq": 1,
    "utd": 1,
    "policy_frequency": 1,
    "target_frequency": 1,
    "alpha_init": 0.2,
    "autotune": True,
    "target_entropy": None,  # -m = -2
    "alpha_lr": 3e-4,
    "actor_hidden": (256, 256),
    "actor_activation": "relu",
    "actor_lr": 3e-4,
    "actor_lr_schedule": "constant",
    "actor_betas": (0.9, 0.999),
    "critic_hidden": (256, 256),
    "critic_activation": "relu",
    "critic_lr": 3e-4,
    "critic_lr_schedule": "constant",
    "critic_betas": (0.9, 0.999),
    "state_dependent_std": True,
    "max_grad_norm": None,
}
#: spec B §8.1-8.2: what the paper reports for the safety experiment
PAPER_CLAIMS = {
    "training_violations": 0,
    "test_trials": 200,
    "test_violations": 0,
    "composite_h_positive_every_episode": True,
}
QUICK_SAC = {
    "buffer_size": 5000,
    "batch_size": 32,
    "learning_starts": 40,
    "actor_hidden": (32, 32),
    "critic_hidden": (32, 32),
}


def sac_class():
    """:class:`safegrad.algos.SAC` (ImportError with the reason if it is missing)."""
    try:
        from safegrad.algos import SAC
    except ImportError:
        try:  # the module may exist before the package exports it
            from safegrad.algos.sac import SAC
        except ImportError as e:
            raise ImportError(f"safegrad.algos.SAC is not available: {e}") from e
    return SAC


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("safegrad", "torch", "numpy"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    out["cpu_count"] = str(os.cpu_count())
    from safegrad.bench.safety_layers import git_revision

    out["git"] = git_revision()
    return out


# ---------------------------------------------------------------------------------------------
# recording task
# ---------------------------------------------------------------------------------------------


class RecordingReachAvoid(ReachAvoid):
    """``ReachAvoid`` that records every executed step (spec B §8.3 logging), episode by
    episode, for ``num_envs = 1``; the layer's ``η`` / activity come from
    :meth:`layer_hook` (a forward hook on the policy layer, acting calls only).

    ``episodes``: a list of dicts with ``h`` ``(T + 1, I)`` (the start state and every new
    state), ``hc`` ``(T + 1,)`` (composite), ``p`` ``(T + 1, 2)``, ``eta``, ``active``,
    ``correction`` ``(T,)`` (``||u_s - ū||``), ``umax`` ``(T,)`` (``max|u_s|``), ``reward``
    (sum), ``reached``, ``steps``.  ``unsafe_steps`` counts new states with
    ``min_i h_i < 0`` (an independent monitor).
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        if self.num_envs != 1:
            raise ValueError(f"RecordingReachAvoid needs num_envs=1, got {self.num_envs}")
        self.episodes: list[dict[str, Any]] = []
        self.unsafe_steps = 0
        self.steps = 0
        self._cur: dict[str, list] | None = None
        self._prev_done = True
        self._pending: dict[str, float] | None = None

    def layer_hook(self, module, inputs, output) -> None:
        x, a = inputs
        if torch.is_grad_enabled() or x.shape[0] != 1:
            return  # actor loss / critic target on replayed batches
        a_s, info = output
        self._pending = {
            "eta": float(info["eta"].reshape(-1)[0]) if "eta" in info else math.nan,
            "active": bool(info["intervened"].reshape(-1)[0]),
            "correction": float(info["distance"].reshape(-1)[0]),
            "umax": float(a_s.detach().abs().max()),
        }

    def _start(self, p: torch.Tensor) -> None:
        h = self.obstacle_h(p.detach()).reshape(-1)
        self._cur = {
            "h": [h.tolist()],
            "hc": [float(composite_h(h, self.kappa))],
            "p": [p.detach().reshape(-1).tolist()],
            "eta": [],
            "active": [],
            "correction": [],
            "umax": [],
            "reward": 0.0,
        }

    def _finish(self, reached: bool) -> None:
        c = self._cur
        self.episodes.append(
            {
                "h": np.asarray(c["h"]),
                "hc": np.asarray(c["hc"]),
                "p": np.asarray(c["p"]),
                "eta": np.asarray(c["eta"]),
                "active": np.asarray(c["active"], dtype=bool),
                "correction": np.asarray(c["correction"]),
                "umax": np.asarray(c["umax"]),
                "reward": c["reward"],
                "reached": reached,
                "steps": len(c["eta"]),
            }
        )
        self._cur = None

    def reset(self, *args: Any, **kw: Any):
        out = super().reset(*args, **kw)
        self._start(self.state)
        self._prev_done = False
        return out

    def step(self, actions):
        pending, self._pending = self._pending, None
        obs, reward, term, trunc, info = super().step(actions)
        if self._prev_done:  # next-step autoreset: this step only reset the environment
            self._start(self.state)
            self._prev_done = False
            return obs, reward, term, trunc, info
        h = info["h"].detach().reshape(-1)
        c = self._cur
        c["h"].append(h.tolist())
        c["hc"].append(float(composite_h(h, self.kappa)))
        c["p"].append(self.state.detach().reshape(-1).tolist())
        pend = pending or {}
        c["eta"].append(pend.get("eta", math.nan))
        c["active"].append(pend.get("active", False))
        c["correction"].append(pend.get("correction", math.nan))
        c["umax"].append(pend.get("umax", float(torch.as_tensor(actions).abs().max())))
        c["reward"] += float(reward.reshape(-1)[0])
        self.steps += 1
        if float(h.min()) < 0:
            self.unsafe_steps += 1
        done = bool(term[0]) or bool(trunc[0])
        if done:
            self._finish(bool(term[0]))
            self._prev_done = True
        return obs, reward, term, trunc, info


# ---------------------------------------------------------------------------------------------
# training and test
# ---------------------------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def sac_config(args) -> dict[str, Any]:
    """The SAC overrides of this run: spec B §9 (or ``--config``), ``--quick`` sizes,
    ``--set`` overrides, the policy-side composite layer, seed, dtype, device."""
    cfg: dict[str, Any] = dict(SPEC_B_SAC)
    if args.config:
        import yaml

        loaded = yaml.safe_load(Path(args.config).read_text()) or {}
        if not isinstance(loaded, dict):
            raise SystemExit(f"--config {args.config}: expected a mapping of SACConfig fields")
        cfg.update(loaded)
    if args.quick:
        cfg.update(QUICK_SAC)
    for item in args.set or []:
        if "=" not in item:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        cfg[k.strip()] = _parse_value(v)
    for k in ("actor_hidden", "critic_hidden", "actor_betas", "critic_betas"):
        if isinstance(cfg.get(k), list):
            cfg[k] = tuple(cfg[k])
    cfg.update(
        policy_safeguard="composite-cbf",
        policy_safeguard_kwargs=cfg.get("policy_safeguard_kwargs") or {},
        seed=args.seed,
        dtype=args.dtype,
        device=args.device,
    )
    return cfg


def _test(agent, args, dtype) -> dict[str, Any]:
    """``--test-trials`` deterministic trials in one vector env (seeded starts, composite
    ``h(x0) >= 0`` by the task's reset), each until the goal or ``--max-steps``."""
    from safegrad import envs

    n = args.test_trials
    env = envs.make(
        "ReachAvoid-v0",
        num_envs=n,
        seed=args.test_seed,
        dtype=dtype,
        device=args.device,
        num_obstacles=3,
        max_episode_steps=args.max_steps,
    )
    obs, _ = env.reset(seed=args.test_seed)
    layer = agent.policy_layer
    x = env.state.detach().clone()
    active = torch.ones(n, dtype=torch.bool)
    reached = torch.zeros(n, dtype=torch.bool)
    steps = torch.zeros(n, dtype=torch.long)
    h0 = env.obstacle_h(x)
    min_h = composite_h(h0, env.kappa)
    min_hi = h0.amin(-1)
    traj = [x.cpu().numpy()]
    unsafe = interventions = 0
    umax = 0.0
    with torch.no_grad():
        for _ in range(args.max_steps):
            a = agent.actor.deterministic(torch.as_tensor(obs, dtype=dtype))
            a_s, info = layer(x, a)
            obs, _, term, trunc, sinfo = env.step(a_s)
            x_new = env.state.detach().clone()
            h = sinfo["h"].detach()
            act = active
            unsafe += int(((h.amin(-1) < 0) & act).sum())
            interventions += int((info["intervened"] & act).sum())
            umax = max(umax, float(torch.where(act[:, None], a_s.abs(), 0.0).max()))
            min_hi = torch.where(act, torch.minimum(min_hi, h.amin(-1)), min_hi)
            min_h = torch.where(act, torch.minimum(min_h, composite_h(h, env.kappa)), min_h)
            steps = steps + act.long()
            reached = reached | (term & act)
            # finished trials stay at their final position in the figure
            x_plot = torch.where(act[:, None], x_new, torch.as_tensor(traj[-1], dtype=x_new.dtype))
            traj.append(x_plot.cpu().numpy())
            active = act & ~(term | trunc)
            x = x_new
            if not bool(active.any()):
                break
    return {
        "trials": n,
        "success_rate": float(reached.double().mean()),
        "reached": reached.tolist(),
        "steps": steps.tolist(),
        "unsafe_steps": unsafe,
        "interventions": interventions,
        "min_min_hi": float(min_hi.min()),
        "min_composite_h": float(min_h.min()),
        "max_abs_action": umax,
        "starts": traj[0].tolist(),
        "_traj": np.stack(traj, 1),  # (n, T + 1, 2), for the figure only
        "_min_hi": min_hi.numpy(),
    }


def run(args) -> dict[str, Any]:
    """Train and test; returns ``(results, recorded training episodes, test record)``
    (figures are drawn by :func:`main`)."""
    SAC = sac_class()
    dtype = getattr(torch, args.dtype)
    cfg = sac_config(args)
    env = RecordingReachAvoid(
        num_envs=1,
        seed=args.seed,
        dtype=dtype,
        device=args.device,
        num_obstacles=3,
        max_episode_steps=args.max_steps,
    )
    agent = SAC(env, **cfg)
    agent.policy_layer.register_forward_hook(env.layer_hook)
    t0 = time.perf_counter()
    last_print = [t0]

    def callback(ag, logs) -> bool:
        n_ep = len(env.episodes)
        now = time.perf_counter()
        if now - last_print[0] > args.print_every:
            last_print[0] = now
            recent = env.episodes[-50:]
            succ = np.mean([e["reached"] for e in recent]) if recent else float("nan")
            print(
                f"episode {n_ep:5d}  steps {ag.num_steps:7d}  success(last 50) {succ:.2f}  "
                f"violations {ag.violations}/{env.unsafe_steps}  "
                f"{ag.num_steps / (now - t0):.0f} steps/s",
                flush=True,
            )
        return n_ep < args.episodes

    while len(env.episodes) < args.episodes:  # episodes end at the goal or the cap
        remaining = args.episodes - len(env.episodes)
        agent.learn(remaining * (args.max_steps + 1), callback=callback)
    train_s = time.perf_counter() - t0
    eps = env.episodes[: args.episodes]
    t1 = time.perf_counter()
    test = _test(agent, args, dtype)
    test_s = time.perf_counter() - t1
    per_episode = {
        "return": [float(e["reward"]) for e in eps],
        "steps": [int(e["steps"]) for e in eps],
        "reached": [bool(e["reached"]) for e in eps],
        "min_min_hi": [float(e["h"].min()) for e in eps],
        "min_composite_h": [float(e["hc"].min()) for e in eps],
        "h0_composite": [float(e["hc"][0]) for e in eps],
        "active_frac": [float(e["active"].mean()) if e["steps"] else 0.0 for e in eps],
    }
    all_active = np.concatenate([e["active"] for e in eps]) if eps else np.zeros(0, bool)
    all_corr = np.concatenate([e["correction"] for e in eps]) if eps else np.zeros(0)
    all_umax = np.concatenate([e["umax"] for e in eps]) if eps else np.zeros(0)
    all_eta = np.concatenate([e["eta"] for e in eps]) if eps else np.zeros(0)
    n_steps = int(sum(e["steps"] for e in eps))
    res = {
        "command": "python -m safegrad.bench.reproduce_composite_cbf " + " ".join(args.argv),
        "versions": _versions(),
        "settings": {
            "task": "ReachAvoid-v0, 3 obstacles (spec B §7 layout), alpha 5, kappa 2, dt 0.05",
            "episodes": args.episodes,
            "max_steps": args.max_steps,
            "test_trials": args.test_trials,
            "seed": args.seed,
            "test_seed": args.test_seed,
            "threads": args.threads,
            "dtype": args.dtype,
            "device": args.device,
            "quick": bool(args.quick),
        },
        "sac_config": agent.config.to_dict(),
        "obstacles": {
            "centers": env.obstacle_centers.tolist(),
            "radii": env.obstacle_radii.tolist(),
            "goal": env.goal.tolist(),
            "goal_radius": env.goal_radius,
        },
        "wall_time_s": {"train": train_s, "test": test_s, "total": train_s + test_s},
        "train": {
            "episodes": len(eps),
            "steps": n_steps,
            "agent_steps": agent.num_steps,
            "seconds_per_step": train_s / max(agent.num_steps, 1),
            "violations_sac_monitor": int(agent.violations),
            "violations_min_hi": int(env.unsafe_steps),
            "min_min_hi": min(per_episode["min_min_hi"], default=math.nan),
            "min_composite_h": min(per_episode["min_composite_h"], default=math.nan),
            "episodes_composite_h_negative": int(
                sum(v < 0 for v in per_episode["min_composite_h"])
            ),
            "min_h0_composite": min(per_episode["h0_composite"], default=math.nan),
            "success_rate": float(np.mean(per_episode["reached"])) if eps else math.nan,
            "success_rate_last_100": float(np.mean(per_episode["reached"][-100:]))
            if eps
            else math.nan,
            "active_frac": float(all_active.mean()) if all_active.size else math.nan,
            "mean_correction_when_active": float(all_corr[all_active].mean())
            if all_active.any()
            else 0.0,
            "max_eta": float(np.nanmax(all_eta)) if all_eta.size else math.nan,
            "max_abs_action": float(all_umax.max()) if all_umax.size else math.nan,
            "frac_steps_action_above_1": float((all_umax > 1).mean()) if all_umax.size else 0.0,
        },
        "per_episode": per_episode,
        "test": {k: v for k, v in test.items() if not k.startswith("_")},
    }
    res["acceptance"] = {
        "zero_violations": res["train"]["violations_sac_monitor"] == 0
        and res["train"]["violations_min_hi"] == 0
        and test["unsafe_steps"] == 0,
        "composite_h_nonnegative": res["train"]["min_composite_h"] >= 0
        and test["min_composite_h"] >= 0,
        "test_success_rate_at_least_0.9": test["success_rate"] >= 0.9,
    }
    return res, env.episodes[: args.episodes], test


# ---------------------------------------------------------------------------------------------
# figures and report
# ---------------------------------------------------------------------------------------------


def fig3a(res: dict, out: Path) -> str:
    """Fig. 3a from ``results.json`` alone: per training episode, the minimum over its states
    of ``min_i h_i`` and of the composite ``h`` (symlog axis: the minima of a trained policy are
    ~1e-3 m^2, those of the random phase ~1 m^2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pe = res["per_episode"]
    ep = np.arange(1, len(pe["return"]) + 1)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(ep, pe["min_min_hi"], "--", color="tab:blue", lw=1, label=r"$\min_t \min_i h_i$")
    ax.plot(ep, pe["min_composite_h"], "-", color="tab:red", lw=1, label=r"$\min_t h$ (composite)")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("training episode")
    ax.set_ylabel(r"min over the episode [m$^2$] (symlog)")
    low = min(pe["min_composite_h"], default=0.0)
    ax.set_title(f"Fig. 3a: safety in every training episode (smallest h: {low:.4f})")
    ax.legend()
    fig.tight_layout()
    name = "fig3a_min_h_per_episode.png"
    fig.savefig(out / name, dpi=120)
    plt.close(fig)
    return name


def figures(res: dict, episodes: list[dict], test: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    names = []
    pe = res["per_episode"]
    ep = np.arange(1, len(pe["return"]) + 1)

    names.append(fig3a(res, out))

    # Fig. 3b
    obs = res["obstacles"]
    fig, ax = plt.subplots(figsize=(5.6, 5.6))
    for c, r in zip(obs["centers"], obs["radii"]):
        ax.add_patch(Circle(c, r, color="tab:blue", alpha=0.45, lw=0))
    ax.add_patch(Circle(obs["goal"], obs["goal_radius"], fill=False, color="tab:red", lw=2))
    traj = test["_traj"]
    for k in range(traj.shape[0]):
        colour = "tab:green" if test["reached"][k] else "tab:orange"
        ax.plot(traj[k, :, 0], traj[k, :, 1], color=colour, lw=0.6, alpha=0.6)
    ax.scatter(traj[:, 0, 0], traj[:, 0, 1], marker="s", s=10, color="k", zorder=3)
    ax.set_aspect("equal")
    ax.set_xlim(-0.8, 4.8)
    ax.set_ylim(-0.8, 4.8)
    ax.set_title(
        f"Fig. 3b: {test['trials']} test trials, success {test['success_rate']:.1%}, "
        f"unsafe steps {test['unsafe_steps']}",
        fontsize=9,
    )
    fig.tight_layout()
    names.append("fig3b_test_trajectories.png")
    fig.savefig(out / names[-1], dpi=120)
    plt.close(fig)

    # Fig. 4
    n_i = episodes[0]["h"].shape[1] if episodes else 3
    fig, axes = plt.subplots(1, n_i + 1, figsize=(4 * (n_i + 1), 3.4), sharey=False)
    cmap = plt.get_cmap("viridis")
    n_ep = max(len(episodes), 1)
    for k, e in enumerate(episodes):
        colour = cmap(k / n_ep)
        for i in range(n_i):
            axes[i].plot(e["h"][:, i], color=colour, lw=0.3, alpha=0.3)
        axes[n_i].plot(e["hc"], color=colour, lw=0.3, alpha=0.3)
    for i in range(n_i):
        axes[i].set_title(f"$h_{i + 1}$")
    axes[n_i].set_title("composite $h$")
    for a in axes:
        a.axhline(0, color="k", lw=0.6)
        a.set_xlabel("step")
    axes[0].set_ylabel(r"[m$^2$] (colour: episode, early = purple)")
    fig.suptitle("Fig. 4: barrier values along every training episode", fontsize=10)
    fig.tight_layout()
    names.append("fig4_h_vs_step.png")
    fig.savefig(out / names[-1], dpi=110)
    plt.close(fig)

    # learning curve
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ret = np.asarray(pe["return"])
    w = max(1, min(50, len(ret) // 10 or 1))
    kern = np.ones(w) / w
    ax.plot(ep, ret, color="0.7", lw=0.5, label="return")
    if len(ret) >= w:
        ax.plot(ep[w - 1 :], np.convolve(ret, kern, "valid"), color="k", label=f"mean of {w}")
    ax2 = ax.twinx()
    succ = np.asarray(pe["reached"], dtype=float)
    if len(succ) >= w:
        ax2.plot(ep[w - 1 :], np.convolve(succ, kern, "valid"), color="tab:green", label="success")
    ax2.set_ylim(-0.05, 1.05)
    ax2.set_ylabel("success rate", color="tab:green")
    ax.set_xlabel("training episode")
    ax.set_ylabel("episode return")
    ax.legend(loc="lower right")
    fig.tight_layout()
    names.append("training.png")
    fig.savefig(out / names[-1], dpi=120)
    plt.close(fig)
    return names


def to_markdown(res: dict, figs: list[str]) -> str:
    tr, te, s = res["train"], res["test"], res["settings"]
    acc = res["acceptance"]
    yes = {True: "yes", False: "**no**"}
    wall = res["wall_time_s"]
    lines = [
        "# Reproduction of paper B: safe SAC with the closed-form composite-CBF layer",
        "",
        f"Command: `{res['command']}`",
        "",
        f"Versions: {', '.join(f'{k} {v}' for k, v in res['versions'].items())}.",
        "",
        f"Task: {s['task']}; {s['episodes']} training episodes of at most {s['max_steps']} "
        f"steps, {s['test_trials']} test trials (seed {s['test_seed']}); SAC seed {s['seed']}, "
        f"{s['dtype']}, {s['device']}, {s['threads']} torch thread(s). Wall time: training "
        f"{wall['train']:.0f} s ({tr['seconds_per_step'] * 1e3:.1f} ms per step over "
        f"{tr['agent_steps']} steps), test {wall['test']:.1f} s.",
        "",
        "| | paper (spec B §8.2) | ours |",
        "|---|---|---|",
        f"| training violations (min_i h_i < 0) | 0 | {tr['violations_min_hi']} (SAC monitor: "
        f"{tr['violations_sac_monitor']}) |",
        f"| composite h >= 0 in every training episode | yes | "
        f"{yes[tr['episodes_composite_h_negative'] == 0]} (min {tr['min_composite_h']:.4f}) |",
        f"| min over training of min_i h_i | > 0 | {tr['min_min_hi']:.4f} |",
        f"| test trials | 200 | {te['trials']} |",
        f"| test violations | 0 | {te['unsafe_steps']} |",
        f"| test success (goal reached) | all shown trajectories reach it | "
        f"{te['success_rate']:.1%} |",
        f"| min composite h over test | > 0 | {te['min_composite_h']:.4f} |",
        "",
        "Acceptance (issue 8): zero violations "
        f"{yes[acc['zero_violations']]}; composite h >= 0 from starts with h(x0) >= 0 "
        f"{yes[acc['composite_h_nonnegative']]}; test success >= 90 % "
        f"{yes[acc['test_success_rate_at_least_0.9']]}.",
        "",
        "Training diagnostics: success rate over all episodes "
        f"{tr['success_rate']:.1%}, over the last 100 {tr['success_rate_last_100']:.1%}; layer "
        f"active in {tr['active_frac']:.1%} of steps (mean ||u_s - ū|| when active "
        f"{tr['mean_correction_when_active']:.3f}); max |u_s| {tr['max_abs_action']:.3f} "
        f"(steps with |u_s| > 1: {tr['frac_steps_action_above_1']:.2%}; no clipping after the "
        f"layer); smallest composite h at a start {tr['min_h0_composite']:.3f}.",
        "",
        "SAC configuration (spec B §9): "
        + ", ".join(
            f"{k}={v}"
            for k, v in res["sac_config"].items()
            if k not in ("policy_safeguard_kwargs", "device")
        )
        + ".",
        "",
    ]
    lines += [f"![{f}]({f})" for f in figs]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m safegrad.bench.reproduce_composite_cbf",
        description="paper B's safety experiment: SAC + composite-CBF layer on ReachAvoid-v0 "
        "(3 obstacles), figures 3a/3b/4, success rate and violations",
    )
    p.add_argument("--episodes", type=int, default=1000, help="training episodes")
    p.add_argument("--max-steps", type=int, default=200, help="episode cap")
    p.add_argument("--test-trials", type=int, default=200, help="test trials")
    p.add_argument("--seed", type=int, default=0, help="SAC / training seed")
    p.add_argument("--test-seed", type=int, default=12345, help="seed of the test starts")
    p.add_argument("--config", default=None, help="YAML of SACConfig fields (replaces spec B §9)")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="SACConfig overrides")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--print-every", type=float, default=30.0, help="progress line every N s")
    p.add_argument("--out", default="benchmarks/reproduce_composite_cbf", help="output dir")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run in seconds: 4 episodes of <= 40 steps, 8 test trials, tiny networks",
    )
    p.add_argument(
        "--budget",
        choices=("paper", "tiny"),
        default="paper",
        help="paper (spec B §8: the defaults above) or tiny (= --quick, for CI)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        metavar="SEED",
        help="several SAC seeds, one after the other, each in OUT/seed<k>; then the seed table "
        "(OUT/seeds.md); replaces --seed",
    )
    p.add_argument(
        "--aggregate",
        nargs="+",
        metavar="DIR",
        help="no training: the seed table of these finished runs (their results.json) into "
        "OUT/seeds.json, OUT/seeds.md and the <!-- seeds --> block of OUT/README.md",
    )
    return p


# ---------------------------------------------------------------------------------------------
# several seeds
# ---------------------------------------------------------------------------------------------

SEEDS_BEGIN, SEEDS_END = "<!-- seeds -->", "<!-- /seeds -->"


def aggregate_seeds(dirs: list[Path | str]) -> dict[str, Any]:
    """Per-seed summary rows of finished runs (``results.json`` in each of ``dirs``) and the
    totals: violations (both monitors), test success, smallest ``min_i h_i`` and composite
    ``h`` (training and test), training steps and wall time."""
    rows = []
    for d in dirs:
        f = Path(d) / "results.json"
        if not f.is_file():
            raise FileNotFoundError(f"{f}: no finished run there (results.json missing)")
        res = json.loads(f.read_text())
        tr, te = res["train"], res["test"]
        rows.append(
            {
                "dir": str(d),
                "seed": res["sac_config"]["seed"],
                "episodes": tr["episodes"],
                "steps": tr["agent_steps"],
                "violations": tr["violations_min_hi"] + te["unsafe_steps"],
                "violations_sac_monitor": tr["violations_sac_monitor"],
                "train_min_hi": tr["min_min_hi"],
                "train_min_h": tr["min_composite_h"],
                "test_min_h": te["min_composite_h"],
                "train_success_last_100": tr["success_rate_last_100"],
                "test_success": te["success_rate"],
                "wall_s": res["wall_time_s"]["total"],
                "ms_per_step": 1e3 * res["wall_time_s"]["train"] / max(tr["agent_steps"], 1),
                "git": res["versions"].get("git", ""),
            }
        )
    rows.sort(key=lambda r: r["seed"])
    succ = [r["test_success"] for r in rows]
    return {
        "rows": rows,
        "seeds": len(rows),
        "violations": sum(r["violations"] + r["violations_sac_monitor"] for r in rows),
        "min_train_h": min((r["train_min_h"] for r in rows), default=math.nan),
        "test_success_mean": float(np.mean(succ)) if succ else math.nan,
        "test_success_min": min(succ, default=math.nan),
    }


def seeds_markdown(agg: dict[str, Any]) -> str:
    """The seed table of :func:`aggregate_seeds` as markdown."""
    lines = [
        f"Seeds: {agg['seeds']} (spec B §8.3 asks for >= 5).  Violations = steps with "
        "min_i h_i < 0 over training and the 200 test trials (independent monitor; SAC's own "
        "monitor in brackets); min h = smallest composite h over training / test; success = "
        "test trials reaching the goal (training: last 100 episodes).",
        "",
        "| seed | training steps | violations | min_i h_i (train) | min h (train) "
        "| min h (test) | success (test) | success (train, last 100) | wall time [min] "
        "| ms / step | git |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in agg["rows"]:
        lines.append(
            f"| {r['seed']} | {r['steps']} | {r['violations']} ({r['violations_sac_monitor']}) "
            f"| {r['train_min_hi']:.4f} | {r['train_min_h']:.4f} | {r['test_min_h']:.4f} "
            f"| {r['test_success']:.1%} | {r['train_success_last_100']:.0%} "
            f"| {r['wall_s'] / 60:.0f} | {r['ms_per_step']:.1f} | {r['git'] or '?'} |"
        )
    lines += [
        "",
        f"All seeds: {agg['violations']} violations; smallest composite h in training "
        f"{agg['min_train_h']:.4f}; test success mean {agg['test_success_mean']:.1%}, worst "
        f"seed {agg['test_success_min']:.1%}.",
    ]
    return "\n".join(lines) + "\n"


def write_aggregate(dirs: list[Path | str], out: Path) -> dict[str, Any]:
    """:func:`aggregate_seeds` into ``out/seeds.json``, ``out/seeds.md`` and, if
    ``out/README.md`` exists, its ``<!-- seeds -->`` block (appended when missing)."""
    agg = aggregate_seeds(dirs)
    md = seeds_markdown(agg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.json").write_text(json.dumps(agg, indent=1) + "\n")
    (out / "seeds.md").write_text("# Paper B reproduction: all seeds\n\n" + md)
    readme = out / "README.md"
    if readme.is_file():
        text = readme.read_text()
        block = f"{SEEDS_BEGIN}\n## All seeds\n\n{md}{SEEDS_END}"
        if SEEDS_BEGIN in text and SEEDS_END in text:
            head, rest = text.split(SEEDS_BEGIN, 1)
            text = head + block + rest.split(SEEDS_END, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        readme.write_text(text)
    return agg


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 also when an acceptance check fails: the report
    says so)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = build_parser()
    args = p.parse_args(argv)
    args.argv = argv
    if args.aggregate:
        try:
            agg = write_aggregate(args.aggregate, Path(args.out))
        except FileNotFoundError as e:
            p.error(str(e))
        print(seeds_markdown(agg), end="")
        return 0
    if args.budget == "tiny":
        args.quick = True
    if args.seeds:
        if len(set(args.seeds)) != len(args.seeds):
            p.error(f"--seeds has repeats: {args.seeds}")
        if len(args.seeds) > 1:
            root, dirs = Path(args.out), []
            for k in args.seeds:
                one = argparse.Namespace(**vars(args))
                one.seeds, one.seed, one.out = None, k, str(root / f"seed{k}")
                _run_one(one, p)
                dirs.append(one.out)
            agg = write_aggregate(dirs, root)
            print(seeds_markdown(agg), end="")
            return 0
        args.seed = args.seeds[0]
    return _run_one(args, p)


def _run_one(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    """One training + test run of ``args`` (one seed) into ``args.out``."""
    if args.quick:
        args.episodes, args.max_steps, args.test_trials = 4, 40, 8
    for name in ("episodes", "max_steps", "test_trials", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    n_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        res, episodes, test = run(args)
    finally:
        torch.set_num_threads(n_threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figs = figures(res, episodes, test, out)
    res["figures"] = figs
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "README.md").write_text(to_markdown(res, figs))
    tr, te = res["train"], res["test"]
    print(
        f"train: {tr['episodes']} episodes, {tr['agent_steps']} steps, "
        f"{res['wall_time_s']['train']:.0f} s, violations {tr['violations_min_hi']} "
        f"(monitor {tr['violations_sac_monitor']}), min h {tr['min_composite_h']:.4f}; "
        f"test: success {te['success_rate']:.1%}, violations {te['unsafe_steps']}; wrote {out}"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
