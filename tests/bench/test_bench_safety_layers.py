"""`safegrad bench safety-layers` (issue 8): quick run, JSON structure, layers agree; the
``CBFQP(backend=...)`` option (spec B §10)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from safegrad.bench import safety_layers as bench
from safegrad.qp.backends import available_backends
from safegrad.safeguards import CBFQP, CBFConstraints

BACKENDS = available_backends()


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("safety_layers")
    n = torch.get_num_threads()
    try:
        assert bench.main(["--quick", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(n)
    return out, json.loads((out / "safety_layers.json").read_text())


def test_quick_structure(quick):
    out, res = quick
    assert res["benchmark"] == "safety-layers"
    assert res["command"].startswith("safegrad bench safety-layers --quick")
    assert res["settings"]["obstacles"] == [3, 10] and res["settings"]["batches"] == [1, 16]
    assert res["methods"][:2] == ["composite", "cbfqp"]
    assert set(res["methods"]) == {"composite", "cbfqp", *BACKENDS}
    # one cell per method x I x B x mode, timed (the quick sizes are far below the cap)
    keys = {(c["method"], c["I"], c["B"], c["mode"]) for c in res["layers"]}
    assert len(keys) == len(res["layers"]) == len(res["methods"]) * 2 * 2 * 2
    for c in res["layers"]:
        assert "skipped" not in c, c
        assert c["seconds"] > 0 and c["repeats"] >= 1
    assert {r["I"] for r in res["conservatism"]} == {3, 10}
    assert set(res["paper_table1"]) == {"composite", "qpth", "cvxpylayers"}
    md = (out / "safety_layers.md").read_text()
    assert "## Table 1" in md and "## Layer-level time" in md and "| 10 | 16 | fwd+bwd |" in md
    assert (out / "safety_layers.png").stat().st_size > 1000
    load = res["load_average"]  # the machine's load, recorded next to the times
    assert len(load["start"]) == len(load["end"]) == 3 and min(load["start"]) >= 0
    assert "Machine load (1/5/15-min load average" in md


def test_quick_layers_agree(quick):
    _, res = quick
    for row in res["accuracy"]:
        m = row["methods"]
        # every exact QP layer solves problem (6): feasible and equal to each other
        for name in ("cbfqp", *BACKENDS):
            assert m[name]["max_exact_violation"] <= 1e-6, (row["I"], row["B"], name)
            assert m[name]["max_abs_diff_to_cbfqp"] <= 1e-5, (row["I"], row["B"], name)
            assert m[name]["fallbacks"] == 0
        # the composite satisfies its own (one-row) condition exactly; it may violate an
        # individual row (spec B §6), which is reported, not asserted
        assert m["composite"]["max_composite_violation"] <= 1e-9
        assert m["composite"]["fallbacks"] == 0
    for r in res["conservatism"]:
        # Lemma 1: 0 <= min h_i - h <= ln(I)/kappa, so the composite only excludes safe states
        assert 0 <= r["frac_excluded"] < 1
        assert 0 <= r["max_gap_minh_minus_h"] <= r["lemma1_bound"] + 1e-12
        assert math.isclose(r["lemma1_bound"], math.log(r["I"]) / 2.0)
        for name in ("composite", "cbfqp"):
            assert r[name]["one_step_unsafe"] == 0 and r[name]["one_step_min_h"] >= 0
        assert r["cbfqp"]["frac_exact_violated"] == 0


def test_quick_atts(quick):
    out, res = quick
    atts = res["atts"]
    try:
        from safegrad.algos import SAC  # noqa: F401
    except ImportError:
        assert "skipped" in atts
        return
    assert atts["batch"] == 32
    for c in atts["cells"]:
        assert "skipped" not in c, c
        assert c["seconds_per_step"] > 0 and c["steps"] >= 1
        assert c["training_violations"] == 0
    # the matrix-product floor of the composite step, and the ratio bound built from it
    comp = [c for c in atts["cells"] if c["method"] == "composite"]
    assert comp and all(c["gemm_seconds_per_step"] > 0 for c in comp)
    md = (out / "safety_layers.md").read_text()
    assert "How far the ratio can go on this machine" in md
    assert "| float64 | 3 |" in md


@pytest.mark.parametrize("seed", range(5))
def test_atts_ratio_bound_holds(seed):
    """``1 + (T_b - T_c)/G`` bounds ``T_b/T_c`` for every split of the shared work: steps
    ``G + S + L`` with random shared ``S`` and layer costs ``L_c, L_b >= 0``."""
    g = torch.Generator().manual_seed(seed)
    G, S, Lc, Lb = (torch.rand(4, generator=g, dtype=torch.float64) * 10 + 0.1).tolist()
    Tc, Tb = G + S + Lc, G + S + Lb
    assert Tb / Tc <= bench.atts_ratio_bound(Tb, Tc, G) + 1e-12
    # tight exactly when the composite step is the products alone
    assert bench.atts_ratio_bound(G + Lb, G, G) == pytest.approx((G + Lb) / G)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cbfqp_backend_matches_safegrad(backend):
    """CBFQP(backend=...) solves the same problem (6): output and d/dū agree with ours."""
    inst = bench.sample_instance(10, 64, seed=3)
    env = inst["env"]
    kw = {}
    if backend == "cvxpylayers":
        kw["backend_options"] = {"solver_args": bench.clarabel_args(1e-10, 1)}
    ours, ref = CBFQP(env.cbf_alpha), CBFQP(env.cbf_alpha, backend=backend, **kw)
    cons = CBFConstraints(inst["h"], inst["lf"], inst["lg"])
    outs, grads = [], []
    for layer in (ours, ref):
        a = inst["u_bar"].clone().requires_grad_(True)
        u, info = layer(a, cons)
        (u * inst["w"]).sum().backward()
        outs.append(u.detach())
        grads.append(a.grad)
        assert int(info["fallback"].sum()) == 0
    assert bool(info["intervened"].any())  # constraints are active in this instance
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=0)
    # ProxSuite's QPLayer backward is approximate (eps_backward = 1e-4 by default): ~5e-3
    gtol = 1e-2 if backend == "proxsuite" else 1e-4
    torch.testing.assert_close(grads[1], grads[0], atol=gtol, rtol=0)


def test_cbfqp_backend_errors():
    with pytest.raises(ValueError, match="backend must be 'safegrad' or one of"):
        CBFQP(backend="osqp")
    with pytest.raises(ValueError, match="only apply to a reference backend"):
        CBFQP(backend_options={"eps": 1e-6})
    with pytest.raises(TypeError, match="backend_options must be a dict"):
        CBFQP(backend="qpth", backend_options=[1])


def test_bad_args(tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--methods", "cbfqp", "--out", str(tmp_path)])  # composite required
    with pytest.raises(SystemExit):
        bench.main(["--methods", "composite,foo", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        bench.main(["--batches", "0", "--out", str(tmp_path)])


def test_render_only(quick, tmp_path):
    """``--render`` redraws the report of an existing JSON without measuring."""
    out, res = quick
    path = tmp_path / "safety_layers.json"
    path.write_text((out / "safety_layers.json").read_text())
    assert bench.main(["--render", str(path)]) == 0
    md = (tmp_path / "safety_layers.md").read_text()
    assert res["command"] in md and (tmp_path / "safety_layers.png").exists()
