"""What every benchmark records next to its figures: package versions, the machine, the git
revision, and the JSON + markdown pair it writes under ``benchmarks/``."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["versions", "git_revision", "write_results"]


def versions(*packages: str, cpu_count: bool = False, threads: bool = False, git: bool = False):
    """``{"python", "platform", <package>: version | "not installed", ...}`` for ``safegrad``,
    ``torch``, ``numpy`` and ``packages``; with ``cpu_count`` / ``threads`` (torch's intra-op
    threads) / ``git`` (:func:`git_revision`) those too (as strings)."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in dict.fromkeys(("safegrad", "torch", "numpy", *packages)):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    if threads:
        import torch

        out["torch_threads"] = str(torch.get_num_threads())
    if cpu_count:
        out["cpu_count"] = str(os.cpu_count())
    if git:
        out["git"] = git_revision()
    return out


def git_revision() -> str:
    """``<commit>[+dirty]`` of the checkout holding this file, or ``unknown``."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        rev = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def write_results(out: str | Path, stem: str, result: Any, markdown: str) -> tuple[Path, Path]:
    """Write ``<out>/<stem>.json`` and ``<out>/<stem>.md`` (creating ``out``), print where,
    and return both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / f"{stem}.json", out / f"{stem}.md"
    js.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    md.write_text(markdown, encoding="utf-8")
    print(f"wrote {js} and {md}")
    return js, md
