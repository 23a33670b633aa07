"""Off-screen RGB renderers (PIL; never opens a window).

Every function returns an ``(H, W, 3)`` uint8 array. They draw one environment; the tasks pick
which (``render(env_index=...)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["pendulum", "cartpole", "quadrotor", "navigation"]

_BG = (255, 255, 255)
_INK = (40, 40, 40)
_BLUE = (50, 100, 200)
_RED = (210, 60, 50)
_GREEN = (60, 160, 80)
_GREY = (170, 170, 170)


def _canvas(size: int | tuple[int, int]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    w, h = (size, size) if isinstance(size, int) else size
    img = Image.new("RGB", (int(w), int(h)), _BG)
    return img, ImageDraw.Draw(img)


def _disc(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, **kw) -> None:
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], **kw)


def pendulum(theta: float, size: int = 256) -> np.ndarray:
    """Pendulum with ``theta = 0`` upright (spec A §5.1)."""
    img, d = _canvas(size)
    c = size / 2
    length = 0.4 * size
    tip = (c + length * math.sin(theta), c - length * math.cos(theta))
    d.line([(c, c), tip], fill=_BLUE, width=max(2, size // 40))
    _disc(d, *tip, size / 30, fill=_BLUE)
    _disc(d, c, c, size / 60, fill=_INK)
    return np.asarray(img, dtype=np.uint8).copy()


def cartpole(
    x: float, theta: float, x_bound: float = 10.0, size: tuple[int, int] = (400, 200)
) -> np.ndarray:
    """Cart at position ``x`` in ``[-x_bound, x_bound]`` with the pole at ``theta`` (0 upright)."""
    img, d = _canvas(size)
    w, h = size
    scale = (w - 40) / (2 * x_bound)
    ground = 0.7 * h
    d.line([(10, ground), (w - 10, ground)], fill=_GREY, width=2)
    cx = w / 2 + scale * x
    cw, ch = 0.08 * w, 0.08 * h
    d.rectangle([cx - cw / 2, ground - ch, cx + cw / 2, ground], fill=_INK)
    pivot = (cx, ground - ch)
    length = 0.5 * h
    tip = (pivot[0] + length * math.sin(theta), pivot[1] - length * math.cos(theta))
    d.line([pivot, tip], fill=_BLUE, width=max(2, h // 40))
    return np.asarray(img, dtype=np.uint8).copy()


def quadrotor(
    x: float,
    z: float,
    phi: float,
    goal: Sequence[float] | None = None,
    half_width: float = 2.0,
    size: int = 256,
) -> np.ndarray:
    """Planar quadrotor at ``(x, z)`` with roll ``phi``; the view is centred on the goal (or the
    origin) and spans ``+-half_width`` metres."""
    img, d = _canvas(size)
    gx, gz = (0.0, 0.0) if goal is None else (float(goal[0]), float(goal[1]))
    scale = size / (2 * half_width)

    def px(u: float, v: float) -> tuple[float, float]:
        return size / 2 + scale * (u - gx), size / 2 - scale * (v - gz)

    if goal is not None:
        _disc(d, *px(gx, gz), size / 50, outline=_GREEN, width=2)
    arm = 0.25
    c, s = math.cos(phi), math.sin(phi)
    left = px(x - arm * c, z + arm * s)
    right = px(x + arm * c, z - arm * s)
    d.line([left, right], fill=_INK, width=max(2, size // 60))
    for p in (left, right):
        _disc(d, *p, size / 40, fill=_BLUE)
    return np.asarray(img, dtype=np.uint8).copy()


def navigation(
    p: Sequence[float],
    goal: Sequence[float],
    goal_radius: float,
    centers: np.ndarray,
    radii: np.ndarray,
    view: tuple[float, float, float, float],
    size: int = 256,
    trail: np.ndarray | None = None,
) -> np.ndarray:
    """2-D agent ``p``, goal circle and circular obstacles in the window
    ``view = (x_min, x_max, y_min, y_max)``."""
    img, d = _canvas(size)
    x0, x1, y0, y1 = view
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    s = min(sx, sy)

    def px(u: float, v: float) -> tuple[float, float]:
        return (u - x0) * s, size - (v - y0) * s

    for c, r in zip(np.asarray(centers).reshape(-1, 2), np.asarray(radii).reshape(-1)):
        _disc(d, *px(float(c[0]), float(c[1])), float(r) * s, fill=_GREY, outline=_INK)
    _disc(d, *px(float(goal[0]), float(goal[1])), goal_radius * s, outline=_RED, width=2)
    if trail is not None and len(trail) > 1:
        d.line([px(float(u), float(v)) for u, v in trail], fill=_BLUE, width=1)
    _disc(d, *px(float(p[0]), float(p[1])), max(3.0, 0.08 * s), fill=_BLUE)
    return np.asarray(img, dtype=np.uint8).copy()
