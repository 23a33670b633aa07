#!/usr/bin/env python3
"""Install safegrad into the current Python environment.

    python scripts/install.py            # core: torch, numpy, gymnasium, ... + safegrad
    python scripts/install.py --dev      # + test tools and the reference solvers (baselines)

Where no torch is installed yet and no NVIDIA GPU is visible, the CPU build of torch is asked
for explicitly (``torch==2.13.0``, or ``$SAFEGRAD_TORCH_SPEC``; add a wheel index with
``$SAFEGRAD_TORCH_INDEX``), so that pip never downloads a multi-GB CUDA build by accident.
With a GPU, or with torch already installed, the project's torch range decides.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_CPU_SPEC = "torch==2.13.0"
QPTH_SPEC = "qpth==0.0.18"


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.check_call(cmd)


def has_nvidia_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", action="store_true", help="also install tests + baselines")
    parser.add_argument("--baselines", action="store_true", help="install reference solvers")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args()
    quiet = ["-q"] if args.quiet or os.environ.get("CI") else []

    if importlib.util.find_spec("torch") is None and not has_nvidia_gpu():
        spec = os.environ.get("SAFEGRAD_TORCH_SPEC", TORCH_CPU_SPEC)
        index = os.environ.get("SAFEGRAD_TORCH_INDEX")
        pip(*quiet, spec, *(["--index-url", index] if index else []))

    extras = []
    if args.dev:
        extras += ["dev", "baselines"]
    elif args.baselines:
        extras += ["baselines"]
    target = f"{ROOT}[{','.join(extras)}]" if extras else str(ROOT)
    pip(*quiet, "-e", target)
    if args.dev or args.baselines:
        # qpth's metadata pins numpy<2 although it only needs torch; see pyproject.toml.
        pip(*quiet, "--no-deps", QPTH_SPEC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
