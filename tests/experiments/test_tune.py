"""Optuna tuning: trials run, the study persists in SQLite, the best config becomes presets."""

from __future__ import annotations

import json

import pytest

from safegrad.algos.shac import SHACConfig
from safegrad.experiments import load_config
from safegrad.experiments.config import ConfigError
from safegrad.experiments.tune import _check_param, load_space, suggest

from .conftest import tiny

SPACE = {
    "actor_lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "horizon": {"type": "categorical", "choices": [4, 8]},
    "critic_hidden": {"type": "layers", "depth": [1, 2], "width": [8, 16]},
}


def test_tune_writes_best_config_as_presets(tmp_path):
    optuna = pytest.importorskip("optuna")
    from safegrad.experiments.tune import tune

    base = load_config(overrides=tiny("total_steps=64", "eval_every=16")).to_dict()
    res = tune(base, tmp_path, trials=3, space=SPACE, startup_trials=2, quiet=True)
    assert res["n_trials"] == 3 and res["best_value"] is not None
    assert (tmp_path / "study.db").is_file()
    study = optuna.load_study(study_name=res["study"], storage=res["storage"])
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert res["best_value"] == max(t.value for t in done)
    best = study.best_trial
    # the trial's run directory holds the value the study recorded (objective "best")
    summary = json.loads(
        (tmp_path / "trials" / f"trial_{best.number:04d}" / "summary.json").read_text()
    )
    assert summary["best_return"] == pytest.approx(best.value)
    # the run preset reproduces the trial's configuration
    cfg = load_config([res["best_run_preset"]])
    params = res["best_params"]
    assert cfg.algo_config["actor_lr"] == pytest.approx(params["actor_lr"])
    assert cfg.algo_config["horizon"] == params["horizon"]
    assert list(cfg.algo_config["critic_hidden"]) == params["critic_hidden"]
    assert cfg.total_steps == 64 and cfg.env == "BalancePendulum-v0"
    # the algorithm preset is a valid SHACConfig file with the tuned values
    shac = SHACConfig.from_yaml(res["best_algo_preset"])
    assert shac.actor_lr == pytest.approx(params["actor_lr"]) and shac.horizon == params["horizon"]
    # the study continues in the same storage
    res2 = tune(base, tmp_path, trials=1, space=SPACE, startup_trials=2, quiet=True)
    assert res2["n_trials"] == 4


def test_search_space_validation_and_defaults():
    fields = SHACConfig.field_names()
    space = load_space(None, "shac", fields)
    assert {"actor_lr", "critic_lr", "horizon", "actor_hidden"} <= set(space)
    assert set(space) <= set(fields)
    with pytest.raises(ConfigError, match="type one of"):
        _check_param("x", {"type": "uniform", "low": 0, "high": 1})
    with pytest.raises(ConfigError, match="low=2 must be < high"):
        _check_param("x", {"type": "int", "low": 2, "high": 1})
    with pytest.raises(ConfigError, match="unknown option"):
        _check_param("x", {"type": "float", "low": 0, "high": 1, "lgo": True})


def test_suggest_layers_and_list_choices():
    optuna = pytest.importorskip("optuna")
    trial = optuna.trial.FixedTrial(
        {
            "critic_hidden.depth": 2,
            "critic_hidden.width": 12,
            "horizon": 8,
            "actor_lr": 1e-3,
            "actor_hidden": json.dumps([4, 4]),
        }
    )
    space = dict(SPACE, actor_hidden={"type": "categorical", "choices": [[4, 4], [8]]})
    out = suggest(trial, space)
    assert out == {
        "actor_lr": 1e-3,
        "horizon": 8,
        "critic_hidden": [12, 12],
        "actor_hidden": [4, 4],
    }
