"""The run directory: layout, atomic writes and checkpoints (``docs/cli.md``).

::

    RUN_DIR/
      config.yaml          the resolved TrainConfig (what `--resume` reads)
      progress.csv         one row per learning iteration (or log_every), eval columns filled
                           on evaluation rows
      tb/                  TensorBoard event files
      checkpoints/
        step_000051200/    agent.pt (agent.save) + trainer.pt (progress, eval history, RNG
                           states, wrapper totals, wall time); written to a temporary directory
                           and renamed into place
        latest             name of the newest complete checkpoint (tmp file + os.replace)
      summary.json         written last: its presence marks a finished run
      trajectories.npz     states of the final evaluation episodes (trajectory plots)
      plots/               learning_curve.png (+ safety_margins.png, trajectories.png)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["RunDir", "atomic_write_text", "atomic_write_json"]


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and
    ``os.replace`` (readers see the old or the new file, never a partial one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, data: Any) -> None:
    """:func:`atomic_write_text` of ``json.dumps(data, indent=2)``."""
    atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


class RunDir:
    """Paths and checkpoint bookkeeping of one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # ------------------------------------------------------------------ paths
    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def progress(self) -> Path:
        return self.path / "progress.csv"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tb"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def trajectories(self) -> Path:
        return self.path / "trajectories.npz"

    def is_finished(self) -> bool:
        """``summary.json`` exists (written last)."""
        return self.summary.is_file()

    def exists(self) -> bool:
        """A run was started here (``config.yaml`` exists)."""
        return self.config.is_file()

    def read_summary(self) -> dict[str, Any]:
        with open(self.summary, encoding="utf-8") as fh:
            return json.load(fh)

    # ------------------------------------------------------------------ checkpoints
    @staticmethod
    def checkpoint_name(step: int) -> str:
        return f"step_{int(step):09d}"

    def list_checkpoints(self) -> list[Path]:
        """Complete checkpoint directories, oldest first (both files present)."""
        if not self.checkpoints.is_dir():
            return []
        out = [
            p
            for p in self.checkpoints.iterdir()
            if p.is_dir()
            and p.name.startswith("step_")
            and (p / "agent.pt").is_file()
            and (p / "trainer.pt").is_file()
        ]
        return sorted(out, key=lambda p: p.name)

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint: the one ``checkpoints/latest`` names, else the
        highest step found (``None`` if there is none)."""
        pointer = self.checkpoints / "latest"
        if pointer.is_file():
            cand = self.checkpoints / pointer.read_text(encoding="utf-8").strip()
            if (cand / "agent.pt").is_file() and (cand / "trainer.pt").is_file():
                return cand
        found = self.list_checkpoints()
        return found[-1] if found else None

    def write_checkpoint(self, step: int, save_agent, trainer_state: dict, keep: int) -> Path:
        """Write ``agent.pt`` (``save_agent(path)``) and ``trainer.pt`` into a temporary
        directory, rename it to ``step_<step>`` and point ``latest`` at it; keep the newest
        ``keep`` checkpoints."""
        import torch

        self.checkpoints.mkdir(parents=True, exist_ok=True)
        final = self.checkpoints / self.checkpoint_name(step)
        tmp = Path(tempfile.mkdtemp(dir=self.checkpoints, prefix=".tmp_"))
        try:
            save_agent(tmp / "agent.pt")
            torch.save(trainer_state, tmp / "trainer.pt")
            if final.exists():  # an older attempt at the same step (after a resume)
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        atomic_write_text(self.checkpoints / "latest", final.name + "\n")
        ckpts = self.list_checkpoints()
        for old in ckpts[: max(len(ckpts) - keep, 0)]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        for stale in self.checkpoints.glob(".tmp_*"):
            shutil.rmtree(stale, ignore_errors=True)
        return final
