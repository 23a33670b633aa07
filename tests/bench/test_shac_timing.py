"""``safegrad bench shac-timing`` (--quick) and the cvxpylayers reference safeguards it times."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("cvxpylayers")
pytest.importorskip("clarabel")

from safegrad import envs  # noqa: E402
from safegrad.bench import shac_timing  # noqa: E402
from safegrad.bench.reference_safeguards import (  # noqa: E402
    ReferenceBoundaryProjection,
    ReferenceRayMask,
)
from safegrad.safeguards import BoundaryProjection, RayMask, SafeguardWrapper  # noqa: E402
from safegrad.sets import Box  # noqa: E402

F64 = torch.float64


def _instance(env_id: str, B: int = 6, seed: int = 0):
    env = envs.make(env_id, num_envs=B, seed=seed, dtype=F64)
    env.reset()
    P = env.safe_action_set(env.state)
    g = torch.Generator().manual_seed(seed)
    a = 2 * torch.rand(B, env.action_dim, generator=g, dtype=F64) - 1
    return env, P, a


@pytest.mark.parametrize("env_id", ["BalanceQuadrotor-v0"])
@pytest.mark.parametrize(
    "ours,ref",
    [
        (BoundaryProjection(), ReferenceBoundaryProjection(tol_solver=1e-12)),
        (RayMask("linear"), ReferenceRayMask("linear", tol_solver=1e-12)),
        (RayMask("tanh"), ReferenceRayMask("tanh", tol_solver=1e-12)),
    ],
    ids=["BP", "RM", "HRM"],
)
def test_reference_safeguards_equal_ours(env_id, ours, ref):
    """The cvxpylayers formulations solve the same problems: outputs and the gradients w.r.t.
    the action agree up to the solver tolerance, for BP also those w.r.t. the safe-set data
    (``C, d``; for the ray mask the LP derivative spreads over tied rows, not compared)."""
    _, P, a = _instance(env_id)
    C = P.C.detach().clone().requires_grad_(True)
    d = P.d.detach().clone().requires_grad_(True)
    w = torch.randn(a.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    grads = []
    outs = []
    for sg in (ours, ref):
        aa = a.clone().requires_grad_(True)
        from safegrad.sets import HPolytope

        out, info = sg(aa, HPolytope(C, d))
        ga, gC, gd = torch.autograd.grad((out * w).sum(), (aa, C, d))
        outs.append(out.detach())
        grads.append((ga, gC, gd))
        assert not info["fallback"].any()
    assert torch.allclose(outs[0], outs[1], atol=1e-6)
    assert float(outs[0].sub(a).norm(dim=-1).max()) > 1e-3  # the safeguard did intervene
    # (random in-box actions: the active sets are non-degenerate, so the gradients are unique)
    for g0, g1 in zip(grads[0], grads[1] if isinstance(ours, BoundaryProjection) else grads[1][:1]):
        assert torch.allclose(g0, g1, atol=1e-4), float((g0 - g1).abs().max())


def test_reference_safeguard_in_the_wrapper_is_safe_and_matches_ours():
    env = envs.make("BalancePendulum-v0", num_envs=4, seed=3, dtype=F64)
    ref_env = envs.make("BalancePendulum-v0", num_envs=4, seed=3, dtype=F64)
    ours, ref = (
        SafeguardWrapper(env, RayMask("linear")),
        SafeguardWrapper(ref_env, ReferenceRayMask()),
    )
    ours.reset(seed=3)
    ref.reset(seed=3)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        a = 2 * torch.rand(4, 1, generator=g, dtype=F64) - 1
        _, _, _, _, i0 = ours.step(a)
        _, _, _, _, i1 = ref.step(a)
        assert torch.allclose(i0["safe_action"], i1["safe_action"], atol=1e-6)
        assert torch.equal(i0["raw_unsafe"], i1["raw_unsafe"])
    assert ref.totals()["violations"] == 0


def test_reference_safeguard_rejects_other_sets():
    with pytest.raises(TypeError, match="HPolytope safe set"):
        ReferenceBoundaryProjection()(
            torch.zeros(2, 1, dtype=F64), Box(-torch.ones(1), torch.ones(1))
        )
    with pytest.raises(ValueError, match="threads must be a positive int"):
        ReferenceRayMask(threads=0)


def test_shac_timing_quick_writes_json_and_markdown(tmp_path, capsys):
    assert shac_timing.main(["--quick", "--tasks", "pendulum", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "shac_timing.json").read_text())
    cells = {c["variant"]: c for c in res["cells"]}
    assert list(cells) == list(shac_timing.VARIANTS)
    for v, c in cells.items():
        assert c["task"] == "pendulum" and c["episodes_timed"] == 1 and c["num_envs"] == 2
        assert c["median_episode_s"] > 0
        assert c["violations"] == 0 or v == "none"
    # ours and the reference start from the same weights, noise and states and apply the same
    # safeguard: the first episode's policy objective agrees (up to the solver tolerance)
    for v in ("BP", "RM"):
        assert cells[v]["first_objective"] == pytest.approx(
            cells[f"{v}-ref"]["first_objective"], rel=1e-4, abs=1e-6
        )
    assert cells["none"]["safeguard_fwd_s_per_episode"] == 0.0
    assert cells["RM-ref"]["safeguard_fwd_s_per_episode"] > 0
    (row,) = res["summary"]
    assert row["task"] == "pendulum"
    assert row["RM_ref_over_ours"] == pytest.approx(
        cells["RM-ref"]["median_episode_s"] / cells["RM"]["median_episode_s"]
    )
    md = (tmp_path / "shac_timing.md").read_text()
    assert "| pendulum | 4 x 2 |" in md and "--quick: smoke-test sizes" in md
    assert "safegrad bench shac-timing --quick" in md


def test_shac_timing_is_a_bench_verb_and_checks_arguments(capsys):
    from safegrad.cli import BENCHMARKS, main

    assert BENCHMARKS["shac-timing"][0] == "safegrad.bench.shac_timing"
    with pytest.raises(SystemExit):
        main(["bench", "shac-timing", "--episodes", "0"])
    assert "--episodes must be >= 1" in capsys.readouterr().err
