"""`safegrad bench safeguards` smoke run: the reference formulations agree with ours."""

from __future__ import annotations

import json

import pytest
import torch

from safegrad.bench import safeguards as bench


def test_bench_smoke(tmp_path):
    n = torch.get_num_threads()
    try:
        rc = bench.main(
            [
                "--tasks",
                "BalancePendulum",
                "ReachAvoid",
                "--batches",
                "3",
                "--repeats",
                "1",
                "--ours-repeats",
                "3",
                "--safeguards",
                "BP",
                "RM",
                "CompositeCBF",
                "CBFQP",
                "--out",
                str(tmp_path),
            ]
        )
    finally:
        torch.set_num_threads(n)
    assert rc == 0
    res = json.loads((tmp_path / "safeguards.json").read_text())
    md = (tmp_path / "safeguards.md").read_text()
    assert "safegrad bench safeguards" in res["command"] and "cvxpylayers" in res["versions"]
    cells = {(c["task"], c["safeguard"]): c for c in res["cells"]}
    # CBF layers only where the task has CBF constraints
    assert ("BalancePendulum", "CBFQP") not in cells and ("ReachAvoid", "CBFQP") in cells
    for c in cells.values():
        assert c["max_diff"] <= 1e-6, c  # the same safeguard, two implementations
        assert c["grad_diff"] <= 1e-4, c
        assert c["ours_fwdbwd_ms"] > 0 and c["ratio_fwdbwd"] > 0
    assert "| ReachAvoid | 3 | CompositeCBF |" in md
    assert res["settings"]["ours_repeats"] == 3 and "median of 3 calls (ours)" in md


def test_bench_bad_args():
    with pytest.raises(SystemExit):
        bench.main(["--tasks", "Nope"])
    with pytest.raises(SystemExit):
        bench.main(["--repeats", "0"])
    with pytest.raises(SystemExit):
        bench.main(["--ours-repeats", "0"])
