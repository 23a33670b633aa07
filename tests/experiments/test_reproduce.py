"""``safegrad reproduce analytic-gradients``: the paper's grid, budgets, the paper-number tables
(checked against spec A §7), a tiny end-to-end run and its report, resume and ``--import``."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from safegrad.analysis.report import format_number
from safegrad.experiments import reproduce as rp
from safegrad.experiments.config import ConfigError, TrainConfig
from safegrad.experiments.rundir import RunDir

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO.parent / "shared" / "spec" / "safeguards-analytic-gradients.md"


# ------------------------------------------------------------------------------------ the grid
def test_grid_is_the_papers():
    cells = rp.grid_cells()
    # 3 tasks x (SAC, PPO x {NP, BP, RM} + SHAC x {NP, BP, RM} + 6 SHAC variants)
    assert len(cells) == 3 * (2 * 3 + 3 + 6) == 45
    ids = [c.id for c in cells]
    assert len(set(ids)) == 45 and len({c.group for c in cells}) == 45
    assert "Pendulum/SHAC/RM-Reg" in ids and "Energy/SAC/NP" in ids and "Quadrotor/PPO/BP" in ids
    shac_variants = {c.variant for c in cells if c.algo == "shac"}
    assert shac_variants == {"NP", "BP", "RM", "BP-Reg", "RM-Reg", "RM-PT", "HRM", "HRM-Reg", "ORM"}
    assert {c.variant for c in cells if c.algo != "shac"} == {"NP", "BP", "RM"}
    # every base cell has its Table 2/3 row, every SHAC cell its §7.5 row
    for c in cells:
        if c.variant in rp.BASE_VARIANTS:
            assert rp.paper_row(c) is not None, c.id
        if c.algo == "shac":
            assert (c.task, c.variant) in rp.PAPER_ARCHIVE, c.id
    # run directories follow the `safegrad sweep` layout
    c = rp.Cell("pendulum", "shac", "RM-Reg")
    assert c.run_dir("OUT", 3) == Path("OUT/BalancePendulum-v0__shac__ray-mask__c_reg=0.1/seed3")
    assert rp.Cell("pendulum", "shac", "NP").group == "BalancePendulum-v0__shac__none"
    assert rp.Cell("quadrotor", "shac", "ORM").group.endswith("__ray-mask__centre=orthogonal")


def test_cell_selection_patterns_and_errors():
    sel = rp.grid_cells(["pendulum"], ["Pendulum/SHAC/*"])
    assert [c.variant for c in sel] == list(rp.SHAC_VARIANTS)
    assert [c.id for c in rp.grid_cells(None, ["*/sac/rm"])] == [
        "Pendulum/SAC/RM",
        "Quadrotor/SAC/RM",
        "Energy/SAC/RM",
    ]
    assert [c.id for c in rp.grid_cells(["energy"], ["Energy/PPO/none"])] == ["Energy/PPO/NP"]
    with pytest.raises(ConfigError, match="matches no cell"):
        rp.grid_cells(["pendulum"], ["Quadrotor/SHAC/*"])
    with pytest.raises(ConfigError, match="unknown task 'cartpole'"):
        rp.grid_cells(["cartpole"])


def test_paper_budget_configs():
    b = rp.BUDGETS["paper"]
    cfg = rp.cell_config(rp.Cell("quadrotor", "sac", "BP"), b, 4)
    assert (cfg.env, cfg.algo, cfg.safeguard, cfg.seed) == (
        "BalanceQuadrotor-v0",
        "sac",
        "boundary-projection",
        4,
    )
    assert (cfg.total_steps, cfg.num_envs, cfg.eval_every) == (200_000, 16, 5_000)
    assert cfg.algo_config["learning_starts"] == 5_000  # the §8.1 preset
    assert cfg.algo_config["buffer_size"] == 45_000
    cfg = rp.cell_config(rp.Cell("household", "shac", "HRM-Reg"), b, 0)
    assert (cfg.total_steps, cfg.num_envs, cfg.eval_every) == (1_000_000, 8, 10_000)
    assert cfg.safeguard == "ray-mask-tanh" and cfg.algo_config["c_reg"] == 0.1
    assert cfg.algo_config["horizon"] == 550 and cfg.algo_config["vf_fit_num_batches"] == 100
    cfg = rp.cell_config(rp.Cell("pendulum", "shac", "RM-PT"), b, 0)
    assert cfg.safeguard_kwargs == {"grad_mode": "passthrough"}
    assert cfg.algo_config["c_reg"] == 0.0 and cfg.total_steps == 100_000
    cfg = rp.cell_config(rp.Cell("pendulum", "shac", "ORM"), b, 0)
    assert cfg.safeguard == "ray-mask" and cfg.safeguard_kwargs == {"centre": "orthogonal"}
    cfg = rp.cell_config(rp.Cell("pendulum", "ppo", "NP"), b, 0)
    assert cfg.safeguard is None and cfg.algo_config["horizon"] == 1_700
    # small: a fraction of the interactions, SAC's learning_starts scaled with it
    s = rp.BUDGETS["small"]
    cfg = rp.cell_config(rp.Cell("quadrotor", "sac", "RM"), s, 0)
    f = rp.SMALL_FRACTION["quadrotor"]
    assert cfg.total_steps == round(200_000 * f) < 200_000
    assert cfg.algo_config["learning_starts"] == round(5_000 * f)
    assert cfg.num_envs == 16


def test_dry_run_lists_the_full_grid_at_paper_budget(tmp_path, capsys):
    assert (
        rp.main(["analytic-gradients", "--budget", "paper", "--dry-run", "--out", str(tmp_path)])
        == 0
    )
    out = capsys.readouterr().out
    assert "45 cells x 10 seeds = 450 runs" in out
    assert "Pendulum (BalancePendulum-v0): 100,000 interactions, 8 envs, eval every 2,500" in out
    assert "Quadrotor (BalanceQuadrotor-v0): 200,000 interactions, 16 envs, eval every 5,000" in out
    assert "Energy (ManageHousehold-v0): 1,000,000 interactions, 8 envs, eval every 10,000" in out
    runs = [line for line in out.splitlines() if " todo " in line]
    assert len(runs) == 450
    dirs = {line.split()[-1] for line in runs}
    assert len(dirs) == 450
    assert str(tmp_path / "ManageHousehold-v0__shac__ray-mask-tanh__c_reg=0.1" / "seed9") in dirs
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


# ----------------------------------------------------------------- paper numbers vs spec A §7
def _num(text: str) -> float:
    return float(text.replace("−", "-").replace("≈", "").replace(" ", ""))


_CI = re.compile(r"^≈?\s*(-?[\d.]+)(?:\[(-?[\d.]+),(-?[\d.]+)\])?")


def _mean_ci(cell: str) -> tuple[float, tuple[float, float] | None]:
    m = _CI.match(cell.replace("−", "-").replace(" ", "").replace("≈", ""))
    assert m, cell
    ci = None if m.group(2) is None else (float(m.group(2)), float(m.group(3)))
    return float(m.group(1)), ci


def _section(text: str, head: str) -> list[list[str]]:
    start = text.index(head)
    end = text.index("\n### ", start + 1)
    rows = []
    for line in text[start:end].splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows[1:]  # without the header


_TASK = {"Pendulum": "pendulum", "Quadrotor": "quadrotor", "Energy System": "household"}
_TASK["Energy"] = "household"


def _stuck(cell: str) -> tuple[int, int]:
    k, n = cell.split("/")
    return int(k), int(n)


@pytest.mark.skipif(not SPEC.is_file(), reason="spec A not next to the checkout")
def test_paper_tables_equal_spec_a_section_7():
    text = SPEC.read_text(encoding="utf-8")
    rows = _section(text, "### 7.1 Table 2")
    assert len(rows) == len(rp.PAPER_TABLE2) == 9
    for env, alg, step, ret, stuck in rows:
        row = rp.PAPER_TABLE2[(_TASK[env], alg.lower())]
        assert (row.step, row.step_ci) == _mean_ci(step)
        assert (row.ret, row.ret_ci) == _mean_ci(ret)
        assert row.stuck == _stuck(stuck)
    rows = _section(text, "### 7.2 Table 3")
    assert len(rows) == len(rp.PAPER_TABLE3) == 18
    for env, sg, alg, step, ret, stuck in rows:
        row = rp.PAPER_TABLE3[(_TASK[env], sg, alg.lower())]
        assert (row.step, row.step_ci) == _mean_ci(step), (env, sg, alg)
        assert (row.ret, row.ret_ci) == _mean_ci(ret)
        assert row.stuck == _stuck(stuck)
    rows = _section(text, "### 7.3 Table 4")
    assert len(rows) == len(rp.PAPER_TABLE4) == 7
    for sg, var, p, q, e in rows:
        key = next(k for k, v in rp.TABLE4_ROWS.items() if v == (sg, var))
        assert rp.PAPER_TABLE4[key] == {
            "pendulum": _stuck(p),
            "quadrotor": _stuck(q),
            "household": _stuck(e),
        }
    rows = _section(text, "### 7.4 Table 5")
    assert len(rows) == len(rp.PAPER_TABLE5) == 6
    for env, approx, step, ret, stuck in rows:
        row = rp.PAPER_TABLE5[(_TASK[env], "RM" if approx == "Zonotopic" else "ORM")]
        assert (row.step, row.step_ci) == _mean_ci(step)
        assert (row.ret, row.ret_ci) == _mean_ci(ret)
        assert row.stuck == _stuck(stuck)
    rows = [r for r in _section(text, "### 7.5 All SHAC variants") if len(r) == 8]
    assert len(rows) == len(rp.PAPER_ARCHIVE) == 27
    for env, var, n, mean, med, lo, hi, step in rows:
        a = rp.PAPER_ARCHIVE[(_TASK[env], "NP" if var == "No Safeguard" else var)]
        assert (a.mean, a.ci) == _mean_ci(mean), (env, var)
        assert (a.n, a.median, a.min, a.max, a.step) == (
            int(n),
            _num(med),
            _num(lo),
            _num(hi),
            _num(step),
        )
    start = text.index("### 7.6 Wall-clock timing")
    rows = _section(text[start:], "| Env | Alg | No Safeguard")
    timing = [r for r in rows if len(r) == 5 and r[0] in _TASK][:5]
    assert len(timing) == len(rp.PAPER_TIMING) == 5
    for env, alg, np_, bp, rm in timing:
        assert rp.PAPER_TIMING[(_TASK[env], alg.lower())] == {
            "NP": _num(np_),
            "BP": _num(bp),
            "RM": _num(rm),
        }


def test_paper_numbers_spot_checks():
    # independent of the spec file: a few values typed from spec A §7
    assert rp.PAPER_TABLE2[("quadrotor", "sac")].ret_ci == (-1_856, 167)
    assert rp.PAPER_TABLE2[("household", "ppo")].stuck == (2, 10)
    assert rp.PAPER_TABLE3[("household", "RM", "ppo")].ret == -339_006
    assert rp.PAPER_TABLE3[("pendulum", "RM", "ppo")].step_ci is None
    assert rp.PAPER_TABLE4["RM-PT"]["quadrotor"] == (1, 10)
    assert rp.PAPER_TABLE5[("quadrotor", "ORM")].step == 31_372
    assert rp.PAPER_ARCHIVE[("pendulum", "HRM-Reg")].min == -53.4
    assert rp.PAPER_ARCHIVE[("household", "HRM-Reg")].mean == -7_973
    assert rp.PAPER_TIMING[("quadrotor", "shac")]["RM"] == 12_939


# ---------------------------------------------------------------------- tiny, end to end
CELLS = ["Pendulum/SHAC/RM", "Pendulum/SHAC/NP"]


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    out, report = root / "runs", root / "docs" / "ag.md"
    argv = ["analytic-gradients", "--budget", "tiny", "--out", str(out), "--report", str(report)]
    status = rp.main([*argv, "--cells", *CELLS])
    return {"root": root, "out": out, "report": report, "argv": argv, "status": status}


def _row(text: str, prefix: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, (prefix, lines)
    return lines[0]


def test_tiny_runs_end_to_end_and_reports_paper_and_ours(tiny_grid):
    assert tiny_grid["status"] == 0
    out = tiny_grid["out"]
    rm = RunDir(out / "BalancePendulum-v0__shac__ray-mask" / "seed0")
    np_ = RunDir(out / "BalancePendulum-v0__shac__none" / "seed0")
    assert rm.is_finished() and np_.is_finished()
    s_rm, s_np = rm.read_summary(), np_.read_summary()
    assert s_rm["safeguard"] == "ray-mask" and s_np["safeguard"] is None
    assert s_rm["safety_violations"] == 0 and s_rm["env_steps"] >= 32
    man = json.loads((out / "reproduce.json").read_text())
    assert man["budget"] == "tiny" and man["seeds"] == 1
    text = tiny_grid["report"].read_text(encoding="utf-8")
    # Table 3 row: the paper's numbers beside ours (single seed: no CI)
    row = _row(text, "| Pendulum | RM | SHAC |")
    assert "27 392 [20 992, 33 280]" in row and "-8 [-8, -8]" in row and "0/10" in row
    assert f"| {format_number(s_rm['final_return'])} |" in row
    assert f"| {format_number(s_rm['steps_to_95'], True)} |" in row
    row = _row(text, "| Pendulum | SHAC | 12 800 [10 808, 15 075] |")
    assert f"| {format_number(s_np['final_return'])} |" in row
    # Table 5 and the §7.5 row use the same RM runs
    assert "| Pendulum | Zonotopic | 27 392 [20 480, 33 280] |" in text
    row = _row(text, "| Pendulum | RM | 10 / 1 |")
    assert "-8.4 [-8.5, -8.4]" in row
    # safety: the safeguarded cell must show zero violations
    row = _row(text, "| Pendulum/SHAC/RM | 1/1 | 0 | 0 | 0 |")
    assert row.endswith("| ok |")
    assert "Safeguarded cells with violations: none." in text
    # wall time beside the paper's Table 6 (56 / 285 / 552 s)
    rows = [line for line in text.splitlines() if "| 56 | 285 | 552 |" in line]
    assert len(rows) == 1 and rows[0].startswith("| Pendulum | SHAC |")
    assert rows[0].endswith("| 56 | 285 | 552 | 5.09x | 9.86x |")
    # the learning-curve figure exists and is linked relative to the report
    assert (tiny_grid["report"].parent / "ag" / "pendulum.png").is_file()
    assert "![pendulum](ag/pendulum.png)" in text
    assert "<!-- discussion:begin" in text and "TODO" in text


def test_relaunch_skips_and_report_only_marks_missing_cells(tiny_grid, capsys):
    out, report = tiny_grid["out"], tiny_grid["report"]
    stamp = (out / "BalancePendulum-v0__shac__ray-mask" / "seed0" / "summary.json").stat()
    capsys.readouterr()
    assert rp.main([*tiny_grid["argv"], "--cells", *CELLS, "--no-report"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res == {"out": str(out), "runs": 2, "skipped": 2}
    after = (out / "BalancePendulum-v0__shac__ray-mask" / "seed0" / "summary.json").stat()
    assert after.st_mtime_ns == stamp.st_mtime_ns
    # the lead's discussion survives regeneration; the whole pendulum grid is listed
    text = report.read_text(encoding="utf-8")
    report.write_text(text.replace("TODO -- differences to the paper and why.", "Ours ok."))
    assert rp.main([*tiny_grid["argv"], "--report-only", "--tasks", "pendulum"]) == 0
    text = report.read_text(encoding="utf-8")
    assert "Ours ok." in text and "TODO -- differences to the paper and why." not in text
    assert "2/15 runs finished (15 cells x 1 seeds)" in text
    row = _row(text, "| Pendulum | BP | SAC |")
    assert "2 504 [2 504, 2 504]" in row and "not run" in row
    row = _row(text, "| Pendulum/SAC/BP | 0/1 (not run) |")
    assert f"--budget tiny --out {out} --cells 'Pendulum/SAC/BP'" in row
    assert _row(text, "| Pendulum/SHAC/RM | 1/1 | `").endswith("| done |")
    assert "Quadrotor" not in _row(text, "| Safeguard | Variant |")
    # a tiny grid is not reported (or extended) as another budget
    capsys.readouterr()
    assert rp.main(["analytic-gradients", "--budget", "paper", "--report-only", "--out",
                    str(out), "--report", str(report)]) == 2  # fmt: skip
    assert "holds a 'tiny' grid" in capsys.readouterr().err


def test_import_reuses_finished_compatible_runs(tiny_grid, tmp_path, capsys):
    src = tiny_grid["out"]
    out = tmp_path / "paper"
    cells = rp.grid_cells(["pendulum"], CELLS)
    jobs = rp.build_jobs(cells, rp.BUDGETS["tiny"], [0], out)
    done = rp.import_runs(jobs, [src], quiet=True)
    assert sorted(Path(d).parent.name for _, d in done) == [
        "BalancePendulum-v0__shac__none",
        "BalancePendulum-v0__shac__ray-mask",
    ]
    dst = out / "BalancePendulum-v0__shac__ray-mask" / "seed0"
    assert RunDir(dst).is_finished() and not (dst / "checkpoints").exists()
    # imported runs count as finished: a launch skips them
    assert rp.main(["analytic-gradients", "--budget", "tiny", "--out", str(out), "--cells",
                    *CELLS, "--no-report"]) == 0  # fmt: skip
    assert '"skipped": 2' in capsys.readouterr().out
    # an incompatible run (another budget) is not imported, and says why
    other = tmp_path / "other"
    jobs = rp.build_jobs(cells, rp.BUDGETS["tiny"], [0], other)
    bad = tmp_path / "bad" / jobs[0].cell.group / "seed0"
    shutil.copytree(jobs[0].cell.run_dir(src, 0), bad)
    cfg = TrainConfig.from_yaml(bad / "config.yaml")
    cfg.total_steps = 64
    (bad / "config.yaml").write_text(cfg.to_yaml())
    assert rp.import_runs(jobs[:1], [tmp_path / "bad"]) == []
    assert "total_steps: 64 != 32" in capsys.readouterr().err
    # eval_every within one learning iteration is the same evaluation grid: compatible
    want = jobs[0].sweep.config
    near = TrainConfig.from_dict({**want.to_dict(), "eval_every": want.eval_every + 1})
    assert rp.compatible(near, want) == []
    far = TrainConfig.from_dict({**want.to_dict(), "eval_every": want.eval_every + 1000})
    assert "eval_every" in rp.compatible(far, want)[0]


def test_cli_verb_is_registered(capsys):
    from safegrad.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "--help"])
    assert exc.value.code == 0
    assert "analytic-gradients" in capsys.readouterr().out
    assert main(["reproduce", "analytic-gradients", "--budget", "tiny", "--seeds", "0"]) == 2
    assert "--seeds must be >= 1" in capsys.readouterr().err
