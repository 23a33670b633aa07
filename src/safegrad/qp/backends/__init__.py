"""Reference differentiable QP layers behind the signature of :func:`safegrad.qp.solve_qp`.

Each backend is a submodule that imports only when its package is installed (the extra
``pip install safegrad[baselines]``); otherwise importing it raises an ``ImportError`` naming the
extra. Every adapter is called as ``solve(Q, p, G=None, h=None, A=None, b=None, **options)`` with
the shapes and broadcasting of ``solve_qp`` and returns ``x: (*batch, n)``, differentiable
through the backend's own backward pass. They are used by tests and ``safegrad bench qp`` only.

===============  ==========================================================================
``qpth``         ``qpth.qp.QPFunction`` (batched PDIPM, Amos & Kolter 2017)
``cvxpylayers``  ``cvxpylayers.torch.CvxpyLayer`` solved by Clarabel through diffcp
``proxsuite``    ``proxsuite.torch.qplayer.QPFunction`` (QPLayer, Bambade et al. 2024)
===============  ==========================================================================
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

__all__ = ["BACKENDS", "available_backends", "get_backend"]

#: backend name -> (submodule, the package it needs)
BACKENDS: dict[str, tuple[str, str]] = {
    "qpth": ("safegrad.qp.backends.qpth", "qpth"),
    "cvxpylayers": ("safegrad.qp.backends.cvxpylayers", "cvxpylayers"),
    "proxsuite": ("safegrad.qp.backends.proxsuite", "proxsuite"),
}


def missing_extra(package: str) -> ImportError:
    """The ImportError raised by a backend whose package is not installed."""
    return ImportError(
        f"this safegrad.qp backend needs the optional package '{package}'; install the extra with "
        f"`pip install safegrad[baselines]`"
    )


def get_backend(name: str) -> Callable:
    """The ``solve`` function of backend ``name`` (ImportError naming the extra if missing)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown QP backend {name!r}; expected one of {sorted(BACKENDS)}")
    return importlib.import_module(BACKENDS[name][0]).solve


def available_backends() -> list[str]:
    """Names of the backends whose packages are importable here."""
    out = []
    for name in BACKENDS:
        try:
            get_backend(name)
        except ImportError:
            continue
        out.append(name)
    return out
