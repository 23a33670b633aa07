"""Reference backends agree with safegrad.qp (values and gradients); missing extras raise a clear
ImportError; the benchmark entry point writes its JSON + markdown."""

from __future__ import annotations

import importlib
import json
import sys

import pytest
import torch

from safegrad.qp import random_qp, solve_qp
from safegrad.qp.backends import BACKENDS, available_backends, get_backend

NAMES = ("Q", "p", "G", "h", "A", "b")
TOL = {"qpth": 1e-6, "cvxpylayers": 1e-3, "proxsuite": 1e-5}  # their default accuracies


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_backend_matches_solve_qp(name):
    if name not in available_backends():
        pytest.skip(f"{name} not installed")
    P = random_qp(4, 3, 6, 1, seed=3)
    args = [P[k].clone().requires_grad_() for k in NAMES]
    x = get_backend(name)(*args)
    w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    (x @ w).sum().backward()
    ours_args = [P[k].clone().requires_grad_() for k in NAMES]
    x0 = solve_qp(*ours_args)
    (x0 @ w).sum().backward()
    tol = TOL[name]
    torch.testing.assert_close(x.detach(), x0.detach(), atol=tol, rtol=0)
    for a, b, k in zip(args, ours_args, NAMES):
        torch.testing.assert_close(a.grad, b.grad, atol=50 * tol, rtol=0, msg=k)


def test_missing_extra_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "qpth", None)
    monkeypatch.setitem(sys.modules, "qpth.qp", None)
    monkeypatch.delitem(sys.modules, "safegrad.qp.backends.qpth", raising=False)
    with pytest.raises(ImportError, match=r"pip install safegrad\[baselines\]"):
        importlib.import_module("safegrad.qp.backends.qpth")
    assert "qpth" not in available_backends()
    with pytest.raises(ValueError, match="unknown QP backend"):
        get_backend("osqp")


def test_bench_main_quick(tmp_path):
    from safegrad.bench.qp import main

    rc = main(
        [
            "--batches",
            "1,4",
            "--sizes",
            "2x4",
            "--solvers",
            "safegrad",
            "--modes",
            "fwdbwd",
            "--repeats",
            "1",
            "--ref-check",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    res = json.loads((tmp_path / "qp.json").read_text())
    cells = res["cells"]
    assert {(c["batch"], c["mode"]) for c in cells} == {(1, "fwdbwd"), (4, "fwdbwd")}
    assert all(c["max_err"] < 1e-9 and c["max_violation"] < 1e-9 for c in cells)
    assert res["reference_check"]["2x4"] < 1e-8
    assert "safegrad bench qp" in (tmp_path / "qp.md").read_text()


def test_bench_cap_skips_slow_cells(tmp_path):
    from safegrad.bench.qp import main

    main(
        [
            "--batches",
            "1,64",
            "--sizes",
            "2x4",
            "--solvers",
            "safegrad,qpth",
            "--modes",
            "fwd",
            "--repeats",
            "1",
            "--ref-check",
            "0",
            "--cap",
            "1e-9",
            "--out",
            str(tmp_path),
        ]
    )
    cells = json.loads((tmp_path / "qp.json").read_text())["cells"]
    skipped = [c for c in cells if "skipped" in c]
    if "qpth" in available_backends():
        assert [(c["solver"], c["batch"]) for c in skipped] == [("qpth", 64)]
        assert "cap" in skipped[0]["skipped"]
