"""The paper-B reproduction (issue 8 item 2): a quick run end to end, its logging, figures and
safety bookkeeping."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from safegrad.bench import reproduce_composite_cbf as rep


def _require_sac():
    try:
        rep.sac_class()
    except ImportError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    _require_sac()
    out = tmp_path_factory.mktemp("reproduce")
    n = torch.get_num_threads()
    try:
        assert rep.main(["--quick", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(n)
    return out, json.loads((out / "results.json").read_text())


def test_quick_run(quick):
    out, res = quick
    assert res["command"].endswith("--quick --out " + str(out))
    assert res["settings"]["episodes"] == 4 and res["settings"]["test_trials"] == 8
    cfg = res["sac_config"]
    assert cfg["policy_safeguard"] == "composite-cbf"
    # spec B §9 values that --quick does not shrink
    assert cfg["gamma"] == 0.99 and cfg["tau"] == 0.005 and cfg["policy_frequency"] == 1
    tr, te = res["train"], res["test"]
    assert tr["episodes"] == 4 and len(res["per_episode"]["return"]) == 4
    assert sum(res["per_episode"]["steps"]) == tr["steps"] <= tr["agent_steps"]
    # the composite layer keeps h >= 0 (so min_i h_i >= 0) from starts with h(x0) >= 0
    assert tr["violations_sac_monitor"] == tr["violations_min_hi"] == 0
    assert tr["min_h0_composite"] >= 0 and tr["min_composite_h"] >= 0
    assert tr["min_min_hi"] >= tr["min_composite_h"]  # Lemma 1: h <= min_i h_i
    assert te["trials"] == 8 and len(te["reached"]) == 8 and te["unsafe_steps"] == 0
    assert te["min_composite_h"] >= 0 and 0 <= te["success_rate"] <= 1
    assert res["acceptance"]["zero_violations"] and res["acceptance"]["composite_h_nonnegative"]
    for f in res["figures"]:
        assert (out / f).stat().st_size > 1000
    md = (out / "README.md").read_text()
    assert "| test violations | 0 | 0 |" in md and "fig3a_min_h_per_episode.png" in md


def test_recording_env_episodes():
    """The recorder splits episodes at the goal / the cap and skips the next-step-autoreset
    step; h of every recorded state matches obstacle_h."""
    env = rep.RecordingReachAvoid(num_envs=1, seed=0, dtype=torch.float64, max_episode_steps=5)
    env.reset(seed=0)
    for _ in range(12):  # 5 + reset + 5 + reset: two full episodes
        env.step(torch.zeros(1, 2, dtype=torch.float64))
    assert len(env.episodes) == 2
    for e in env.episodes:
        assert e["steps"] == 5 and e["h"].shape == (6, 3) and e["hc"].shape == (6,)
        assert not e["reached"]
        p = torch.as_tensor(e["p"])
        np.testing.assert_allclose(e["h"], env.obstacle_h(p).numpy(), atol=1e-12)
        assert np.all(e["hc"] <= e["h"].min(-1) + 1e-12)
    assert env.unsafe_steps == 0 and env.steps == 10
    with pytest.raises(ValueError, match="num_envs=1"):
        rep.RecordingReachAvoid(num_envs=2)


def test_bad_args(tmp_path):
    with pytest.raises(SystemExit):
        rep.main(["--episodes", "0", "--out", str(tmp_path)])


def test_cli_reproduce_composite_cbf_seeds(tmp_path):
    """`safegrad reproduce composite-cbf --budget tiny --seeds 0 1`: one run per seed, then the
    seed table; `--aggregate` rebuilds it and replaces the README block."""
    _require_sac()
    from safegrad import cli

    out = tmp_path / "rep"
    n = torch.get_num_threads()
    try:
        argv = ["reproduce", "composite-cbf", "--budget", "tiny", "--threads", "1"]
        assert cli.main([*argv, "--seeds", "0", "1", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(n)
    runs = {k: json.loads((out / f"seed{k}" / "results.json").read_text()) for k in (0, 1)}
    for k, res in runs.items():
        assert res["sac_config"]["seed"] == k and res["settings"]["quick"]
        assert res["settings"]["episodes"] == 4 and res["settings"]["test_trials"] == 8
    # different seeds, different training
    assert runs[0]["per_episode"]["return"] != runs[1]["per_episode"]["return"]
    agg = json.loads((out / "seeds.json").read_text())
    assert [r["seed"] for r in agg["rows"]] == [0, 1] and agg["violations"] == 0
    for r, res in zip(agg["rows"], runs.values(), strict=True):
        assert r["steps"] == res["train"]["agent_steps"]
        assert r["test_success"] == res["test"]["success_rate"]
        assert r["train_min_h"] == res["train"]["min_composite_h"] >= 0
    md = (out / "seeds.md").read_text()
    assert md.count("\n| 0 |") == 1 and md.count("\n| 1 |") == 1
    # aggregate into a directory with a README: the block is appended, then replaced
    (out / "README.md").write_text("# report\n\nbody\n")
    for dirs in ([out / "seed0"], [out / "seed0", out / "seed1"]):
        assert rep.main(["--aggregate", *map(str, dirs), "--out", str(out)]) == 0
    text = (out / "README.md").read_text()
    assert text.startswith("# report\n\nbody\n") and text.count(rep.SEEDS_BEGIN) == 1
    assert text.count("\n| 1 |") == 1
    with pytest.raises(SystemExit):
        rep.main(["--aggregate", str(tmp_path / "missing"), "--out", str(out)])
