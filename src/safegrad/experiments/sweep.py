"""Grids of runs (tasks x algorithms x safeguards x seeds x any config key), on a local process
pool or a Ray cluster; finished runs are skipped and interrupted ones resumed on re-launch
(``docs/cli.md``; OmniSafe's experiment grid).

Sweep file (YAML)::

    preset: ../configs/runs/pendulum_shac_raymask.yaml   # optional base preset(s)
    set:                                                  # fixed overrides of the base
      total_steps: 20000
    grid:                                                 # the product of these lists
      env: [BalancePendulum-v0]
      algo: [shac, sac]
      safeguard: [null, ray-mask]
      algo_config.c_reg: [0.0, 0.1]
      seed: [0, 1, 2]
    out: runs/my_sweep

Run directories: ``OUT/<env>__<algo>__<safeguard>[__key=value...]/seed<seed>``.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from safegrad.experiments.config import (
    ConfigError,
    TrainConfig,
    _merge,
    apply_override,
    read_preset,
    yaml_load,
)
from safegrad.experiments.rundir import RunDir, atomic_write_json

__all__ = ["SweepJob", "expand_grid", "load_sweep_file", "run_sweep", "run_job"]

_FIRST = ("env", "algo", "safeguard", "safeguard_side")
_SWEEP_KEYS = ("preset", "set", "grid", "out")


@dataclasses.dataclass
class SweepJob:
    """One run of a sweep: its directory and resolved config."""

    run_dir: Path
    config: TrainConfig


def _short(key: str) -> str:
    return key.split(".")[-1]


def _value_text(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "x".join(str(x) for x in v)
    return "none" if v is None else str(v)


def expand_grid(
    base: Mapping[str, Any],
    grid: Mapping[str, Sequence[Any]],
    out: str | Path,
) -> list[SweepJob]:
    """The jobs of ``grid`` (key -> list of values) applied to the raw config mapping ``base``.

    Every combination is validated up front (:class:`ConfigError` names the bad one).
    """
    out = Path(out).absolute()
    for k, vals in grid.items():
        if isinstance(vals, (str, bytes)) or not isinstance(vals, Sequence) or not vals:
            raise ConfigError(f"grid.{k} must be a non-empty list of values, got {vals!r}")
    keys = [k for k in _FIRST if k in grid]
    keys += [k for k in grid if k not in _FIRST and k != "seed"]
    if "seed" in grid:
        keys.append("seed")
    jobs: list[SweepJob] = []
    names: set[Path] = set()
    for combo in itertools.product(*(grid[k] for k in keys)):
        data = copy.deepcopy(dict(base))
        for k, v in zip(keys, combo):
            if k == "algo" and data.get("algo") not in (None, v):
                data.pop("algo_config", None)
            apply_override(data, k, v)
        data.pop("name", None)
        try:
            cfg = TrainConfig.from_dict(data).resolved()
            cfg.validate()
        except (ConfigError, TypeError, ValueError, ImportError) as err:
            what = ", ".join(f"{k}={v!r}" for k, v in zip(keys, combo))
            raise ConfigError(f"sweep combination ({what}): {err}") from None
        sg = cfg.safeguard or "none"
        if cfg.safeguard and cfg.safeguard_side == "policy":
            sg += "-policy"
        group = f"{cfg.env}__{cfg.algo}__{sg}"
        extra = [
            f"{_short(k)}={_value_text(v)}"
            for k, v in zip(keys, combo)
            if k not in _FIRST and k != "seed"
        ]
        if extra:
            group += "__" + "__".join(extra)
        run_dir = out / group / f"seed{cfg.seed}"
        if run_dir in names:
            raise ConfigError(f"two sweep combinations map to the same run directory {run_dir}")
        names.add(run_dir)
        cfg = dataclasses.replace(cfg, name=f"{group}__seed{cfg.seed}")
        jobs.append(SweepJob(run_dir, cfg))
    return jobs


def load_sweep_file(path: str | Path) -> tuple[dict[str, Any], dict[str, list[Any]], str | None]:
    """``(base raw config, grid, out)`` of a sweep YAML file (module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {str(path)!r} does not exist")
    data = yaml_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a sweep file must be a mapping")
    unknown = sorted(set(data) - set(_SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown sweep key(s) {unknown}; valid: {list(_SWEEP_KEYS)}")
    base: dict[str, Any] = {}
    presets = data.get("preset") or []
    for p in [presets] if isinstance(presets, str) else presets:
        pp = Path(p) if Path(p).is_absolute() else path.parent / p
        base = _merge(base, read_preset(pp, base))
    for k, v in (data.get("set") or {}).items():
        apply_override(base, k, v)
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise ConfigError(f"{path}: grid must be a mapping key -> list of values")
    out = data.get("out")
    if out is not None and not Path(out).is_absolute():
        out = str(path.parent / out)
    return base, grid, out


def run_job(config: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """Run (or resume, or skip if finished) one sweep job; never raises (the status says)."""
    rd = RunDir(run_dir)
    try:
        if rd.is_finished():
            s = rd.read_summary()
            return {"run_dir": run_dir, "status": "skipped", "final_return": s["final_return"]}
        from safegrad.experiments.train import train

        cfg = TrainConfig.from_dict(config)
        resume = rd.exists()
        s = train(cfg, run_dir, resume=resume, quiet=True)
        status = "resumed" if resume else "finished"
        return {"run_dir": run_dir, "status": status, "final_return": s["final_return"]}
    except Exception as err:  # noqa: BLE001 - a failed run must not stop the sweep
        return {
            "run_dir": run_dir,
            "status": "failed",
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(),
        }


def _print(quiet: bool, msg: str) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def run_sweep(
    jobs: Sequence[SweepJob],
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    out: str | Path | None = None,
    quiet: bool = False,
) -> list[dict[str, Any]]:
    """Run ``jobs``: finished runs are skipped, started ones resumed.

    Args:
        workers: local processes (1: in this process, one after another).
        backend: ``local`` (process pool, ``spawn``) or ``ray`` (one Ray task per run,
            ``num_cpus`` = the run's threads; needs ``pip install 'safegrad[ray]'``).
        address: Ray cluster address (``auto``, ``ray://host:10001``); ``None`` starts a local
            Ray instance.  Run directories must be on storage the workers share.
        out: where to write ``sweep_status.json`` (default: none).

    Returns:
        one status dict per job (``run_dir``, ``status``: finished / resumed / skipped /
        failed, ``final_return`` or ``error``).
    """
    if backend not in ("local", "ray"):
        raise ValueError(f"backend={backend!r}; expected 'local' or 'ray'")
    if workers < 1:
        raise ValueError(f"workers={workers} must be >= 1")
    todo = []
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    for i, job in enumerate(jobs):
        if RunDir(job.run_dir).is_finished():
            results[i] = {
                "run_dir": str(job.run_dir),
                "status": "skipped",
                "final_return": RunDir(job.run_dir).read_summary()["final_return"],
            }
        else:
            todo.append(i)
    _print(quiet, f"sweep: {len(jobs)} runs, {len(jobs) - len(todo)} finished (skipped)")
    args = [(jobs[i].config.to_dict(), str(jobs[i].run_dir)) for i in todo]
    if backend == "ray":
        done = _run_ray(args, jobs, todo, address, quiet)
    elif workers == 1 or len(todo) <= 1:
        done = []
        for (cfg, rd), i in zip(args, todo):
            _print(quiet, f"  running {jobs[i].config.name}")
            done.append(run_job(cfg, rd))
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=mp.get_context("spawn")
        ) as pool:
            futs = {pool.submit(run_job, cfg, rd): k for k, (cfg, rd) in enumerate(args)}
            done_map: dict[int, dict[str, Any]] = {}
            for f in cf.as_completed(futs):
                k = futs[f]
                done_map[k] = f.result()
                _print(quiet, f"  {done_map[k]['status']}: {jobs[todo[k]].config.name}")
            done = [done_map[k] for k in range(len(args))]
    for i, r in zip(todo, done):
        results[i] = r
    for r in results:
        if r and r["status"] == "failed":
            _print(quiet, f"FAILED {r['run_dir']}: {r['error']}")
    if out is not None:
        atomic_write_json(Path(out) / "sweep_status.json", results)
    return [r for r in results if r is not None]


def _run_ray(
    args: list[tuple[dict[str, Any], str]],
    jobs: Sequence[SweepJob],
    todo: list[int],
    address: str | None,
    quiet: bool,
) -> list[dict[str, Any]]:
    try:
        import ray
    except ImportError as err:
        raise RuntimeError(
            "--backend ray needs Ray: pip install 'safegrad[ray]' (or run with the default "
            "local backend)"
        ) from err
    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": not quiet}
        if address is not None:
            kw["address"] = address
        ray.init(**kw)
        started = True
    try:
        remote = ray.remote(run_job)
        refs = [
            remote.options(num_cpus=int(jobs[i].config.threads or 1)).remote(cfg, rd)
            for (cfg, rd), i in zip(args, todo)
        ]
        index = {ref: k for k, ref in enumerate(refs)}
        out: dict[int, dict[str, Any]] = {}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                k = index[ref]
                out[k] = ray.get(ref)
                _print(quiet, f"  {out[k]['status']}: {jobs[todo[k]].config.name}")
        return [out[k] for k in range(len(refs))]
    finally:
        if started:
            ray.shutdown()
