"""RCI-set tasks: the shipped invariant set, resets inside it and its safe action set
(spec A §2.4, §5.1-5.2; issue 4).

Mixed into ``BalancePendulum``, ``BalanceQuadrotor`` and ``BalanceCartPole``:

* ``rci="default"`` loads the shipped set (``safegrad/data/rci/<name>_v1.json``); an
  :class:`~safegrad.invariance.RCISet` or a path may be given instead; ``rci=None`` disables it
  (the safe set is then ``S`` itself, one step ahead).
* reset: without an explicit ``reset_box``, initial states are sampled in the RCI set:
  ``reset_sampling="generators"`` (default, the spec's ``beta ~ U([-1,1]^p)``, not uniform in the
  set) or ``"uniform"`` (uniform in the set, by rejection).  ``env.reset_box`` then reports the
  set's interval hull.  With an explicit ``reset_box`` the old uniform-box reset is used.
* ``safe_action_set(state)``: actions in ``[-1, 1]^m`` whose next-state set (exact one-step model
  at the state, every ``w in W``) lies in the RCI set: one row per RCI facet plus the box rows.
* ``safety_margin(x)``: distance-like margin to the RCI set (``>= 0`` inside).
"""

from __future__ import annotations

from typing import Any

import torch

from safegrad.invariance import RCISet, load_rci
from safegrad.invariance.safe_action import box_safe_action_set, polytope_safe_action_set

__all__ = ["RCITaskMixin"]


class RCITaskMixin:
    """See the module docstring.  Call :meth:`_init_rci` before ``TorchVectorEnv.__init__``."""

    rci_name: str = ""
    rci: RCISet | None

    def _init_rci(self, rci: Any, reset_sampling: str, reset_box: Any) -> None:
        if reset_sampling not in ("generators", "uniform"):
            raise ValueError(f"reset_sampling={reset_sampling!r} must be 'generators' or 'uniform'")
        if isinstance(rci, str) and rci == "default":
            rci = load_rci(self.rci_name)
        elif isinstance(rci, str):
            rci = load_rci(rci)
        elif rci is not None and not isinstance(rci, RCISet):
            raise TypeError(f"rci must be 'default', a path, an RCISet or None, got {rci!r}")
        self.rci = rci
        self.reset_sampling = reset_sampling
        self._rci_reset = rci is not None and reset_box is None

    def _check_rci_system(self) -> None:
        from safegrad.invariance.compute import system_compatibility

        if self.rci is None:
            return
        bad = system_compatibility(self.rci.system, self.system)
        if bad:
            raise ValueError(
                f"{self.env_id}: the RCI set {self.rci.name!r} is not valid for this system: "
                + "; ".join(bad)
                + "; pass rci=None or a set computed for this system (`safegrad rci compute`)"
            )

    def default_reset_box(self):
        if getattr(self, "_rci_reset", False):
            c, h = self.rci.center, self.rci.hull_halfwidth
            lo = torch.maximum(torch.as_tensor(c - h), self.system.state_low)
            hi = torch.minimum(torch.as_tensor(c + h), self.system.state_high)
            return lo.tolist(), hi.tolist()
        return self._box_default_reset()

    def _box_default_reset(self):  # pragma: no cover - overridden by the tasks
        raise NotImplementedError

    def _sample_reset(self, num: int, state=None):
        if state is not None or not self._rci_reset:
            return super()._sample_reset(num, state)
        x = self.rci.sample(
            num,
            self._generator,
            method=self.reset_sampling,
            device=self.device,
            dtype=self.dtype,
        )
        return x, {}

    # ------------------------------------------------------------------ safety
    def _safe_action_set(self, x: torch.Tensor):
        if self.rci is None:
            dims = [i for i in range(self.state_dim) if i not in self._wrapped_full]
            return box_safe_action_set(self.system, x, self._s_low, self._s_high, dims=dims)
        t = self.rci.tensors(x.device, x.dtype)
        cache = self.__dict__.setdefault("_safe_set_cache", {})
        return polytope_safe_action_set(self.system, x, t["C"], t["d"], cache=cache)

    def safety_margin(self, x: torch.Tensor) -> torch.Tensor:
        """Margin of states ``x (B, n)`` to the safe state set: the RCI set's facet distance
        (``>= 0`` inside), or the normalised margin to ``S`` without an RCI set."""
        if self.rci is None:
            return self.state_margin(x)
        return self.rci.margin(x)
