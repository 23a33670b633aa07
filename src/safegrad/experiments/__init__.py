"""safegrad.experiments: run configuration, the training loop, run directories, sweeps and
hyper-parameter tuning (``docs/cli.md``).

* :class:`TrainConfig`, :func:`load_config` -- typed run config, presets, ``key=value``
  overrides, validation;
* :func:`train` -- one run into a run directory (progress.csv, TensorBoard, checkpoints,
  summary.json, plots), resumable after a crash;
* :func:`evaluate_run` -- evaluate a run's newest checkpoint;
* :mod:`~safegrad.experiments.sweep` -- grids of runs (local process pool or Ray);
* :mod:`~safegrad.experiments.tune` -- Optuna search (TPE + pruning).

Algorithms are imported only when a run uses them (:data:`ALGOS`).
"""

from __future__ import annotations

from safegrad.experiments.config import ConfigError, TrainConfig, load_config
from safegrad.experiments.registry import ALGOS, AlgorithmUnavailableError, get_algo
from safegrad.experiments.rundir import RunDir
from safegrad.experiments.train import build_envs, evaluate_run, train

__all__ = [
    "TrainConfig",
    "ConfigError",
    "load_config",
    "train",
    "evaluate_run",
    "build_envs",
    "RunDir",
    "ALGOS",
    "get_algo",
    "AlgorithmUnavailableError",
]
