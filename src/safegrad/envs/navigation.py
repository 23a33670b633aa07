"""2-D navigation tasks on a single integrator: ``ReachAvoid-v0`` (spec B §7) and
``NavigateSeeker-v0`` (spec A §5.4).

Obstacles are discs ``{p : ||p - p_i|| < r_i}``; the constraint functions are spec B Eq. (25)::

    h_i(p) = ||p - p_i||^2 - r_i^2   (>= 0 is safe, units m^2)

and every step's ``info`` reports ``h`` ``(B, I)``, ``h_min`` ``(B,)`` and ``collision``
(``h_min < 0``) of the new state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from safegrad.envs import render as _render
from safegrad.envs.base import TorchVectorEnv
from safegrad.systems import SingleIntegrator

__all__ = [
    "NavigateSeeker",
    "ReachAvoid",
    "REACH_AVOID_LAYOUT_3",
    "composite_h",
    "obstacle_h",
    "reach_avoid_layout",
]

#: spec B §7: the I = 3 layout (centres [m], safe radii [m])
REACH_AVOID_LAYOUT_3 = (
    ((1.3, 1.1), (2.4, 2.6), (3.3, 3.0)),
    (0.4, 0.6, 0.3),
)


def obstacle_h(p: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Spec B Eq. (25): ``h_i = ||p - p_i||^2 - r_i^2``.

    Args:
        p: ``(*B, 2)`` positions. centers: ``(*B, I, 2)`` or ``(I, 2)``. radii: ``(*B, I)`` or
            ``(I,)``.

    Returns:
        ``(*B, I)``.
    """
    d = p.unsqueeze(-2) - centers
    return (d * d).sum(-1) - radii * radii


def composite_h(h: torch.Tensor, kappa: float) -> torch.Tensor:
    """Spec B Eq. (14), stable form (§4): ``m - (1/kappa) ln sum_i exp(-kappa (h_i - m))``,
    ``m = min_i h_i``. ``h: (*B, I) -> (*B,)``."""
    m = h.amin(-1, keepdim=True)
    return (m - torch.logsumexp(-kappa * (h - m), dim=-1, keepdim=True) / kappa).squeeze(-1)


def _rejection_sample(
    num: int,
    sampler: Callable[[int], torch.Tensor],
    accept: Callable[[torch.Tensor], torch.Tensor],
    what: str,
    max_rounds: int = 1000,
) -> torch.Tensor:
    """Batched rejection sampling: redraw only the rejected rows (one host sync per round)."""
    x = sampler(num)
    ok = accept(x)
    rounds = 0
    while not bool(ok.all()):
        rounds += 1
        if rounds > max_rounds:
            raise RuntimeError(f"could not sample {what} after {max_rounds} rounds")
        new = sampler(num)
        take = ~ok & accept(new)
        x = torch.where(take.view(-1, *([1] * (x.dim() - 1))), new, x)
        ok = ok | take
    return x


def _disc_points(center: tuple[float, float], radius: float, rings: int = 12) -> np.ndarray:
    """Points covering a closed disc (centre, concentric rings incl. the boundary circle)."""
    pts = [np.asarray(center, dtype=np.float64)[None]]
    for k in range(1, rings + 1):
        rr = radius * k / rings
        n = max(8, int(6 * k))
        ang = 2 * np.pi * np.arange(n) / n
        pts.append(np.stack([center[0] + rr * np.cos(ang), center[1] + rr * np.sin(ang)], -1))
    return np.concatenate(pts)


def reach_avoid_layout(
    num_obstacles: int,
    seed: int = 0,
    *,
    goal: tuple[float, float] = (4.0, 4.0),
    goal_radius: float = 0.3,
    start_radius: float = 0.3,
    kappa: float = 2.0,
    max_tries: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """Obstacle layout of the reach-avoid task (spec B §7).

    ``num_obstacles == 3``: the stated layout :data:`REACH_AVOID_LAYOUT_3` (``seed`` unused).
    Otherwise a seeded random layout by the spec's rule: centres ``U([-1, 5]^2)``, radii
    ``U[0.15, 0.35]``, placed one at a time with at least 0.1 m gap between obstacles, at least
    ``0.8 + r`` from the origin and ``0.6 + r`` from the goal; a whole layout is redrawn while the
    composite ``h`` (``kappa``) is negative anywhere on the start disc or the goal disc (checked
    on a polar grid of points). Deterministic in ``seed`` (numpy ``default_rng``).

    Returns:
        ``centers (I, 2)``, ``radii (I,)`` float64 numpy arrays.
    """
    if isinstance(num_obstacles, bool) or not isinstance(num_obstacles, (int, np.integer)):
        raise TypeError(f"num_obstacles={num_obstacles!r} must be a positive int")
    if num_obstacles < 1:
        raise ValueError(f"num_obstacles={num_obstacles} must be >= 1")
    if num_obstacles == 3:
        c, r = REACH_AVOID_LAYOUT_3
        return np.asarray(c, dtype=np.float64), np.asarray(r, dtype=np.float64)
    rng = np.random.default_rng(seed)
    goal_arr = np.asarray(goal, dtype=np.float64)
    check = np.concatenate(
        [_disc_points((0.0, 0.0), start_radius), _disc_points(tuple(goal), goal_radius)]
    )
    for _ in range(max_tries):
        centers: list[np.ndarray] = []
        radii: list[float] = []
        for _i in range(num_obstacles):
            for _j in range(10_000):
                c = rng.uniform(-1.0, 5.0, size=2)
                r = float(rng.uniform(0.15, 0.35))
                if np.linalg.norm(c) < 0.8 + r or np.linalg.norm(c - goal_arr) < 0.6 + r:
                    continue
                if any(np.linalg.norm(c - c2) < r + r2 + 0.1 for c2, r2 in zip(centers, radii)):
                    continue
                centers.append(c)
                radii.append(r)
                break
            else:
                break
        if len(centers) < num_obstacles:
            continue
        ca, ra = np.stack(centers), np.asarray(radii)
        h = obstacle_h(torch.from_numpy(check), torch.from_numpy(ca), torch.from_numpy(ra))
        if bool((composite_h(h, kappa) >= 0).all()):
            return ca, ra
    raise RuntimeError(
        f"no valid reach-avoid layout with {num_obstacles} obstacles after {max_tries} tries"
    )


class _NavigationEnv(TorchVectorEnv):
    """Shared parts: obstacle diagnostics and rendering."""

    info_keys = ("state_margin", "clamped", "h", "h_min", "collision", "distance_to_goal")

    def _obstacles(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _goal(self) -> torch.Tensor:
        raise NotImplementedError

    def obstacle_h(self, p: torch.Tensor) -> torch.Tensor:
        """``h_i(p) = ||p - p_i||^2 - r_i^2`` of the current obstacles, ``(B, 2) -> (B, I)``
        (differentiable; spec B Eq. 25)."""
        centers, radii = self._obstacles()
        return obstacle_h(p, centers, radii)

    def safety_margin(self, x: torch.Tensor) -> torch.Tensor:
        """``min(min_i ||p - p_i|| - r_i, distance to the boundary of S)`` [m], ``(B,)``
        (``>= 0`` safe; the true safe set, used by the safety monitor)."""
        centers, radii = self._obstacles()
        clearance = (torch.linalg.vector_norm(x.unsqueeze(-2) - centers, dim=-1) - radii).amin(-1)
        box = torch.minimum(x - self._s_low, self._s_high - x).amin(-1)
        return torch.minimum(clearance, box)

    def _task_info(self, x_raw, x, info) -> None:
        centers, radii = self._obstacles()
        h = obstacle_h(x, centers.detach(), radii.detach())
        h_min = h.amin(-1)
        info["h"] = h
        info["h_min"] = h_min
        info["collision"] = h_min < 0
        info["distance_to_goal"] = torch.linalg.vector_norm(x - self._goal().detach(), dim=-1)

    def _render_frame(self, env_index: int) -> np.ndarray:
        centers, radii = self._obstacles()
        if centers.dim() == 3:
            centers, radii = centers[env_index], radii[env_index]
        goal = self._goal()
        goal = goal[env_index] if goal.dim() == 2 else goal
        p = self.state[env_index].detach().cpu().numpy()
        return _render.navigation(
            p,
            goal.detach().cpu().numpy(),
            self._goal_radius_for_render,
            centers.detach().cpu().numpy(),
            radii.detach().cpu().numpy(),
            self._view,
        )


class ReachAvoid(_NavigationEnv):
    """Reach-avoid task of spec B §7 (recommended values where the paper is silent).

    * single integrator ``p' = p + dt u_max a`` (``dt = 0.05`` s, ``u_max = 1`` m/s, no noise),
      ``S = [±8]^2`` (clamped); actions executed as given (no clipping, spec B §6).
    * goal disc centre ``(4, 4)``, radius 0.3; ``num_obstacles`` discs (3: the stated layout;
      10, 30, ...: seeded random layout by the stated rule, :func:`reach_avoid_layout` with
      ``layout_seed``), or explicit ``obstacles=(centers, radii)``. The layout is fixed for the
      life of the environment and identical in every parallel environment.
    * observation ``(p, p_goal - p)`` (4).
    * reward: progress ``||p_t - g|| - ||p_{t+1} - g||``, plus ``goal_bonus`` (1) on reaching.
    * terminates when ``||p - g|| < goal_radius`` (per environment, next-step autoreset),
      truncates after 200 steps of the environment's own episode. Collisions do not end the
      episode; they are reported in ``info["collision"]``.
    * reset: uniform in the start disc (radius 0.3 around the origin), or uniform in
      ``reset_box`` when one is given, redrawn until the composite ``h`` (``kappa = 2``) is
      ``>= 0`` (spec B §6).
    * safe set: the CBF rows ``L_f h_i + L_g h_i a >= -cbf_alpha h_i`` (spec B Eq. 5,
      ``cbf_alpha = 5``): ``safe_action_set(state)`` (no action-box rows, spec B §6:
      ``cbf_action_box=True`` adds them) and :meth:`cbf_constraints` for the composite layer.
    """

    env_id = "ReachAvoid-v0"
    has_termination = True
    info_keys = _NavigationEnv.info_keys + ("reached",)

    def __init__(
        self,
        *,
        num_envs: int = 1,
        max_episode_steps: int = 200,
        seed: int | None = None,
        device: Any = "cpu",
        dtype: Any = torch.float32,
        reset_box: Any = None,
        check_nan: bool = True,
        clip_actions: bool = False,
        render_mode: str | None = None,
        render_env_index: int = 0,
        num_obstacles: int = 3,
        layout_seed: int = 0,
        obstacles: Any = None,
        goal: tuple[float, float] = (4.0, 4.0),
        goal_radius: float = 0.3,
        start_radius: float = 0.3,
        goal_bonus: float = 1.0,
        kappa: float = 2.0,
        cbf_alpha: float = 5.0,
        cbf_action_box: bool = False,
        system: SingleIntegrator | None = None,
    ) -> None:
        system = SingleIntegrator.reach_avoid() if system is None else system
        if not (isinstance(cbf_alpha, (int, float)) and cbf_alpha > 0 and math.isfinite(cbf_alpha)):
            raise ValueError(f"cbf_alpha={cbf_alpha!r} must be a positive finite number")
        if not isinstance(cbf_action_box, bool):
            raise TypeError(f"cbf_action_box={cbf_action_box!r} must be a bool")
        self.cbf_alpha = float(cbf_alpha)
        self.cbf_action_box = cbf_action_box
        goal_t = tuple(float(v) for v in np.asarray(goal, dtype=np.float64).reshape(-1))
        if len(goal_t) != 2:
            raise ValueError(f"goal={goal!r} must have 2 entries")
        for name, value in (
            ("goal_radius", goal_radius),
            ("start_radius", start_radius),
            ("kappa", kappa),
        ):
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ValueError(f"{name}={value!r} must be a positive finite number")
        self._user_reset_box = reset_box is not None
        self.start_radius = float(start_radius)
        if obstacles is None:
            centers, radii = reach_avoid_layout(
                num_obstacles,
                layout_seed,
                goal=goal_t,
                goal_radius=goal_radius,
                start_radius=start_radius,
                kappa=kappa,
            )
        else:
            try:
                centers = np.asarray(obstacles[0], dtype=np.float64).reshape(-1, 2)
                radii = np.asarray(obstacles[1], dtype=np.float64).reshape(-1)
            except (TypeError, ValueError, IndexError) as err:
                raise ValueError(
                    f"obstacles must be (centers (I, 2), radii (I,)); got {obstacles!r} ({err})"
                ) from None
            if centers.shape[0] != radii.shape[0] or centers.shape[0] == 0:
                raise ValueError(
                    f"obstacles: {centers.shape[0]} centres but {radii.shape[0]} radii"
                )
            if not (np.all(radii > 0) and np.all(np.isfinite(centers))):
                raise ValueError(f"obstacles: radii {radii.tolist()} must be positive")
        bound = float(system.state_high[0])
        super().__init__(
            system,
            num_envs=num_envs,
            max_episode_steps=max_episode_steps,
            obs_low=[-bound, -bound, goal_t[0] - bound, goal_t[1] - bound],
            obs_high=[bound, bound, goal_t[0] + bound, goal_t[1] + bound],
            seed=seed,
            device=device,
            dtype=dtype,
            reset_box=reset_box,
            check_nan=check_nan,
            clip_actions=clip_actions,
            render_mode=render_mode,
            render_env_index=render_env_index,
        )
        self.num_obstacles = int(centers.shape[0])
        self.obstacle_centers = torch.as_tensor(centers, **self._fk)
        self.obstacle_radii = torch.as_tensor(radii, **self._fk)
        self.goal = torch.tensor(goal_t, **self._fk)
        self.goal_radius = float(goal_radius)
        self.goal_bonus = float(goal_bonus)
        self.kappa = float(kappa)
        self._goal_radius_for_render = self.goal_radius
        self._view = (-1.5, 5.5, -1.5, 5.5)

    def default_reset_box(self):
        r = float(self.start_radius)
        return [-r, -r], [r, r]

    def _obstacles(self):
        return self.obstacle_centers, self.obstacle_radii

    def _goal(self):
        return self.goal

    def _sample_start(self, num: int) -> torch.Tensor:
        if self._user_reset_box:
            return self._uniform(num, self._r_low, self._r_width)
        u = torch.rand(num, 2, generator=self._generator, **self._fk)
        rad = self.start_radius * torch.sqrt(u[:, 0])
        ang = 2 * math.pi * u[:, 1]
        return torch.stack((rad * torch.cos(ang), rad * torch.sin(ang)), dim=-1)

    def _sample_reset(self, num: int, state=None):
        if state is not None:
            return state, {}

        def accept(p: torch.Tensor) -> torch.Tensor:
            return composite_h(self.obstacle_h(p), self.kappa) >= 0

        x = _rejection_sample(num, self._sample_start, accept, "ReachAvoid start states")
        return x, {}

    def _observe(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.goal - x), dim=-1)

    def _reward(self, x: torch.Tensor, a: torch.Tensor, x_next: torch.Tensor) -> torch.Tensor:
        d0 = torch.linalg.vector_norm(x - self.goal, dim=-1)
        d1 = torch.linalg.vector_norm(x_next - self.goal, dim=-1)
        reached = (d1 < self.goal_radius).to(self.dtype)
        return torch.add(d0 - d1, reached, alpha=self.goal_bonus)

    def _terminated(self, x_next: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(x_next.detach() - self.goal, dim=-1) < self.goal_radius

    def cbf_constraints(
        self, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``h (B, I)``, ``L_f h (B, I)``, ``L_g h (B, I, m)`` of the obstacle CBFs (spec B
        Eq. 25: ``h_i = ||p - p_i||^2 - r_i^2``, ``grad h_i = 2 (p - p_i)``) with the system's
        control-affine form ``p_dot = f + g a`` (normalised action); differentiable in the state.
        """
        x = self.state if state is None else state
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[-1] != 2:
            raise ValueError(f"cbf_constraints: state must be a (B, 2) tensor, got {x!r}")
        x = x.to(**self._fk)
        f, g = self.system.control_affine(x)  # (B, 2), (B, 2, m)
        grad = 2.0 * (x.unsqueeze(-2) - self.obstacle_centers)  # (B, I, 2)
        h = obstacle_h(x, self.obstacle_centers, self.obstacle_radii)
        lf_h = (grad * f.unsqueeze(-2)).sum(-1)
        lg_h = grad @ g
        return h, lf_h, lg_h

    def _safe_action_set(self, x: torch.Tensor):
        from safegrad.invariance.safe_action import cbf_safe_action_set

        h, lf_h, lg_h = self.cbf_constraints(x)
        return cbf_safe_action_set(
            lf_h, lg_h, h, self.cbf_alpha, include_action_box=self.cbf_action_box
        )

    def _task_info(self, x_raw, x, info) -> None:
        super()._task_info(x_raw, x, info)
        info["reached"] = info["distance_to_goal"] < self.goal_radius


class NavigateSeeker(_NavigationEnv):
    """Seeker with one ball obstacle, spec A §5.4 (not in the paper's evaluation).

    * ``s' = s + 0.1 a + w``, ``w ~ U[-0.05, 0.05]^2``, ``S = [±8]^2`` (clamped).
    * per episode and environment (the spec is silent; our choice): obstacle centre
      ``U([-3, 3]^2)``, radius ``U[2, 4]``; start (uniform in ``reset_box``, default
      ``[-7, 7]^2``) and goal (uniform in ``[-7, 7]^2``) both redrawn until they are at least
      ``clearance`` (0.5 m) outside the obstacle. Stored in ``episode_params``
      (``goal``, ``obstacle_center``, ``obstacle_radius``).
    * observation ``(s, goal - s, obstacle_center - s, obstacle_radius)`` (7).
    * reward ``-2 ||goal - s'||``; 400-step episodes, truncate together, no termination.
    * safe set: ``safe_action_set(state)``: actions whose next position, for every ``w``, lies
      in the tangent half-space ``n . (p' - c) >= r`` (``n = (p - c)/||p - c||``, the
      obstacle's complement linearised at the current position, a sound inner approximation of
      the convex obstacle's complement) and in ``S``, plus the action box.
    """

    env_id = "NavigateSeeker-v0"

    def __init__(
        self,
        *,
        num_envs: int = 64,
        max_episode_steps: int = 400,
        seed: int | None = None,
        device: Any = "cpu",
        dtype: Any = torch.float32,
        reset_box: Any = None,
        check_nan: bool = True,
        clip_actions: bool = False,
        render_mode: str | None = None,
        render_env_index: int = 0,
        clearance: float = 0.5,
        system: SingleIntegrator | None = None,
    ) -> None:
        system = SingleIntegrator.navigate_seeker() if system is None else system
        if not (isinstance(clearance, (int, float)) and clearance >= 0):
            raise ValueError(f"clearance={clearance!r} must be a non-negative number")
        self.clearance = float(clearance)
        b = float(system.state_high[0])
        super().__init__(
            system,
            num_envs=num_envs,
            max_episode_steps=max_episode_steps,
            obs_low=[-b, -b, -2 * b, -2 * b, -2 * b, -2 * b, 2.0],
            obs_high=[b, b, 2 * b, 2 * b, 2 * b, 2 * b, 4.0],
            seed=seed,
            device=device,
            dtype=dtype,
            reset_box=reset_box,
            check_nan=check_nan,
            clip_actions=clip_actions,
            render_mode=render_mode,
            render_env_index=render_env_index,
        )
        self._goal_low = torch.tensor([-7.0, -7.0], **self._fk)
        self._goal_width = torch.tensor([14.0, 14.0], **self._fk)
        self._goal_radius_for_render = 0.3
        self._view = (-b, b, -b, b)

    def default_reset_box(self):
        return [-7.0, -7.0], [7.0, 7.0]

    def _obstacles(self):
        p = self.episode_params
        return p["obstacle_center"][:, None, :], p["obstacle_radius"][:, None]

    def _goal(self):
        return self.episode_params["goal"]

    def _sample_reset(self, num: int, state=None):
        g = self._generator
        center = -3.0 + 6.0 * torch.rand(num, 2, generator=g, **self._fk)
        radius = 2.0 + 2.0 * torch.rand(num, generator=g, **self._fk)
        keep_out = (radius + self.clearance) ** 2

        def accept(p: torch.Tensor) -> torch.Tensor:
            d = p - center
            return (d * d).sum(-1) >= keep_out

        if state is None:
            start = _rejection_sample(
                num,
                lambda k: self._uniform(k, self._r_low, self._r_width),
                accept,
                "NavigateSeeker start states",
            )
        else:
            start = state
        goal = _rejection_sample(
            num,
            lambda k: self._uniform(k, self._goal_low, self._goal_width),
            accept,
            "NavigateSeeker goals",
        )
        return start, {"goal": goal, "obstacle_center": center, "obstacle_radius": radius}

    def _safe_action_set(self, x: torch.Tensor):
        from safegrad.invariance.safe_action import action_box_rows, one_step_affine
        from safegrad.sets import HPolytope

        p = self.episode_params
        f0, Bm, E, w_half = one_step_affine(self.system, x)
        diff = x - p["obstacle_center"]
        dist = torch.linalg.vector_norm(diff, dim=-1, keepdim=True)
        ok = dist > 0
        nrm = torch.where(ok, diff / torch.where(ok, dist, torch.ones_like(dist)), 0.0)
        nrm = torch.where(ok, nrm, torch.tensor([1.0, 0.0], **self._fk))
        # n . (f0 + B a + E w - c) >= r for all w  <=>  -(n B) a <= n.(f0 - c) - r - |n E| w_half
        row = -(nrm.unsqueeze(-2) @ Bm)  # (B, 1, m)
        rhs = (nrm * (f0 - p["obstacle_center"])).sum(-1) - p["obstacle_radius"]
        rhs = rhs - (nrm @ E).abs() @ w_half
        hW = E.abs() @ w_half
        Cb, db = action_box_rows(self.action_dim, x, x.shape[:-1])
        C = torch.cat([row, Bm, -Bm, Cb], -2)
        d = torch.cat([rhs.unsqueeze(-1), self._s_high - f0 - hW, f0 - self._s_low - hW, db], -1)
        return HPolytope(C, d, validate=False)

    def _observe(self, x: torch.Tensor) -> torch.Tensor:
        p = self.episode_params
        return torch.cat(
            (x, p["goal"] - x, p["obstacle_center"] - x, p["obstacle_radius"][:, None]), dim=-1
        )

    def _reward(self, x: torch.Tensor, a: torch.Tensor, x_next: torch.Tensor) -> torch.Tensor:
        return -2.0 * torch.linalg.vector_norm(self.episode_params["goal"] - x_next, dim=-1)
