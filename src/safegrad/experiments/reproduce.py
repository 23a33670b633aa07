"""``safegrad reproduce analytic-gradients``: the experiment grid of paper A and its report
(spec A §6 protocol, §7 results, §8.1 hyper-parameters; issue 9).

The grid (spec A §6-§7): tasks {BalancePendulum, BalanceQuadrotor, ManageHousehold} x
algorithms {SHAC, SAC, PPO} x safeguards {none (NP), boundary projection (BP), ray mask (RM)},
plus the SHAC variants of Tables 4-5 / §7.5 {BP-Reg, RM-Reg, RM-PT, HRM, HRM-Reg, ORM}: 15 cells
per task, 45 cells, 10 seeds each at the paper budget (450 runs).  A cell's id names its paper
row, ``"<Task>/<ALG>/<variant>"`` (``"Pendulum/SHAC/RM-Reg"``, ``"Energy/SAC/NP"``; the paper
calls the household task "Energy System").

Every run is an ordinary :mod:`safegrad.experiments.sweep` job with the sweep's directory layout
``OUT/<env>__<algo>__<safeguard>[__c_reg=0.1][__grad_mode=passthrough][__centre=orthogonal]
/seed<k>``, so re-launching skips finished runs and resumes interrupted ones, and runs made with
``safegrad sweep`` (same layout) can be dropped in (``--import``).

Budgets (:data:`BUDGETS`):

* ``paper``: spec A §6 -- 1e5 / 2e5 / 1e6 interactions with 8 / 16 / 8 envs, evaluation every
  >= 2 500 / 5 000 / 10 000 interactions (one episode, reset seed 0), 10 seeds, the paper-era
  presets ``configs/<algo>_<task>.yaml`` (§8.1).
* ``small``: the same grid and presets at a budget that takes minutes per task on 2 CPU cores:
  :data:`SMALL_FRACTION` of the paper's interactions, SAC's ``learning_starts`` scaled by the
  same fraction (so it still learns for most of the run), 3 evaluations per run, 1 seed by
  default.  PPO keeps its paper rollout length, so a small PPO run is one PPO iteration (its
  budget is rounded up to whole iterations), and a small household SHAC run is one learning
  episode (550 x 8 interactions; its 5 000 critic mini-batch steps on 512-unit networks take
  about a minute on one core).  Meant for checking the pipeline, the safety counts and the
  timing (the report extrapolates each cell's paper-budget wall time), not the returns.
* ``tiny``: seconds per run for tests/CI (short episodes, 16-unit networks, a few updates).

The report (:func:`write_report`, ``docs/reproductions/analytic-gradients.md``) puts the paper's
numbers (:data:`PAPER_TABLE2` ... :data:`PAPER_TIMING`, transcribed from spec A §7.1-§7.6) beside
ours, in the paper's layout, and works on a partially finished grid.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import math
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from safegrad.experiments.config import (
    ConfigError,
    TrainConfig,
    _merge,
    apply_override,
    read_preset,
)
from safegrad.experiments.rundir import RunDir, atomic_write_json, atomic_write_text
from safegrad.experiments.sweep import SweepJob, run_sweep

__all__ = [
    "Task",
    "Variant",
    "Cell",
    "Budget",
    "PaperRow",
    "TASKS",
    "ALGOS",
    "VARIANTS",
    "BUDGETS",
    "PAPER_TABLE2",
    "PAPER_TABLE3",
    "PAPER_TABLE4",
    "PAPER_TABLE5",
    "PAPER_ARCHIVE",
    "PAPER_TIMING",
    "grid_cells",
    "cell_config",
    "build_jobs",
    "import_runs",
    "collect",
    "render_report",
    "write_report",
    "main",
]

EXPERIMENT = "analytic-gradients"


# =============================================================================================
# the grid
# =============================================================================================


@dataclass(frozen=True)
class Task:
    """A task of the paper: ``key`` (``pendulum``), env id, the paper's label, preset suffix."""

    key: str
    env_id: str
    label: str
    num_envs: int
    steps: int
    eval_every: int


#: spec A §5-§6: env id, the paper's name, N, budget (interactions over the N envs), cadence
TASKS: dict[str, Task] = {
    "pendulum": Task("pendulum", "BalancePendulum-v0", "Pendulum", 8, 100_000, 2_500),
    "quadrotor": Task("quadrotor", "BalanceQuadrotor-v0", "Quadrotor", 16, 200_000, 5_000),
    "household": Task("household", "ManageHousehold-v0", "Energy", 8, 1_000_000, 10_000),
}
_TASK_ALIASES = {"energy": "household", "energy-system": "household"}
ALGOS = ("shac", "sac", "ppo")


@dataclass(frozen=True)
class Variant:
    """A safeguard configuration of spec A §3.7: the safeguard name, its constructor options and
    the algorithm options (``c_reg``); ``shac_only`` for the SHAC-specific variants."""

    label: str
    safeguard: str | None
    safeguard_kwargs: tuple[tuple[str, Any], ...] = ()
    algo_config: tuple[tuple[str, Any], ...] = ()
    shac_only: bool = False
    description: str = ""


#: spec A §3.7 variant names (the paper's labels) -> configuration
VARIANTS: dict[str, Variant] = {
    v.label: v
    for v in (
        Variant("NP", None, description="no safeguard (the monitor still counts violations)"),
        Variant("BP", "boundary-projection", description="boundary projection, Eq. 12"),
        Variant("RM", "ray-mask", description="linear ray mask, zonotopic centre"),
        Variant(
            "BP-Reg",
            "boundary-projection",
            algo_config=(("c_reg", 0.1),),
            shac_only=True,
            description="BP + regularisation c_reg = 0.1 (Eq. 17)",
        ),
        Variant(
            "RM-Reg",
            "ray-mask",
            algo_config=(("c_reg", 0.1),),
            shac_only=True,
            description="RM + regularisation c_reg = 0.1",
        ),
        Variant(
            "RM-PT",
            "ray-mask",
            safeguard_kwargs=(("grad_mode", "passthrough"),),
            shac_only=True,
            description="RM with the pass-through gradient (§3.5)",
        ),
        Variant(
            "HRM",
            "ray-mask-tanh",
            shac_only=True,
            description="hyperbolic (tanh) ray mask",
        ),
        Variant(
            "HRM-Reg",
            "ray-mask-tanh",
            algo_config=(("c_reg", 0.1),),
            shac_only=True,
            description="HRM + regularisation c_reg = 0.1",
        ),
        Variant(
            "ORM",
            "ray-mask",
            safeguard_kwargs=(("centre", "orthogonal"),),
            shac_only=True,
            description="linear RM with the orthogonal centre (Table 5)",
        ),
    )
}
BASE_VARIANTS = ("NP", "BP", "RM")
SHAC_VARIANTS = ("NP", "BP", "BP-Reg", "RM", "RM-Reg", "RM-PT", "HRM", "HRM-Reg", "ORM")
_VARIANT_ALIASES = {"none": "NP", "no-safeguard": "NP", "np": "NP"}


@dataclass(frozen=True)
class Cell:
    """One configuration of the grid (a paper table row): task x algorithm x variant."""

    task: str
    algo: str
    variant: str

    @property
    def id(self) -> str:
        """``"Pendulum/SHAC/RM-Reg"``."""
        return f"{TASKS[self.task].label}/{self.algo.upper()}/{self.variant}"

    @property
    def spec(self) -> Variant:
        return VARIANTS[self.variant]

    @property
    def group(self) -> str:
        """The sweep directory name ``<env>__<algo>__<safeguard>[__key=value ...]``."""
        v = self.spec
        name = f"{TASKS[self.task].env_id}__{self.algo}__{v.safeguard or 'none'}"
        for k, val in (*v.algo_config, *v.safeguard_kwargs):
            name += f"__{k}={val}"
        return name

    def run_dir(self, out: str | Path, seed: int) -> Path:
        return Path(out) / self.group / f"seed{seed}"


def _task_key(name: str) -> str:
    low = name.lower()
    low = _TASK_ALIASES.get(low, low)
    if low in TASKS:
        return low
    for k, t in TASKS.items():
        if name in (t.env_id, t.label) or low == t.label.lower():
            return k
    raise ConfigError(
        f"unknown task {name!r}; expected one of {list(TASKS)} (or {list(_TASK_ALIASES)}, an env "
        f"id such as {TASKS['pendulum'].env_id!r})"
    )


def grid_cells(
    tasks: Iterable[str] | None = None, patterns: Iterable[str] | None = None
) -> list[Cell]:
    """The cells of the paper's grid, in table order (task, algorithm, variant), restricted to
    ``tasks`` (keys, labels or env ids) and to cell ids matching any of ``patterns`` (shell
    patterns, case-insensitive: ``"Pendulum/SHAC/*"``, ``"*/SAC/RM"``; ``none`` is ``NP``).
    A pattern that matches no cell of the chosen tasks raises :class:`ConfigError`."""
    keys = list(TASKS) if tasks is None else [_task_key(t) for t in tasks]
    cells = [
        Cell(t, a, v)
        for t in TASKS
        if t in keys
        for a in ALGOS
        for v in (SHAC_VARIANTS if a == "shac" else BASE_VARIANTS)
    ]
    if patterns:
        pats = []
        for p in patterns:
            parts = p.split("/")
            if len(parts) == 3:
                parts[2] = _VARIANT_ALIASES.get(parts[2].lower(), parts[2])
            pats.append("/".join(parts).lower())
        for p in pats:
            if not any(fnmatch.fnmatchcase(c.id.lower(), p) for c in cells):
                raise ConfigError(
                    f"--cells pattern {p!r} matches no cell of the chosen tasks; cell ids look "
                    f"like {cells[0].id!r} (Task/ALG/variant, variants {list(VARIANTS)})"
                    if cells
                    else f"--cells pattern {p!r}: no tasks chosen"
                )
        cells = [c for c in cells if any(fnmatch.fnmatchcase(c.id.lower(), p) for p in pats)]
    return cells


# =============================================================================================
# the paper's numbers (spec A §7.1-§7.6)
# =============================================================================================


@dataclass(frozen=True)
class PaperRow:
    """One row of Tables 2, 3 or 5: "# Step" mean and 95 % CI, final return mean and 95 % CI
    (``None``: not reported), and the stuck runs ``(k, n)``."""

    step: float
    step_ci: tuple[float, float] | None
    ret: float
    ret_ci: tuple[float, float] | None
    stuck: tuple[int, int]


#: spec A §7.1, Table 2 (unsafe training): (task, algo) -> row
PAPER_TABLE2: dict[tuple[str, str], PaperRow] = {
    ("pendulum", "shac"): PaperRow(12_800, (10_808, 15_075), -8, (-8, -8), (1, 10)),
    ("pendulum", "sac"): PaperRow(8_513, (6_260, 10_767), -14, (-15, -12), (0, 10)),
    ("pendulum", "ppo"): PaperRow(81_600, (81_600, 81_600), -596, (-1_174, 300), (0, 10)),
    ("quadrotor", "shac"): PaperRow(20_364, (11_008, 26_983), -157, (-169, -141), (0, 10)),
    ("quadrotor", "sac"): PaperRow(80_628, (59_094, 108_673), -1_046, (-1_856, 167), (0, 10)),
    ("quadrotor", "ppo"): PaperRow(80_640, (44_800, 118_720), -1_710, (-2_141, -1_274), (0, 10)),
    ("household", "shac"): PaperRow(
        259_600, (83_563, 397_466), -114_164, (-146_726, -77_523), (1, 10)
    ),
    ("household", "sac"): PaperRow(674_999, (558_001, 779_998), -5_225, (-9_473, 314), (0, 10)),
    ("household", "ppo"): PaperRow(748_800, (650_880, 855_360), -2_739, (-4_547, 87), (2, 10)),
}

#: spec A §7.2, Table 3 (safeguarded, base variants): (task, variant, algo) -> row
PAPER_TABLE3: dict[tuple[str, str, str], PaperRow] = {
    ("pendulum", "BP", "shac"): PaperRow(23_360, (18_552, 28_167), -8, (-8, -8), (2, 10)),
    ("pendulum", "BP", "sac"): PaperRow(2_504, (2_504, 2_504), -1_083, (-1_105, -1_062), (0, 10)),
    ("pendulum", "BP", "ppo"): PaperRow(80_240, (78_880, 82_960), -10, (-10, -9), (0, 10)),
    ("pendulum", "RM", "shac"): PaperRow(27_392, (20_992, 33_280), -8, (-8, -8), (0, 10)),
    ("pendulum", "RM", "sac"): PaperRow(2_504, (2_504, 2_504), -424, (-463, -386), (0, 10)),
    # "# Step" recomputed from the archive by the spec's authors; no CI available
    ("pendulum", "RM", "ppo"): PaperRow(76_160, None, -12, (-12, -11), (0, 10)),
    ("quadrotor", "BP", "shac"): PaperRow(45_683, (17_048, 76_505), -333, (-400, -261), (0, 10)),
    ("quadrotor", "BP", "sac"): PaperRow(110_176, (90_131, 123_196), -338, (-366, -308), (0, 10)),
    ("quadrotor", "BP", "ppo"): PaperRow(118_720, (89_600, 152_320), -402, (-451, -349), (0, 10)),
    ("quadrotor", "RM", "shac"): PaperRow(67_148, (33_560, 101_273), -251, (-310, -195), (0, 10)),
    ("quadrotor", "RM", "sac"): PaperRow(80_128, (59_094, 107_684), -377, (-417, -338), (0, 10)),
    ("quadrotor", "RM", "ppo"): PaperRow(127_680, (107_520, 152_375), -379, (-418, -330), (0, 10)),
    ("household", "BP", "shac"): PaperRow(
        366_960, (224_367, 514_865), -89_167, (-111_948, -61_131), (0, 10)
    ),
    ("household", "BP", "sac"): PaperRow(
        491_000, (305_975, 677_174), -150_179, (-246_975, -35_899), (0, 10)
    ),
    ("household", "BP", "ppo"): PaperRow(
        661_577, (460_800, 908_434), -2_293, (-3_402, -867), (3, 10)
    ),
    ("household", "RM", "shac"): PaperRow(
        709_280, (593_516, 828_520), -8_793, (-12_758, -3_282), (0, 10)
    ),
    ("household", "RM", "sac"): PaperRow(
        355_999, (164_925, 504_023), -1_843, (-2_429, -1_216), (0, 10)
    ),
    ("household", "RM", "ppo"): PaperRow(
        548_352, (336_384, 794_880), -339_006, (-489_669, -210_190), (0, 10)
    ),
}

#: spec A §7.3, Table 4 (stuck SHAC runs): variant -> task -> (k, n)
PAPER_TABLE4: dict[str, dict[str, tuple[int, int]]] = {
    "BP": {"pendulum": (2, 10), "quadrotor": (0, 10), "household": (0, 10)},
    "BP-Reg": {"pendulum": (1, 10), "quadrotor": (0, 10), "household": (0, 10)},
    "RM": {"pendulum": (0, 10), "quadrotor": (0, 10), "household": (0, 10)},
    "RM-Reg": {"pendulum": (0, 10), "quadrotor": (0, 10), "household": (0, 10)},
    "RM-PT": {"pendulum": (2, 10), "quadrotor": (1, 10), "household": (2, 10)},
    "HRM": {"pendulum": (1, 10), "quadrotor": (0, 10), "household": (0, 10)},
    "HRM-Reg": {"pendulum": (0, 10), "quadrotor": (0, 10), "household": (0, 10)},
}
#: Table 4's row labels (safeguard, variant)
TABLE4_ROWS = {
    "BP": ("BP", "Base"),
    "BP-Reg": ("BP", "Regularised"),
    "RM": ("RM", "Base"),
    "RM-Reg": ("RM", "Regularised"),
    "RM-PT": ("RM", "Passthrough"),
    "HRM": ("HRM", "Base"),
    "HRM-Reg": ("HRM", "Regularised"),
}

#: spec A §7.4, Table 5 (safe-centre approximation, SHAC + linear RM): (task, variant) -> row;
#: "Zonotopic" is the RM cell, "Orthogonal" the ORM cell
PAPER_TABLE5: dict[tuple[str, str], PaperRow] = {
    ("pendulum", "RM"): PaperRow(27_392, (20_480, 33_280), -8, (-8, -8), (0, 10)),
    ("pendulum", "ORM"): PaperRow(30_208, (18_432, 38_912), -8, (-8, -8), (0, 10)),
    ("quadrotor", "RM"): PaperRow(67_148, (31_909, 97_448), -251, (-307, -193), (0, 10)),
    ("quadrotor", "ORM"): PaperRow(31_372, (6_577, 57_241), -432, (-478, -373), (0, 10)),
    ("household", "RM"): PaperRow(709_280, (577_247, 836_462), -8_793, (-12_609, -3_195), (0, 10)),
    ("household", "ORM"): PaperRow(
        109_560, (77_880, 141_240), -79_594, (-89_156, -70_463), (0, 10)
    ),
}


@dataclass(frozen=True)
class ArchiveRow:
    """A row of spec A §7.5 (all SHAC variants, recomputed from the archive): kept runs, mean
    final return and 95 % CI (``None`` for the Energy System: not given), median, min, max,
    mean "# Step"."""

    n: int
    mean: float
    ci: tuple[float, float] | None
    median: float
    min: float
    max: float
    step: float


def _arch(n, mean, ci, med, lo, hi, step) -> ArchiveRow:
    return ArchiveRow(n, mean, ci, med, lo, hi, step)


#: spec A §7.5: (task, variant) -> row (SHAC only)
PAPER_ARCHIVE: dict[tuple[str, str], ArchiveRow] = {
    ("pendulum", "NP"): _arch(9, -8.8, (-8.8, -8.7), -8.8, -8.9, -8.6, 12_800),
    ("pendulum", "BP"): _arch(8, -8.4, (-8.4, -8.4), -8.4, -8.4, -8.3, 23_360),
    ("pendulum", "BP-Reg"): _arch(9, -8.4, (-8.4, -8.4), -8.4, -8.5, -8.3, 22_471),
    ("pendulum", "RM"): _arch(10, -8.4, (-8.5, -8.4), -8.4, -8.5, -8.3, 27_392),
    ("pendulum", "RM-Reg"): _arch(10, -8.5, (-8.5, -8.4), -8.5, -8.6, -8.4, 31_232),
    ("pendulum", "RM-PT"): _arch(8, -8.5, (-8.6, -8.5), -8.5, -8.6, -8.4, 40_320),
    ("pendulum", "HRM"): _arch(9, -11.8, (-13.5, -9.9), -10.3, -18.2, -9.5, 37_831),
    ("pendulum", "HRM-Reg"): _arch(10, -13.8, (-18.4, -4.8), -9.4, -53.4, -9.0, 49_664),
    ("pendulum", "ORM"): _arch(10, -8.5, (-8.6, -8.4), -8.4, -9.0, -8.3, 30_208),
    ("quadrotor", "NP"): _arch(10, -157.5, (-169.2, -142.4), -149.7, -221.1, -135.5, 20_365),
    ("quadrotor", "BP"): _arch(10, -333.6, (-401.1, -265.7), -367.0, -569.6, -182.2, 45_683),
    ("quadrotor", "BP-Reg"): _arch(10, -177.1, (-216.1, -137.4), -188.6, -274.5, -86.2, 34_675),
    ("quadrotor", "RM"): _arch(10, -251.7, (-305.7, -194.8), -219.2, -374.3, -156.9, 67_149),
    ("quadrotor", "RM-Reg"): _arch(10, -228.1, (-303.3, -124.9), -166.0, -518.8, -134.8, 15_962),
    ("quadrotor", "RM-PT"): _arch(9, -156.5, (-173.2, -138.8), -152.5, -199.7, -117.9, 55_040),
    ("quadrotor", "HRM"): _arch(10, -372.4, (-427.9, -306.6), -338.3, -559.5, -246.8, 38_528),
    ("quadrotor", "HRM-Reg"): _arch(10, -170.6, (-206.8, -117.6), -159.5, -390.6, -103.8, 23_667),
    ("quadrotor", "ORM"): _arch(10, -432.7, (-485.8, -372.1), -380.4, -572.5, -333.2, 31_373),
    ("household", "NP"): _arch(9, -114_165, None, -97_170, -223_589, -52_002, 259_600),
    ("household", "BP"): _arch(10, -89_168, None, -74_585, -178_119, -48_601, 366_960),
    ("household", "BP-Reg"): _arch(10, -83_142, None, -85_976, -108_792, -63_364, 324_720),
    ("household", "RM"): _arch(10, -8_794, None, -6_777, -30_072, -1_993, 709_280),
    ("household", "RM-Reg"): _arch(10, -13_771, None, -7_541, -82_848, -1_060, 718_080),
    ("household", "RM-PT"): _arch(8, -44_347, None, -23_114, -114_812, -5_099, 606_100),
    ("household", "HRM"): _arch(10, -8_565, None, -9_486, -12_989, -912, 504_680),
    ("household", "HRM-Reg"): _arch(10, -7_973, None, -7_205, -22_136, -1_641, 669_240),
    ("household", "ORM"): _arch(10, -79_594, None, -80_952, -101_073, -49_000, 109_560),
}

#: spec A §7.6 (Table 6, wall-clock seconds of one training run; budget and hardware not
#: recorded): (task, algo) -> {variant: seconds}
PAPER_TIMING: dict[tuple[str, str], dict[str, float]] = {
    ("pendulum", "shac"): {"NP": 56, "BP": 285, "RM": 552},
    ("pendulum", "sac"): {"NP": 65, "BP": 304, "RM": 474},
    ("pendulum", "ppo"): {"NP": 59, "BP": 268, "RM": 485},
    ("quadrotor", "shac"): {"NP": 60, "BP": 973, "RM": 12_939},
    ("quadrotor", "ppo"): {"NP": 61, "BP": 163, "RM": 410},
}


def paper_row(cell: Cell) -> PaperRow | None:
    """The paper's Table 2 / 3 / 5 row of ``cell`` (``None`` if the paper has none)."""
    if cell.variant == "NP":
        return PAPER_TABLE2.get((cell.task, cell.algo))
    if cell.variant in BASE_VARIANTS:
        return PAPER_TABLE3.get((cell.task, cell.variant, cell.algo))
    if cell.algo == "shac":
        return PAPER_TABLE5.get((cell.task, cell.variant))
    return None


# =============================================================================================
# budgets
# =============================================================================================

#: the fraction of the paper's interactions a ``small`` run gets, per task
SMALL_FRACTION: dict[str, float] = {"pendulum": 0.1, "quadrotor": 0.04, "household": 0.0044}
#: evaluations per ``small`` run (the cadence is the budget divided by this)
SMALL_EVALS = 3
#: tiny: per-algorithm hyper-parameter overrides (seconds per run)
_TINY_ALGO: dict[str, dict[str, Any]] = {
    "shac": {
        "horizon": 4,
        "actor_hidden": [16, 16],
        "critic_hidden": [16, 16],
        "vf_num_fits": 2,
        "vf_fit_num_batches": 1,
    },
    "sac": {
        "actor_hidden": [16, 16],
        "critic_hidden": [16, 16],
        "batch_size": 8,
        "buffer_size": 256,
        "learning_starts": 2,
    },
    "ppo": {
        "horizon": 4,
        "actor_hidden": [16, 16],
        "critic_hidden": [16, 16],
        "num_epochs": 1,
        "num_batches": 2,
    },
}


@dataclass(frozen=True)
class Budget:
    """How big the runs of the grid are.

    Attributes:
        name: ``paper`` | ``small`` | ``tiny``.
        seeds: default number of seeds (0 .. seeds-1).
        steps, num_envs, eval_every: per task key.
        env_kwargs: per task key (e.g. shorter episodes for ``tiny``).
        tensorboard: write TensorBoard events.
        checkpoint_every: per task key.
        description: one line for ``--help`` and the report.
    """

    name: str
    seeds: int
    steps: dict[str, int]
    num_envs: dict[str, int]
    eval_every: dict[str, int]
    env_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    tensorboard: bool = True
    checkpoint_every: dict[str, int] = field(default_factory=dict)
    description: str = ""

    def algo_overrides(self, algo: str, task: str, preset: dict[str, Any]) -> dict[str, Any]:
        """Algorithm hyper-parameters this budget changes (on top of the §8.1 preset)."""
        if self.name == "tiny":
            return dict(_TINY_ALGO[algo])
        if self.name == "small" and algo == "sac":
            ls = int(preset.get("learning_starts", 0))
            return {"learning_starts": max(1, round(ls * SMALL_FRACTION[task]))}
        return {}

    def log_every(self, algo: str, task: str) -> int:
        """``progress.csv`` cadence: SAC logs every vector step otherwise (12 500-125 000
        rows at the paper budget), so its rows average ``eval_every / 5`` interactions."""
        if algo == "sac" and self.name != "tiny":
            return max(1, self.eval_every[task] // 5)
        return 0


def _small_steps(task: str) -> int:
    t = TASKS[task]
    return int(round(t.steps * SMALL_FRACTION[task]))


BUDGETS: dict[str, Budget] = {
    "paper": Budget(
        "paper",
        seeds=10,
        steps={k: t.steps for k, t in TASKS.items()},
        num_envs={k: t.num_envs for k, t in TASKS.items()},
        eval_every={k: t.eval_every for k, t in TASKS.items()},
        checkpoint_every={"pendulum": 10_000, "quadrotor": 20_000, "household": 50_000},
        description="spec A §6: 1e5 / 2e5 / 1e6 interactions, 8 / 16 / 8 envs, evaluation every "
        ">= 2 500 / 5 000 / 10 000, 10 seeds",
    ),
    "small": Budget(
        "small",
        seeds=1,
        steps={k: _small_steps(k) for k in TASKS},
        num_envs={k: t.num_envs for k, t in TASKS.items()},
        eval_every={k: _small_steps(k) // SMALL_EVALS for k in TASKS},
        tensorboard=False,
        checkpoint_every={k: _small_steps(k) // 2 for k in TASKS},
        description="minutes per task on 2 cores: "
        + " / ".join(f"{_small_steps(k):,}" for k in TASKS)
        + f" interactions (paper envs), {SMALL_EVALS} evaluations, SAC learning_starts scaled, "
        "PPO one iteration, 1 seed",
    ),
    "tiny": Budget(
        "tiny",
        seeds=1,
        steps={k: 32 for k in TASKS},
        num_envs={k: 2 for k in TASKS},
        eval_every={k: 16 for k in TASKS},
        env_kwargs={k: {"max_episode_steps": 12} for k in TASKS},
        tensorboard=False,
        checkpoint_every={k: 0 for k in TASKS},
        description="seconds per run (tests/CI): 32 interactions, 2 envs, 12-step episodes, "
        "16-unit networks",
    ),
}


# =============================================================================================
# configs and jobs
# =============================================================================================


def default_configs_dir() -> Path:
    """``configs/`` of the source checkout (the paper-era presets, spec A §8.1), else
    ``./configs``."""
    here = Path(__file__).resolve().parents[3] / "configs"
    return here if here.is_dir() else Path("configs")


def _preset_path(configs: Path, algo: str, task: str) -> Path:
    p = Path(configs) / f"{algo}_{task}.yaml"
    if not p.is_file():
        raise ConfigError(
            f"preset {str(p)!r} not found: --configs must name the directory holding the "
            f"paper-era presets <algo>_<task>.yaml (spec A §8.1), e.g. the repository's configs/"
        )
    return p


def cell_config(
    cell: Cell,
    budget: Budget,
    seed: int,
    configs: str | Path | None = None,
    threads: int = 1,
    device: str = "cpu",
) -> TrainConfig:
    """The resolved, validated :class:`TrainConfig` of one run of ``cell``: the §8.1 preset of
    (algorithm, task), the budget (§6 or smaller), the variant's safeguard options, the seed."""
    configs = default_configs_dir() if configs is None else Path(configs)
    task = TASKS[cell.task]
    data = read_preset(_preset_path(configs, cell.algo, cell.task), {"env": task.env_id})
    data = _merge(data, {"env": task.env_id, "algo": cell.algo})
    preset_algo = dict(data.get("algo_config") or {})
    v = cell.spec
    items: list[tuple[str, Any]] = [
        ("num_envs", budget.num_envs[cell.task]),
        ("total_steps", budget.steps[cell.task]),
        ("eval_every", budget.eval_every[cell.task]),
        ("seed", int(seed)),
        ("device", device),
        ("threads", int(threads)),
        ("tensorboard", budget.tensorboard),
        ("progress_bar", False),
        ("log_every", budget.log_every(cell.algo, cell.task)),
        ("safeguard", v.safeguard),
        ("safeguard_side", "env"),
    ]
    if cell.task in budget.checkpoint_every:
        items.append(("checkpoint_every", budget.checkpoint_every[cell.task]))
    for k, val in budget.env_kwargs.get(cell.task, {}).items():
        items.append((f"env_kwargs.{k}", val))
    for k, val in budget.algo_overrides(cell.algo, cell.task, preset_algo).items():
        items.append((f"algo_config.{k}", val))
    for k, val in v.algo_config:
        items.append((f"algo_config.{k}", val))
    for k, val in v.safeguard_kwargs:
        items.append((f"safeguard_kwargs.{k}", val))
    for k, val in items:
        apply_override(data, k, val)
    data["name"] = f"{cell.group}__seed{seed}"
    try:
        cfg = TrainConfig.from_dict(data).resolved()
        cfg.validate()
    except (ConfigError, TypeError, ValueError) as err:
        raise ConfigError(f"cell {cell.id} seed {seed}: {err}") from None
    return cfg


@dataclass
class Job:
    """A run of the grid: its cell, seed and the sweep job (directory + config)."""

    cell: Cell
    seed: int
    sweep: SweepJob


def build_jobs(
    cells: Sequence[Cell],
    budget: Budget,
    seeds: Sequence[int],
    out: str | Path,
    configs: str | Path | None = None,
    threads: int = 1,
    device: str = "cpu",
) -> list[Job]:
    """One :class:`Job` per (cell, seed), in table order."""
    out = Path(out).absolute()
    jobs = []
    for c in cells:
        first = None
        for s in seeds:
            if first is None:
                cfg = first = cell_config(c, budget, s, configs, threads, device)
            else:  # validation does not depend on the seed
                cfg = dataclasses.replace(first, seed=int(s), name=f"{c.group}__seed{s}")
            jobs.append(Job(c, int(s), SweepJob(c.run_dir(out, s), cfg)))
    return jobs


#: config keys that must agree for a finished run to be reused (``--import``); eval_every may
#: differ by less than one learning iteration (the same evaluation steps)
_IMPORT_KEYS = (
    "env",
    "num_envs",
    "env_kwargs",
    "algo",
    "safeguard",
    "safeguard_kwargs",
    "safeguard_side",
    "total_steps",
    "seed",
    "dtype",
    "eval_episodes",
    "eval_num_envs",
    "eval_seed",
)


def _iteration_size(cfg: TrainConfig) -> int:
    a = cfg.algo_config_object()
    n = int(cfg.num_envs or 1)
    if cfg.algo in ("shac", "ppo"):
        return int(a.horizon) * n
    return int(getattr(a, "train_freq", 1)) * n


def compatible(stored: TrainConfig, wanted: TrainConfig) -> list[str]:
    """The reasons a stored run's config cannot stand in for ``wanted`` (empty: it can).

    Compared: :data:`_IMPORT_KEYS`, the algorithm's full config (dataclass defaults filled in,
    so ``algo_config: {}`` equals a preset that repeats the defaults) and the evaluation
    cadence up to one learning iteration."""
    why = []
    a, b = stored.to_dict(), wanted.to_dict()
    for k in _IMPORT_KEYS:
        if a.get(k) != b.get(k):
            why.append(f"{k}: {a.get(k)!r} != {b.get(k)!r}")
    if not why:
        try:
            sa = stored.algo_config_object().to_dict()
            sb = wanted.algo_config_object().to_dict()
        except ConfigError as err:
            return [str(err)]
        for k in sorted(set(sa) | set(sb)):
            if k not in ("device",) and sa.get(k) != sb.get(k):
                why.append(f"algo_config.{k}: {sa.get(k)!r} != {sb.get(k)!r}")
        ea, eb = int(stored.eval_every or 0), int(wanted.eval_every or 0)
        if abs(ea - eb) >= _iteration_size(wanted):
            why.append(f"eval_every: {ea} vs {eb} (more than one learning iteration apart)")
    return why


def import_runs(
    jobs: Sequence[Job], sources: Sequence[str | Path], quiet: bool = False
) -> list[tuple[str, str]]:
    """Copy finished runs from other sweep directories into the grid (``--import``).

    For each job without a run directory, ``SOURCE/<group>/seed<k>`` is used if it is finished
    (``summary.json``) and :func:`compatible` with the job's config.  The copy leaves out
    ``checkpoints/`` and ``tb/`` (the run is finished; its numbers are in ``progress.csv`` and
    ``summary.json``).  Returns ``(source, destination)`` of every copy; incompatible runs are
    reported on stderr and left alone."""
    done = []
    for job in jobs:
        dst = job.sweep.run_dir
        if RunDir(dst).exists():
            continue
        for src_root in sources:
            src = Path(src_root) / job.cell.group / f"seed{job.seed}"
            rd = RunDir(src)
            if not rd.is_finished():
                continue
            why = compatible(TrainConfig.from_yaml(rd.config), job.sweep.config)
            if why:
                if not quiet:
                    print(f"not importing {src}: {'; '.join(why)}", file=sys.stderr)
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoints", "tb"))
            done.append((str(src), str(dst)))
            break
    return done


# =============================================================================================
# results
# =============================================================================================


@dataclass
class CellResult:
    """What the run directories of one cell hold."""

    cell: Cell
    seeds: list[int]
    started: int = 0
    finished: int = 0
    stats: Any = None  # analysis.report.GroupStats of the finished runs
    finals_kept: np.ndarray = field(default_factory=lambda: np.empty(0))
    total_steps: int | None = None
    eval_violations: int = 0
    fallbacks: int = 0
    eval_intervention_rate: float = math.nan
    wall_times: list[float] = field(default_factory=list)
    paper_estimate_s: float = math.nan

    @property
    def complete(self) -> bool:
        return self.finished == len(self.seeds)


def _paper_budget_estimate(run: Any, cell: Cell) -> float:
    """Wall time one run of ``cell`` would take at the paper budget on this machine, from a
    finished run at another budget: training seconds per interaction (SAC: separately before
    and after ``learning_starts``) times the paper's interactions, plus seconds per evaluation
    times the paper's number of evaluations."""
    task = TASKS[cell.task]
    steps = run.column("step")
    wall = run.column("wall_time_s")
    ev = np.nan_to_num(run.column("eval_time_s"), nan=0.0)
    if steps.size == 0 or run.summary is None:
        return math.nan
    n_eval = int(np.count_nonzero(~np.isnan(run.column("eval_return"))))
    per_eval = float(ev.sum()) / max(n_eval, 1)
    dwall = np.diff(np.concatenate([[0.0], wall])) - ev
    dstep = np.diff(np.concatenate([[0.0], steps]))
    if steps.size > 2:  # the first row carries the start-up (allocations, first solves)
        dwall[0] = dstep[0] = 0.0
    cfg = run.config
    n_envs = int(cfg.get("num_envs") or task.num_envs)
    algo_cfg = cfg.get("algo_config") or {}
    if cell.algo in ("shac", "ppo"):  # horizon as at the paper budget (small keeps it)
        per_iter = int(algo_cfg.get("horizon", 1)) * n_envs
    else:
        per_iter = int(algo_cfg.get("train_freq", 1)) * n_envs
    n_iter = math.ceil(task.steps / per_iter)
    paper_steps = n_iter * per_iter
    paper_evals = evaluation_count(n_iter, per_iter, task.eval_every)
    if cell.algo == "sac":
        ls_run = int((cfg.get("algo_config") or {}).get("learning_starts", 0)) * n_envs
        ls_paper = _paper_learning_starts(cell.task) * n_envs
        rand = steps <= ls_run
        t_rand = dwall[rand].sum() / max(dstep[rand].sum(), 1.0)
        learn = ~rand
        if not learn.any():
            return math.nan
        t_learn = dwall[learn].sum() / max(dstep[learn].sum(), 1.0)
        train_s = t_rand * min(ls_paper, paper_steps) + t_learn * max(paper_steps - ls_paper, 0)
    else:
        t = dwall.sum() / max(dstep.sum(), 1.0)
        train_s = t * paper_steps
    return float(train_s + per_eval * paper_evals)


def evaluation_count(n_iter: int, per_iter: int, cadence: int) -> int:
    """Evaluations of a run of ``n_iter`` learning iterations of ``per_iter`` interactions
    (spec A §6 / ``docs/cli.md``): after an iteration once at least ``cadence`` interactions
    passed since the last evaluation, and once at the end."""
    n, last = 0, 0
    for i in range(1, n_iter + 1):
        if i * per_iter - last >= cadence:
            n, last = n + 1, i * per_iter
    return n + (last != n_iter * per_iter)


def _paper_learning_starts(task: str) -> int:
    try:
        data = read_preset(_preset_path(default_configs_dir(), "sac", task))
        return int((data.get("algo_config") or {}).get("learning_starts", 0))
    except ConfigError:
        return {"pendulum": 64, "quadrotor": 5_000, "household": 6_000}[task]


def collect(
    out: str | Path,
    cells: Sequence[Cell],
    seeds: Sequence[int],
    stuck_fraction: float = 0.5,
    n_resamples: int = 1000,
) -> dict[str, CellResult]:
    """Read the run directories of ``cells`` x ``seeds`` under ``out`` (cell id -> result).
    Missing and unfinished runs are counted, not errors."""
    from safegrad.analysis.report import group_stats
    from safegrad.analysis.runs import load_run

    res: dict[str, CellResult] = {}
    for c in cells:
        cr = CellResult(c, list(seeds))
        runs = []
        for s in seeds:
            d = c.run_dir(out, s)
            if not (d / "config.yaml").is_file():
                continue
            cr.started += 1
            r = load_run(d)
            runs.append(r)
            if r.finished:
                cr.finished += 1
        fin = [r for r in runs if r.finished and r.curve()[0].size]
        if fin:
            st = group_stats(c.id, fin, stuck_fraction=stuck_fraction, n_resamples=n_resamples)
            cr.stats = st
            cr.finals_kept = np.array([r["final_return"] for r in st.runs if not r["stuck"]])
            cr.total_steps = int(fin[0].config.get("total_steps") or 0)
            cr.eval_violations = int(
                sum(int(r.summary.get("eval_violations_total") or 0) for r in fin)
            )
            cr.fallbacks = int(sum(int(r.summary.get("fallbacks") or 0) for r in fin))
            rates = [float(np.nanmean(r.column("eval_intervention_rate"))) for r in fin]
            rates = [x for x in rates if math.isfinite(x)]
            cr.eval_intervention_rate = float(np.mean(rates)) if rates else math.nan
            cr.wall_times = [float(r.summary.get("wall_time_s") or math.nan) for r in fin]
            est = [_paper_budget_estimate(r, c) for r in fin]
            est = [x for x in est if math.isfinite(x)]
            cr.paper_estimate_s = float(np.mean(est)) if est else math.nan
        res[c.id] = cr
    return res


# =============================================================================================
# report
# =============================================================================================

_DISC_BEGIN = "<!-- discussion:begin (kept when the report is regenerated) -->"
_DISC_END = "<!-- discussion:end -->"
_DISCUSSION_TEMPLATE = """\
_Lead: fill in; this section survives `--report-only` regeneration._

* **Table 2 (unsafe training):** TODO -- differences to the paper and why.
* **Table 3 (safeguarded, base variants):** TODO.
* **Table 4 (stuck runs):** TODO -- our stuck criterion is automatic (docs/cli.md), the paper's
  was manual.
* **Table 5 (safe-centre approximation):** TODO.
* **All SHAC variants (§7.5):** TODO.
* **Wall time:** TODO -- hardware, budget and what dominates our step time.
* **Safety:** TODO -- violations must be 0 in every safeguarded run; NP runs show how often
  unsafe training leaves the safe set.
* **Known differences in the setup:** TODO (environment re-implementations, spec A §9
  pitfalls fixed in safegrad, seeds, evaluation noise)."""


def _fmt(x: float | None, integer: bool | None = None) -> str:
    from safegrad.analysis.report import format_number

    return format_number(x, integer)


def _ci(mean: float, ci: tuple[float, float] | None, integer: bool | None = None) -> str:
    m = _fmt(mean, integer)
    if m == "-" or ci is None or not all(math.isfinite(v) for v in ci):
        return m
    return f"{m} [{_fmt(ci[0], integer)}, {_fmt(ci[1], integer)}]"


def _paper_ret(row: PaperRow | None) -> str:
    return "-" if row is None else _ci(row.ret, row.ret_ci, True)


def _paper_step(row: PaperRow | None) -> str:
    if row is None:
        return "-"
    txt = _ci(row.step, row.step_ci, True)
    return txt if row.step_ci is not None else f"≈ {txt}"


def _not_run(cr: CellResult) -> str:
    if cr.finished == 0:
        return "not run" if cr.started == 0 else f"running (0/{len(cr.seeds)})"
    return ""


def _ours_ret(cr: CellResult) -> str:
    s = cr.stats
    if s is None:
        return _not_run(cr)
    return _ci(s.return_mean, s.return_ci)


def _ours_step(cr: CellResult) -> str:
    s = cr.stats
    if s is None:
        return _not_run(cr)
    return _ci(s.steps_mean, s.steps_ci, True)


def _ours_stuck(cr: CellResult) -> str:
    s = cr.stats
    if s is None:
        return _not_run(cr) or "-"
    txt = f"{s.n_stuck}/{s.n}"
    if cr.finished < len(cr.seeds):
        txt += f" ({len(cr.seeds) - cr.finished} missing)"
    return txt


def _stuck_paper(t: tuple[int, int] | None) -> str:
    return "-" if t is None else f"{t[0]}/{t[1]}"


def _cmd(budget: str, out: Path, cells: str | None = None, seeds: int | None = None) -> str:
    c = f"safegrad reproduce {EXPERIMENT} --budget {budget} --out {out}"
    if seeds is not None:
        c += f" --seeds {seeds}"
    if cells:
        c += f" --cells '{cells}'"
    return c


def _band(ax: Any, runs: Sequence[Any], label: str, color: Any, paper: float | None) -> bool:
    from safegrad.analysis.plots import aligned_curves
    from safegrad.analysis.stats import bootstrap_ci

    steps, vals = aligned_curves(runs)
    if steps.size == 0:
        return False
    mean = vals.mean(axis=0)
    ax.plot(steps, mean, color=color, linewidth=1.6, label=f"{label} (n={vals.shape[0]})")
    if vals.shape[0] >= 2:
        lo, hi = bootstrap_ci(vals, 0.95, 1000)
        ax.fill_between(steps, lo, hi, color=color, alpha=0.2, linewidth=0)
    if paper is not None and math.isfinite(paper):
        ax.axhline(paper, color=color, linestyle=":", linewidth=1.0)
    return True


def plot_cells(
    out: str | Path,
    cells: Sequence[Cell],
    seeds: Sequence[int],
    fig_dir: str | Path,
) -> list[Path]:
    """One learning-curve figure per task (``<fig_dir>/<task>.png``): panels SHAC / SAC / PPO
    with NP, BP, RM and a panel of the SHAC variants; mean evaluation return over the finished
    seeds with the 95 % bootstrap band; dotted lines: the paper's final-return means."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from safegrad.analysis.runs import load_run

    written = []
    by_task: dict[str, list[Cell]] = {}
    for c in cells:
        by_task.setdefault(c.task, []).append(c)
    panels = [
        ("SHAC", "shac", BASE_VARIANTS),
        ("SAC", "sac", BASE_VARIANTS),
        ("PPO", "ppo", BASE_VARIANTS),
        ("SHAC variants", "shac", tuple(v for v in SHAC_VARIANTS if v not in ("NP", "BP"))),
    ]
    cmap = colormaps["tab10"]
    colors = {v: cmap(i % cmap.N) for i, v in enumerate(VARIANTS)}
    for task, tcells in by_task.items():
        ids = {c.id: c for c in tcells}
        fig = Figure(figsize=(12.0, 7.6), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(2, 2, squeeze=False)
        any_task = False
        for ax, (title, algo, variants) in zip(axes.flat, panels):
            any_data = False
            for v in variants:
                c = Cell(task, algo, v)
                if c.id not in ids:
                    continue
                runs = []
                for s in seeds:
                    d = c.run_dir(out, s)
                    if (d / "summary.json").is_file():
                        runs.append(load_run(d))
                row = paper_row(c)
                paper = None if row is None else row.ret
                if algo == "shac" and (task, v) in PAPER_ARCHIVE:
                    paper = PAPER_ARCHIVE[(task, v)].mean
                if runs:
                    any_data |= _band(ax, runs, v, colors[v], paper)
            ax.set_title(f"{TASKS[task].label}: {title}", fontsize=10)
            ax.set_xlabel("interactions")
            ax.set_ylabel("evaluation return")
            ax.set_yscale("symlog", linthresh=10.0)
            ax.grid(alpha=0.3)
            if any_data:
                ax.legend(fontsize=7)
            else:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
            any_task |= any_data
        if any_task:
            fig.suptitle(
                f"{TASKS[task].label}: mean evaluation return over seeds, 95 % bootstrap band; "
                "dotted: the paper's mean final return"
            )
            path = Path(fig_dir) / f"{task}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=100)
            written.append(path)
    return written


def render_report(
    results: dict[str, CellResult],
    budget: Budget,
    out: str | Path,
    figures: Sequence[Path] = (),
    fig_rel: str | None = None,
    discussion: str | None = None,
) -> str:
    """The markdown report (module docstring): the paper's tables with ours beside them."""
    out = Path(out)
    cells = [cr.cell for cr in results.values()]
    tasks = [t for t in TASKS if any(c.task == t for c in cells)]
    n_seeds = len(next(iter(results.values())).seeds) if results else 0
    n_runs = sum(len(cr.seeds) for cr in results.values())
    n_fin = sum(cr.finished for cr in results.values())
    seeds_flag = None if n_seeds == budget.seeds else n_seeds
    L: list[str] = [
        "# Reproduction: Leveraging Analytic Gradients in Provably Safe RL (paper A)",
        "",
        "<!-- generated by `safegrad reproduce analytic-gradients --report-only`; edit only the "
        "discussion section -->",
        "",
        "Paper: T. Walter, H. Markgraf, J. Külz, M. Althoff, *Leveraging Analytic Gradients in "
        "Provably Safe Reinforcement Learning*, IEEE OJCSYS 4, 2025 (arXiv:2506.01665). Spec: "
        "`shared/spec/safeguards-analytic-gradients.md` (§6 protocol, §7 results, §8.1 "
        "hyper-parameters).",
        "",
        f"Budget **{budget.name}** ({budget.description}); runs in `{out}`; "
        f"{n_fin}/{n_runs} runs finished ({len(cells)} cells x {n_seeds} seeds). "
        f"Generated {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
    ]
    if budget.name != "paper":
        L += [
            f"> **Not the paper's budget.** The {budget.name} runs use a fraction of the paper's "
            'interactions; returns and "# Step" are not comparable with the paper\'s columns. '
            "The safety counts, intervention rates and wall-time ratios are.",
            "",
        ]
    L += [
        "Ours: mean over the seeds that are not stuck, 95 % basic-bootstrap CI (1 000 "
        "resamples), final return = last evaluation (one episode, reset seed 0, deterministic "
        'policy), "# Step" = first evaluation step reaching 95 % of the final return (105 % '
        "when negative); stuck = covered less than half of the cell's median improvement "
        "(`docs/cli.md`; the paper judged by hand). Paper: spec A §7 (returns truncated to "
        "integers, as printed).",
        "",
        "| task | env id | interactions | envs | eval every | paper budget |",
        "|---|---|---|---|---|---|",
    ]
    for t in tasks:
        T = TASKS[t]
        L.append(
            f"| {T.label} | `{T.env_id}` | {budget.steps[t]:,} | {budget.num_envs[t]} | "
            f"{budget.eval_every[t]:,} | {T.steps:,} / {T.num_envs} envs / {T.eval_every:,} |"
        )
    L += [""]

    def get(task: str, algo: str, v: str) -> CellResult | None:
        return results.get(Cell(task, algo, v).id)

    # ---- Table 2
    L += [
        "## Table 2: unsafe training",
        "",
        "| Env | Alg | # Step paper | # Step ours | Return paper | Return ours | # Stuck paper "
        "| # Stuck ours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in tasks:
        for a in ALGOS:
            cr = get(t, a, "NP")
            if cr is None:
                continue
            row = PAPER_TABLE2.get((t, a))
            L.append(
                f"| {TASKS[t].label} | {a.upper()} | {_paper_step(row)} | {_ours_step(cr)} | "
                f"{_paper_ret(row)} | {_ours_ret(cr)} | "
                f"{_stuck_paper(row.stuck if row else None)} | {_ours_stuck(cr)} |"
            )
    # ---- Table 3
    L += [
        "",
        "## Table 3: safeguarded training, base variants",
        "",
        "| Env | Safeguard | Alg | # Step paper | # Step ours | Return paper | Return ours | "
        "# Stuck paper | # Stuck ours |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in tasks:
        for v in ("BP", "RM"):
            for a in ALGOS:
                cr = get(t, a, v)
                if cr is None:
                    continue
                row = PAPER_TABLE3.get((t, v, a))
                L.append(
                    f"| {TASKS[t].label} | {v} | {a.upper()} | {_paper_step(row)} | "
                    f"{_ours_step(cr)} | {_paper_ret(row)} | {_ours_ret(cr)} | "
                    f"{_stuck_paper(row.stuck if row else None)} | {_ours_stuck(cr)} |"
                )
    # ---- Table 4
    L += [
        "",
        "## Table 4: non-convergent (stuck) SHAC runs",
        "",
        "| Safeguard | Variant | "
        + " | ".join(f"{TASKS[t].label} paper | {TASKS[t].label} ours" for t in tasks)
        + " |",
        "|---|---|" + "---|---|" * len(tasks),
    ]
    for v, (sg, var) in TABLE4_ROWS.items():
        cols = []
        for t in tasks:
            cr = get(t, "shac", v)
            ours = "-" if cr is None else _ours_stuck(cr)
            cols.append(f"{_stuck_paper(PAPER_TABLE4[v].get(t))} | {ours}")
        L.append(f"| {sg} | {var} | " + " | ".join(cols) + " |")
    # ---- Table 5
    L += [
        "",
        "## Table 5: safe-centre approximation, SHAC + linear RM",
        "",
        "| Env | Approximation | # Step paper | # Step ours | Return paper | Return ours | "
        "# Stuck paper | # Stuck ours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in tasks:
        for v, name in (("RM", "Zonotopic"), ("ORM", "Orthogonal")):
            cr = get(t, "shac", v)
            if cr is None:
                continue
            row = PAPER_TABLE5.get((t, v))
            L.append(
                f"| {TASKS[t].label} | {name} | {_paper_step(row)} | {_ours_step(cr)} | "
                f"{_paper_ret(row)} | {_ours_ret(cr)} | "
                f"{_stuck_paper(row.stuck if row else None)} | {_ours_stuck(cr)} |"
            )
    # ---- §7.5
    L += [
        "",
        "## All SHAC variants (spec A §7.5, recomputed from the paper's archive)",
        "",
        "Final return over the kept runs; paper / ours.",
        "",
        "| Env | SHAC variant | n | mean [95 % CI] paper | mean [95 % CI] ours | median | "
        "min | max | mean # Step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in tasks:
        for v in SHAC_VARIANTS:
            cr = get(t, "shac", v)
            if cr is None:
                continue
            p = PAPER_ARCHIVE.get((t, v))
            k = cr.finals_kept
            has = cr.stats is not None and k.size > 0
            pn = "-" if p is None else str(p.n)
            on = str(k.size) if has else "0"

            def pair(pv: float | None, ov: float | None, integer: bool | None = None) -> str:
                return f"{_fmt(pv, integer)} / {_fmt(ov, integer)}"

            ours_mean = _ci(cr.stats.return_mean, cr.stats.return_ci) if has else _not_run(cr)
            L.append(
                f"| {TASKS[t].label} | {'No Safeguard' if v == 'NP' else v} | {pn} / {on} | "
                f"{'-' if p is None else _ci(p.mean, p.ci)} | {ours_mean or '-'} | "
                f"{pair(p.median if p else None, float(np.median(k)) if has else None)} | "
                f"{pair(p.min if p else None, float(k.min()) if has else None)} | "
                f"{pair(p.max if p else None, float(k.max()) if has else None)} | "
                f"{pair(p.step if p else None, cr.stats.steps_mean if has else None, True)} |"
            )
    # ---- safety
    L += [
        "",
        "## Safety: violations and interventions",
        "",
        "Training violations = transitions the independent safety monitor flagged during "
        "training (summed over the finished runs); evaluation violations likewise over every "
        "evaluation episode. **Every safeguarded cell must show 0.** NP cells show how often "
        "unsafe training leaves the safe set (the paper did not archive these). Interventions: "
        "fraction of transitions where the safeguard changed the action (training; evaluation "
        "episodes). Fallbacks: transitions without a certified safe action.",
        "",
        "| Cell | finished | training violations | eval violations | fallbacks | interventions "
        "/ transition (train) | (eval) | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    bad = []
    for cr in results.values():
        s = cr.stats
        if s is None:
            L.append(
                f"| {cr.cell.id} | {cr.finished}/{len(cr.seeds)} | - | - | - | - | - | "
                f"{_not_run(cr)} |"
            )
            continue
        safe = cr.cell.variant != "NP"
        ok = s.violations_total == 0 and cr.eval_violations == 0
        status = ("ok" if ok else "**VIOLATIONS**") if safe else "unsafeguarded"
        if safe and not ok:
            bad.append(cr.cell.id)
        rate = "-" if not math.isfinite(s.intervention_rate) else f"{s.intervention_rate:.3f}"
        erate = (
            "-"
            if not math.isfinite(cr.eval_intervention_rate)
            else f"{cr.eval_intervention_rate:.3f}"
        )
        L.append(
            f"| {cr.cell.id} | {cr.finished}/{len(cr.seeds)} | {s.violations_total} | "
            f"{cr.eval_violations} | {cr.fallbacks} | {rate} | {erate} | {status} |"
        )
    L += [
        "",
        (
            f"**Safeguarded cells with violations: {', '.join(bad)}.**"
            if bad
            else "Safeguarded cells with violations: none."
        ),
    ]
    # ---- wall time
    L += [
        "",
        "## Wall time",
        "",
        "Mean wall-clock seconds of one training run (including its evaluations) and the ratio "
        "safeguarded / unsafe, ours vs the paper's Table 6 (spec A §7.6: budget and hardware not "
        "recorded, paper-era default device CUDA). Ours: this machine, CPU, 1 torch thread per "
        f"run, at the {budget.name} budget.",
        "",
        "| Env | Alg | NP ours (s) | BP ours (s) | RM ours (s) | BP/NP ours | RM/NP ours | "
        "NP paper (s) | BP paper (s) | RM paper (s) | BP/NP paper | RM/NP paper |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def wall(cr: CellResult | None) -> float:
        if cr is None or not cr.wall_times:
            return math.nan
        return float(np.nanmean(cr.wall_times))

    def ratio(a: float, b: float) -> str:
        return "-" if not (math.isfinite(a) and math.isfinite(b) and b > 0) else f"{a / b:.2f}x"

    for t in tasks:
        for a in ALGOS:
            w = {v: wall(get(t, a, v)) for v in BASE_VARIANTS}
            if all(get(t, a, v) is None for v in BASE_VARIANTS):
                continue
            p = PAPER_TIMING.get((t, a), {})
            pn, pb, pr = (float(p.get(v, math.nan)) for v in BASE_VARIANTS)
            L.append(
                f"| {TASKS[t].label} | {a.upper()} | {_fmt(w['NP'])} | {_fmt(w['BP'])} | "
                f"{_fmt(w['RM'])} | {ratio(w['BP'], w['NP'])} | {ratio(w['RM'], w['NP'])} | "
                f"{_fmt(pn if p else None, True)} | {_fmt(pb if p else None, True)} | "
                f"{_fmt(pr if p else None, True)} | {ratio(pb, pn)} | {ratio(pr, pn)} |"
            )
    if budget.name == "small":
        L += [
            "",
            "### Extrapolated paper-budget wall time per run",
            "",
            "From the finished runs: training seconds per interaction (SAC: separately before and "
            "after `learning_starts`) x the paper's interactions (whole learning iterations) + "
            "seconds per evaluation x the paper's number of evaluations (§6 cadence at iteration "
            "granularity); one run on one core of this machine, as loaded as it was during the "
            "runs. Sum over the grid = the CPU time of the paper-budget grid at 10 seeds.",
            "",
            "| Env | Alg | NP est. (s) | BP est. (s) | RM est. (s) | BP/NP est. | RM/NP est. |",
            "|---|---|---|---|---|---|---|",
        ]
        for t in tasks:
            for a in ALGOS:
                est = {}
                for v in BASE_VARIANTS:
                    cr = get(t, a, v)
                    est[v] = math.nan if cr is None else cr.paper_estimate_s
                if all(not math.isfinite(x) for x in est.values()):
                    continue
                L.append(
                    f"| {TASKS[t].label} | {a.upper()} | {_fmt(est['NP'])} | {_fmt(est['BP'])} | "
                    f"{_fmt(est['RM'])} | {ratio(est['BP'], est['NP'])} | "
                    f"{ratio(est['RM'], est['NP'])} |"
                )
        L += [
            "",
            "| Cell | measured (s/run) | paper budget, estimated (s/run) | x 10 seeds (h) |",
            "|---|---|---|---|",
        ]
        tot = 0.0
        missing = []
        for cr in results.values():
            e = cr.paper_estimate_s
            if math.isfinite(e):
                tot += 10 * e
            elif cr.finished:
                missing.append(cr.cell.id)
            L.append(
                f"| {cr.cell.id} | {_fmt(wall(cr))} | {_fmt(e)} | "
                f"{'-' if not math.isfinite(e) else f'{10 * e / 3600:.2f}'} |"
            )
        L += [
            "",
            f"Estimated CPU time of the paper grid for these cells at 10 seeds: "
            f"**{tot / 3600:.1f} h** (one core; divide by the workers running in parallel)."
            + (f" No estimate for: {', '.join(missing)}." if missing else ""),
        ]
    # ---- figures
    L += ["", "## Learning curves", ""]
    if figures:
        L += [
            "Mean evaluation return over the finished seeds with the 95 % bootstrap band (symlog "
            "axis); dotted: the paper's mean final return of the same colour's cell.",
            "",
        ]
        for f in figures:
            rel = f"{fig_rel}/{f.name}" if fig_rel else str(f)
            L += [f"![{f.stem}]({rel})", ""]
    else:
        L += ["No finished runs yet.", ""]
    # ---- status / commands
    L += [
        "## Status and commands",
        "",
        f"Complete the grid (resumable; finished runs are skipped): "
        f"`{_cmd(budget.name, out, seeds=seeds_flag)}` (add `--workers N` or "
        "`--backend ray`).",
        "",
        "| Cell | runs finished | run directory | command |",
        "|---|---|---|---|",
    ]
    for cr in results.values():
        state = f"{cr.finished}/{len(cr.seeds)}"
        if cr.complete:
            cmd = "done"
        else:
            cmd = f"`{_cmd(budget.name, out, cr.cell.id, seeds_flag)}`"
            if cr.finished == 0 and cr.started == 0:
                state += " (not run)"
        L.append(f"| {cr.cell.id} | {state} | `{cr.cell.group}/` | {cmd} |")
    # ---- discussion
    L += [
        "",
        "## Discussion",
        "",
        _DISC_BEGIN,
        (discussion if discussion is not None else _DISCUSSION_TEMPLATE).strip("\n"),
        _DISC_END,
        "",
    ]
    return "\n".join(L)


def _old_discussion(path: Path) -> str | None:
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    i, j = text.find(_DISC_BEGIN), text.find(_DISC_END)
    if i < 0 or j < i:
        return None
    return text[i + len(_DISC_BEGIN) : j].strip("\n")


def write_report(
    out: str | Path,
    budget: Budget,
    cells: Sequence[Cell],
    seeds: Sequence[int],
    report_path: str | Path,
    fig_dir: str | Path | None = None,
    n_resamples: int = 1000,
) -> Path:
    """Collect, plot and write the report to ``report_path`` (figures to ``fig_dir``, default
    ``<report_path without .md>/``); an existing discussion section is kept."""
    report_path = Path(report_path)
    fig_dir = Path(fig_dir) if fig_dir is not None else report_path.with_suffix("")
    results = collect(out, cells, seeds, n_resamples=n_resamples)
    figures = plot_cells(out, cells, seeds, fig_dir)
    try:
        fig_rel = fig_dir.resolve().relative_to(report_path.parent.resolve()).as_posix()
    except ValueError:
        fig_rel = str(fig_dir.resolve())
    text = render_report(results, budget, Path(out), figures, fig_rel, _old_discussion(report_path))
    report_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(report_path, text)
    return report_path


# =============================================================================================
# command line
# =============================================================================================

_EPILOG = """\
examples:
  safegrad reproduce analytic-gradients --budget small --out runs/ag-small
  safegrad reproduce analytic-gradients --budget paper --tasks pendulum quadrotor \\
      --workers 2 --out runs/ag-paper
  safegrad reproduce analytic-gradients --budget paper --cells 'Pendulum/SHAC/*' --dry-run
  safegrad reproduce analytic-gradients --report-only --out runs/ag-paper
  safegrad reproduce analytic-gradients --budget paper --out runs/ag-paper \\
      --import runs/shac_pendulum      # reuse finished `safegrad sweep` runs

Cells are named after the paper's table rows, Task/ALG/variant: Pendulum|Quadrotor|Energy x
SHAC|SAC|PPO x NP|BP|RM, plus SHAC x BP-Reg|RM-Reg|RM-PT|HRM|HRM-Reg|ORM (45 cells).
Run directories: OUT/<env>__<algo>__<safeguard>[__c_reg=0.1|__grad_mode=passthrough|
__centre=orthogonal]/seed<k> (the `safegrad sweep` layout).  Re-running skips finished runs and
resumes interrupted ones.  After running, the report is regenerated (--no-report to skip).
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="safegrad reproduce",
        description="Reproduce a paper's experiment grid and write its report.",
    )
    sub = p.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    ag = sub.add_parser(
        EXPERIMENT,
        help="paper A (spec A §6-§7): SHAC/SAC/PPO x safeguards on pendulum, quadrotor, "
        "household; Tables 2-5, timing",
        description="Paper A's grid (spec A §6-§7) and its report "
        "(docs/reproductions/analytic-gradients.md).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ag.add_argument(
        "--budget",
        choices=list(BUDGETS),
        help="paper (spec A §6), small (minutes per task) or tiny (CI); default paper, or the "
        "budget recorded in OUT/reproduce.json",
    )
    ag.add_argument(
        "--tasks", nargs="+", metavar="TASK", help="pendulum quadrotor household (default all)"
    )
    ag.add_argument("--seeds", type=int, help="seeds 0..N-1 (default: the budget's: 10/1/1)")
    ag.add_argument(
        "--cells",
        nargs="+",
        metavar="PATTERN",
        help="only cells whose id matches (shell patterns, e.g. 'Pendulum/SHAC/*' '*/SAC/RM')",
    )
    ag.add_argument("--out", help="run directory root (default runs/analytic-gradients/<budget>)")
    ag.add_argument("--backend", choices=("local", "ray"), default="local")
    ag.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    ag.add_argument("--address", help="Ray address (auto, ray://host:10001)")
    ag.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    ag.add_argument("--device", default="cpu", help="torch device of the runs (default cpu)")
    ag.add_argument(
        "--configs", help="directory of the presets <algo>_<task>.yaml (default: configs/)"
    )
    ag.add_argument(
        "--import",
        dest="imports",
        nargs="+",
        default=[],
        metavar="DIR",
        help="copy finished, compatible runs from these sweep directories first",
    )
    ag.add_argument("--dry-run", action="store_true", help="list cells, runs and budgets; exit")
    ag.add_argument("--report-only", action="store_true", help="only (re)generate the report")
    ag.add_argument("--no-report", action="store_true", help="do not write the report")
    ag.add_argument(
        "--report",
        default="docs/reproductions/analytic-gradients.md",
        help="report path (default docs/reproductions/analytic-gradients.md)",
    )
    ag.add_argument("--figures", help="figure directory (default: the report path without .md)")
    ag.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (1000)")
    # listed for --help; the safegrad command forwards it to safegrad.bench.reproduce_composite_cbf
    sub.add_parser(
        "composite-cbf",
        help="paper B (spec B §7-§9): SAC with the composite-CBF layer on ReachAvoid-v0; "
        "Figs. 3-4, success, violations (`safegrad reproduce composite-cbf --help`)",
        add_help=False,
    )
    return p


def _manifest(out: Path) -> dict[str, Any]:
    f = out / "reproduce.json"
    if f.is_file():
        try:
            return json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
    return {}


def _dry_run(jobs: Sequence[Job], cells: Sequence[Cell], budget: Budget, seeds: list[int]) -> None:
    print(f"budget {budget.name}: {budget.description}")
    for t in dict.fromkeys(c.task for c in cells):
        print(
            f"  {TASKS[t].label} ({TASKS[t].env_id}): {budget.steps[t]:,} interactions, "
            f"{budget.num_envs[t]} envs, eval every {budget.eval_every[t]:,}"
        )
    print(f"{len(cells)} cells x {len(seeds)} seeds = {len(jobs)} runs")
    for j in jobs:
        rd = RunDir(j.sweep.run_dir)
        state = "finished" if rd.is_finished() else ("started" if rd.exists() else "todo")
        print(f"{j.cell.id:<24} seed {j.seed:<3} {state:<8} {j.sweep.run_dir}")


def main(argv: Sequence[str] | None = None) -> int:
    """``safegrad reproduce EXPERIMENT [options]`` (``--help``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.experiment is None:
        parser.print_help()
        return 0
    if args.experiment == "composite-cbf":
        return _fail("run it as `safegrad reproduce composite-cbf ...` (safegrad.cli forwards it)")
    out = Path(args.out) if args.out else None
    man = _manifest(out) if out is not None else {}
    bname = args.budget or man.get("budget") or "paper"
    budget = BUDGETS[bname]
    if out is None:
        out = Path("runs") / EXPERIMENT / bname
    n_seeds = args.seeds if args.seeds is not None else man.get("seeds", budget.seeds)
    for name, val in (
        ("--seeds", n_seeds),
        ("--workers", args.workers),
        ("--threads", args.threads),
    ):
        if int(val) < 1:
            return _fail(f"{name} must be >= 1, got {val}")
    seeds = list(range(int(n_seeds)))
    try:
        cells = grid_cells(args.tasks, args.cells)
        if not cells:
            return _fail("no cells selected")
        jobs = (
            []
            if args.report_only
            else build_jobs(cells, budget, seeds, out, args.configs, args.threads, args.device)
        )
    except ConfigError as err:
        return _fail(str(err))
    if args.dry_run:
        if args.report_only:
            jobs = build_jobs(cells, budget, seeds, out, args.configs, args.threads, args.device)
        _dry_run(jobs, cells, budget, seeds)
        return 0
    if man.get("budget") not in (None, bname):
        return _fail(
            f"{out} holds a {man['budget']!r} grid (reproduce.json); use another --out for "
            f"--budget {bname}"
        )
    status = 0
    if not args.report_only:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            out / "reproduce.json",
            {
                "experiment": EXPERIMENT,
                "budget": bname,
                "seeds": len(seeds),
                "command": "safegrad reproduce " + " ".join(argv),
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )
        if args.imports:
            for src, dst in import_runs(jobs, args.imports):
                print(f"imported {src} -> {dst}", file=sys.stderr)
        try:
            res = run_sweep(
                [j.sweep for j in jobs], args.workers, args.backend, args.address, out=out
            )
        except RuntimeError as err:
            return _fail(str(err))
        counts: dict[str, int] = {}
        for r in res:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        print(json.dumps({"out": str(out), "runs": len(res), **counts}))
        status = 1 if counts.get("failed") else 0
    if not args.no_report:
        path = write_report(out, budget, cells, seeds, args.report, args.figures, args.resamples)
        print(f"report: {path}", file=sys.stderr)
    return status


def _fail(msg: str) -> int:
    print(f"safegrad reproduce: error: {msg}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
