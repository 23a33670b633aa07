"""Hyper-parameter search with Optuna: TPE sampler, median (or Hyperband) pruning on the
evaluation returns, SQLite storage by default and any RDB URL for many machines; the best
configuration is written back as presets (``docs/cli.md``; spec A §6: the paper tuned each
algorithm and task with Optuna, TPE + Hyperband, 100 trials, objective = best evaluation
return).

Search-space file (YAML), keys as for ``--set`` (bare names are algorithm fields)::

    actor_lr: {type: float, low: 1.0e-5, high: 1.0e-2, log: true}
    horizon: {type: int, low: 8, high: 64}
    batch_size: {type: categorical, choices: [64, 128, 256]}
    actor_hidden: {type: layers, depth: [2, 4], width: [32, 1024], log: true}

Optuna is an optional dependency: ``pip install 'safegrad[tune]'``.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from safegrad.experiments.config import (
    SHARED_KEYS,
    ConfigError,
    TrainConfig,
    apply_override,
    yaml_load,
)
from safegrad.experiments.rundir import atomic_write_text

__all__ = [
    "DEFAULT_SPACES",
    "load_space",
    "suggest",
    "tune",
    "require_optuna",
    "OPTUNA_HINT",
]

OPTUNA_HINT = "safegrad tune needs Optuna: pip install 'safegrad[tune]' (or pip install optuna)"

_LR = {"type": "float", "low": 1e-5, "high": 1e-2, "log": True}
_NET = {"type": "layers", "depth": [2, 4], "width": [32, 1024], "log": True}
#: default search spaces per algorithm (spec A §8.2's Optuna space, trimmed to what trains on a
#: laptop budget); entries whose field the algorithm's config lacks are dropped
DEFAULT_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "shac": {
        "actor_lr": _LR,
        "critic_lr": _LR,
        "horizon": {"type": "int", "low": 8, "high": 64, "log": True},
        "polyak": {"type": "float", "low": 0.1, "high": 1.0},
        "td_lambda": {"type": "float", "low": 0.9, "high": 0.99},
        "vf_num_fits": {"type": "int", "low": 8, "high": 64, "log": True},
        "actor_hidden": _NET,
        "critic_hidden": _NET,
    },
    "sac": {
        "actor_lr": _LR,
        "critic_lr": _LR,
        "tau": {"type": "float", "low": 0.1, "high": 1.0},
        "batch_size": {"type": "categorical", "choices": [64, 128, 256]},
        "policy_frequency": {"type": "int", "low": 1, "high": 10},
        "target_frequency": {"type": "int", "low": 1, "high": 10},
        "actor_hidden": _NET,
        "critic_hidden": _NET,
    },
    "ppo": {
        "actor_lr": _LR,
        "critic_lr": _LR,
        "clip_coef": {"type": "float", "low": 0.2, "high": 0.5},
        "ent_coef": {"type": "float", "low": 0.0, "high": 0.1},
        "gae_lambda": {"type": "float", "low": 0.9, "high": 0.99},
        "num_epochs": {"type": "int", "low": 4, "high": 32, "log": True},
        "actor_hidden": _NET,
        "critic_hidden": _NET,
    },
}
_TYPES = ("float", "int", "categorical", "layers")


def require_optuna():
    """``import optuna`` or ``RuntimeError`` with the install hint."""
    try:
        import optuna
    except ImportError as err:
        raise RuntimeError(OPTUNA_HINT) from err
    return optuna


def _check_param(name: str, spec: Any) -> dict[str, Any]:
    if not isinstance(spec, Mapping) or spec.get("type") not in _TYPES:
        raise ConfigError(
            f"search space {name!r}: expected a mapping with type one of {_TYPES}, got {spec!r}"
        )
    t = spec["type"]
    need = {"float": ("low", "high"), "int": ("low", "high"), "categorical": ("choices",)}
    need["layers"] = ("depth", "width")
    allowed = set(need[t]) | {"type", "log", "step"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise ConfigError(f"search space {name!r}: unknown option(s) {extra} for type {t!r}")
    missing = [k for k in need[t] if k not in spec]
    if missing:
        raise ConfigError(f"search space {name!r}: type {t!r} needs {missing}")
    if t in ("float", "int") and not spec["low"] < spec["high"]:
        raise ConfigError(f"search space {name!r}: low={spec['low']} must be < high")
    return dict(spec)


def load_space(path: str | Path | None, algo: str, config_fields: list[str]) -> dict[str, Any]:
    """The search space: the YAML file at ``path``, or :data:`DEFAULT_SPACES` ``[algo]``
    restricted to ``config_fields``."""
    if path is None:
        space = {k: v for k, v in DEFAULT_SPACES[algo].items() if k in config_fields}
    else:
        data = yaml_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict) or not data:
            raise ConfigError(f"{path}: a search space must be a non-empty mapping")
        space = data
    return {k: _check_param(k, v) for k, v in space.items()}


def _json_choice(v: Any) -> Any:
    return v if isinstance(v, (type(None), bool, int, float, str)) else json.dumps(v)


def suggest(trial: Any, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Draw one value per parameter of ``space`` from an Optuna ``trial``; returns
    ``key -> value`` (list-valued categorical choices and ``layers`` become lists)."""
    out: dict[str, Any] = {}
    for name, spec in space.items():
        t = spec["type"]
        log = bool(spec.get("log", False))
        if t == "float":
            out[name] = trial.suggest_float(
                name, float(spec["low"]), float(spec["high"]), log=log, step=spec.get("step")
            )
        elif t == "int":
            out[name] = trial.suggest_int(
                name, int(spec["low"]), int(spec["high"]), log=log, step=int(spec.get("step", 1))
            )
        elif t == "categorical":
            choices = [_json_choice(c) for c in spec["choices"]]
            v = trial.suggest_categorical(name, choices)
            raw = spec["choices"][choices.index(v)]
            out[name] = list(raw) if isinstance(raw, (list, tuple)) else raw
        else:
            d_lo, d_hi = (int(x) for x in spec["depth"])
            w_lo, w_hi = (int(x) for x in spec["width"])
            depth = trial.suggest_int(f"{name}.depth", d_lo, d_hi)
            width = trial.suggest_int(f"{name}.width", w_lo, w_hi, log=log)
            out[name] = [width] * depth
    return out


def _trial_config(base: Mapping[str, Any], params: Mapping[str, Any]) -> TrainConfig:
    data = copy.deepcopy(dict(base))
    for k, v in params.items():
        apply_override(data, k, v)
    data.pop("name", None)
    return TrainConfig.from_dict(data)


def _algo_preset_text(cfg: TrainConfig, header: list[str]) -> str:
    algo_cfg = cfg.algo_config_object()
    data = algo_cfg.to_dict()
    for k in ("policy_safeguard", "policy_safeguard_kwargs"):
        data.pop(k, None)
    lines = [f"# {h}" for h in header]
    return "\n".join(lines) + "\n" + yaml.safe_dump(data, sort_keys=False)


def tune(
    base: Mapping[str, Any],
    out: str | Path,
    trials: int = 20,
    storage: str | None = None,
    study_name: str | None = None,
    space: str | Path | Mapping[str, Any] | None = None,
    objective: str = "best",
    pruner: str = "median",
    sampler_seed: int | None = 0,
    startup_trials: int = 10,
    timeout: float | None = None,
    write_preset: str | Path | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run an Optuna study over the raw config mapping ``base`` (a validated
    :class:`TrainConfig` mapping) and write the best configuration back.

    Each trial trains into ``OUT/trials/trial_<n>`` and reports every evaluation return to the
    pruner; the trial's value is the best (``objective="best"``, spec A §6) or the final
    evaluation return.  Studies resume: the same ``storage`` + ``study_name`` on several
    machines (an RDB URL such as ``postgresql://...``) share trials.

    Writes ``OUT/best_run.yaml`` (a full run preset) and ``OUT/best_<algo>.yaml`` (an algorithm
    preset, the ``configs/<algo>_<task>.yaml`` format; also to ``write_preset`` if given).

    Returns ``{"study", "storage", "best_value", "best_params", "best_trial", "n_trials",
    "n_pruned", "n_failed", "best_run_preset", "best_algo_preset"}``.
    """
    optuna = require_optuna()
    from safegrad.experiments.train import train

    if objective not in ("best", "final"):
        raise ValueError(f"objective={objective!r}; expected 'best' or 'final'")
    if pruner not in ("median", "hyperband", "none"):
        raise ValueError(f"pruner={pruner!r}; expected 'median', 'hyperband' or 'none'")
    base_cfg = TrainConfig.from_dict(dict(base)).resolved()
    base_cfg.validate()
    _, config_cls = base_cfg.algo_spec().load()
    if isinstance(space, Mapping):
        space_d = {k: _check_param(k, v) for k, v in space.items()}
    else:
        space_d = load_space(space, base_cfg.algo, config_cls.field_names())
    for k in space_d:
        if k in SHARED_KEYS:
            raise ConfigError(f"search space: {k!r} is a run setting, not a hyper-parameter")
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    if storage is None:
        storage = f"sqlite:///{out / 'study.db'}"
    if study_name is None:
        study_name = f"{base_cfg.env}__{base_cfg.algo}__{base_cfg.safeguard or 'none'}"
    if not quiet:
        optuna.logging.set_verbosity(optuna.logging.INFO)
    else:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruners = {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=min(5, startup_trials)),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(),
        "none": lambda: optuna.pruners.NopPruner(),
    }
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=startup_trials),
        pruner=pruners[pruner](),
    )
    base_raw = base_cfg.to_dict()
    base_raw.pop("name", None)

    def run_trial(trial: Any) -> float:
        params = suggest(trial, space_d)
        try:
            cfg = _trial_config(base_raw, params)
            cfg.validate()
        except (ConfigError, TypeError, ValueError) as err:
            raise optuna.TrialPruned(f"invalid parameters {params}: {err}") from None
        cfg.name = f"{study_name}__trial{trial.number}"
        trial.set_user_attr("params", json.dumps(params))
        run_dir = out / "trials" / f"trial_{trial.number:04d}"

        def on_eval(step: int, ev: dict[str, Any]) -> None:
            value = float(ev["mean"])
            if not math.isfinite(value):
                raise optuna.TrialPruned(f"non-finite evaluation return at step {step}")
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step} (return {value:.4g})")

        trial.set_user_attr("run_dir", str(run_dir))
        summary = train(cfg, run_dir, on_eval=on_eval, quiet=True)
        value = summary["best_return" if objective == "best" else "final_return"]
        if not quiet:
            print(f"trial {trial.number}: {objective} return {value:.4g} {params}", file=sys.stderr)
        return float(value)

    study.optimize(
        run_trial,
        n_trials=trials,
        timeout=timeout,
        catch=(RuntimeError, FloatingPointError, ValueError),
    )
    states = [t.state for t in study.trials]
    n_pruned = sum(s == optuna.trial.TrialState.PRUNED for s in states)
    n_failed = sum(s == optuna.trial.TrialState.FAIL for s in states)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    result: dict[str, Any] = {
        "study": study_name,
        "storage": storage,
        "n_trials": len(study.trials),
        "n_pruned": n_pruned,
        "n_failed": n_failed,
        "best_value": None,
        "best_params": None,
        "best_trial": None,
        "best_run_preset": None,
        "best_algo_preset": None,
    }
    if not complete:
        return result
    best = study.best_trial
    params = json.loads(best.user_attrs["params"])
    cfg = _trial_config(base_raw, params)
    header = [
        f"best of Optuna study {study_name!r} ({len(study.trials)} trials, storage {storage})",
        f"trial {best.number}: {objective} evaluation return {best.value:.6g}",
        f"tuned parameters: {json.dumps(params)}",
    ]
    run_text = "\n".join(f"# {h}" for h in header) + "\n" + cfg.to_yaml()
    run_path = out / "best_run.yaml"
    atomic_write_text(run_path, run_text)
    algo_path = out / f"best_{cfg.algo}.yaml"
    algo_text = _algo_preset_text(cfg, header)
    atomic_write_text(algo_path, algo_text)
    if write_preset is not None:
        atomic_write_text(Path(write_preset), run_text)
    result.update(
        best_value=float(best.value),
        best_params=params,
        best_trial=best.number,
        best_run_preset=str(run_path),
        best_algo_preset=str(algo_path),
    )
    atomic_write_text(out / "best.json", json.dumps(result, indent=2) + "\n")
    return result
