"""Shipped RCI sets: certificates, falsification, the 10 %-scaled set, file format (spec A
§2.4, §9 P7, §11.2)."""

import json

import numpy as np
import pytest
import torch

from safegrad.invariance import RCISet, check_certificate, falsify, load_rci, save_rci
from safegrad.invariance.compute import RCI_PROBLEMS
from safegrad.invariance.facets import facet_normals, zonotope_hrep
from safegrad.sets import Zonotope

SETS = [(p.name, p.env_id, p.system_factory) for p in RCI_PROBLEMS.values()]
IDS = [s[0] for s in SETS]


@pytest.fixture(scope="module", params=SETS, ids=IDS)
def shipped(request):
    name, env_id, factory = request.param
    return load_rci(name), factory()


def test_certificate_passes(shipped):
    rci, system = shipped
    cert = check_certificate(rci, system, cell_budget=20_000)
    assert cert["passed"], cert
    assert cert["containment_margin"] > 0 and cert["state_box_margin"] > 0
    assert cert["control_margin"] >= 0 and cert["system_mismatch"] == []
    # the stored certificate (made at compute time) passed as well
    assert rci.meta["certificate"]["passed"]
    assert rci.meta["falsification"]["passed"]
    assert rci.meta["falsification"]["transitions"] >= 100_000


def test_set_strictly_inside_S_and_controls_in_box(shipped):
    rci, system = shipped
    hull = rci.hull_halfwidth + rci.state_error
    assert (rci.center + hull < system.state_high.numpy()).all()
    assert (rci.center - hull > system.state_low.numpy()).all()
    for i in system.angle_indices:
        assert abs(rci.center[i]) + hull[i] < np.pi
    assert (np.abs(rci.ctrl_center) + np.abs(rci.ctrl_generators).sum(1) <= 1.0).all()


def test_falsification_finds_no_escape(shipped):
    rci, system = shipped
    res = falsify(rci, system, num_transitions=6_000, seed=1)
    assert res["passed"], res
    assert res["transitions"] >= 6_000


def test_scaled_set_is_caught(shipped):
    rci, system = shipped
    big = rci.scaled(1.1)
    res = falsify(big, system, num_transitions=6_000, seed=1)
    assert not res["passed"]
    assert res["escapes"] + res["empty"] + res["states_outside_S"] > 0
    assert not check_certificate(big, system, cell_budget=20_000)["passed"]


@pytest.mark.slow
def test_full_falsification(shipped):
    rci, system = shipped
    res = falsify(rci, system, num_transitions=100_000, seed=2)
    assert res["passed"], res


def test_hrep_matches_torch_facets_and_vertices(shipped):
    rci, _ = shipped
    C, d = rci.hrep()
    np.testing.assert_allclose(np.linalg.norm(C, axis=1), 1.0, atol=1e-12)
    Z = Zonotope(torch.tensor(rci.center), torch.tensor(rci.generators))
    P = Z.to_hpolytope()
    # every facet of the torch H-rep is one of ours (up to duplicates / zero rows)
    Ct, dt = P.C.numpy(), P.d.numpy()
    keep = np.linalg.norm(Ct, axis=1) > 0.5
    dots = Ct[keep] @ C.T
    assert (dots.max(1) > 1.0 - 1e-9).all()
    j = dots.argmax(1)
    np.testing.assert_allclose(dt[keep], d[j], rtol=1e-9, atol=1e-9)
    # points c + G sigma are inside, points slightly outside the support are not
    rng = np.random.default_rng(0)
    sig = rng.choice([-1.0, 1.0], size=(500, rci.num_generators))
    pts = rci.center + sig @ rci.generators.T
    assert (pts @ C.T - d <= 1e-9).all()
    x = torch.tensor(pts * 1.05 - 0.05 * rci.center)
    assert (~rci.contains(x)).sum() > 0


def test_facet_normals_of_a_box_and_flat_error():
    N = facet_normals(np.diag([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(np.abs(N[np.argsort(np.abs(N).argmax(1))]), np.eye(3), atol=1e-12)
    C, d = zonotope_hrep(np.zeros(2), np.array([[1.0, 1.0], [0.0, 1.0]]))
    assert C.shape == (4, 2)
    with pytest.raises(ValueError, match="flat"):
        facet_normals(np.array([[1.0, 2.0], [2.0, 4.0]]))


def test_json_round_trip_and_metadata(tmp_path, shipped):
    rci, _ = shipped
    path = save_rci(rci, str(tmp_path / "x.json"))
    back = load_rci(path)
    np.testing.assert_array_equal(back.generators, rci.generators)
    np.testing.assert_array_equal(back.ctrl_generators, rci.ctrl_generators)
    np.testing.assert_array_equal(back.linear_model["J"], rci.linear_model["J"])
    meta = rci.meta
    assert meta["command"].startswith("safegrad rci compute ")
    assert {"safegrad", "numpy", "torch", "cvxpy"} <= set(meta["versions"])
    assert meta["certificate"]["num_facets"] == rci.hrep()[0].shape[0]


def test_file_format_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="rci compute"):
        load_rci("no_such_set")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a safegrad-rci file"):
        load_rci(str(bad))
    bad.write_text(json.dumps({"format": "safegrad-rci", "format_version": 99}))
    with pytest.raises(ValueError, match="format_version"):
        load_rci(str(bad))
    with pytest.raises(ValueError, match="inconsistent shapes"):
        RCISet(
            "x",
            "y",
            np.zeros(3),
            np.zeros((2, 4)),
            np.zeros(1),
            np.zeros((1, 4)),
            {},
            np.zeros(2),
            {},
        )


def test_sampling_stays_inside(shipped):
    rci, _ = shipped
    g = torch.Generator().manual_seed(0)
    for method in ("generators", "uniform"):
        x = rci.sample(500, g, method=method)
        assert rci.contains(x, tol=1e-9).all()
    x, beta = rci.sample(10, g, return_beta=True)
    u = rci.paired_control(beta)
    assert u.shape == (10, rci.ctrl_center.shape[0]) and (u.abs() <= 1).all()
    with pytest.raises(ValueError, match="method"):
        rci.sample(3, g, method="grid")
