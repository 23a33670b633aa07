"""Integration points (issue 5 item 6): SafeguardWrapper, SafeguardLayer, safegrad.make.

Safety is checked twice: the executed action against the task's safe set at the pre-step state
(containment), and the executed transition by the independent SafetyMonitor (zero violations).
"""

from __future__ import annotations

import pytest
import torch
from gymnasium.vector import VectorEnv

import safegrad
from safegrad.envs import TorchVectorEnv
from safegrad.safeguards import (
    CBFQP,
    BoundaryProjection,
    CompositeCBF,
    RayMask,
    SafeguardLayer,
    SafeguardWrapper,
    composite_barrier,
    regularisation_loss,
)

F64 = torch.float64
STEPS = 150


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # small batches: intra-op threads only add contention on a shared CPU
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _norm_residual(P, a):
    """Largest unit-row residual of ``a`` in ``P ∩ [-1, 1]^m``, per element."""
    nrm = torch.linalg.vector_norm(P.C, dim=-1).clamp_min(1e-300)
    r = ((P.C @ a.unsqueeze(-1)).squeeze(-1) - P.d) / nrm
    return torch.maximum(r.amax(-1), (a.abs() - 1).amax(-1))


def _raw_actions(env, g, scale=1.2):
    """Random raw actions; for ReachAvoid biased towards the goal (so obstacles are hit)."""
    a = scale * (2 * torch.rand(env.num_envs, env.action_dim, generator=g, dtype=F64) - 1)
    if env.env_id == "ReachAvoid-v0":
        to_goal = env.goal - env.state.detach()
        a = 0.5 * a + to_goal / torch.linalg.vector_norm(to_goal, dim=-1, keepdim=True)
    return a


CASES = [
    ("BalancePendulum-v0", 8, {}),
    ("BalanceQuadrotor-v0", 8, {}),
    ("NavigateSeeker-v0", 8, {}),
    ("ReachAvoid-v0", 8, {"reset_box": ([0.0, 0.0], [3.0, 3.0])}),
]
SAFEGUARDS = ["boundary-projection", "ray-mask", "ray-mask-tanh", "composite-cbf", "cbf-qp"]


def _params():
    out = []
    for env_id, n, kw in CASES:
        for sg in SAFEGUARDS:
            if sg in ("composite-cbf", "cbf-qp") and env_id != "ReachAvoid-v0":
                continue
            out.append(pytest.param(env_id, n, kw, sg, id=f"{env_id}-{sg}"))
    return out


@pytest.mark.parametrize("env_id,n,kw,sg", _params())
def test_wrapper_safe_and_monitor_clean(env_id, n, kw, sg):
    env = safegrad.make(env_id, num_envs=n, seed=3, dtype=F64, safeguard=sg, **kw)
    assert isinstance(env, SafeguardWrapper) and isinstance(env, VectorEnv)
    env.reset()
    g = torch.Generator().manual_seed(7)
    inner = env.unwrapped
    for _ in range(STEPS):
        x = env.state
        a = _raw_actions(inner, g)
        _, _, _, _, info = env.step(a)
        a_s = info["safe_action"]
        assert a_s.shape == a.shape and bool(torch.isfinite(a_s).all())
        assert not bool(info["fallback"].any())
        if sg == "composite-cbf":  # the composite condition (spec B Eq. 17) holds
            h_i, lf_i, lg_i = inner.cbf_constraints(x)
            h, lam = composite_barrier(h_i, inner.kappa)
            lf = (lam * lf_i).sum(-1)
            lg = (lam.unsqueeze(-1) * lg_i).sum(-2)
            slack = lf + (lg * a_s).sum(-1) + inner.cbf_alpha * h
            assert float(slack.min()) >= -1e-9
        elif sg == "cbf-qp":  # every CBF row holds (the task's CBF action set)
            P = inner.safe_action_set(x)
            r = ((P.C @ a_s.unsqueeze(-1)).squeeze(-1) - P.d).amax(-1)
            assert float(r.max()) <= 1e-9
        else:
            assert float(_norm_residual(inner.safe_action_set(x), a_s).max()) <= 1e-9
    tot = env.totals()
    assert tot["violations"] == 0 and env.monitor.violations == 0
    assert tot["transitions"] == STEPS * n and tot["fallbacks"] == 0
    assert tot["interventions"] > 0  # the raw actions were unsafe somewhere


def test_monitor_can_fail_without_safeguard():
    """The same random actions, unsafeguarded, do violate safety (so the check has teeth)."""
    found = {}
    for env_id, n, kw in CASES:
        env = SafeguardWrapper(safegrad.make(env_id, num_envs=n, seed=3, dtype=F64, **kw), None)
        env.reset()
        g = torch.Generator().manual_seed(7)
        for _ in range(STEPS):
            a = _raw_actions(env.unwrapped, g)
            _, _, _, _, info = env.step(a)
            assert torch.equal(info["safe_action"], a)  # explicit passthrough: identity
            assert not bool(info["intervened"].any())
        found[env_id] = env.totals()["violations"]
    assert sum(found.values()) > 0, found


def test_gradients_match_finite_differences():
    """3-step differentiable rollout through the ray mask on the pendulum: d(return)/d(raw
    actions) and d(return)/d(initial state) (the state path through the safe set) agree with
    central finite differences."""
    x0 = torch.tensor([[1.0, 3.0], [2.0, 4.0], [-1.0, -3.0]], dtype=F64)
    acts = torch.tensor([[[0.3], [-0.5], [0.7]], [[-0.2], [0.4], [0.1]], [[0.6], [-0.3], [-0.8]]])
    acts = acts.to(F64)
    env = safegrad.make("BalancePendulum-v0", num_envs=3, seed=0, dtype=F64, safeguard="ray-mask")

    def ret(a, x):
        env.reset(seed=5, options={"state": x})
        total = 0.0
        for t in range(a.shape[0]):
            _, r, _, _, info = env.step(a[t])
            total = total + r.sum()
        return total

    a = acts.clone().requires_grad_(True)
    x = x0.clone().requires_grad_(True)
    ga, gx = torch.autograd.grad(ret(a, x), (a, x))
    eps = 1e-6
    with torch.no_grad():
        fa = torch.zeros_like(acts)
        for idx in torch.cartesian_prod(*(torch.arange(s) for s in acts.shape)):
            i = tuple(idx.tolist())
            e = torch.zeros_like(acts)
            e[i] = eps
            fa[i] = (ret(acts + e, x0) - ret(acts - e, x0)) / (2 * eps)
        fx = torch.zeros_like(x0)
        for i in range(x0.shape[0]):
            for j in range(x0.shape[1]):
                e = torch.zeros_like(x0)
                e[i, j] = eps
                fx[i, j] = (ret(acts, x0 + e) - ret(acts, x0 - e)) / (2 * eps)
    assert float(ga.abs().max()) > 1e-3  # a gradient actually flows
    torch.testing.assert_close(ga, fa, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(gx, fx, atol=1e-6, rtol=1e-5)
    # the safe set really depends on the state: without the set path the state gradient differs
    env2 = SafeguardWrapper(
        env.unwrapped,
        RayMask(),
        set_fn=lambda s: env.unwrapped.safe_action_set(s.detach()),
    )
    env2.reset(seed=5, options={"state": x})
    _, r, _, _, _ = env2.step(acts[0])
    (gx_noset,) = torch.autograd.grad(r.sum(), x)
    env.reset(seed=5, options={"state": x})
    _, r, _, _, _ = env.step(acts[0])
    (gx_set,) = torch.autograd.grad(r.sum(), x)
    assert float((gx_set - gx_noset).abs().max()) > 1e-6


def test_passthrough_wrapper_is_identity_backward():
    env = safegrad.make(
        "BalanceQuadrotor-v0",
        num_envs=6,
        seed=1,
        dtype=F64,
        safeguard="boundary-projection",
        safeguard_kwargs={"grad_mode": "passthrough"},
    )
    env.reset()
    a = 1.5 * (2 * torch.rand(6, 2, generator=torch.Generator().manual_seed(0), dtype=F64) - 1)
    a.requires_grad_(True)
    _, _, _, _, info = env.step(a)
    assert bool(info["intervened"].any())
    w = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    (g,) = torch.autograd.grad((info["safe_action"] * w).sum(), a)
    assert torch.equal(g, w)  # exactly identity (spec A §3.5)


def test_regularisation_input_explicit():
    """P2: the last (raw, safe) actions are returned explicitly; the wrapper's regularisation
    term equals Eq. 17 on them and reaches the raw action."""
    env = safegrad.make(
        "NavigateSeeker-v0", num_envs=5, seed=2, dtype=F64, safeguard="boundary-projection"
    )
    env.reset()
    assert env.last_actions is None
    a = torch.full((5, 2), 3.0, dtype=F64, requires_grad=True)  # outside the box: intervenes
    _, _, _, _, info = env.step(a)
    raw, safe = env.last_actions
    assert raw is a and safe is info["safe_action"]
    loss = env.regularisation_loss(coef=0.1)
    torch.testing.assert_close(loss, regularisation_loss(a, info["safe_action"], 0.1))
    (g,) = torch.autograd.grad(loss, a)
    assert float(g.abs().max()) > 0
    env.detach()
    assert not env.last_actions.safe.requires_grad


@pytest.mark.parametrize("sg", ["boundary-projection", "ray-mask-tanh", "composite-cbf"])
def test_layer_equals_wrapper(sg):
    env_id = "ReachAvoid-v0" if sg == "composite-cbf" else "BalanceQuadrotor-v0"
    kw = {"reset_box": ([0.0, 0.0], [3.0, 3.0])} if env_id == "ReachAvoid-v0" else {}
    env = safegrad.make(env_id, num_envs=6, seed=4, dtype=F64, safeguard=sg, **kw)
    env.reset()
    layer = SafeguardLayer.for_env(env, env.safeguard)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        a = _raw_actions(env.unwrapped, g, scale=2.0)
        a_layer, linfo = layer(env.state, a)
        _, _, _, _, info = env.step(a)
        assert torch.equal(a_layer, info["safe_action"])
        assert torch.equal(linfo["intervened"], info["intervened"])


def test_layer_gradients_to_policy_and_state():
    env = safegrad.make("BalancePendulum-v0", num_envs=4, seed=0, dtype=F64)
    env.reset(options={"state": torch.tensor([[1.0, 3.0], [2.0, 4.0], [0.5, 1.0], [-2.0, -4.0]])})
    layer = SafeguardLayer(RayMask("tanh"), env.safe_action_set)
    x = env.state.clone().requires_grad_(True)
    a = torch.tensor([[0.9], [0.9], [-0.9], [-0.9]], dtype=F64, requires_grad=True)
    a_s, _ = layer(x, a)
    P = env.safe_action_set(x.detach())
    assert float(_norm_residual(P, a_s.detach()).max()) <= 1e-9
    ga, gx = torch.autograd.grad(a_s.sum(), (a, x))
    assert bool((ga > 0).all())  # the tanh ray mask is strictly increasing (full rank)
    assert float(gx.abs().max()) > 0  # the set path reaches the state


def test_make_routes_and_errors():
    env = safegrad.make("BalancePendulum-v0", num_envs=2)
    assert isinstance(env, TorchVectorEnv) and not isinstance(env, SafeguardWrapper)
    assert "BalancePendulum-v0" in safegrad.list_envs()
    w = safegrad.make("ReachAvoid-v0", num_envs=2, safeguard="composite-cbf")
    assert isinstance(w.safeguard, CompositeCBF) and w.safeguard.kappa == w.unwrapped.kappa
    w = safegrad.make("ReachAvoid-v0", num_envs=2, safeguard="cbf-qp")
    assert isinstance(w.safeguard, CBFQP)
    w = safegrad.make(
        "BalancePendulum-v0",
        num_envs=2,
        safeguard="ray-mask-tanh",
        safeguard_kwargs={"centre": "chebyshev"},
    )
    assert isinstance(w.safeguard, RayMask) and w.safeguard.map == "tanh"
    assert w.safeguard.centre == "chebyshev"
    w = safegrad.make("BalancePendulum-v0", num_envs=2, safeguard=BoundaryProjection())
    assert isinstance(w.safeguard, BoundaryProjection)
    # wrapper passthroughs
    assert w.num_envs == 2 and w.single_action_space.shape == (1,) and w.state_dim == 2
    w.reset(seed=0)
    assert w.state is w.unwrapped.state
    with pytest.raises(ValueError, match="boundary-projection.*ray-mask"):
        safegrad.make("BalancePendulum-v0", safeguard="projection")
    with pytest.raises(ValueError, match="CBF constraints.*ReachAvoid-v0"):
        safegrad.make("BalancePendulum-v0", safeguard="composite-cbf")
    with pytest.raises(ValueError, match="CBF constraints"):
        safegrad.make("NavigateSeeker-v0", safeguard="cbf-qp")
    with pytest.raises(TypeError, match="safeguard_kwargs"):
        safegrad.make("BalancePendulum-v0", safeguard="ray-mask", safeguard_kwargs=[1])
    with pytest.raises(ValueError, match="without a safeguard"):
        safegrad.make("BalancePendulum-v0", safeguard_kwargs={"grad_mode": "none"})
    with pytest.raises(TypeError, match="Safeguard"):
        safegrad.make("BalancePendulum-v0", safeguard=3)
    with pytest.raises(ValueError, match="grad_mode"):
        safegrad.make(
            "BalancePendulum-v0", safeguard="ray-mask", safeguard_kwargs={"grad_mode": "bogus"}
        )
    with pytest.raises(TypeError, match="cbf_constraints"):
        SafeguardWrapper(safegrad.make("BalancePendulum-v0", num_envs=2), CBFQP())
    with pytest.raises(ValueError, match="shape"):
        w.step(torch.zeros(3, 1))
