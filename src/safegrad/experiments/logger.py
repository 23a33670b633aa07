"""Loggers of a run: ``progress.csv`` (always), TensorBoard (default on), W&B and MLflow
(optional extras, never required; credentials only from the environment), and a rich progress
bar (off when stdout is not a terminal or ``CI`` is set).  CleanRL's habit: every iteration logs
``steps_per_s``.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safegrad.experiments.rundir import atomic_write_text

__all__ = ["CSVLogger", "Loggers", "ProgressBar", "progress_bar_enabled", "PROGRESS_COLUMNS"]

#: leading progress.csv columns (the algorithm's own log keys follow)
PROGRESS_COLUMNS = (
    "step",
    "wall_time_s",
    "steps_per_s",
    "iterations",
    "train_reward",
    "violations",
    "violations_total",
    "interventions",
    "interventions_total",
    "intervention_rate",
    "eval_return",
    "eval_return_std",
    "eval_return_min",
    "eval_return_max",
    "eval_violations",
    "eval_interventions",
    "eval_intervention_rate",
    "eval_min_margin",
    "eval_min_h",
    "eval_min_composite_h",
    "eval_time_s",
)
# algorithm log keys that the leading columns already hold under another name
_SKIP_ALGO_KEYS = {"step", "steps_per_s", "mean_reward", "violations", "interventions"}


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return repr(v)
    return str(v)


def _csv_text(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_fmt(r.get(c)) for c in columns])
    return buf.getvalue()


class CSVLogger:
    """``progress.csv`` with a fixed header: :data:`PROGRESS_COLUMNS` followed by the
    algorithm's log keys of the first row (keys that appear later go to TensorBoard only)."""

    def __init__(self, path: str | Path, columns: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        self.columns: list[str] | None = list(columns) if columns else None
        self._fh = None

    @staticmethod
    def columns_for(row: dict[str, Any]) -> list[str]:
        extra = [k for k in row if k not in PROGRESS_COLUMNS and k not in _SKIP_ALGO_KEYS]
        return list(PROGRESS_COLUMNS) + extra

    def rewrite(self, rows: Sequence[dict[str, Any]]) -> None:
        """Replace the file with ``rows`` (atomically; used on resume)."""
        self.close()
        if self.columns is None:
            if not rows:
                self.path.unlink(missing_ok=True)
                return
            self.columns = self.columns_for(rows[0])
        atomic_write_text(self.path, _csv_text(self.columns, rows))

    def write(self, row: dict[str, Any]) -> None:
        if self.columns is None:
            self.columns = self.columns_for(row)
            atomic_write_text(self.path, _csv_text(self.columns, []))
        if self._fh is None:
            self._fh = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115
        csv.writer(self._fh, lineterminator="\n").writerow([_fmt(row.get(c)) for c in self.columns])
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def progress_bar_enabled(setting: bool | None) -> bool:
    """``setting`` if given, else on for a terminal and off under ``CI=true``."""
    if setting is not None:
        return bool(setting)
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        return False
    return sys.stdout.isatty()


class ProgressBar:
    """A rich progress bar with steps/s, the last evaluation return and the violations."""

    def __init__(self, total: int, description: str, enabled: bool, start: int = 0) -> None:
        self._progress = None
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[sps]:>7} steps/s"),
            TextColumn("return {task.fields[ret]}"),
            TextColumn("violations {task.fields[viol]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            description, total=total, completed=start, sps="-", ret="-", viol=0
        )

    def update(self, step: int, sps: float | None, ret: float | None, violations: int) -> None:
        if self._progress is None:
            return
        fields: dict[str, Any] = {"viol": violations}
        if sps is not None:
            fields["sps"] = f"{sps:.0f}"
        if ret is not None:
            fields["ret"] = f"{ret:.4g}"
        self._progress.update(self._task, completed=step, **fields)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class Loggers:
    """CSV + TensorBoard + optional W&B / MLflow behind one ``log(row)``.

    Args:
        run_dir: the :class:`~safegrad.experiments.rundir.RunDir`.
        config: the resolved :class:`~safegrad.experiments.TrainConfig`.
        columns: CSV header to keep (resume) or ``None``.
        purge_step: on resume, TensorBoard drops events at steps ``>= purge_step`` (they are
            written again).
        wandb_id: W&B run id to resume.
    """

    def __init__(
        self,
        run_dir: Any,
        config: Any,
        columns: Sequence[str] | None = None,
        purge_step: int | None = None,
        wandb_id: str | None = None,
    ) -> None:
        self.csv = CSVLogger(run_dir.progress, columns)
        self.tb = None
        self.wandb = None
        self.mlflow = None
        self.wandb_id = wandb_id
        if config.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:  # pragma: no cover - tensorboard is a core dependency
                raise RuntimeError(
                    "TensorBoard logging needs the 'tensorboard' package (pip install "
                    "tensorboard) or tensorboard: false in the config"
                ) from err
            self.tb = SummaryWriter(str(run_dir.tensorboard), purge_step=purge_step)
        if config.wandb:
            try:
                import wandb
            except ImportError as err:
                raise RuntimeError(
                    "wandb: true needs Weights & Biases: pip install 'safegrad[wandb]'"
                ) from err
            self.wandb = wandb.init(
                project=config.wandb_project,
                entity=config.wandb_entity,
                name=config.name,
                config=config.to_dict(),
                dir=str(run_dir.path),
                id=wandb_id,
                resume="allow",
            )
            self.wandb_id = self.wandb.id
        if config.mlflow:
            try:
                import mlflow
            except ImportError as err:
                raise RuntimeError(
                    "mlflow: true needs MLflow: pip install 'safegrad[mlflow]'"
                ) from err
            if config.mlflow_tracking_uri:
                mlflow.set_tracking_uri(config.mlflow_tracking_uri)
            mlflow.set_experiment(config.mlflow_experiment)
            self.mlflow = mlflow
            mlflow.start_run(run_name=config.name)
            flat = {k: v for k, v in config.to_dict().items() if not isinstance(v, dict)}
            flat.update({f"algo.{k}": v for k, v in config.algo_config.items()})
            mlflow.log_params({k: str(v)[:250] for k, v in flat.items()})

    def log(self, row: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        """Write ``row`` to the CSV; ``row`` and ``extra`` (scalars) to the other backends."""
        self.csv.write(row)
        step = int(row["step"])
        scalars = {
            k: float(v)
            for k, v in {**row, **(extra or {})}.items()
            if k != "step"
            and isinstance(v, (int, float))
            and not isinstance(v, bool)
            and math.isfinite(float(v))
        }
        if self.tb is not None:
            for k, v in scalars.items():
                group = "eval" if k.startswith("eval_") else "train"
                self.tb.add_scalar(f"{group}/{k}", v, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)
        if self.mlflow is not None:
            self.mlflow.log_metrics(scalars, step=step)

    def close(self) -> None:
        self.csv.close()
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None
        if self.mlflow is not None:
            self.mlflow.end_run()
            self.mlflow = None
