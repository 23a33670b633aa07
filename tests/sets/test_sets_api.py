"""Construction checks, clear errors, batch semantics, dtype/device handling of safegrad.sets."""

from __future__ import annotations

import math

import pytest
import torch
from setsref import F64

from safegrad.sets import Ball, Box, ConvexSet, HPolytope, Zonotope


def _all_sets(dtype=F64, batch=(3,)):
    gen = torch.Generator().manual_seed(0)
    c = torch.randn(*batch, 2, generator=gen, dtype=dtype)
    return [
        Box(c - 1, c + 1),
        Ball(c, torch.ones(batch, dtype=dtype)),
        Zonotope(c, torch.randn(*batch, 2, 3, generator=gen, dtype=dtype)),
        Box(c - 1, c + 1).to_hpolytope(),
    ]


def test_all_are_convex_sets_with_common_properties():
    for s in _all_sets():
        assert isinstance(s, ConvexSet)
        assert s.dim == 2 and s.batch_shape == (3,) and s.dtype == F64
        assert s.device == torch.device("cpu")
        s32 = s.to(dtype=torch.float32)
        assert s32.dtype == torch.float32 and type(s32) is type(s)
        assert s[1].batch_shape == () and s[torch.tensor([0, 2])].batch_shape == (2,)
        assert s[0:1].expand(5).batch_shape == (5,)
        assert type(s).__name__ in repr(s)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_closed_form_ops_follow_dtype_and_broadcast(dtype):
    gen = torch.Generator().manual_seed(1)
    for s in _all_sets(dtype, batch=(3,)):
        x = torch.randn(4, 3, 2, generator=gen, dtype=dtype)  # (K, B, n)
        v = torch.randn(4, 1, 2, generator=gen, dtype=dtype)  # broadcasts over B
        assert s.contains(x).shape == (4, 3)
        sup = s.support(v)
        assert sup.shape == (4, 3) and sup.dtype == dtype
        o = s.interval_hull().center if not isinstance(s, Ball) else s.center
        if isinstance(s, Zonotope):
            o = s.center
        t = s.ray_distance(o, v)
        assert t.shape == (4, 3) and t.dtype == dtype and torch.isfinite(t).all()
        p = s.project(x)
        assert p.shape == (4, 3, 2) and p.dtype == dtype
        assert s.contains(p, tol=1e-4 if dtype == torch.float32 else 1e-7).all()
        smp = s.sample(6, generator=gen)
        assert smp.shape == (6, 3, 2) and smp.dtype == dtype
        assert s.contains(smp, tol=1e-5).all()


def test_construction_errors_are_clear():
    with pytest.raises(ValueError, match="low > high"):
        Box(torch.ones(2), torch.zeros(2))
    with pytest.raises(ValueError, match="dimension"):
        Box(torch.zeros(2), torch.ones(3))
    with pytest.raises(ValueError, match="batch shapes do not broadcast"):
        Box(torch.zeros(2, 2), torch.ones(3, 2))
    with pytest.raises(ValueError, match="finite"):
        Box(torch.zeros(2), torch.tensor([1.0, math.inf]))
    with pytest.raises(TypeError, match="dtype"):
        Box(torch.zeros(2), torch.ones(2, dtype=F64))
    with pytest.raises(ValueError, match="radius must be >= 0"):
        Ball(torch.zeros(2), torch.tensor(-1.0))
    with pytest.raises(ValueError, match="generators must have shape"):
        Zonotope(torch.zeros(2), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="C has 3 rows"):
        HPolytope(torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        HPolytope(torch.zeros(1, 2), torch.tensor([math.nan]))
    with pytest.raises(ValueError, match="half_width"):
        Box.from_center(torch.zeros(2), -torch.ones(2))
    # integer and list inputs are accepted (promoted to floating point)
    assert Box([0, 0], [1, 2]).dtype.is_floating_point
    assert Box(
        torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long)
    ).dtype.is_floating_point


def test_method_argument_errors_are_clear():
    box = Box(torch.zeros(2), torch.ones(2))
    with pytest.raises(ValueError, match=r"shape \(\*batch, 2\)"):
        box.contains(torch.zeros(3))
    with pytest.raises(TypeError, match="dtype"):
        box.contains(torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match="does not broadcast"):
        Box(torch.zeros(3, 2), torch.ones(3, 2)).contains(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="non-negative int"):
        box.sample(-1)
    with pytest.raises(TypeError, match="Generator"):
        box.sample(2, generator=0)
    z = box.to_zonotope()
    with pytest.raises(ValueError, match="method"):
        z.sample(2, method="nope")
    with pytest.raises(TypeError, match="Zonotope or Box"):
        z.contains_zonotope(Ball(torch.zeros(2), torch.tensor(1.0)))
    with pytest.raises(IndexError):
        box[0]


def test_box_from_center_and_properties():
    b = Box.from_center(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(b.low, torch.tensor([0.5, 2.0]))
    torch.testing.assert_close(b.half_width, torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(b.center, torch.tensor([1.0, 2.0]))


def test_hot_paths_keep_autograd_graph_and_detach():
    c = torch.zeros(2, dtype=F64, requires_grad=True)
    z = Zonotope(c, torch.eye(2, dtype=F64))
    assert z.contains(torch.zeros(2, dtype=F64))  # runs under no_grad, must not cache
    t = z.ray_distance(torch.zeros(2, dtype=F64), torch.tensor([1.0, 0.0], dtype=F64))
    t.backward()
    assert c.grad is not None and c.grad[0].item() == pytest.approx(1.0)
    assert not z.detach().center.requires_grad
    # the same zonotope can be differentiated twice (no cached graph)
    t2 = z.ray_distance(torch.zeros(2, dtype=F64), torch.tensor([1.0, 0.0], dtype=F64))
    t2.backward()
    assert c.grad[0].item() == pytest.approx(2.0)


def test_docs_examples_run():
    """The python examples of docs/sets.md are executed (habit taken from cvxpylayers)."""
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "sets.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(doc), "exec"), {})
