"""``safegrad bench envs`` smoke test (tiny budget; figures are not asserted)."""

import json

from safegrad.bench.envs import bench_rollout, main


def test_bench_envs_quick_writes_json_and_markdown(tmp_path):
    rc = main(
        [
            "--quick",
            "--tasks",
            "BalancePendulum-v0",
            "ReachAvoid-v0",
            "--out-dir",
            str(tmp_path),
            "--rollout-steps",
            "4",
        ]
    )
    assert rc == 0
    report = json.loads((tmp_path / "envs.json").read_text())
    assert {r["num_envs"] for r in report["results"]} == {1, 8}
    assert {r["autograd"] for r in report["results"]} == {False, True}
    assert all(r["env_steps_per_s"] > 0 and r["calls"] >= 20 for r in report["results"])
    assert "torch" in report["versions"] and report["command"].startswith("safegrad bench envs")
    md = (tmp_path / "envs.md").read_text()
    assert "BalancePendulum-v0" in md and "B=8" in md and "rollout" in md


def test_bench_rejects_unknown_task(capsys):
    assert main(["--tasks", "Nope-v0", "--no-write"]) == 2
    assert "unknown task" in capsys.readouterr().err


def test_rollout_reports_backward():
    r = bench_rollout("BalancePendulum-v0", num_envs=2, steps=4, repeats=1)
    assert r["num_envs"] == 2 and r["backward_ms"] > 0
