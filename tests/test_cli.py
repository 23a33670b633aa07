import pytest

from safegrad.cli import BENCHMARKS, build_parser, main


def test_help_lists_verbs(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for verb in ("demo", "envs", "bench"):
        assert verb in out


def test_bench_help_names_benchmarks(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--help"])
    out = capsys.readouterr().out
    for name in BENCHMARKS:
        assert name in out


def test_unknown_benchmark_is_rejected(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "nope"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_envs_lists_tasks(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out.split()
    assert "BalancePendulum-v0" in out and "ReachAvoid-v0" in out


def test_demo_passes_its_own_checks():
    assert main(["demo", "--seed", "1"]) == 0


def test_rci_verify_passes_for_shipped_pendulum_set():
    assert main(["rci", "verify", "BalancePendulum-v0", "--transitions", "2000"]) == 0


def test_rci_verify_fails_for_enlarged_set():
    # The same check must be able to fail: the set scaled up by 10 % is not invariant.
    assert (
        main(["rci", "verify", "BalancePendulum-v0", "--transitions", "2000", "--scale", "1.1"])
        != 0
    )


# ---------------------------------------------------------------- training CLI (issue 7)
TINY = [
    "--env",
    "BalancePendulum-v0",
    "--algo",
    "shac",
    "--num-envs",
    "2",
    "--threads",
    "1",
    "--set",
    "env_kwargs.max_episode_steps=48",
    "--set",
    "horizon=8",
    "--set",
    "actor_hidden=[16, 16]",
    "--set",
    "critic_hidden=[16, 16]",
    "--set",
    "vf_num_fits=2",
    "--set",
    "tensorboard=false",
    "--set",
    "eval_every=32",
]


def test_help_lists_all_verbs(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for verb in ("train", "eval", "sweep", "tune", "plot", "report", "bench", "rci", "envs"):
        assert verb in out


@pytest.mark.parametrize("verb", ["train", "eval", "sweep", "tune", "plot", "report"])
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    assert "usage: safegrad " + verb in capsys.readouterr().out


def test_train_eval_plot_report_round_trip(tmp_path, capsys):
    import json

    run = tmp_path / "run"
    assert (
        main(["train", *TINY, "--safeguard", "ray-mask", "--steps", "64", "--out", str(run)]) == 0
    )
    out = capsys.readouterr().out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] == 64 and summary["safety_violations"] == 0
    assert summary["config"]["safeguard"] == "ray-mask"
    assert json.loads(out[: out.rindex("}") + 1])["final_return"] == summary["final_return"]
    assert (run / "plots" / "learning_curve.png").stat().st_size > 10_000
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["returns"]) == 2 and res["returns"][0] == pytest.approx(summary["final_return"])
    assert main(["plot", str(run), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "learning_curve.png").is_file()
    assert main(["report", str(run), "--out", str(tmp_path / "r.md")]) == 0
    text = (tmp_path / "r.md").read_text()
    assert "| BalancePendulum-v0 / shac / ray-mask |" in text and "| 0/1 |" in text
    # a finished run resumes to its summary; flags with --resume are refused
    assert main(["train", "--resume", str(run)]) == 0
    assert main(["train", "--resume", str(run), "--steps", "5"]) == 2
    assert "drop the presets and flags" in capsys.readouterr().err


def test_train_print_config_is_a_run_preset(tmp_path, capsys):
    assert main(["train", *TINY, "--seed", "4", "--print-config"]) == 0
    text = capsys.readouterr().out
    p = tmp_path / "p.yaml"
    p.write_text(text)
    from safegrad.experiments import load_config

    cfg = load_config([p])
    assert cfg.seed == 4 and cfg.algo_config["horizon"] == 8 and cfg.num_envs == 2
    assert cfg.resolved().to_yaml() == text


def test_train_config_errors_exit_2_with_the_reason(capsys):
    assert main(["train", *TINY, "--set", "horizn=3"]) == 2
    assert "Did you mean 'horizon'" in capsys.readouterr().err
    assert main(["train", *TINY, "--safeguard", "composite-cbf"]) == 2
    assert "needs a task with CBF constraints" in capsys.readouterr().err
    assert main(["train", "no_such_preset.yaml"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_sweep_dry_run_lists_the_grid(tmp_path, capsys):
    args = ["sweep", "--safeguard", "none", "ray-mask", "--seeds", "0", "1", "--steps", "32"]
    assert main([*args, "--out", str(tmp_path), "--dry-run", "--set", "horizon=8"]) == 0
    lines = capsys.readouterr().out.split()
    assert len(lines) == 4 and lines[0].endswith("BalancePendulum-v0__shac__none/seed0")
    assert main(args) == 2  # no --out
    assert "--out" in capsys.readouterr().err


def test_tune_without_optuna_prints_the_install_hint(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "optuna", None)
    assert main(["tune", *TINY, "--trials", "1"]) == 2
    assert "pip install 'safegrad[tune]'" in capsys.readouterr().err
