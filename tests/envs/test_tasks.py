"""Task specifics: household reward modes and data, reach-avoid layouts, rendering."""

import math

import numpy as np
import pytest
import torch
from envtasks import RENDERABLE

from safegrad.envs import SingleEnvView, make
from safegrad.envs.navigation import (
    REACH_AVOID_LAYOUT_3,
    composite_h,
    obstacle_h,
    reach_avoid_layout,
)
from safegrad.systems.household import HOUSEHOLD_BUY_PRICE_BY_HOUR, load_household_data

F64 = torch.float64


# ---------------------------------------------------------------------------------- household
@pytest.fixture(scope="module")
def data():
    return load_household_data()


def _household_step(paper_compat, a, data, x0=(5.0, 21.5, 40.0), steps_before=0):
    env = make(
        "ManageHousehold-v0", num_envs=a.shape[0], seed=0, dtype=F64, paper_compat=paper_compat
    )
    env.reset(options={"state": torch.tensor(x0)})
    for _ in range(steps_before):
        env.step(torch.zeros_like(a))
    k = env.hour_index
    x = env.state.clone()
    obs, r, term, trunc, info = env.step(a)
    return env, k, x, obs, r, info


@pytest.mark.parametrize("steps_before", [0, 13])
def test_household_reward_physical_units_pv_offsets_load(data, steps_before):
    a = torch.tensor([[0.5, -0.2], [-1.0, -1.0], [1.0, 1.0]], dtype=F64)
    env, k, x, obs, r, info = _household_step(False, a, data, steps_before=steps_before)
    p_grid = 2 * a[:, 0] + (2.5 * a[:, 1] + 2.5) + data.load[k] - data.pv[k]
    price = HOUSEHOLD_BUY_PRICE_BY_HOUR[int(data.hour_of_day[k])]
    cost = torch.where(p_grid >= 0, p_grid * price, p_grid * 0.08)
    comfort = 100 * (env.state[:, 1] - 21) ** 2
    torch.testing.assert_close(r, -(cost + comfort))
    torch.testing.assert_close(info["cost"], cost)
    torch.testing.assert_close(info["grid_power"], p_grid)
    assert (p_grid < 0).any() or steps_before == 0  # selling branch exercised at noon


def test_household_paper_compat_reproduces_paper_formula(data):
    a = torch.tensor([[0.5, -0.2], [-1.0, -1.0]], dtype=F64)
    env, k, x, obs, r, info = _household_step(True, a, data, steps_before=5)
    p = a[:, 0] + a[:, 1] + data.load[k] + data.pv[k]
    price = HOUSEHOLD_BUY_PRICE_BY_HOUR[int(data.hour_of_day[k])]
    cost = torch.where(p >= 0, p * price, p * 0.08)
    torch.testing.assert_close(r, -(cost + 100 * (env.state[:, 1] - 21) ** 2))
    assert p[1] < 0  # both branches of the price switch are covered


def test_household_obs_forecast_and_outside_temperature(data):
    a = torch.zeros(2, 2, dtype=F64)
    env, k, x, obs, r, info = _household_step(False, a, data, steps_before=2)
    kk = k + 1  # the hour of the next step
    win = slice(kk, kk + 4)
    price = torch.tensor(
        [HOUSEHOLD_BUY_PRICE_BY_HOUR[int(h)] for h in data.hour_of_day[win]], dtype=F64
    )
    fc = torch.cat(
        [data.load[win], data.pv[win], data.t_out[win], torch.full((4,), 3.01, dtype=F64), price]
    )
    assert obs.shape == (2, 23)
    torch.testing.assert_close(obs[:, :3], env.state)
    torch.testing.assert_close(obs[0, 3:], fc)
    # the step used the recorded T_out of hour k
    x_exp = env.system.step(x, a, data.t_out[k].expand(2, 1))
    torch.testing.assert_close(env.state, env.system.clamp_state(x_exp))


def test_household_user_csv_and_errors(tmp_path):
    rows = ["hour_of_day,t_out,load,pv"]
    for i in range(40):
        rows.append(f"{i % 24},{5 + i % 3},{0.5 + 0.01 * i},{0.1 * (i % 5)}")
    path = tmp_path / "h.csv"
    path.write_text("\n".join(rows) + "\n")
    env = make(
        "ManageHousehold-v0",
        num_envs=2,
        seed=0,
        dtype=F64,
        data_path=str(path),
        start_index=3,
        max_episode_steps=10,
    )
    obs, _ = env.reset()
    torch.testing.assert_close(obs[0, 3:7], torch.tensor([0.53, 0.54, 0.55, 0.56], dtype=F64))
    with pytest.raises(ValueError, match="exceeds the 40 hours"):
        make("ManageHousehold-v0", data_path=str(path), start_index=3, max_episode_steps=40)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        make("ManageHousehold-v0", data_path=str(tmp_path / "nope.csv"))
    with pytest.raises(TypeError, match="paper_compat"):
        make("ManageHousehold-v0", paper_compat="yes")
    with pytest.raises(ValueError, match="no renderer"):
        make("ManageHousehold-v0", render_mode="rgb_array")


# --------------------------------------------------------------------------------- reach-avoid
def test_reachavoid_three_obstacle_layout_is_the_stated_one():
    env = make("ReachAvoid-v0", num_envs=1, dtype=F64)
    c, r = REACH_AVOID_LAYOUT_3
    torch.testing.assert_close(env.obstacle_centers, torch.tensor(c, dtype=F64))
    torch.testing.assert_close(env.obstacle_radii, torch.tensor(r, dtype=F64))
    torch.testing.assert_close(env.goal, torch.tensor([4.0, 4.0], dtype=F64))
    assert env.goal_radius == 0.3


@pytest.mark.parametrize("num", [10, 30])
def test_random_layouts_follow_the_rule(num):
    c, r = reach_avoid_layout(num, seed=0)
    assert c.shape == (num, 2) and r.shape == (num,)
    assert ((c >= -1) & (c <= 5)).all() and ((r >= 0.15) & (r <= 0.35)).all()
    d = np.linalg.norm(c[:, None] - c[None], axis=-1) + np.eye(num) * 1e9
    assert (d >= r[:, None] + r[None] + 0.1).all()
    assert (np.linalg.norm(c, axis=-1) >= 0.8 + r).all()
    assert (np.linalg.norm(c - 4.0, axis=-1) >= 0.6 + r).all()
    # composite h >= 0 on the start and goal discs (dense random check)
    g = torch.Generator().manual_seed(0)
    u = torch.rand(4000, 2, generator=g, dtype=F64)
    pts = torch.stack(
        [
            0.3 * u[:, 0].sqrt() * torch.cos(2 * math.pi * u[:, 1]),
            0.3 * u[:, 0].sqrt() * torch.sin(2 * math.pi * u[:, 1]),
        ],
        -1,
    )
    for centre in (torch.zeros(2, dtype=F64), torch.tensor([4.0, 4.0], dtype=F64)):
        h = obstacle_h(pts + centre, torch.from_numpy(c), torch.from_numpy(r))
        assert (composite_h(h, 2.0) >= 0).all()
    # deterministic in the seed, different across seeds
    c2, r2 = reach_avoid_layout(num, seed=0)
    c3, _ = reach_avoid_layout(num, seed=1)
    assert np.array_equal(c, c2) and np.array_equal(r, r2) and not np.array_equal(c, c3)


def test_composite_h_is_stable_and_bounded():
    h = torch.tensor([[0.5, 100.0, 300.0], [0.2, 0.2, 0.2]], dtype=F64)
    ch = composite_h(h, 2.0)
    naive = -torch.log(torch.exp(-2 * h).sum(-1)) / 2
    torch.testing.assert_close(ch, naive)
    assert (ch <= h.amin(-1)).all() and (ch >= h.amin(-1) - math.log(3) / 2).all()


def test_reachavoid_starts_and_info():
    env = make("ReachAvoid-v0", num_envs=512, seed=0, dtype=F64, num_obstacles=30)
    obs, info = env.reset()
    p = env.state
    assert (p.norm(dim=-1) <= 0.3).all()
    h = ((p[:, None] - env.obstacle_centers) ** 2).sum(-1) - env.obstacle_radii**2
    assert (composite_h(h, 2.0) >= 0).all()
    torch.testing.assert_close(info["h"], h)
    torch.testing.assert_close(info["h_min"], h.amin(-1))
    torch.testing.assert_close(obs, torch.cat([p, env.goal - p], -1))
    # a start box instead of the disc
    env2 = make("ReachAvoid-v0", num_envs=64, seed=0, reset_box=([1.0, -1.0], [2.0, 0.0]))
    env2.reset()
    assert ((env2.state[:, 0] >= 1) & (env2.state[:, 1] <= 0)).all()
    with pytest.raises(ValueError, match="obstacles"):
        make("ReachAvoid-v0", obstacles=([[0.0, 1.0]], [0.5, 0.2]))
    with pytest.raises(ValueError, match="num_obstacles=0"):
        make("ReachAvoid-v0", num_obstacles=0)


def test_collision_flag():
    env = make("ReachAvoid-v0", num_envs=1, seed=0, dtype=F64)
    env.reset(options={"state": torch.tensor([1.3, 0.75])})  # just outside obstacle 0 (r=0.4)
    _, _, _, _, info = env.step(torch.tensor([[0.0, 1.0]], dtype=F64))  # moves 0.05 inside
    assert info["collision"].item() and info["h_min"].item() < 0
    torch.testing.assert_close(info["h_min"], torch.tensor([0.3**2 - 0.4**2], dtype=F64))


# ------------------------------------------------------------------------------------- render
@pytest.mark.parametrize("env_id", RENDERABLE)
def test_render_returns_rgb_arrays_and_env_index_selects(env_id):
    env = make(env_id, num_envs=2, seed=0, render_mode="rgb_array")
    env.reset()
    for _ in range(3):
        env.step(torch.ones(2, env.action_dim))
    frames = [env.render(env_index=i) for i in range(2)]
    for f in frames:
        assert f.dtype == np.uint8 and f.ndim == 3 and f.shape[2] == 3
        assert f.min() < 255  # something was drawn
    assert not np.array_equal(frames[0], frames[1]) or env_id == "ReachAvoid-v0"
    assert np.array_equal(env.render(), frames[0])
    with pytest.raises(ValueError, match="env_index=2"):
        env.render(env_index=2)
    view = SingleEnvView(make(env_id, num_envs=1, seed=0, render_mode="rgb_array"))
    view.reset()
    assert view.render().shape == frames[0].shape


def test_render_reflects_the_state():
    env = make("BalancePendulum-v0", num_envs=2, seed=0)
    env.reset(options={"state": torch.tensor([[0.0, 0.0], [math.pi / 2, 0.0]])})
    up, side = env.render(0), env.render(1)
    h, w, _ = up.shape
    # upright: ink above the pivot in the centre column; sideways: ink right of the pivot
    assert up[h // 8 : h // 2 - 10, w // 2].min() < 200 and up[h // 2, w // 2 + 20 :].min() == 255
    assert side[h // 2, w // 2 + 20 : w - w // 8].min() < 200


def test_household_render_is_a_clear_error():
    env = make("ManageHousehold-v0", num_envs=1, seed=0)
    env.reset()
    with pytest.raises(NotImplementedError, match="no renderer"):
        env.render()
