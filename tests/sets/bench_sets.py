"""Timing of safegrad.sets hot paths (not a test; numbers quoted in docs/sets.md).

Run: ``/work/venv/bin/python tests/sets/bench_sets.py`` (CPU, one thread, float64).
"""

from __future__ import annotations

import math
import time

import torch

from safegrad.sets import Box, Zonotope


def _ms(f, reps: int = 10) -> float:
    f()
    t = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - t) / reps * 1e3


def _hot_paths(B: int, n: int, m: int, dt: torch.dtype) -> dict[str, float]:
    c = torch.randn(B, n, dtype=dt)
    G = torch.randn(B, n, m, dtype=dt)
    v = torch.randn(B, n, dtype=dt)
    box = Box(c - 1, c + 1)
    H = box.to_hpolytope()

    def zono():
        return Zonotope(c, G, validate=False)

    inner = Zonotope(c, 0.5 * G, validate=False)
    return {
        "Box.ray": _ms(lambda: box.ray_distance(c, v), 20),
        "Box.project": _ms(lambda: box.project(v), 20),
        "HPolytope.ray": _ms(lambda: H.ray_distance(c, v), 20),
        "Zonotope new+ray hrep": _ms(lambda: zono().ray_distance(c, v, method="hrep")),
        "Zonotope ray lp": _ms(lambda: zono().ray_distance(c, v, method="lp"), 3),
        "Zonotope.project hrep": _ms(lambda: zono().project(3 * v), 3),
        "sadraddini": _ms(lambda: zono().sadraddini_scale(inner), 1),
    }


def _hrep_vs_lp(B: int, n: int, m: int, dt: torch.dtype) -> tuple[float, float]:
    c = torch.randn(B, n, dtype=dt)
    G = torch.randn(B, n, m, dtype=dt)
    v = torch.randn(B, n, dtype=dt)
    th = _ms(lambda: Zonotope(c, G, validate=False).ray_distance(c, v, method="hrep"), 3)
    tl = _ms(lambda: Zonotope(c, G, validate=False).ray_distance(c, v, method="lp"), 3)
    return th, tl


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dt = torch.float64
    print("batch 1024")
    for n, m in [(2, 4), (3, 6)]:
        row = _hot_paths(1024, n, m, dt)
        print(f"n={n} m={m}: " + " | ".join(f"{k} {t:.3g} ms" for k, t in row.items()))
    print("batch 256: H-rep vs LP ray distance")
    for n, m in [(3, 30), (4, 8), (4, 12), (4, 16), (5, 9), (5, 10), (6, 8), (6, 9), (6, 12)]:
        th, tl = _hrep_vs_lp(256, n, m, dt)
        print(f"n={n} m={m} subsets={math.comb(m, n - 1)}: hrep {th:.3g} ms, lp {tl:.3g} ms")


if __name__ == "__main__":
    main()
