"""SAC: target and buffer maths by hand, copies/Polyak, store_action, policy-side layer in the
losses, save/load, zero violations with every safeguard, config errors, learning."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

import safegrad
from safegrad.algos import SAC, SACConfig
from safegrad.algos.networks import FusedReLUMLP, QCritic, QEnsemble, mlp, relu_mlp
from safegrad.algos.sac import ReplayBuffer, polyak_update, sac_critic_target
from safegrad.safeguards import SafeguardWrapper

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SMALL = dict(
    actor_hidden=(16, 16),
    critic_hidden=(16, 16),
    batch_size=16,
    learning_starts=4,
    policy_frequency=2,
    target_frequency=3,
)


def _cfg(*dicts, **kw):
    """SMALL updated with the dicts and keywords (later ones win)."""
    out = dict(SMALL)
    for d in dicts:
        out.update(d)
    out.update(kw)
    return out


#: the fast-learning setting (tests and docs): small nets, one actor step per critic step
FAST = dict(
    actor_hidden=(64, 64),
    critic_hidden=(64, 64),
    policy_frequency=1,
    target_frequency=1,
    tau=0.05,
    batch_size=128,
    learning_starts=32,
    actor_lr=1e-3,
    actor_lr_schedule="constant",
    critic_lr=1e-3,
)


def _pend(n=2, seed=0, steps=200, safeguard=None, dtype=torch.float32):
    return safegrad.make(
        "BalancePendulum-v0",
        num_envs=n,
        seed=seed,
        max_episode_steps=steps,
        safeguard=safeguard,
        dtype=dtype,
    )


def _reach(n=2, seed=0, safeguard=None, steps=200):
    return safegrad.make(
        "ReachAvoid-v0", num_envs=n, seed=seed, safeguard=safeguard, max_episode_steps=steps
    )


def _reach_near_obstacle(safeguard=None, *, monitor_only=False, n=4):
    """ReachAvoid-v0 starting around the first obstacle (centre (1.3, 1.1), radius 0.4), 40-step
    episodes: random actions collide within a few hundred interactions (control test).
    ``safeguard``: a name for ``safegrad.make``; ``monitor_only``: the monitoring-only wrapper."""
    env = safegrad.make(
        "ReachAvoid-v0",
        num_envs=n,
        seed=0,
        reset_box=([0.75, 0.55], [1.85, 1.65]),
        max_episode_steps=40,
        safeguard=safeguard,
    )
    return SafeguardWrapper(env, None) if monitor_only else env


def _state_of_pendulum_obs(obs):
    return torch.stack((torch.atan2(obs[:, 0], obs[:, 1]), obs[:, 2]), -1)


# ----------------------------------------------------------------------------- pure maths
def test_critic_target_by_hand():
    r = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    term = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    q1 = torch.tensor([3.0, 4.0, -1.0], dtype=torch.float64)
    q2 = torch.tensor([2.0, 5.0, -2.0], dtype=torch.float64)
    logp = torch.tensor([-1.0, 0.3, 2.0], dtype=torch.float64)
    y = sac_critic_target(r, term, q1, q2, logp, 0.5, 0.9)
    # min q: 2, 4, -2; soft v = min q - 0.5 logp: 2.5, 3.85, -3
    ref = torch.tensor([1.0 + 0.9 * 2.5, -2.0, 0.5 + 0.9 * -3.0], dtype=torch.float64)
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------- fast networks
def _params(shapes, gen):
    return [torch.randn(*s, generator=gen, dtype=torch.float64, requires_grad=True) for s in shapes]


@pytest.mark.parametrize("members", [None, 2])
def test_relu_mlp_gradcheck(members):
    """The hand-written backward of relu_mlp against finite differences (float64), single net
    and ensemble (shared and per-member input), all inputs and only the input."""
    g = torch.Generator().manual_seed(0)
    e = () if members is None else (members,)
    ws = _params([(*e, 5, 3), (*e, 4, 5), (*e, 2, 4)], g)
    bs = _params([(*e, 5), (*e, 4), (*e, 2)], g)
    xs = _params([(7, 3)] + ([] if members is None else [(members, 7, 3)]), g)
    wd, bd = [w.detach() for w in ws], [b.detach() for b in bs]
    for x in xs:
        assert torch.autograd.gradcheck(lambda x, *p: relu_mlp(x, p[:3], p[3:]), (x, *ws, *bs))
        assert torch.autograd.gradcheck(lambda x: relu_mlp(x, wd, bd), (x,))


def test_fused_relu_mlp_is_the_sequential():
    """FusedReLUMLP: same modules and keys as mlp's nn.Sequential; same values and gradients
    (relu'(0) = 0 like autograd's ReLU: the bias makes exact zeros)."""
    torch.manual_seed(0)
    fused = mlp(3, 2, (8, 8), "relu", False, dtype=torch.float64, fused=True)
    torch.manual_seed(0)
    plain = mlp(3, 2, (8, 8), "relu", False, dtype=torch.float64)
    assert isinstance(fused, FusedReLUMLP) and type(plain) is torch.nn.Sequential
    assert list(fused.state_dict()) == list(plain.state_dict())
    with torch.no_grad():
        fused[2].bias[:3] = -100.0  # dead units: the mask matters
        plain[2].bias[:3] = -100.0
    x = torch.randn(16, 3, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    w = torch.randn(16, 2, dtype=torch.float64)
    (fused(x) * w).sum().backward()
    (plain(x2) * w).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-12, atol=1e-12)
    for p, q in zip(fused.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-12)
    assert fused(torch.randn(4, 5, 3, dtype=torch.float64)).shape == (4, 5, 2)
    # not applicable (ELU or LayerNorm): a plain Sequential
    assert type(mlp(3, 2, (8,), "elu", False, fused=True)) is torch.nn.Sequential
    assert type(mlp(3, 2, (8,), "relu", True, fused=True)) is torch.nn.Sequential


@pytest.mark.parametrize(("act", "ln"), [("relu", False), ("elu", True), ("tanh", False)])
def test_q_ensemble_is_two_qcritics(act, ln):
    """QEnsemble = two QCritic built in turn from the same seed: same initial weights (QCritic
    keys), same values, same parameter gradients; member views share the storage."""
    dt = torch.float64
    torch.manual_seed(3)
    c1 = QCritic(4, 2, (8, 8), act, ln, dtype=dt)
    c2 = QCritic(4, 2, (8, 8), act, ln, dtype=dt)
    torch.manual_seed(3)
    ens = QEnsemble(4, 2, (8, 8), act, ln, num_critics=2, dtype=dt)
    assert ens.fused == (act == "relu" and not ln)
    members = (ens.member(0), ens.member(1))
    for m, c in zip(members, (c1, c2), strict=True):
        sd, ref = m.state_dict(), c.state_dict()
        assert list(sd) == list(ref) and all(torch.equal(sd[k], ref[k]) for k in ref)
    o, a = torch.randn(6, 4, dtype=dt), torch.randn(6, 2, dtype=dt)
    q = ens(o, a)
    assert q.shape == (2, 6)
    for j, c in enumerate((c1, c2)):
        torch.testing.assert_close(q[j], c(o, a), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(members[j](o, a), c(o, a), rtol=0, atol=0)
    w = torch.randn(2, 6, dtype=dt)
    (q * w).sum().backward()
    (c1(o, a) * w[0]).sum().backward()
    (c2(o, a) * w[1]).sum().backward()
    grads = {k: getattr(ens, grp)[layer].grad for k, grp, layer in ens._member_keys}
    for j, c in enumerate((c1, c2)):
        for k, p in c.named_parameters():
            torch.testing.assert_close(grads[k][j], p.grad, rtol=1e-12, atol=1e-12)
    # detached parameters: gradient to the action only
    a2 = a.clone().requires_grad_(True)
    ens.zero_grad(set_to_none=True)
    ens(o, a2, detach_params=True).sum().backward()
    assert all(p.grad is None for p in ens.parameters()) and a2.grad is not None
    with torch.no_grad():
        next(members[1].parameters()).add_(1.0)
    assert torch.equal(ens.weights[0][1], next(members[1].parameters()))
    with pytest.raises(ValueError, match="keys"):
        members[0].load_state_dict({"net.0.weight": torch.zeros(8, 6)})
    with pytest.raises(IndexError):
        ens.member(2)


def test_load_pre_ensemble_checkpoint(tmp_path):
    """A checkpoint of the separate-critic layout (critic optimiser over q1's then q2's
    parameters) loads: the Adam moments land in the stacked parameters."""
    agent = SAC(_reach(seed=0, steps=9), **SMALL, policy_safeguard="composite-cbf")
    agent.learn(24)
    agent.save(tmp_path / "new.pt")
    ckpt = torch.load(tmp_path / "new.pt", weights_only=False)
    stacked = ckpt["critic_opt"]
    names = [n.rsplit(".", 1) for n, _ in agent.critic.named_parameters()]
    where = {(g, int(i)): k for k, (g, i) in enumerate(names)}
    keys = agent.critic._member_keys
    old_state = {}
    for j in range(2):
        for k, (_, grp, layer) in enumerate(keys):
            st = stacked["state"][where[(grp, layer)]]
            old_state[j * len(keys) + k] = {
                "step": st["step"].clone(),
                "exp_avg": st["exp_avg"][j].clone(),
                "exp_avg_sq": st["exp_avg_sq"][j].clone(),
            }
    group = dict(stacked["param_groups"][0], params=list(range(2 * len(keys))), fused=None)
    ckpt["critic_opt"] = {"state": old_state, "param_groups": [group]}
    torch.save(ckpt, tmp_path / "old.pt")
    loaded = SAC.load(tmp_path / "old.pt", _reach(seed=0, steps=9))
    for p, q in zip(agent.critic.parameters(), loaded.critic.parameters(), strict=True):
        assert torch.equal(p, q)
        for k in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(agent.critic_opt.state[p][k], loaded.critic_opt.state[q][k])
    assert loaded.critic_opt.param_groups[0]["fused"] == agent.critic_opt.param_groups[0]["fused"]
    a1, a2 = agent.learn(8), loaded.learn(8)
    for p, q in zip(a1.critic.parameters(), a2.critic.parameters(), strict=True):
        assert torch.equal(p, q)


def test_replay_buffer_ring_by_hand():
    buf = ReplayBuffer(5, {"x": 2, "r": 0}, dtype=torch.float64, device=torch.device("cpu"))
    x = torch.arange(8, dtype=torch.float64).reshape(4, 2)
    r = torch.arange(4, dtype=torch.float64)
    assert buf.add(torch.tensor([True, False, True, True]), x=x, r=r) == 3
    assert (buf.ptr, buf.size) == (3, 3)
    assert buf.data["r"][:3].tolist() == [0.0, 2.0, 3.0]
    assert buf.add(None, x=x + 10, r=r + 10) == 4  # wraps: rows 3, 4, then 0, 1
    assert (buf.ptr, buf.size) == (2, 5)
    assert buf.data["r"].tolist() == [12.0, 13.0, 3.0, 10.0, 11.0]
    assert buf.data["x"][0].tolist() == [14.0, 15.0]
    s = buf.sample(torch.tensor([4, 0]))
    assert s["r"].tolist() == [11.0, 12.0] and s["x"][1].tolist() == [14.0, 15.0]
    assert buf.add(torch.zeros(4, dtype=torch.bool), x=x, r=r) == 0
    other = ReplayBuffer(5, {"x": 2, "r": 0}, dtype=torch.float64, device=torch.device("cpu"))
    other.load_state_dict(buf.state_dict())
    assert (other.ptr, other.size) == (2, 5) and torch.equal(other.data["x"], buf.data["x"])
    with pytest.raises(ValueError, match="fields"):
        buf.add(None, x=x)


def test_buffer_skips_reset_slots_and_keeps_final_obs():
    """3-step episodes, 2 envs, 8 vector steps: steps 4 and 8 are next-step-autoreset slots
    (no transition), so 6 x 2 rows; the done row's next_obs is the final observation and
    truncation is not termination."""
    agent = SAC(_pend(steps=3), **_cfg(learning_starts=100))
    agent._ensure_started()
    finals = []
    acc = {k: torch.zeros((), dtype=torch.long) for k in ("valid", "violations", "interventions")}
    acc["reward"] = torch.zeros(())
    for i in range(8):
        agent._env_step(acc)
        if i == 2:
            finals.append(agent._obs.clone())
    assert len(agent.buffer) == 12 and int(acc["valid"]) == 12
    assert torch.equal(agent.buffer.data["next_obs"][4:6], finals[0])
    assert float(agent.buffer.data["terminated"][:12].abs().sum()) == 0.0
    # consecutive rows chain: next_obs of step k == obs of step k+1 (within an episode)
    torch.testing.assert_close(agent.buffer.data["next_obs"][0:2], agent.buffer.data["obs"][2:4])


def test_targets_are_copies_and_polyak():
    agent = SAC(_pend(), **SMALL)
    for src, tgt in ((agent.q1, agent.q1_target), (agent.q2, agent.q2_target)):
        for p, q in zip(src.parameters(), tgt.parameters(), strict=True):
            assert torch.equal(p, q) and p.data_ptr() != q.data_ptr() and not q.requires_grad
    assert not all(
        torch.equal(p, q) for p, q in zip(agent.q1.parameters(), agent.q2.parameters(), strict=True)
    )
    old = [q.clone() for q in agent.q1_target.parameters()]
    with torch.no_grad():
        for p in agent.q1.parameters():
            p.add_(1.0)
    polyak_update(agent.q1_target, agent.q1, 0.3)
    for o, p, q in zip(old, agent.q1.parameters(), agent.q1_target.parameters(), strict=True):
        torch.testing.assert_close(q, 0.3 * p + 0.7 * o)
    assert agent.log_alpha.requires_grad
    assert float(agent.alpha) == pytest.approx(0.2)


@pytest.mark.parametrize("side", ["env", "policy"])
def test_update_matches_hand_computation(side):
    """One critic + actor + temperature step replayed by hand from the same generator state:
    critic loss with y = r + g(1-d)(min Q^(o', a'_s) - alpha log pi(a'|o')), actor loss
    alpha log pi(a|o) - min Q(o, layer(x, a)) with the pre-filter log-prob, Adam steps."""
    kw = _cfg(policy_frequency=1, target_frequency=1, dtype="float64", tau=0.5, learning_starts=99)
    if side == "env":
        env, kw2 = _pend(n=4, safeguard="ray-mask", dtype=torch.float64), {}
    else:
        env = _pend(n=4, dtype=torch.float64)
        kw2 = {"policy_safeguard": "boundary-projection"}
    agent = SAC(env, **kw, **kw2, log_std_init=0.5)
    agent.learn(40)  # random actions only: fills the buffer
    assert agent.num_updates == 0 and len(agent.buffer) == 40
    ref = copy.deepcopy(agent)
    gen_state = agent.generator.get_state()
    out = agent._update()

    g = torch.Generator().manual_seed(0)
    g.set_state(gen_state)
    idx = torch.randint(0, 40, (16,), generator=g)
    b = ref.buffer.sample(idx)
    layer = ref.policy_layer
    with torch.no_grad():
        eps2 = torch.randn(16, 1, generator=g, dtype=torch.float64)
        u2 = ref.actor.mu(b["next_obs"]) + ref.actor.log_std.exp() * eps2
        a2 = torch.tanh(u2)
        logp2 = (
            -0.5 * eps2**2
            - ref.actor.log_std
            - 0.5 * math.log(2 * math.pi)
            - torch.log(1 - torch.tanh(u2) ** 2)
        ).sum(-1)
        if layer is not None:
            a2 = layer(b["next_state"], a2)[0]
        qn = torch.minimum(ref.q1_target(b["next_obs"], a2), ref.q2_target(b["next_obs"], a2))
        y = b["reward"] + 0.99 * (1 - b["terminated"]) * (qn - 0.2 * logp2)
    loss = 0.5 * (
        (ref.q1(b["obs"], b["action"]) - y).pow(2).mean()
        + (ref.q2(b["obs"], b["action"]) - y).pow(2).mean()
    )
    torch.testing.assert_close(out["critic_loss"], loss.detach(), rtol=1e-12, atol=1e-12)
    ref.critic_opt.zero_grad()
    loss.backward()
    ref.critic_opt.step()
    for p, q in zip(agent.q1.parameters(), ref.q1.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)

    eps = torch.randn(16, 1, generator=g, dtype=torch.float64)
    u = ref.actor.mu(b["obs"]) + ref.actor.log_std.exp() * eps
    logp = (
        -0.5 * eps**2
        - ref.actor.log_std
        - 0.5 * math.log(2 * math.pi)
        - torch.log(1 - torch.tanh(u) ** 2)
    ).sum(-1)
    a = torch.tanh(u)
    a_q = a if layer is None else layer(b["state"], a)[0]
    actor_loss = (0.2 * logp - torch.minimum(ref.q1(b["obs"], a_q), ref.q2(b["obs"], a_q))).mean()
    torch.testing.assert_close(out["actor_loss"], actor_loss.detach(), rtol=1e-10, atol=1e-12)
    if layer is not None:
        assert not torch.equal(a_q, a), "the layer must intervene on some replayed states"
    alpha_loss = -(0.2 * (logp.detach() - 1.0)).mean()  # target entropy -m = -1
    torch.testing.assert_close(out["alpha_loss"], alpha_loss, rtol=1e-10, atol=1e-12)
    # target update with tau = 0.5 after the critic step
    for t, p, q in zip(
        agent.q1_target.parameters(), agent.q1.parameters(), ref.q1_target.parameters(),
        strict=True,
    ):  # fmt: skip
        torch.testing.assert_close(t, 0.5 * p + 0.5 * q, rtol=1e-12, atol=1e-12)


def test_store_action_raw_vs_safe_env_side():
    """Same seeds, random-action phase: raw stores the sampled action, safe the executed one
    g(a, x) (recomputed here from the state behind the stored observation)."""
    runs = {}
    for store in ("raw", "safe"):
        env = _pend(n=4, safeguard="ray-mask", dtype=torch.float64)
        agent = SAC(env, **_cfg(store_action=store, dtype="float64", learning_starts=99))
        agent.learn(64)
        runs[store] = (agent, env)
    (a_raw, env), (a_safe, _) = runs["raw"], runs["safe"]
    n = len(a_raw.buffer)
    obs = a_raw.buffer.data["obs"][:n]
    assert torch.equal(obs, a_safe.buffer.data["obs"][:n])  # same trajectory
    raw, safe = a_raw.buffer.data["action"][:n], a_safe.buffer.data["action"][:n]
    x = _state_of_pendulum_obs(obs)
    inner = env.unwrapped
    expect, _ = env.safeguard(raw, inner.safe_action_set(x))
    torch.testing.assert_close(safe, expect, rtol=1e-7, atol=1e-7)
    assert not torch.equal(raw, safe), "the ray mask must intervene"
    assert env.totals()["interventions"] > 0


def test_policy_side_stores_safe_action_and_states():
    agent = SAC(_pend(n=4), **_cfg(policy_safeguard="boundary-projection", learning_starts=0))
    agent.learn(64)
    n = len(agent.buffer)
    d = agent.buffer.data
    x = d["state"][:n]
    torch.testing.assert_close(x, _state_of_pendulum_obs(d["obs"][:n]), rtol=1e-5, atol=1e-5)
    # the stored action is a fixed point of the layer: it is the layer's (safe) output
    again, _ = agent.policy_layer(x, d["action"][:n])
    torch.testing.assert_close(again, d["action"][:n], rtol=1e-5, atol=1e-5)
    assert agent.interventions > 0 and agent.violations == 0
    assert agent.store_safe


# ----------------------------------------------------------------------------- persistence
@pytest.mark.parametrize(
    ("make_env", "kw"),
    [
        (lambda seed: _pend(steps=7, seed=seed), {}),
        (lambda seed: _pend(steps=7, seed=seed, safeguard="ray-mask"), {"store_action": "safe"}),
        (lambda seed: _reach(seed=seed, steps=9), {"policy_safeguard": "composite-cbf"}),
    ],
    ids=["unsafe", "ray-mask", "policy-composite-cbf"],
)
def test_save_load_resumes_identically(tmp_path, make_env, kw):
    cfg = dict(SMALL, seed=3, train_freq=2, utd=2, buffer_size=30, state_dependent_std=True, **kw)
    agent = SAC(make_env(0), **cfg)
    agent.learn(24)  # learning starts inside, the 30-row buffer wraps later
    agent.save(tmp_path / "sac.pt")
    logs = []
    agent.learn(40, callback=lambda a, lg: logs.append(lg))
    loaded = SAC.load(tmp_path / "sac.pt", make_env(99))
    assert loaded.num_steps == 24 and loaded.num_updates == agent.num_updates - 40
    logs2 = []
    loaded.learn(40, callback=lambda a, lg: logs2.append(lg))
    assert loaded.num_steps == agent.num_steps == 64 and loaded.buffer.ptr == agent.buffer.ptr
    for name in ("actor", "q1", "q2", "q1_target", "q2_target"):
        for p, q in zip(
            getattr(agent, name).parameters(), getattr(loaded, name).parameters(), strict=True
        ):
            assert torch.equal(p, q), name
    assert torch.equal(agent.log_alpha, loaded.log_alpha)
    for k in agent.buffer.data:
        assert torch.equal(agent.buffer.data[k], loaded.buffer.data[k]), k
    assert torch.equal(agent._obs, loaded._obs)
    drop = ("steps_per_s",)
    strip = lambda lgs: [{k: v for k, v in d.items() if k not in drop} for d in lgs]
    assert str(strip(logs)) == str(strip(logs2))  # str: NaN == NaN
    with pytest.raises(ValueError, match="not a PPO checkpoint"):
        from safegrad.algos import PPO

        PPO.load(tmp_path / "sac.pt", make_env(0))


# ----------------------------------------------------------------------------- safety
@pytest.mark.parametrize(
    ("make_env", "kw"),
    [
        (lambda: _pend(n=4, safeguard="boundary-projection"), {}),
        (lambda: _pend(n=4, safeguard="ray-mask"), {}),
        (lambda: _pend(n=4), {"policy_safeguard": "boundary-projection"}),
        (lambda: _reach_near_obstacle(), {"policy_safeguard": "composite-cbf"}),
        (lambda: _reach_near_obstacle("composite-cbf"), {}),
    ],
    ids=["env-bp", "env-ray-mask", "policy-bp", "policy-composite-cbf", "env-composite-cbf"],
)
def test_zero_violations_with_safeguards(make_env, kw):
    env = make_env()
    viol = []
    agent = SAC(env, **_cfg(**kw, learning_starts=8, log_std_init=0.5))
    agent.learn(320, callback=lambda a, lg: viol.append(lg["violations"]))
    assert len(viol) == 80 and sum(viol) == 0 and agent.violations == 0
    assert agent.interventions > 0 and agent.logs["interventions"] >= 0
    mon = env.monitor if isinstance(env, SafeguardWrapper) else agent.executor.monitor
    assert mon.transitions == 320 and mon.violations == 0


@pytest.mark.parametrize("task", ["pendulum", "reach"])
def test_unsafeguarded_training_is_monitored_and_violates(task):
    """Control for the zero-violation test: the same short runs without a safeguard (through a
    monitoring-only wrapper) do violate, so zero above is not a dead monitor."""
    if task == "pendulum":
        env = SafeguardWrapper(_pend(n=4), None)
    else:
        env = _reach_near_obstacle(monitor_only=True)
    agent = SAC(env, **_cfg(learning_starts=8, log_std_init=0.5))
    agent.learn(320)
    assert agent.violations > 0 and agent.interventions == 0
    assert env.totals()["violations"] == agent.violations


# ----------------------------------------------------------------------------- config
def test_config_defaults_are_paper_era_pendulum():
    c = SACConfig()
    assert (c.buffer_size, c.batch_size, c.gamma, c.tau, c.learning_starts) == (
        60_000,
        64,
        0.99,
        0.673,
        64,
    )
    assert (c.policy_frequency, c.target_frequency, c.alpha_init) == (6, 7, 0.2)
    assert (c.actor_hidden, c.actor_activation, c.actor_lr, c.actor_lr_schedule) == (
        (173,) * 4,
        "relu",
        2e-3,
        "linear",
    )
    assert (c.critic_hidden, c.critic_lr, c.critic_betas) == ((135,) * 4, 2e-3, (0.7, 0.95))
    assert c.store_action == "auto" and c.policy_safeguard is None


@pytest.mark.parametrize("name", ["pendulum", "quadrotor", "household", "reachavoid"])
def test_presets_load_and_round_trip(tmp_path, name):
    c = SACConfig.from_yaml(CONFIGS / f"sac_{name}.yaml")
    c.to_yaml(tmp_path / "c.yaml")
    assert SACConfig.from_yaml(tmp_path / "c.yaml") == c
    if name == "pendulum":
        assert c == SACConfig()
    if name == "reachavoid":
        assert (c.policy_safeguard, c.tau, c.batch_size, c.critic_hidden) == (
            "composite-cbf",
            0.005,
            256,
            (256, 256),
        )
        env = safegrad.make("ReachAvoid-v0", num_envs=1, dtype=torch.float64)
        SAC(env, c.replace(buffer_size=1000))  # builds on the task (float64 preset)


def test_config_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text("batch_size: 8\nbatch_sise: 3\n")
    with pytest.raises(ValueError, match="batch_sise"):
        SACConfig.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(TypeError, match="learning_starts"):
        SACConfig(learning_starts=1.5)
    with pytest.raises(ValueError, match="store_action"):
        SACConfig(store_action="executed")
    with pytest.raises(ValueError, match="policy_safeguard"):
        SACConfig(policy_safeguard="bp")
    with pytest.raises(ValueError, match="without policy_safeguard"):
        SACConfig(policy_safeguard_kwargs={"grad_mode": "exact"})
    with pytest.raises(TypeError, match="policy_safeguard_kwargs"):
        SACConfig(policy_safeguard="ray-mask", policy_safeguard_kwargs=["exact"])
    with pytest.raises(ValueError, match="tau"):
        SACConfig(tau=0.0)
    with pytest.raises(ValueError, match="utd"):
        SACConfig(utd=0)
    with pytest.raises(ValueError, match="store_action='raw'"):
        SAC(_pend(), policy_safeguard="boundary-projection", store_action="raw")
    with pytest.raises(ValueError, match="one side only"):
        SAC(_pend(safeguard="ray-mask"), policy_safeguard="boundary-projection")
    with pytest.raises(ValueError, match="episode_params"):
        SAC(safegrad.make("NavigateSeeker-v0", num_envs=2), policy_safeguard="ray-mask")
    with pytest.raises(ValueError, match="hour"):
        SAC(safegrad.make("ManageHousehold-v0", num_envs=2), policy_safeguard="ray-mask")
    with pytest.raises(ValueError, match="buffer_size"):
        SAC(_pend(n=4), buffer_size=3)
    with pytest.raises(ValueError, match="dtype"):
        SAC(_pend(), dtype="float64")
    with pytest.raises(ValueError, match="unknown"):
        SAC(_pend(), tua=0.1)


def test_predict_and_evaluate():
    agent = SAC(_pend(), **_cfg(policy_safeguard="boundary-projection"))
    obs = torch.tensor([[0.0, 1.0, 7.0], [0.5, 0.8, -7.5]])
    a = agent.predict(obs)
    torch.testing.assert_close(a, torch.tanh(agent.actor.mu(obs)))
    x = _state_of_pendulum_obs(obs)
    safe = agent.predict(obs, state=x)
    torch.testing.assert_close(safe, agent.policy_layer(x, a)[0])
    assert agent.predict(obs, deterministic=False).shape == (2, 1)
    res = agent.evaluate(_pend(n=3, steps=20), episodes=4)
    assert len(res["returns"]) == 4 and res["violations"] == 0
    with pytest.raises(ValueError, match="separate"):
        agent.evaluate(agent.env)


# ----------------------------------------------------------------------------- learning
def test_learning_pendulum():
    """Fast setting (FAST), 8 envs, 200-step episodes, 3000 interactions: the initial
    deterministic policy scores about -1500 to -1900; measured after training -21 / -47 / -31 /
    -2 (seeds 0-3, 4 evaluation episodes).  An agent whose actor never learns stays at the
    initial return."""
    env = _pend(n=8, seed=0)
    ev = _pend(n=4, seed=100)
    agent = SAC(env, **FAST)
    before = agent.evaluate(ev, episodes=4, seed=1)
    agent.learn(3000)
    after = agent.evaluate(ev, episodes=4, seed=1)
    assert before["mean"] < -1000
    assert after["mean"] > -150, after
    assert agent.logs["alpha"] < 0.2  # the temperature moved (autotune)


def test_learning_reach_avoid_policy_side():
    """Composite CBF as the last layer on ReachAvoid-v0: progress reward, 1 per metre towards
    the goal; the initial policy moves away (about -2); after 4000 interactions it moves
    towards the goal (measured +2.0 for seed 0; +1.3 for seeds 1-3), with zero violations."""
    env = _reach(n=8, seed=0)
    ev = _reach(n=4, seed=100)
    agent = SAC(env, **FAST, policy_safeguard="composite-cbf")
    before = agent.evaluate(ev, episodes=4, seed=1)
    agent.learn(4000)
    after = agent.evaluate(ev, episodes=4, seed=1)
    assert before["mean"] < 0
    assert after["mean"] > 1.0, after
    assert agent.violations == 0 and after["violations"] == 0
