"""Common machinery of the safeguards: the :class:`Safeguard` base module, the gradient modes
(spec A §3.5, pitfall P13), the regularisation term (spec A §3.6, Eq. 17), the never-NaN fallback
contract (issue 5, item 7) and small numerical helpers (pitfall P14).

Gradient modes (``grad_mode``):

* ``"exact"`` -- the true (generalised) Jacobian of the safeguard, with respect to the action *and*
  to every tensor the safe set is built from (the state path of SHAC, spec A §2.3).
* ``"passthrough"`` -- straight-through estimator (spec A §3.5): the forward value is the
  safeguard's output, the backward pass returns the upstream gradient unchanged to the action
  (``∂a_s/∂a := I``, bit-exact).  Scope (P13), ``passthrough_scope``:

  - ``"action"`` (default, what the reference code does): identity to the action and **no**
    gradient into the safe-set parameters (the safeguard runs under ``torch.no_grad``);
  - ``"action+set"``: identity to the action plus the exact gradient with respect to the safe-set
    parameters (the safeguard is evaluated at the detached action).

* ``"none"`` -- the output is detached: the safeguard is part of the environment (SAC/PPO
  baselines, spec A §4.3-4.4).  Neither the action nor the safe set receives a gradient.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "Safeguard",
    "SafeguardInfeasibleError",
    "regularisation_loss",
    "GRAD_MODES",
    "PASSTHROUGH_SCOPES",
]

GRAD_MODES = ("exact", "passthrough", "none")
PASSTHROUGH_SCOPES = ("action", "action+set")


class SafeguardInfeasibleError(RuntimeError):
    """Raised in strict mode (``strict=True``) when some batch element had no certified safe
    action (empty safe set, failed solve, or an uncertifiable CBF state) and would have received
    the fallback action.  ``.info`` holds the per-element info dict of the whole batch."""

    def __init__(self, message: str, info: dict[str, Tensor]):
        super().__init__(message)
        self.info = info


# ---------------------------------------------------------------------------------------------
# numerical helpers
# ---------------------------------------------------------------------------------------------


def default_tol(dtype: torch.dtype) -> float:
    """Feasibility tolerance used to *certify* an output (normalised row residuals): 1e-9 in
    float64, 1e-5 in float32 (the QP solver's own accuracy is ~1e-12 / ~1e-6)."""
    return 1e-9 if dtype == torch.float64 else 1e-5


def guard_threshold(dtype: torch.dtype) -> float:
    """Smallest length / rate treated as non-zero by the guarded divisions (P14).

    ``tiny**0.25`` (1e-77 in float64, 3e-10 in float32): any quotient ``x / y`` or ``x / y**2``
    with ``|x| <= 1e3`` and ``|y|`` above this stays finite, so guarded branches never create an
    ``inf`` whose gradient would be ``0 * inf = NaN`` (double-where pattern)."""
    return torch.finfo(dtype).tiny ** 0.25


def safe_div(num: Tensor, den: Tensor, ok: Tensor) -> Tensor:
    """``num / den`` where ``ok``, ``0`` elsewhere, with a NaN-free gradient (double where)."""
    den_safe = torch.where(ok, den, torch.ones_like(den))
    return torch.where(ok, num / den_safe, torch.zeros_like(num / den_safe))


def check_float_tensor(x: Any, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got dtype {x.dtype}")
    if x.dim() < 1 or x.shape[-1] < 1:
        raise ValueError(f"{name} must have shape (*batch, m) with m >= 1, got {tuple(x.shape)}")
    return x


def check_like(t: Tensor, like: Tensor, name: str, like_name: str = "action") -> None:
    if t.dtype != like.dtype:
        raise TypeError(
            f"{name} has dtype {t.dtype} but {like_name} has dtype {like.dtype}; use one dtype"
        )
    if t.device != like.device:
        raise TypeError(f"{name} is on {t.device} but {like_name} is on {like.device}")


def flat(t: Tensor, batch: tuple[int, ...], core: int) -> Tensor:
    """Broadcast ``t``'s leading dims to ``batch`` and flatten them to one: ``(B, *core_shape)``."""
    nb = t.dim() - core
    if len(batch) == 1 and nb == 1 and t.shape[0] == batch[0]:
        return t  # already flat: no view node in the autograd graph
    core_shape = t.shape[nb:]
    return t.expand(*batch, *core_shape).reshape(math.prod(batch), *core_shape)


# ---------------------------------------------------------------------------------------------
# straight-through functions (spec A §3.5)
# ---------------------------------------------------------------------------------------------


class _StraightThrough(torch.autograd.Function):
    """Forward: ``a_s`` as given. Backward: the upstream gradient, unchanged, to the action
    (``∂a_s/∂a := I``). With ``keep_set=False`` (scope ``"action"``) ``a_s`` arrives detached and
    nothing else gets a gradient; with ``keep_set=True`` (scope ``"action+set"``) ``a_s`` is
    ``g(a.detach(), set)`` and the same gradient also flows into its own graph, which reaches the
    safe-set parameters only."""

    @staticmethod
    def forward(action, safe_action, keep_set):
        return safe_action.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.keep_set = inputs[2]

    @staticmethod
    def backward(ctx, grad):
        return grad, (grad if ctx.keep_set else None), None


# ---------------------------------------------------------------------------------------------
# base module
# ---------------------------------------------------------------------------------------------


class Safeguard(nn.Module):
    """Base class of every safeguard: ``forward(action, safe_set, **kw) -> (safe_action, info)``.

    Subclasses implement :meth:`_safeguard` (the exact, differentiable map); this class applies
    the gradient mode, strict mode and the info bookkeeping.  A safeguard has no parameters.

    Args:
        grad_mode: ``"exact"`` | ``"passthrough"`` | ``"none"`` (module docstring).
        passthrough_scope: ``"action"`` | ``"action+set"`` (only used by ``"passthrough"``).
        strict: raise :class:`SafeguardInfeasibleError` instead of returning a flagged fallback.
        tol: feasibility tolerance used to certify outputs (default :func:`default_tol`).

    ``info`` (every entry a detached tensor of shape ``(*batch,)``):

    * ``intervened`` (bool): the safeguard changed the action, ``||a_s - a|| > 0``;
    * ``raw_unsafe`` (bool): the raw action violated the safe set / constraint;
    * ``fallback`` (bool): no certified safe action existed or the solve failed; ``a_s`` is the
      fallback action (never NaN);
    * ``distance`` (float): ``||a_s - a||``;
    * plus safeguard-specific diagnostics documented on each class.
    """

    def __init__(
        self,
        *,
        grad_mode: str = "exact",
        passthrough_scope: str = "action",
        strict: bool = False,
        tol: float | None = None,
    ):
        super().__init__()
        if grad_mode not in GRAD_MODES:
            raise ValueError(f"grad_mode must be one of {GRAD_MODES}, got {grad_mode!r}")
        if passthrough_scope not in PASSTHROUGH_SCOPES:
            raise ValueError(
                f"passthrough_scope must be one of {PASSTHROUGH_SCOPES}, got {passthrough_scope!r}"
            )
        if not isinstance(strict, bool):
            raise TypeError(f"strict must be a bool, got {strict!r}")
        if tol is not None and (
            isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0
        ):
            raise ValueError(f"tol must be a positive float or None, got {tol!r}")
        self.grad_mode = grad_mode
        self.passthrough_scope = passthrough_scope
        self.strict = strict
        self.tol = None if tol is None else float(tol)

    def extra_repr(self) -> str:
        return f"grad_mode={self.grad_mode!r}, strict={self.strict}"

    def _tol(self, dtype: torch.dtype) -> float:
        return default_tol(dtype) if self.tol is None else self.tol

    def _safeguard(self, action: Tensor, safe_set: Any, fallback: Tensor | None, **kw):
        raise NotImplementedError

    def forward(self, action: Tensor, safe_set: Any, *, fallback: Tensor | None = None, **kw):
        """Apply the safeguard.

        Args:
            action: ``(*batch, m)`` raw actions.
            safe_set: the safe set (see the subclass).
            fallback: optional ``(*batch, m)`` action used where no certified safe action exists
                (e.g. the RCI set's paired control); default: the subclass's documented fallback.

        Returns:
            ``safe_action (*batch, m)`` and the ``info`` dict (class docstring).
        """
        action = check_float_tensor(action, "action")
        if fallback is not None:
            fallback = check_float_tensor(fallback, "fallback")
            check_like(fallback, action, "fallback")
            if fallback.shape[-1] != action.shape[-1]:
                raise ValueError(
                    f"fallback must have shape (*batch, {action.shape[-1]}), "
                    f"got {tuple(fallback.shape)}"
                )
        mode = self.grad_mode
        if mode == "exact":
            a_s, info = self._safeguard(action, safe_set, fallback, **kw)
        elif mode == "none":
            with torch.no_grad():
                a_s, info = self._safeguard(action.detach(), safe_set, fallback, **kw)
            a_s = a_s.detach()
        elif self.passthrough_scope == "action":
            with torch.no_grad():
                a_s, info = self._safeguard(action.detach(), safe_set, fallback, **kw)
            a_s = _StraightThrough.apply(action, a_s.detach(), False)
        else:  # passthrough, scope "action+set"
            a_s_set, info = self._safeguard(action.detach(), safe_set, fallback, **kw)
            a_s = _StraightThrough.apply(action, a_s_set, True)
        if any(isinstance(v, Tensor) and v.requires_grad for v in info.values()):
            info = {k: v.detach() if isinstance(v, Tensor) else v for k, v in info.items()}
        if self.strict:
            fb = info["fallback"]
            n_bad = int(fb.sum())
            if n_bad:
                idx = tuple(fb.nonzero()[0].tolist())
                raise SafeguardInfeasibleError(
                    f"{type(self).__name__}: {n_bad} of {fb.numel()} batch elements have no "
                    f"certified safe action (empty safe set, failed solve or uncertifiable CBF "
                    f"state; first at batch index {idx}); strict=True",
                    info,
                )
        return a_s, info


def base_info(
    action: Tensor, safe_action: Tensor, raw_unsafe: Tensor, fallback: Tensor
) -> dict[str, Tensor]:
    """The common info entries (detached), shapes ``(*batch,)``."""
    dist = torch.linalg.vector_norm(safe_action.detach() - action.detach(), dim=-1)
    return {
        "intervened": dist > 0,
        "raw_unsafe": raw_unsafe,
        "fallback": fallback,
        "distance": dist,
    }


# ---------------------------------------------------------------------------------------------
# regularisation (spec A §3.6, Eq. 17)
# ---------------------------------------------------------------------------------------------


def regularisation_loss(
    action: Tensor, safe_action: Tensor, coef: float = 0.1, reduction: str = "mean"
) -> Tensor:
    """Regularisation towards the safe action, ``coef * mean ||a_s - a||^2`` (spec A Eq. 17).

    The algorithms add it to their policy loss.  Gradients flow through **both** ``a_s`` and
    ``a``, so for one sample ``∇_a = 2 coef (∂a_s/∂a - I)^T (a_s - a)`` (Eq. 17; divided by the
    number of samples for ``"mean"``).  With ``grad_mode="passthrough"`` this gradient is
    exactly 0 (``∂a_s/∂a := I``); with ``"none"`` it is ``-2 coef (a_s - a)`` (pull towards the
    detached safe action); with ``"exact"`` boundary projection it restores the normal component
    that Theorem 1 removes.

    Args:
        action: ``(*batch, m)`` raw actions.
        safe_action: ``(*batch, m)`` safeguard outputs.
        coef: weight ``c_reg >= 0`` (the paper's "Regularised" variants use 0.1).
        reduction: ``"mean"`` (over the batch of squared norms, the spec's formula), ``"sum"``,
            ``"none"`` (``(*batch,)``), or ``"mse"`` (``torch`` MSE, i.e. also divided by ``m``:
            the reference code's formula, for paper compatibility).

    Returns:
        a scalar tensor (``(*batch,)`` for ``"none"``).
    """
    action = check_float_tensor(action, "action")
    safe_action = check_float_tensor(safe_action, "safe_action")
    if action.shape != safe_action.shape:
        raise ValueError(
            f"action {tuple(action.shape)} and safe_action {tuple(safe_action.shape)} must have "
            "the same shape"
        )
    if isinstance(coef, bool) or not isinstance(coef, (int, float)) or not coef >= 0:
        raise ValueError(f"coef must be a float >= 0, got {coef!r}")
    sq = (safe_action - action).pow(2).sum(-1)
    if reduction == "mean":
        return coef * sq.mean()
    if reduction == "sum":
        return coef * sq.sum()
    if reduction == "none":
        return coef * sq
    if reduction == "mse":
        return coef * sq.mean() / action.shape[-1]
    raise ValueError(f"reduction must be 'mean', 'sum', 'none' or 'mse', got {reduction!r}")
