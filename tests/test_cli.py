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
