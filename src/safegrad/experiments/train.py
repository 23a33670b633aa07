"""The training loop: :func:`train` runs one :class:`~safegrad.experiments.TrainConfig` into a
run directory, resumable after a crash (``docs/cli.md``).

Protocol (spec A §6): the agent learns with ``agent.learn(total, callback)``; after every
learning iteration the callback evaluates the deterministic policy once at least
``eval_every`` interactions passed since the last evaluation (``agent.evaluate`` on a separate
environment behind the same safeguard, ``eval_episodes`` episodes, reset seed ``eval_seed``;
metric: the undiscounted episode return), writes a ``progress.csv`` row and checkpoints every
``checkpoint_every`` interactions.  One more evaluation runs at the end when the last one was
not at the final step.

Resume: :func:`train` with ``resume=True`` reloads the newest complete checkpoint (agent, RNG
states, progress rows, evaluation history, wrapper totals), rewrites ``progress.csv`` to the
checkpoint's rows and continues.  On CPU with the same thread count a resumed SHAC run is
bitwise equal to an uninterrupted one (tested); see ``docs/cli.md`` for what is not restored
(wall time lost after the last checkpoint, CUDA nondeterminism).
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from safegrad.experiments.config import ConfigError, TrainConfig
from safegrad.experiments.logger import Loggers, ProgressBar, progress_bar_enabled
from safegrad.experiments.rundir import RunDir, atomic_write_json

__all__ = ["train", "build_envs", "evaluate_run", "EvalRecorder", "versions"]

_TRAINER_STATE_VERSION = 1
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: run-time settings a resumed run may change (a different thread count may change the last
#: bits of CPU results)
_RUNTIME_KEYS = ("threads", "progress_bar")
_TOTAL_KEYS = ("steps", "transitions", "interventions", "raw_unsafe", "fallbacks", "violations")


def versions() -> dict[str, str]:
    """Versions recorded in ``summary.json``."""
    import gymnasium

    import safegrad

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "gymnasium": gymnasium.__version__,
        "safegrad": safegrad.__version__,
        "platform": platform.platform(),
    }


# --------------------------------------------------------------------------- environments
def build_envs(config: TrainConfig) -> tuple[Any, Any]:
    """``(train_env, eval_env)`` of a resolved config.

    Both are :class:`~safegrad.safeguards.SafeguardWrapper` s, so the independent safety monitor
    counts violations in every run: with the config's safeguard when it is environment-side, or
    ``safeguard=None`` (monitor only) for unsafeguarded runs and for a policy-side safeguard
    (the algorithm applies it).  The evaluation env has ``eval_num_envs`` environments.
    """
    from safegrad import envs
    from safegrad._make import build_safeguard
    from safegrad.safeguards import SafeguardWrapper

    def one(num_envs: int, seed: int):
        base = envs.make(
            config.env,
            num_envs,
            seed,
            config.device,
            _DTYPES[config.dtype],
            **config.env_kwargs,
        )
        sg = None
        if config.safeguard is not None and config.safeguard_side == "env":
            sg = build_safeguard(config.safeguard, base, **config.safeguard_kwargs)
        return SafeguardWrapper(base, sg)

    return one(config.num_envs, config.seed), one(config.eval_num_envs, config.eval_seed)


class EvalRecorder:
    """Transparent wrapper of the evaluation env that records, for each environment's first
    episode after every ``reset`` (the episodes ``agent.evaluate`` counts), the minimum safety
    margin (monitor), the minimum CBF value ``min_i h_i`` and the composite ``h`` (spec B Eq. 14;
    CBF tasks) and optionally the visited states (trajectory plots)."""

    def __init__(self, env: Any, record_states: bool = False) -> None:
        self.__dict__["_env"] = env
        self.__dict__["record_states"] = record_states
        self.__dict__["episodes"] = []
        self.__dict__["_round"] = None

    @property
    def env(self) -> Any:
        """The wrapped env (so wrapper lookups such as ``find_safeguard_wrapper`` see the
        :class:`~safegrad.safeguards.SafeguardWrapper` and count evaluation interventions)."""
        return self.__dict__["_env"]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_env"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.__dict__["_env"], name, value)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.finish()
        env = self._env
        obs, info = env.reset(seed=seed, options=options)
        n = int(env.num_envs)
        inf = torch.full((n,), math.inf, dtype=torch.float64)
        self.__dict__["_round"] = {
            "active": torch.ones(n, dtype=torch.bool),
            "length": torch.zeros(n, dtype=torch.long),
            "margin": inf.clone(),
            "h": inf.clone(),
            "composite": inf.clone(),
            "states": [env.state.detach().to("cpu", torch.float64)] if self.record_states else [],
        }
        return obs, info

    def step(self, actions: Any):
        out = self._env.step(actions)
        rnd = self._round
        if rnd is None:
            return out
        _, _, term, trunc, info = out
        act = rnd["active"]
        rnd["length"] += act.long()
        if "safety_margin" in info:
            m = info["safety_margin"].detach().to("cpu", torch.float64)
            rnd["margin"] = torch.where(act, torch.minimum(rnd["margin"], m), rnd["margin"])
        if "h" in info:
            h = info["h"].detach().to("cpu", torch.float64)
            if h.dim() == 2 and h.shape[-1] > 0:
                rnd["h"] = torch.where(act, torch.minimum(rnd["h"], h.amin(-1)), rnd["h"])
                kappa = getattr(self._env, "kappa", None)
                if kappa is not None:
                    from safegrad.envs.navigation import composite_h

                    c = composite_h(h, float(kappa))
                    rnd["composite"] = torch.where(
                        act, torch.minimum(rnd["composite"], c), rnd["composite"]
                    )
        if self.record_states:
            rnd["states"].append(self._env.state.detach().to("cpu", torch.float64))
        done = (term | trunc).detach().to("cpu")
        rnd["active"] = act & ~done
        return out

    def finish(self) -> None:
        """Close the current round (called by ``reset`` and after the evaluation)."""
        rnd = self._round
        if rnd is None:
            return
        self.__dict__["_round"] = None
        n = rnd["length"].shape[0]
        states = torch.stack(rnd["states"]) if rnd["states"] else None
        for i in range(n):
            length = int(rnd["length"][i])
            if length == 0:
                continue
            ep = {
                "length": length,
                "min_margin": float(rnd["margin"][i]),
                "min_h": float(rnd["h"][i]),
                "min_composite_h": float(rnd["composite"][i]),
            }
            if states is not None:
                ep["states"] = states[: length + 1, i].numpy()
            self.episodes.append(ep)


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


def evaluate_agent(
    agent: Any, env: Any, episodes: int, seed: int, record_states: bool = False
) -> dict[str, Any]:
    """``agent.evaluate`` (spec A §6) plus the recorded margins; returns the flat result dict
    (``mean``, ``std``, ``min``, ``max``, ``returns``, ``violations``, ``interventions``,
    ``intervention_rate``, ``min_margin``, ``min_h``, ``min_composite_h``, ``time_s``,
    ``episodes`` (recorder episodes))."""
    rec = EvalRecorder(env, record_states=record_states)
    t0 = time.perf_counter()
    res = agent.evaluate(rec, episodes=episodes, seed=seed)
    rec.finish()
    dt = time.perf_counter() - t0
    eps = rec.episodes[:episodes]
    returns = [float(r) for r in res["returns"]]
    transitions = sum(e["length"] for e in eps) or 1
    return {
        "returns": returns,
        "mean": float(res["mean"]),
        "std": float(np.std(returns)) if returns else math.nan,
        "min": float(np.min(returns)) if returns else math.nan,
        "max": float(np.max(returns)) if returns else math.nan,
        "violations": int(res.get("violations", 0)),
        "interventions": int(res.get("interventions", 0)),
        "intervention_rate": int(res.get("interventions", 0)) / transitions,
        "min_margin": _finite_or_none(min((e["min_margin"] for e in eps), default=math.inf)),
        "min_h": _finite_or_none(min((e["min_h"] for e in eps), default=math.inf)),
        "min_composite_h": _finite_or_none(
            min((e["min_composite_h"] for e in eps), default=math.inf)
        ),
        "time_s": dt,
        "episodes": eps,
    }


# --------------------------------------------------------------------------- RNG, schedules
def _rng_state() -> dict[str, Any]:
    st = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - the legacy global RNG users seed
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any]) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])  # noqa: NPY002
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


def _learn(agent: Any, total_steps: int, callback: Callable) -> None:
    """Learn until ``agent.num_steps >= total_steps`` so that a resumed agent follows the
    learning-rate schedules of one uninterrupted ``learn(total_steps)`` call: a resumed call
    passes ``reset_num_timesteps=False`` (SB3 semantics, the schedule origin is saved with the
    agent; :func:`safegrad.algos._common.schedule_window`)."""
    done = int(agent.num_steps)
    remaining = total_steps - done
    if remaining <= 0:
        return
    agent.learn(remaining, callback=callback, reset_num_timesteps=done == 0)


# --------------------------------------------------------------------------- the run
class _Run:
    """State of one training run (one process)."""

    def __init__(self, cfg: TrainConfig, rd: RunDir, on_eval: Callable | None, quiet: bool):
        self.cfg = cfg
        self.rd = rd
        self.on_eval = on_eval
        self.quiet = quiet
        self.rows: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []
        self.last_eval_step = 0
        self.last_ckpt_step = -1
        self.last_log_step = 0
        self.last_row_totals = dict.fromkeys(_TOTAL_KEYS, 0)
        self.acc: dict[str, list[float]] = {"sum": {}, "n": 0}  # type: ignore[dict-item]
        self.iterations = 0
        self.algo_interventions = 0
        self.elapsed0 = 0.0
        self.resumes = 0
        self.stop = False
        self.wandb_id: str | None = None
        self.t0 = time.perf_counter()

    # ------------------------------------------------------------------ helpers
    def elapsed(self) -> float:
        return self.elapsed0 + (time.perf_counter() - self.t0)

    def wrapper_totals(self) -> dict[str, int]:
        return {k: int(getattr(self.train_env, k)) for k in _TOTAL_KEYS}

    def totals(self) -> dict[str, int]:
        """The training env's totals; with a policy-side safeguard the interventions are the
        algorithm's (its logs' ``interventions``), since the env only monitors."""
        tot = self.wrapper_totals()
        if self.cfg.safeguard_side == "policy" and self.cfg.safeguard is not None:
            tot["interventions"] = self.algo_interventions
        return tot

    def _accumulate(self, logs: dict[str, Any]) -> None:
        sums = self.acc["sum"]
        for k, v in logs.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            sums[k] = sums.get(k, 0.0) + float(v)
        self.acc["n"] += 1

    def _algo_means(self) -> dict[str, float]:
        n = max(self.acc["n"], 1)
        return {k: v / n for k, v in self.acc["sum"].items()}

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self, step: int, record_states: bool = False, notify: bool = True
    ) -> dict[str, Any]:
        cfg = self.cfg
        res = evaluate_agent(
            self.agent, self.eval_env, cfg.eval_episodes, cfg.eval_seed, record_states
        )
        ev = {k: v for k, v in res.items() if k != "episodes"}
        ev["step"] = step
        self.evals.append(ev)
        self.last_eval_step = step
        if record_states:
            self._save_trajectories(res["episodes"])
        if notify and self.on_eval is not None and self.on_eval(step, ev) is False:
            self.stop = True
        return ev

    def _save_trajectories(self, episodes: list[dict[str, Any]]) -> None:
        env = self.eval_env.unwrapped
        arrays: dict[str, Any] = {"returns": np.asarray(self.evals[-1]["returns"])}
        for i, ep in enumerate(episodes):
            if "states" in ep:
                arrays[f"states_{i}"] = ep["states"]
        for attr in ("obstacle_centers", "obstacle_radii", "goal"):
            v = getattr(env, attr, None)
            if isinstance(v, torch.Tensor):
                arrays[attr] = v.detach().cpu().numpy()
        if hasattr(env, "goal_radius"):
            arrays["goal_radius"] = np.asarray(float(env.goal_radius))
        rci = getattr(env, "rci", None)
        if rci is not None and hasattr(rci, "center") and hasattr(rci, "generators"):
            arrays["safe_set_center"] = np.asarray(rci.center, dtype=np.float64)
            arrays["safe_set_generators"] = np.asarray(rci.generators, dtype=np.float64)
        arrays["env"] = np.asarray(self.cfg.env)
        tmp = self.rd.trajectories.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, self.rd.trajectories)

    # ------------------------------------------------------------------ rows, checkpoints
    def write_row(self, step: int, ev: dict[str, Any] | None) -> None:
        tot = self.totals()
        prev = self.last_row_totals
        d_trans = max(tot["transitions"] - prev["transitions"], 0)
        means = self._algo_means()
        row: dict[str, Any] = {
            "step": step,
            "wall_time_s": round(self.elapsed(), 3),
            "steps_per_s": means.get("steps_per_s"),
            "iterations": self.iterations,
            "train_reward": means.get("mean_reward"),
            "violations": tot["violations"] - prev["violations"],
            "violations_total": tot["violations"],
            "interventions": tot["interventions"] - prev["interventions"],
            "interventions_total": tot["interventions"],
            "intervention_rate": (tot["interventions"] - prev["interventions"]) / d_trans
            if d_trans
            else None,
        }
        if ev is not None:
            row.update(
                {
                    "eval_return": ev["mean"],
                    "eval_return_std": ev["std"],
                    "eval_return_min": ev["min"],
                    "eval_return_max": ev["max"],
                    "eval_violations": ev["violations"],
                    "eval_interventions": ev["interventions"],
                    "eval_intervention_rate": ev["intervention_rate"],
                    "eval_min_margin": ev["min_margin"],
                    "eval_min_h": ev["min_h"],
                    "eval_min_composite_h": ev["min_composite_h"],
                    "eval_time_s": round(ev["time_s"], 3),
                }
            )
        for k, v in means.items():
            if k not in row and k not in ("step", "mean_reward", "violations", "interventions"):
                row[k] = v
        if self.acc["n"] == 0 and row["steps_per_s"] is None:
            row.pop("steps_per_s")
        self.loggers.log(row)
        self.rows.append(row)
        self.last_row_totals = tot
        self.last_log_step = step
        self.acc = {"sum": {}, "n": 0}

    def trainer_state(self) -> dict[str, Any]:
        return {
            "version": _TRAINER_STATE_VERSION,
            "step": int(self.agent.num_steps),
            "rows": self.rows,
            "columns": self.loggers.csv.columns,
            "evals": self.evals,
            "last_eval_step": self.last_eval_step,
            "last_log_step": self.last_log_step,
            "last_row_totals": self.last_row_totals,
            "acc": self.acc,
            "iterations": self.iterations,
            "elapsed": self.elapsed(),
            "rng": _rng_state(),
            "env_totals": self.wrapper_totals(),
            "algo_interventions": self.algo_interventions,
            "resumes": self.resumes,
            "wandb_id": self.loggers.wandb_id,
        }

    def checkpoint(self, step: int) -> None:
        self.rd.write_checkpoint(
            step, self.agent.save, self.trainer_state(), self.cfg.keep_checkpoints
        )
        self.last_ckpt_step = step

    def restore(self, st: dict[str, Any]) -> None:
        if st.get("version") != _TRAINER_STATE_VERSION:
            raise ValueError(f"checkpoint trainer state version {st.get('version')} unsupported")
        self.rows = list(st["rows"])
        self.evals = list(st["evals"])
        self.last_eval_step = st["last_eval_step"]
        self.last_log_step = st["last_log_step"]
        self.last_row_totals = dict(st["last_row_totals"])
        self.acc = st["acc"]
        self.iterations = st["iterations"]
        self.elapsed0 = float(st["elapsed"])
        self.resumes = int(st.get("resumes", 0)) + 1
        self.wandb_id = st.get("wandb_id")
        self.last_ckpt_step = int(st["step"])
        self.algo_interventions = int(st.get("algo_interventions", 0))
        for k, v in st["env_totals"].items():
            setattr(self.train_env, k, int(v))

    # ------------------------------------------------------------------ callback
    def on_iteration(self, agent: Any, logs: dict[str, Any]) -> bool:
        cfg = self.cfg
        self.iterations += 1
        step = int(agent.num_steps)
        self.algo_interventions += int(logs.get("interventions", 0) or 0)
        self._accumulate(logs)
        ev = None
        final = step >= cfg.total_steps  # the last learning iteration
        if final or (cfg.eval_every > 0 and step - self.last_eval_step >= cfg.eval_every):
            ev = self.evaluate(step, record_states=final)
        if ev is not None or cfg.log_every == 0 or step - self.last_log_step >= cfg.log_every:
            self.write_row(step, ev)
        if cfg.checkpoint_every > 0 and step - max(self.last_ckpt_step, 0) >= cfg.checkpoint_every:
            self.checkpoint(step)
        self.pbar.update(
            step,
            logs.get("steps_per_s"),
            self.evals[-1]["mean"] if self.evals else None,
            int(self.train_env.violations),
        )
        return not self.stop


def _summary(run: _Run, cfg: TrainConfig) -> dict[str, Any]:
    from safegrad.analysis.stats import steps_to_threshold

    evals = run.evals
    final = evals[-1] if evals else None
    best = max(evals, key=lambda e: e["mean"]) if evals else None
    tot = run.totals()
    steps = int(run.agent.num_steps)
    s95 = None
    if evals:
        s95 = steps_to_threshold([e["step"] for e in evals], [e["mean"] for e in evals])
    wall = run.elapsed()
    return {
        "finished": True,
        "name": cfg.name,
        "env": cfg.env,
        "algo": cfg.algo,
        "safeguard": cfg.safeguard,
        "safeguard_side": cfg.safeguard_side,
        "seed": cfg.seed,
        "final_return": None if final is None else float(final["mean"]),
        "best_return": None if best is None else float(best["mean"]),
        "best_step": None if best is None else int(best["step"]),
        "steps_to_95": None if s95 is None else int(s95),
        "env_steps": steps,
        "wall_time_s": round(wall, 3),
        "steps_per_s": steps / wall if wall > 0 else None,
        "safety_violations": int(tot["violations"]),
        "interventions": int(tot["interventions"]),
        "intervention_rate": tot["interventions"] / tot["transitions"]
        if tot["transitions"]
        else 0.0,
        "fallbacks": int(tot["fallbacks"]),
        "eval_violations": None if final is None else int(final["violations"]),
        "eval_violations_total": int(sum(e["violations"] for e in evals)),
        "eval_interventions": None if final is None else int(final["interventions"]),
        "eval_min_margin": None if final is None else final["min_margin"],
        "num_evaluations": len(evals),
        "iterations": run.iterations,
        "resumes": run.resumes,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        "config": cfg.to_dict(),
    }


def train(
    config: TrainConfig | None,
    run_dir: str | Path,
    resume: bool = False,
    *,
    on_eval: Callable[[int, dict[str, Any]], bool | None] | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train one run into ``run_dir`` and return its summary (``summary.json``).

    Args:
        config: the run's :class:`TrainConfig` (validated and resolved here).  With
            ``resume=True`` it may be ``None`` (``RUN_DIR/config.yaml`` is used); if given it
            must equal the stored one.
        run_dir: the run directory; a new run needs it empty or absent.
        resume: continue from the newest checkpoint (from scratch if there is none); a
            finished run (``summary.json``) returns its summary at once.
        on_eval: ``on_eval(step, result)`` after every evaluation; ``False`` stops training
            (the run still finishes with a final evaluation and summary).  Exceptions propagate
            (Optuna pruning).
        quiet: no progress bar and no console lines.

    Returns:
        the summary dict (module docstring; ``docs/cli.md`` lists its fields).
    """
    rd = RunDir(run_dir)
    if resume:
        if not rd.exists():
            raise FileNotFoundError(
                f"--resume {str(rd.path)!r}: no run there (config.yaml missing)"
            )
        stored = TrainConfig.from_yaml(rd.config)
        if config is not None:
            given = config.resolved()
            a, b = given.to_dict(), stored.to_dict()
            diff = sorted(k for k in a if k not in _RUNTIME_KEYS and a[k] != b.get(k))
            if diff:
                raise ConfigError(
                    f"the config given differs from {rd.config} in {diff}; resume with the "
                    "stored config (pass no preset or flags with --resume) or start a new run "
                    "directory"
                )
            stored = dataclasses.replace(stored, **{k: getattr(given, k) for k in _RUNTIME_KEYS})
        cfg = stored.validate()
        if rd.is_finished():
            if not quiet:
                print(f"{rd.path}: already finished (summary.json)", file=sys.stderr)
            return rd.read_summary()
    else:
        if config is None:
            raise TypeError("train() needs a config unless resume=True")
        if rd.exists():
            raise FileExistsError(
                f"{rd.path} already holds a run; resume it with `safegrad train --resume "
                f"{rd.path}` or choose another --out"
            )
        cfg = config.resolved().validate()
        rd.path.mkdir(parents=True, exist_ok=True)
        from safegrad.experiments.rundir import atomic_write_text

        atomic_write_text(rd.config, cfg.to_yaml())

    old_threads = torch.get_num_threads()
    torch.set_num_threads(int(cfg.threads))
    run = _Run(cfg, rd, on_eval, quiet)
    try:
        return _train(run, cfg, rd, resume)
    finally:
        torch.set_num_threads(old_threads)


def _train(run: _Run, cfg: TrainConfig, rd: RunDir, resume: bool) -> dict[str, Any]:
    agent_cls, config_cls = cfg.algo_spec().load()
    _seed_everything(cfg.seed)
    run.train_env, run.eval_env = build_envs(cfg)
    ckpt = rd.latest_checkpoint() if resume else None
    state = None
    if ckpt is not None:
        run.agent = agent_cls.load(ckpt / "agent.pt", run.train_env)
        state = torch.load(ckpt / "trainer.pt", map_location="cpu", weights_only=False)
        run.restore(state)
        _set_rng_state(state["rng"])
    else:
        if resume:  # started but no checkpoint yet: start over in place
            import shutil

            for p in (rd.progress, rd.summary, rd.trajectories):
                p.unlink(missing_ok=True)
            for d in (rd.tensorboard, rd.checkpoints, rd.plots):
                shutil.rmtree(d, ignore_errors=True)
        run.agent = agent_cls(run.train_env, cfg.algo_config_object(config_cls))
    run.loggers = Loggers(
        rd,
        cfg,
        columns=None if state is None else state["columns"],
        purge_step=None if state is None else int(state["step"]) + 1,
        wandb_id=run.wandb_id,
    )
    if state is not None:
        run.loggers.csv.rewrite(run.rows)
    show = False if run.quiet else progress_bar_enabled(cfg.progress_bar)
    start = int(run.agent.num_steps)
    run.pbar = ProgressBar(cfg.total_steps, cfg.name or "train", show, start=start)
    if not run.quiet and not show:
        what = "resuming" if state is not None else "training"
        print(f"{what} {cfg.name} -> {rd.path} (step {start}/{cfg.total_steps})", file=sys.stderr)
    try:
        if cfg.eval_at_start and start == 0 and not run.evals:
            run.write_row(0, run.evaluate(0))
        _learn(run.agent, cfg.total_steps, run.on_iteration)
        step = int(run.agent.num_steps)
        if not run.evals or run.evals[-1]["step"] != step:
            run.write_row(step, run.evaluate(step, record_states=True))
        else:
            if not rd.trajectories.is_file():
                # the same policy and seed as the last evaluation: only the states are wanted
                run.evaluate(step, record_states=True, notify=False)
                run.evals.pop()
            if run.last_log_step != step:
                run.write_row(step, None)
        if run.last_ckpt_step != step:
            run.checkpoint(step)
        summary = _summary(run, cfg)
        atomic_write_json(rd.summary, summary)
    finally:
        run.pbar.close()
        run.loggers.close()
    try:
        from safegrad.analysis.plots import plot_run

        plot_run(rd.path)
    except Exception as err:  # noqa: BLE001 - the run is finished; plots can be redone
        print(f"warning: plotting {rd.path} failed ({err}); run `safegrad plot`", file=sys.stderr)
    if not run.quiet:
        print(
            f"{cfg.name}: final return {summary['final_return']:.4g}, best "
            f"{summary['best_return']:.4g}, {summary['env_steps']} steps, "
            f"{summary['safety_violations']} violations, {summary['interventions']} "
            f"interventions, {summary['wall_time_s']:.1f} s -> {rd.path}",
            file=sys.stderr,
        )
    return summary


def evaluate_run(
    run_dir: str | Path, episodes: int | None = None, seed: int | None = None
) -> dict[str, Any]:
    """Evaluate the newest checkpoint of a run (``safegrad eval``): the deterministic policy
    on a fresh evaluation env (spec A §6 protocol; ``episodes`` / ``seed`` default to the run's
    ``eval_episodes`` / ``eval_seed``).  Returns the result dict of ``evaluate_agent`` without the
    per-episode records, plus ``step`` and ``checkpoint``."""
    rd = RunDir(run_dir)
    if not rd.exists():
        raise FileNotFoundError(f"{rd.path}: no run there (config.yaml missing)")
    cfg = TrainConfig.from_yaml(rd.config)
    ckpt = rd.latest_checkpoint()
    if ckpt is None:
        raise FileNotFoundError(f"{rd.path}: no checkpoint yet")
    if episodes is not None:
        cfg = dataclasses.replace(cfg, eval_episodes=int(episodes))
    if seed is not None:
        cfg = dataclasses.replace(cfg, eval_seed=int(seed))
    agent_cls, _ = cfg.algo_spec().load()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(int(cfg.threads or 1))
    try:
        train_env, eval_env = build_envs(cfg)
        agent = agent_cls.load(ckpt / "agent.pt", train_env)
        res = evaluate_agent(agent, eval_env, cfg.eval_episodes, cfg.eval_seed)
    finally:
        torch.set_num_threads(old_threads)
    res.pop("episodes")
    res["step"] = int(agent.num_steps)
    res["checkpoint"] = str(ckpt)
    return res
