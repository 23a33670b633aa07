"""Reading run directories (``config.yaml``, ``progress.csv``, ``summary.json``) and grouping
the runs of one configuration across seeds.  Reads files only: no import of the training code.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

__all__ = ["Run", "load_run", "find_run_dirs", "load_runs", "group_runs", "IGNORED_KEYS"]

#: config keys that do not define a configuration (runs differing only here are seeds of one)
IGNORED_KEYS = frozenset(
    {
        "seed",
        "name",
        "threads",
        "device",
        "tensorboard",
        "progress_bar",
        "wandb",
        "wandb_project",
        "wandb_entity",
        "mlflow",
        "mlflow_tracking_uri",
        "mlflow_experiment",
        "checkpoint_every",
        "keep_checkpoints",
        "log_every",
    }
)


def _float(s: str) -> float:
    if s == "" or s is None:
        return math.nan
    try:
        return float(s)
    except ValueError:
        return math.nan


@dataclass
class Run:
    """One run directory.

    Attributes:
        path: the directory.
        config: ``config.yaml`` as a dict.
        summary: ``summary.json`` (``None`` while unfinished).
        progress: ``progress.csv`` columns as float arrays (empty cells NaN).
    """

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any] | None
    progress: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.summary is not None

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.name)

    @property
    def seed(self) -> int | None:
        return self.config.get("seed")

    def column(self, name: str) -> np.ndarray:
        """A ``progress.csv`` column (NaN array if absent)."""
        n = len(self.progress.get("step", ()))
        return self.progress.get(name, np.full(n, np.nan))

    def curve(self, metric: str = "eval_return") -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of the rows where ``metric`` is set."""
        steps, vals = self.column("step"), self.column(metric)
        ok = ~np.isnan(vals)
        return steps[ok], vals[ok]

    @property
    def final_return(self) -> float:
        if self.summary is not None and self.summary.get("final_return") is not None:
            return float(self.summary["final_return"])
        _, r = self.curve()
        return float(r[-1]) if r.size else math.nan

    @property
    def initial_return(self) -> float:
        _, r = self.curve()
        return float(r[0]) if r.size else math.nan


def load_run(path: str | Path) -> Run:
    """Read one run directory (``FileNotFoundError`` without ``config.yaml``)."""
    path = Path(path)
    cfg_path = path / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{path} is not a run directory (no config.yaml)")
    config = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    summary = None
    if (path / "summary.json").is_file():
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    progress: dict[str, np.ndarray] = {}
    if (path / "progress.csv").is_file():
        with open(path / "progress.csv", encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        if rows:
            header, body = rows[0], rows[1:]
            for j, col in enumerate(header):
                progress[col] = np.array(
                    [_float(r[j]) if j < len(r) else math.nan for r in body], dtype=np.float64
                )
    return Run(path, config, summary, progress)


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories in ``paths``: each path itself if it holds ``config.yaml``, else every
    directory below it that does (sorted; ``checkpoints/`` are skipped)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if (p / "config.yaml").is_file():
            out.append(p)
        elif p.is_dir():
            found = sorted(c.parent for c in p.rglob("config.yaml") if "checkpoints" not in c.parts)
            out.extend(found)
        else:
            raise FileNotFoundError(f"{p}: no such run directory")
    seen: set[Path] = set()
    uniq = []
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            uniq.append(p)
    return uniq


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """:func:`load_run` of every directory :func:`find_run_dirs` finds."""
    dirs = find_run_dirs(paths)
    if not dirs:
        raise FileNotFoundError(f"no run directories (with config.yaml) in {list(paths)}")
    return [load_run(d) for d in dirs]


def _flat(cfg: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in cfg.items():
        if k in IGNORED_KEYS:
            continue
        if isinstance(v, dict):
            for kk, vv in v.items():
                out[f"{k}.{kk}"] = json.dumps(vv, sort_keys=True)
        else:
            out[k] = json.dumps(v, sort_keys=True)
    return out


def _base_label(cfg: dict[str, Any]) -> str:
    sg = cfg.get("safeguard") or "none"
    if cfg.get("safeguard") and cfg.get("safeguard_side") == "policy":
        sg += " (policy)"
    return f"{cfg.get('env')} / {cfg.get('algo')} / {sg}"


def group_runs(runs: Sequence[Run], by: Sequence[str] | None = None) -> dict[str, list[Run]]:
    """Group runs that differ only in their seed (and :data:`IGNORED_KEYS`).

    ``by``: explicit config keys to group on (``env``, ``algo``, ``safeguard``,
    ``algo_config.c_reg`` ...); default all non-ignored keys.  Labels are
    ``"env / algo / safeguard"`` plus ``key=value`` for the other keys that differ between
    groups.  Returns label -> runs (in input order).
    """
    flats = [_flat(r.config) for r in runs]
    if by is not None:
        keys = list(by)
        for f, r in zip(flats, runs):
            for k in keys:
                if k not in f and k.split(".")[0] not in r.config:
                    raise KeyError(f"group key {k!r} not in the config of {r.path}")
        flats = [{k: f.get(k, "null") for k in keys} for f in flats]
    groups: dict[tuple, list[int]] = {}
    for i, f in enumerate(flats):
        groups.setdefault(tuple(sorted(f.items())), []).append(i)
    all_keys = sorted({k for f in flats for k in f})
    differing = [
        k
        for k in all_keys
        if len({f.get(k) for f in flats}) > 1 and k not in ("env", "algo", "safeguard")
    ]
    out: dict[str, list[Run]] = {}
    for _key, idx in groups.items():
        cfg = runs[idx[0]].config
        if by is not None:
            label = ", ".join(f"{k}={json.loads(flats[idx[0]][k])}" for k in by)
        else:
            label = _base_label(cfg)
            extra = [
                f"{k}={json.loads(flats[idx[0]].get(k, 'null'))}"
                for k in differing
                if k != "safeguard_side"
            ]
            if extra:
                label += " [" + ", ".join(extra) + "]"
        base, n = label, 2
        while label in out:
            label = f"{base} #{n}"
            n += 1
        out[label] = [runs[i] for i in idx]
    return out
