"""The :class:`RCISet` container and the shipped, versioned set files (spec A §2.4, §11.2).

A set file ``safegrad/data/rci/<name>_v<version>.json`` holds the RCI state zonotope
``<c, G>``, the paired control zonotope ``<c_u, G_u>`` (feedback ``c + G beta -> c_u + G_u beta``),
the certified linear model with its remainder box, the certificate numbers, the synthesis
settings, the command that made it and the package versions.  JSON keeps it diffable and
readable; the numbers are written with ``repr`` precision (exact float64 round trip).
"""

from __future__ import annotations

import datetime
import json
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import torch
from torch import Tensor

from safegrad.invariance.facets import facet_normals, zonotope_hrep

__all__ = ["RCISet", "load_rci", "save_rci", "rci_path", "FORMAT", "FORMAT_VERSION"]

FORMAT = "safegrad-rci"
FORMAT_VERSION = 1


@dataclass
class RCISet:
    """A robust control invariant zonotope with its paired controller and certificate.

    Attributes:
        name: short name (``"pendulum"``, ``"quadrotor"``, ``"cartpole"``).
        env_id: the task it belongs to.
        center: ``(n,)``; generators: ``(n, p)`` (float64 numpy).
        ctrl_center: ``(m,)``; ctrl_generators: ``(m, p)``: the paired control zonotope.
        linear_model: dict of the certified linear model (``A, B, f0, E, w_half, J, a0, rho_lo,
            rho_hi, x_lo, x_hi, u_lo, u_hi``), numpy arrays.
        state_error: ``(n,)`` state-error half-widths the invariance tolerates.
        system: dict describing the system (class name and key constants) the set was made for.
        meta: everything else (synthesis settings, certificate, hull, volume, command,
            versions, creation date, falsification summary).
    """

    name: str
    env_id: str
    center: np.ndarray
    generators: np.ndarray
    ctrl_center: np.ndarray
    ctrl_generators: np.ndarray
    linear_model: dict[str, np.ndarray]
    state_error: np.ndarray
    system: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = 1

    def __post_init__(self) -> None:
        self.center = np.asarray(self.center, np.float64)
        self.generators = np.asarray(self.generators, np.float64)
        self.ctrl_center = np.asarray(self.ctrl_center, np.float64)
        self.ctrl_generators = np.asarray(self.ctrl_generators, np.float64)
        self.state_error = np.asarray(self.state_error, np.float64)
        n, p = self.generators.shape
        if self.center.shape != (n,) or self.ctrl_generators.shape[1:] != (p,):
            raise ValueError(
                f"RCISet {self.name!r}: inconsistent shapes center {self.center.shape}, "
                f"generators {self.generators.shape}, ctrl_generators {self.ctrl_generators.shape}"
            )
        self._hrep: tuple[np.ndarray, np.ndarray] | None = None
        self._torch: dict[tuple[torch.device, torch.dtype], dict[str, Tensor]] = {}

    # ------------------------------------------------------------------ geometry (numpy)
    @property
    def dim(self) -> int:
        return self.generators.shape[0]

    @property
    def num_generators(self) -> int:
        return self.generators.shape[1]

    @property
    def hull_halfwidth(self) -> np.ndarray:
        """``(n,)`` half-widths of the interval hull ``sum_j |G_ij|``."""
        return np.abs(self.generators).sum(1)

    def hrep(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact H-representation ``(C (k, n), d (k,))`` with unit rows (float64, cached)."""
        if self._hrep is None:
            self._hrep = zonotope_hrep(self.center, self.generators, facet_normals(self.generators))
        return self._hrep

    def scaled(self, factor: float) -> RCISet:
        """The same set with generators (and paired control generators) scaled by ``factor``
        about the centre; used to test that verification can fail (10 % larger set)."""
        return RCISet(
            name=f"{self.name}_x{factor:g}",
            env_id=self.env_id,
            center=self.center.copy(),
            generators=self.generators * factor,
            ctrl_center=self.ctrl_center.copy(),
            ctrl_generators=self.ctrl_generators * factor,
            linear_model=self.linear_model,
            state_error=self.state_error,
            system=self.system,
            meta=dict(self.meta),
            version=self.version,
        )

    # ------------------------------------------------------------------ torch views
    def tensors(self, device: Any = "cpu", dtype: torch.dtype = torch.float64) -> dict[str, Tensor]:
        """``center, generators, ctrl_center, ctrl_generators, C, d`` as tensors (cached)."""
        key = (torch.device(device), dtype)
        t = self._torch.get(key)
        if t is None:
            C, d = self.hrep()
            t = {
                k: torch.as_tensor(np.ascontiguousarray(v), dtype=dtype, device=key[0])
                for k, v in (
                    ("center", self.center),
                    ("generators", self.generators),
                    ("ctrl_center", self.ctrl_center),
                    ("ctrl_generators", self.ctrl_generators),
                    ("C", C),
                    ("d", d),
                )
            }
            self._torch[key] = t
        return t

    def margin(self, x: Tensor) -> Tensor:
        """Signed distance-like margin ``min_f (d_f - C_f x)`` of states ``x (*B, n)`` to the
        boundary (unit facet normals: the Euclidean distance to the nearest facet plane);
        ``>= 0`` inside, ``< 0`` outside.  Shape ``(*B,)``."""
        t = self.tensors(x.device, x.dtype)
        return (t["d"] - x @ t["C"].T).amin(-1)

    def contains(self, x: Tensor, tol: float = 0.0) -> Tensor:
        """``(*B,)`` bool: ``x`` in the set up to ``tol`` (facet-plane distance)."""
        return self.margin(x) >= -tol

    def sample(
        self,
        num: int,
        generator: torch.Generator | None = None,
        *,
        method: str = "generators",
        device: Any = "cpu",
        dtype: torch.dtype = torch.float64,
        return_beta: bool = False,
    ):
        """Random states of the set, ``(num, n)``.

        ``method="generators"`` (spec A §2.2 and the reference code's reset): ``c + G beta``,
        ``beta ~ U([-1, 1]^p)``, not uniform in the set.  ``method="uniform"``: uniform in the
        set by rejection from the interval hull (batched rounds).  ``return_beta`` (generators
        only) also returns ``beta`` so that the paired control ``c_u + G_u beta`` is available.
        """
        t = self.tensors(device, dtype)
        if method == "generators":
            beta = torch.rand(
                num,
                self.num_generators,
                generator=generator,
                dtype=dtype,
                device=t["center"].device,
            )
            beta = 2.0 * beta - 1.0
            x = t["center"] + beta @ t["generators"].T
            return (x, beta) if return_beta else x
        if method != "uniform":
            raise ValueError(f"method must be 'generators' or 'uniform', got {method!r}")
        if return_beta:
            raise ValueError("return_beta is only available with method='generators'")
        half = torch.as_tensor(self.hull_halfwidth, dtype=dtype, device=t["center"].device)
        lo = t["center"] - half
        out = torch.empty(0, self.dim, dtype=dtype, device=lo.device)
        for _ in range(10_000):
            cand = lo + 2.0 * half * torch.rand(
                max(2 * num, 64), self.dim, generator=generator, dtype=dtype, device=lo.device
            )
            out = torch.cat([out, cand[self.contains(cand)]])
            if out.shape[0] >= num:
                return out[:num]
        raise RuntimeError(f"rejection sampling of {self.name} accepted too few states")

    def paired_control(self, beta: Tensor) -> Tensor:
        """The paired control ``c_u + G_u beta`` for ``beta (*B, p)``, ``(*B, m)``."""
        t = self.tensors(beta.device, beta.dtype)
        return t["ctrl_center"] + beta @ t["ctrl_generators"].T

    # ------------------------------------------------------------------ (de)serialisation
    def to_json(self) -> dict[str, Any]:
        lm = {k: _tolist(v) for k, v in self.linear_model.items()}
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "env_id": self.env_id,
            "system": self.system,
            "center": _tolist(self.center),
            "generators": _tolist(self.generators),
            "ctrl_center": _tolist(self.ctrl_center),
            "ctrl_generators": _tolist(self.ctrl_generators),
            "state_error": _tolist(self.state_error),
            "linear_model": lm,
            "meta": _jsonable(self.meta),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RCISet:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file (format={data.get('format')!r})")
        if int(data.get("format_version", -1)) != FORMAT_VERSION:
            raise ValueError(
                f"unsupported {FORMAT} format_version {data.get('format_version')!r}; "
                f"this safegrad reads version {FORMAT_VERSION}"
            )
        lm = {k: np.asarray(v, np.float64) for k, v in data["linear_model"].items()}
        return cls(
            name=data["name"],
            env_id=data["env_id"],
            center=np.asarray(data["center"], np.float64),
            generators=np.asarray(data["generators"], np.float64).reshape(len(data["center"]), -1),
            ctrl_center=np.asarray(data["ctrl_center"], np.float64),
            ctrl_generators=np.asarray(data["ctrl_generators"], np.float64).reshape(
                len(data["ctrl_center"]), -1
            ),
            linear_model=lm,
            state_error=np.asarray(data["state_error"], np.float64),
            system=data["system"],
            meta=data.get("meta", {}),
            version=int(data.get("version", 1)),
        )


def _tolist(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


_DATA_DIR = "data/rci"


def rci_path(name: str, version: int = 1) -> str:
    """Path of the shipped set file ``safegrad/data/rci/<name>_v<version>.json``."""
    return str(resources.files("safegrad").joinpath(f"{_DATA_DIR}/{name}_v{version}.json"))


def load_rci(name_or_path: str, version: int = 1) -> RCISet:
    """Load a shipped set by name (``"pendulum"``, ``"quadrotor"``, ``"cartpole"``) or a path.

    Raises:
        FileNotFoundError: no such set file (run ``safegrad rci compute ENV_ID``).
    """
    path = name_or_path if name_or_path.endswith(".json") else rci_path(name_or_path, version)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"RCI set file not found: {path!r} (regenerate with `safegrad rci compute ENV_ID`)"
        )
    with open(path, encoding="utf-8") as fh:
        return RCISet.from_json(json.load(fh))


def save_rci(rci: RCISet, path: str | None = None) -> str:
    """Write ``rci`` as JSON (default: the shipped location); returns the path."""
    path = rci_path(rci.name, rci.version) if path is None else path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = rci.to_json()
    data["meta"].setdefault(
        "saved", datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    )
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
        fh.write("\n")
    return path
