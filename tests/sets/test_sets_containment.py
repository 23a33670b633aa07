"""Zonotope-in-zonotope containment: exact vs brute force, Sadraddini soundness (spec A §2.2)."""

from __future__ import annotations

import pytest
import torch
from setsref import F64, corner_points, random_zonotope

from safegrad.sets import Box, Zonotope


def _brute_force_contains(outer: Zonotope, inner: Zonotope) -> torch.Tensor:
    """inner ⊆ outer iff every corner point c + G sigma of inner is in outer (LP containment)."""
    pts = corner_points(inner).movedim(-2, 0)  # (2^m, *batch, n)
    return outer.contains(pts, tol=1e-9, method="lp").all(0)


@pytest.mark.parametrize("n,m_out,m_in", [(2, 4, 3), (3, 5, 3)])
def test_exact_matches_bruteforce_and_sadraddini_is_sound(n, m_out, m_in):
    gen = torch.Generator().manual_seed(n)
    B = 24
    outer = random_zonotope(n, m_out, batch=(B,), gen=gen)
    # inner: a shrunken random zonotope near the centre, some inside, some not
    raw = random_zonotope(n, m_in, batch=(B,), gen=gen)
    scale = torch.linspace(0.1, 0.9, B, dtype=F64)
    inner = Zonotope(
        outer.center + 0.2 * scale.unsqueeze(-1) * raw.center,
        scale[:, None, None] * raw.generators,
    )
    exact = outer.contains_zonotope(inner, method="exact")
    brute = _brute_force_contains(outer, inner)
    assert torch.equal(exact, brute)
    assert exact.any() and (~exact).any()
    sadr = outer.contains_zonotope(inner, method="sadraddini")
    assert not (sadr & ~exact).any()  # never claims what the exact test refutes


def test_sadraddini_certifies_scaled_copies_and_subzonotopes():
    gen = torch.Generator().manual_seed(1)
    z = random_zonotope(3, 5, gen=gen)
    for s in (0.3, 0.999, 1.0):
        inner = Zonotope(z.center, s * z.generators)
        # the LP value is accurate to ~1e-8: the touching case needs a matching tolerance
        tol = 1e-6 if s == 1.0 else 1e-9
        assert z.contains_zonotope(inner, method="sadraddini", tol=tol).item()
        assert z.contains_zonotope(inner, method="exact").item()
    # optimal value of the LP equals the scale for a scaled copy
    assert z.sadraddini_scale(Zonotope(z.center, 0.5 * z.generators)).item() == pytest.approx(
        0.5, abs=1e-6
    )
    # generator subset, shifted within the slack
    inner = Zonotope(z.center + 0.1 * z.generators[:, 0], 0.9 * z.generators[:, 1:])
    assert z.contains_zonotope(inner, method="sadraddini").item()
    big = Zonotope(z.center, 1.01 * z.generators)
    assert not z.contains_zonotope(big, method="sadraddini").item()
    assert not z.contains_zonotope(big, method="exact").item()


def test_containment_boxes_and_degenerate():
    box = Box(-torch.ones(2, dtype=F64), torch.ones(2, dtype=F64))
    z = box.to_zonotope()
    small = Box(torch.tensor([-0.5, 0.0], dtype=F64), torch.tensor([0.5, 1.0], dtype=F64))
    assert z.contains_zonotope(small).item()
    assert z.contains_zonotope(small, method="sadraddini").item()
    shifted = Box(torch.tensor([0.5, 0.0], dtype=F64), torch.tensor([1.5, 1.0], dtype=F64))
    assert not z.contains_zonotope(shifted).item()
    # flat outer (a segment) contains a sub-segment, not a box
    seg = Zonotope(torch.zeros(2, dtype=F64), torch.tensor([[1.0], [1.0]], dtype=F64))
    sub = Zonotope(torch.tensor([0.1, 0.1], dtype=F64), torch.tensor([[0.5], [0.5]], dtype=F64))
    assert seg.contains_zonotope(sub).item()
    assert seg.contains_zonotope(sub, method="sadraddini").item()
    assert not seg.contains_zonotope(small).item()
    assert not seg.contains_zonotope(small, method="sadraddini").item()
    # a point inside / outside
    pt = Zonotope(torch.tensor([0.2, -0.3], dtype=F64), torch.zeros(2, 0, dtype=F64))
    assert z.contains_zonotope(pt).item() and z.contains_zonotope(pt, method="sadraddini").item()


def test_sadraddini_batch_broadcast():
    gen = torch.Generator().manual_seed(2)
    outer = random_zonotope(2, 3, batch=(4,), gen=gen)
    inner = Zonotope(torch.zeros(1, 2, dtype=F64), 0.01 * torch.eye(2, dtype=F64))  # batch (1,)
    got = outer.contains_zonotope(inner, method="sadraddini")
    assert got.shape == (4,)
    assert not (got & ~outer.contains_zonotope(inner)).any()
