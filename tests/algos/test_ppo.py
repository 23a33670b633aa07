"""PPO: GAE by hand, rollout storage and log-probs, one update by hand, save/load (with the
observation normaliser), zero violations with every safeguard, config errors, learning."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

import safegrad
from safegrad.algos import PPO, PPOConfig, gae_advantages
from safegrad.safeguards import SafeguardWrapper

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SMALL = dict(horizon=8, num_batches=2, num_epochs=2, actor_hidden=(16, 16), critic_hidden=(16, 16))
#: the fast-learning setting of the learning test
FAST = dict(
    horizon=200, num_batches=8, num_epochs=10, actor_hidden=(64, 64), critic_hidden=(64, 64)
)


def _cfg(**kw):
    return {**SMALL, **kw}


def _pend(n=2, seed=0, steps=200, safeguard=None, dtype=torch.float32):
    return safegrad.make(
        "BalancePendulum-v0",
        num_envs=n,
        seed=seed,
        max_episode_steps=steps,
        safeguard=safeguard,
        dtype=dtype,
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


# ----------------------------------------------------------------------------- GAE
def test_gae_by_hand():
    """T = 4, one env: steps 0, 1 real (truncation at 1: bootstrap V(final obs)), slot 2 the
    autoreset slot, step 3 real and terminated (no bootstrap)."""
    g, lam = 0.9, 0.5
    r = torch.tensor([[1.0], [2.0], [0.0], [3.0]], dtype=torch.float64)
    v = torch.tensor([[0.5], [1.0], [7.0], [2.0]], dtype=torch.float64)
    nv = torch.tensor([[1.0], [4.0], [9.0], [5.0]], dtype=torch.float64)  # nv[1]: V(final obs)
    term = torch.tensor([[False], [False], [False], [True]])
    done = torch.tensor([[False], [True], [False], [True]])
    valid = torch.tensor([[True], [True], [False], [True]])
    adv = gae_advantages(r, v, nv, term, done, valid, g, lam)
    d1 = 2.0 + g * 4.0 - 1.0
    d0 = 1.0 + g * 1.0 - 0.5
    d3 = 3.0 - 2.0
    ref = torch.tensor([[d0 + g * lam * d1], [d1], [0.0], [d3]], dtype=torch.float64)
    torch.testing.assert_close(adv, ref, rtol=0, atol=1e-14)


def test_gae_matches_brute_force_and_limits():
    gen = torch.Generator().manual_seed(0)
    T, N, g = 9, 3, 0.95
    r = torch.randn(T, N, generator=gen, dtype=torch.float64)
    v = torch.randn(T, N, generator=gen, dtype=torch.float64)
    nv = torch.randn(T, N, generator=gen, dtype=torch.float64)
    valid = torch.ones(T, N, dtype=torch.bool)
    done = torch.zeros(T, N, dtype=torch.bool)
    term = torch.zeros(T, N, dtype=torch.bool)
    done[3, 0] = term[3, 0] = True
    valid[4, 0] = False
    done[5, 1] = True  # truncation
    valid[6, 1] = False
    for lam in (0.0, 0.7, 1.0):
        adv = gae_advantages(r, v, nv, term, done, valid, g, lam)
        for n in range(N):
            for t in range(T):
                if not valid[t, n]:
                    assert adv[t, n] == 0
                    continue
                ref, k = 0.0, t
                while True:
                    delta = r[k, n] + g * (0.0 if term[k, n] else 1.0) * nv[k, n] - v[k, n]
                    ref += (g * lam) ** (k - t) * delta
                    if done[k, n] or k == T - 1:
                        break
                    k += 1
                torch.testing.assert_close(adv[t, n], ref, rtol=1e-12, atol=1e-12)
        if lam == 0.0:
            one = r + g * (~term).double() * nv - v
            torch.testing.assert_close(adv[valid], one[valid])


# ----------------------------------------------------------------------------- rollout
@pytest.mark.parametrize("side", ["none", "env-safe", "policy"])
def test_rollout_storage_and_log_probs(side):
    """Stored log-probs are log pi of the stored pre-squash sample; next values chain; policy
    side: the raw action is stored (tanh(u) differs from the executed action where the layer
    intervened); env side with store_action='safe': u = atanh(executed)."""
    kw = {"dtype": "float64", "log_std_init": 0.5}
    if side == "policy":
        env = _pend(n=4, dtype=torch.float64)
        kw["policy_safeguard"] = "boundary-projection"
    elif side == "env-safe":
        env = _pend(n=4, dtype=torch.float64, safeguard="ray-mask")
        kw["store_action"] = "safe"
    else:
        env = _pend(n=4, dtype=torch.float64, steps=5)
    agent = PPO(env, **_cfg(**kw))
    buf = agent._rollout()
    T, N = 8, 4
    obs, u = buf["obs"], buf["u"]
    torch.testing.assert_close(buf["logp"], agent.actor.log_prob_pre_tanh(obs, u))
    torch.testing.assert_close(buf["values"], agent.critic(obs).detach())
    torch.testing.assert_close(buf["next_values"][:-1], buf["values"][1:])
    torch.testing.assert_close(buf["next_values"][-1], agent.critic(agent._obs).detach())
    if side == "none":
        # 5-step episodes: slot 5 is the autoreset slot
        assert buf["valid"][:, 0].tolist() == [True] * 5 + [False] + [True] * 2
        assert buf["done"][:, 0].tolist() == [False] * 4 + [True] + [False] * 3
        assert not buf["terminated"].any()
    if side == "policy":
        assert int(buf["interventions"]) > 0 and int(buf["violations"]) == 0
        x = torch.stack((torch.atan2(obs[..., 0], obs[..., 1]), obs[..., 2]), -1)
        executed = agent.policy_layer(x.reshape(T * N, 2), torch.tanh(u).reshape(T * N, 1))[0]
        assert not torch.allclose(executed, torch.tanh(u).reshape(T * N, 1))
    if side == "env-safe":
        assert env.totals()["interventions"] > 0
        assert float(torch.tanh(u).abs().max()) < 1.0


def test_update_matches_hand_computation():
    """One epoch, one mini-batch: the actor and critic Adam steps equal those of the losses
    written out here (clipped surrogate with normalised advantages, entropy bonus, clipped
    value loss)."""
    agent = PPO(
        _pend(n=3, steps=6, dtype=torch.float64),
        **_cfg(
            num_epochs=1, num_batches=1, dtype="float64", clip_coef=0.1, ent_coef=0.05, horizon=8
        ),
    )
    buf = agent._rollout()
    ref = copy.deepcopy(agent)
    gen_state = agent.generator.get_state()
    out = agent._update(buf)
    g, lam = ref.config.gamma, ref.config.gae_lambda
    adv = gae_advantages(
        buf["rewards"], buf["values"], buf["next_values"], buf["terminated"], buf["done"],
        buf["valid"], g, lam,
    )  # fmt: skip
    ret = adv + buf["values"]
    m = buf["valid"]
    gen = torch.Generator().manual_seed(0)
    gen.set_state(gen_state)
    perm = torch.randperm(int(m.sum()), generator=gen)
    obs, u = buf["obs"][m][perm], buf["u"][m][perm]
    lp_old, v_old = buf["logp"][m][perm], buf["values"][m][perm]
    a, R = adv[m][perm], ret[m][perm]
    a = (a - a.mean()) / (a.std() + 1e-8)
    mu, ls = ref.actor.mu(obs), ref.actor.log_std
    z = (u - mu) / ls.exp()
    lp = (-0.5 * z**2 - ls - 0.5 * math.log(2 * math.pi) - torch.log(1 - torch.tanh(u) ** 2)).sum(
        -1
    )
    ratio = torch.exp(lp - lp_old)
    pg = torch.maximum(-a * ratio, -a * ratio.clamp(0.9, 1.1)).mean()
    ent = (0.5 + 0.5 * math.log(2 * math.pi) + ls).sum()
    loss_a = pg - 0.05 * ent
    torch.testing.assert_close(out["policy_loss"], float(pg.detach()), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out["entropy"], float(ent.detach()), rtol=1e-12, atol=1e-12)
    ref.actor_opt.zero_grad()
    loss_a.backward()
    torch.nn.utils.clip_grad_norm_(ref.actor.parameters(), ref.config.max_grad_norm)
    ref.actor_opt.step()
    for p, q in zip(agent.actor.parameters(), ref.actor.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
    v = ref.critic(obs)
    v_clip = v_old + (v - v_old).clamp(-0.1, 0.1)
    loss_v = 0.5 * torch.maximum((v - R) ** 2, (v_clip - R) ** 2).mean()
    torch.testing.assert_close(out["value_loss"], float(loss_v.detach()), rtol=1e-10, atol=1e-12)
    assert out["approx_kl"] == pytest.approx(0.0, abs=1e-12)  # first mini-batch: ratio 1


# ----------------------------------------------------------------------------- persistence
@pytest.mark.parametrize(
    ("make_env", "kw"),
    [
        (lambda seed: _pend(steps=7, seed=seed), {"normalize_obs": True}),
        (lambda seed: _pend(steps=7, seed=seed, safeguard="ray-mask"), {"store_action": "safe"}),
        (
            lambda seed: safegrad.make("ReachAvoid-v0", num_envs=2, seed=seed, max_episode_steps=9),
            {"policy_safeguard": "composite-cbf", "normalize_obs": True},
        ),
    ],
    ids=["unsafe-normalised", "ray-mask", "policy-composite-cbf"],
)
def test_save_load_resumes_identically(tmp_path, make_env, kw):
    cfg = _cfg(seed=3, horizon=5, critic_lr_schedule="constant", **kw)
    agent = PPO(make_env(0), **cfg)
    agent.learn(20)
    agent.save(tmp_path / "ppo.pt")
    logs = []
    agent.learn(30, callback=lambda a, lg: logs.append(lg))
    loaded = PPO.load(tmp_path / "ppo.pt", make_env(99))
    assert loaded.num_steps == 20
    logs2 = []
    loaded.learn(30, callback=lambda a, lg: logs2.append(lg))
    assert loaded.num_steps == agent.num_steps == 50
    for name in ("actor", "critic"):
        for p, q in zip(
            getattr(agent, name).parameters(), getattr(loaded, name).parameters(), strict=True
        ):
            assert torch.equal(p, q), name
    if agent.obs_rms is not None:
        assert torch.equal(agent.obs_rms.mean, loaded.obs_rms.mean)
        assert torch.equal(agent.obs_rms.var, loaded.obs_rms.var)
        assert agent.obs_rms.count == loaded.obs_rms.count
    strip = lambda lgs: [{k: v for k, v in d.items() if k != "steps_per_s"} for d in lgs]
    assert str(strip(logs)) == str(strip(logs2))
    with pytest.raises(ValueError, match="not a SAC checkpoint"):
        from safegrad.algos import SAC

        SAC.load(tmp_path / "ppo.pt", make_env(0))


def test_normalize_obs_is_used_for_acting():
    agent = PPO(_pend(), **_cfg(normalize_obs=True))
    agent.learn(16)
    obs = torch.tensor([[0.0, 1.0, 3.0]])
    expect = torch.tanh(agent.actor.mu(agent.obs_rms.normalise(obs)))
    torch.testing.assert_close(agent.predict(obs), expect)
    assert agent.obs_rms.count > 16


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
    agent = PPO(env, **_cfg(**kw, log_std_init=0.5, horizon=20))
    agent.learn(320, callback=lambda a, lg: viol.append(lg["violations"]))
    assert len(viol) == 4 and sum(viol) == 0 and agent.violations == 0
    assert agent.interventions > 0
    mon = env.monitor if isinstance(env, SafeguardWrapper) else agent.executor.monitor
    assert mon.transitions == 320 and mon.violations == 0


@pytest.mark.parametrize("task", ["pendulum", "reach"])
def test_unsafeguarded_training_is_monitored_and_violates(task):
    """Control: the same runs without a safeguard (monitoring-only wrapper) violate."""
    if task == "pendulum":
        env = SafeguardWrapper(_pend(n=4), None)
    else:
        env = _reach_near_obstacle(monitor_only=True)
    agent = PPO(env, **_cfg(log_std_init=0.5, horizon=20))
    agent.learn(320)
    assert agent.violations > 0 and agent.interventions == 0


# ----------------------------------------------------------------------------- config
def test_config_defaults_are_paper_era_pendulum():
    c = PPOConfig()
    assert (c.horizon, c.gamma, c.gae_lambda) == (1700, 0.95, 0.94)
    assert (c.clip_coef, c.ent_coef, c.max_grad_norm) == (0.2, 0.09, 1.45)
    assert (c.num_batches, c.num_epochs, c.clip_vloss, c.norm_adv) == (45, 32, True, True)
    assert (c.actor_hidden, c.actor_activation, c.actor_lr) == ((256,) * 4, "tanh", 3e-4)
    assert (c.critic_hidden, c.critic_activation, c.critic_layer_norm) == ((200, 200), "elu", True)
    assert (c.critic_lr, c.critic_lr_schedule, c.critic_betas) == (2e-3, "linear", (0.7, 0.95))


@pytest.mark.parametrize("name", ["pendulum", "quadrotor", "household"])
def test_presets_load_and_round_trip(tmp_path, name):
    c = PPOConfig.from_yaml(CONFIGS / f"ppo_{name}.yaml")
    c.to_yaml(tmp_path / "c.yaml")
    assert PPOConfig.from_yaml(tmp_path / "c.yaml") == c
    if name == "pendulum":
        assert c == PPOConfig()
    if name == "quadrotor":
        assert (c.horizon, c.clip_coef, c.num_batches, c.critic_hidden) == (
            1400,
            0.29,
            30,
            (128,) * 4,
        )


def test_config_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text("horizon: 8\nhorizn: 3\n")
    with pytest.raises(ValueError, match="horizn"):
        PPOConfig.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(TypeError, match="num_epochs"):
        PPOConfig(num_epochs="3")
    with pytest.raises(ValueError, match="gae_lambda"):
        PPOConfig(gae_lambda=1.5)
    with pytest.raises(ValueError, match="clip_coef"):
        PPOConfig(clip_coef=0.0)
    with pytest.raises(ValueError, match="store_action='safe'"):
        PPOConfig(policy_safeguard="ray-mask", store_action="safe")
    with pytest.raises(ValueError, match="policy_safeguard"):
        PPOConfig(policy_safeguard="projection")
    with pytest.raises(ValueError, match="one side only"):
        PPO(_pend(safeguard="ray-mask"), policy_safeguard="boundary-projection")
    with pytest.raises(ValueError, match="CBF constraints"):
        PPO(_pend(), policy_safeguard="composite-cbf")
    with pytest.raises(ValueError, match="dtype"):
        PPO(_pend(), dtype="float64")
    with pytest.raises(ValueError, match="normalize_obs"):
        agent = PPO(_pend(), **_cfg(normalize_obs=True))
        agent.save(tmp_path / "n.pt")
        PPO.load(tmp_path / "n.pt", _pend(), normalize_obs=False)
    # PPO's layer only acts on live states: per-episode safe sets are fine
    PPO(safegrad.make("NavigateSeeker-v0", num_envs=2), policy_safeguard="ray-mask")


def test_predict_and_evaluate():
    agent = PPO(_pend(), **_cfg(policy_safeguard="boundary-projection"))
    obs = torch.tensor([[0.0, 1.0, 7.0], [0.5, 0.8, -7.5]])
    a = agent.predict(obs)
    torch.testing.assert_close(a, torch.tanh(agent.actor.mu(obs)))
    x = torch.stack((torch.atan2(obs[:, 0], obs[:, 1]), obs[:, 2]), -1)
    torch.testing.assert_close(agent.predict(obs, state=x), agent.policy_layer(x, a)[0])
    res = agent.evaluate(_pend(n=3, steps=20), episodes=4)
    assert len(res["returns"]) == 4 and res["violations"] == 0
    with pytest.raises(ValueError, match="separate"):
        agent.evaluate(agent.env)


# ----------------------------------------------------------------------------- learning
def test_learning_pendulum():
    """FAST setting, 8 envs, 200-step episodes, 12 800 interactions: the initial deterministic
    policy scores about -1300 to -1900; measured after training -10 / -8 / -46 / -3 (seeds 0-3,
    4 evaluation episodes)."""
    env = _pend(n=8, seed=0)
    ev = _pend(n=4, seed=100)
    agent = PPO(env, **FAST)
    before = agent.evaluate(ev, episodes=4, seed=1)
    agent.learn(12_800)
    after = agent.evaluate(ev, episodes=4, seed=1)
    assert before["mean"] < -1000
    assert after["mean"] > -150, after
