"""Outward-rounded interval arithmetic in numpy (float64), for certified remainder bounds.

Used offline by :mod:`safegrad.invariance.remainder` to bound the linearisation remainder of a
system's accelerations over a box (spec A §11.1: "bound the Lagrange remainder of f over
S_s x A x W (interval/zonotope arithmetic ...)").  Every operation returns an enclosure of the
exact real result: the float64 endpoints are moved outwards by ``ulps`` units in the last place
after each operation (``np.nextafter``), which covers the rounding error of IEEE-754 ``+ - * /``
(<= 0.5 ulp) and of the platform's ``sin``/``cos`` (a few ulp at most; two ulp of widening plus
one for the argument are used for them).

Only what the shipped systems need is implemented: ``+``, ``-``, ``*``, ``/`` (by intervals not
containing 0), ``sqr``, ``sin``, ``cos``, and scalar operands.  Arrays broadcast elementwise, so one
:class:`Interval` holds a whole grid of cells.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Interval", "Dual", "sin", "cos", "sqr"]

_TWO_PI = 2.0 * math.pi


def _down(x: np.ndarray, k: int = 1) -> np.ndarray:
    for _ in range(k):
        x = np.nextafter(x, -np.inf)
    return x


def _up(x: np.ndarray, k: int = 1) -> np.ndarray:
    for _ in range(k):
        x = np.nextafter(x, np.inf)
    return x


class Interval:
    """Elementwise intervals ``[lo, hi]`` (numpy float64 arrays of one broadcast shape).

    Args:
        lo, hi: lower and upper endpoints (array-likes or scalars); ``hi`` defaults to ``lo``
            (a point interval).

    Raises:
        ValueError: if some ``lo > hi`` or an endpoint is NaN.
    """

    __slots__ = ("lo", "hi")
    __array_priority__ = 1000  # make ``ndarray op Interval`` defer to Interval

    def __init__(self, lo, hi=None, *, _check: bool = True):
        lo = np.asarray(lo, dtype=np.float64)
        hi = lo if hi is None else np.asarray(hi, dtype=np.float64)
        lo, hi = np.broadcast_arrays(lo, hi)
        if _check and (np.isnan(lo).any() or np.isnan(hi).any() or (lo > hi).any()):
            raise ValueError("Interval: endpoints must satisfy lo <= hi and not be NaN")
        self.lo, self.hi = lo, hi

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _wrap(other) -> Interval:
        return other if isinstance(other, Interval) else Interval(other)

    @property
    def mid(self) -> np.ndarray:
        return 0.5 * (self.lo + self.hi)

    @property
    def width(self) -> np.ndarray:
        return self.hi - self.lo

    def contains(self, x) -> np.ndarray:
        """Elementwise ``lo <= x <= hi``."""
        x = np.asarray(x, dtype=np.float64)
        return (self.lo <= x) & (x <= self.hi)

    def __repr__(self) -> str:
        return f"Interval(lo={self.lo!r}, hi={self.hi!r})"

    # ------------------------------------------------------------------ arithmetic
    def __neg__(self) -> Interval:
        return Interval(-self.hi, -self.lo, _check=False)

    def __add__(self, other) -> Interval:
        o = self._wrap(other)
        return Interval(_down(self.lo + o.lo), _up(self.hi + o.hi), _check=False)

    __radd__ = __add__

    def __sub__(self, other) -> Interval:
        o = self._wrap(other)
        return Interval(_down(self.lo - o.hi), _up(self.hi - o.lo), _check=False)

    def __rsub__(self, other) -> Interval:
        return self._wrap(other) - self

    def __mul__(self, other) -> Interval:
        o = self._wrap(other)
        p = np.stack(
            np.broadcast_arrays(self.lo * o.lo, self.lo * o.hi, self.hi * o.lo, self.hi * o.hi)
        )
        return Interval(_down(p.min(0)), _up(p.max(0)), _check=False)

    __rmul__ = __mul__

    def __truediv__(self, other) -> Interval:
        o = self._wrap(other)
        if ((o.lo <= 0) & (o.hi >= 0)).any():
            raise ZeroDivisionError("Interval division by an interval that contains 0")
        inv = Interval(_down(1.0 / o.hi), _up(1.0 / o.lo), _check=False)
        return self * inv

    def __rtruediv__(self, other) -> Interval:
        return self._wrap(other) / self

    def sqr(self) -> Interval:
        """``{x^2}`` (tighter than ``x * x`` for intervals containing 0)."""
        a, b = np.abs(self.lo), np.abs(self.hi)
        hi = _up(np.maximum(a, b) ** 2)
        lo = np.where((self.lo <= 0) & (self.hi >= 0), 0.0, _down(np.minimum(a, b) ** 2))
        return Interval(lo, hi, _check=False)

    # ------------------------------------------------------------------ trigonometry
    def _trig(self, fn, peak: float) -> Interval:
        """Range of ``fn`` (sin or cos) on ``[lo, hi]``; ``fn`` has maxima at ``peak + 2 pi k``
        and minima at ``peak + pi + 2 pi k``."""
        lo, hi = self.lo, self.hi
        flo, fhi = fn(lo), fn(hi)
        rlo = _down(np.minimum(flo, fhi), 3)
        rhi = _up(np.maximum(flo, fhi), 3)
        # an extremum lies in [lo, hi] if the first one at or after lo is <= hi; the test is
        # made generous by 1e-12 rad (a spurious hit only widens the enclosure to +-1)
        k_max = np.ceil((lo - peak) / _TWO_PI - 1e-12)
        has_max = peak + _TWO_PI * k_max <= hi + 1e-12
        k_min = np.ceil((lo - peak - math.pi) / _TWO_PI - 1e-12)
        has_min = peak + math.pi + _TWO_PI * k_min <= hi + 1e-12
        full = (hi - lo) >= _TWO_PI
        rhi = np.where(has_max | full, 1.0, np.minimum(rhi, 1.0))
        rlo = np.where(has_min | full, -1.0, np.maximum(rlo, -1.0))
        return Interval(rlo, rhi, _check=False)

    def sin(self) -> Interval:
        return self._trig(np.sin, 0.5 * math.pi)

    def cos(self) -> Interval:
        return self._trig(np.cos, 0.0)


class Dual:
    """Forward-mode derivative in interval arithmetic: ``value`` and ``grad[i]`` (Intervals).

    Evaluating an expression on ``Dual.variable(cell_i, i, d)`` inputs encloses the function
    and its gradient over the whole cell, which gives the mean-value form
    ``f(cell) ⊆ f(centre) + sum_i f_i'(cell) [-h_i, h_i]`` (second-order tight; used by
    :func:`safegrad.invariance.model.fit_linear_model`).
    """

    __slots__ = ("value", "grad")
    __array_priority__ = 1001

    def __init__(self, value: Interval, grad: list):
        self.value, self.grad = value, grad

    @staticmethod
    def variable(iv: Interval, index: int, dim: int) -> Dual:
        grad = [Interval(1.0 if j == index else 0.0) for j in range(dim)]
        return Dual(iv, grad)

    def _wrap(self, other) -> Dual:
        if isinstance(other, Dual):
            return other
        iv = other if isinstance(other, Interval) else Interval(other)
        return Dual(iv, [Interval(0.0) for _ in self.grad])

    def __neg__(self) -> Dual:
        return Dual(-self.value, [-g for g in self.grad])

    def __add__(self, other) -> Dual:
        o = self._wrap(other)
        return Dual(self.value + o.value, [a + b for a, b in zip(self.grad, o.grad)])

    __radd__ = __add__

    def __sub__(self, other) -> Dual:
        o = self._wrap(other)
        return Dual(self.value - o.value, [a - b for a, b in zip(self.grad, o.grad)])

    def __rsub__(self, other) -> Dual:
        return self._wrap(other) - self

    def __mul__(self, other) -> Dual:
        o = self._wrap(other)
        grad = [a * o.value + self.value * b for a, b in zip(self.grad, o.grad)]
        return Dual(self.value * o.value, grad)

    __rmul__ = __mul__

    def __truediv__(self, other) -> Dual:
        o = self._wrap(other)
        q = self.value / o.value
        grad = [(a - q * b) / o.value for a, b in zip(self.grad, o.grad)]
        return Dual(q, grad)

    def __rtruediv__(self, other) -> Dual:
        return self._wrap(other) / self

    def sqr(self) -> Dual:
        return Dual(self.value.sqr(), [g * self.value * 2.0 for g in self.grad])

    def sin(self) -> Dual:
        c = self.value.cos()
        return Dual(self.value.sin(), [g * c for g in self.grad])

    def cos(self) -> Dual:
        s = self.value.sin()
        return Dual(self.value.cos(), [-(g * s) for g in self.grad])


def sin(x):
    """``sin`` of a :class:`Dual`, an :class:`Interval` or a number/array."""
    return x.sin() if isinstance(x, (Interval, Dual)) else np.sin(x)


def cos(x):
    """``cos`` of a :class:`Dual`, an :class:`Interval` or a number/array."""
    return x.cos() if isinstance(x, (Interval, Dual)) else np.cos(x)


def sqr(x):
    """``x^2`` of a :class:`Dual`, an :class:`Interval` or a number/array."""
    return x.sqr() if isinstance(x, (Interval, Dual)) else x * x
