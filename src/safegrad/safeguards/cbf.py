"""Control-barrier-function safety layers: the closed-form composite-CBF layer of spec B (§4-§6)
and the exact multi-constraint CBF-QP baseline (spec B Eq. 6, §10).

Constraint convention (spec B Eq. 5): ``L_f h_i + L_g h_i u >= -α(h_i)`` for every ``i``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from safegrad.qp import QPStatus, solve_qp
from safegrad.safeguards._base import (
    Safeguard,
    base_info,
    check_like,
    flat,
    guard_threshold,
)
from safegrad.safeguards._geometry import (
    clamp_box,
    least_violating_point,
    project_polygon,
    resolve_box,
)

__all__ = [
    "CBFConstraints",
    "CompositeCBF",
    "CBFQP",
    "composite_barrier",
    "project_halfspace_box",
]


@dataclass
class CBFConstraints:
    """``I`` relative-degree-1 CBF constraints at a batch of states (spec B Eq. 5).

    Attributes:
        h: ``(*batch, I)`` barrier values ``h_i(x)`` (safe: ``h_i >= 0``).
        lf_h: ``(*batch, I)`` Lie derivatives ``L_f h_i(x)``.
        lg_h: ``(*batch, I, m)`` Lie derivatives ``L_g h_i(x)`` (rows).

    Tensors may require grad (the state path, spec B §5.3); shapes are checked here.
    """

    h: Tensor
    lf_h: Tensor
    lg_h: Tensor

    def __post_init__(self):
        for name in ("h", "lf_h", "lg_h"):
            t = getattr(self, name)
            if not isinstance(t, Tensor):
                raise TypeError(f"CBFConstraints.{name} must be a torch.Tensor, got {type(t)}")
            if t.dtype not in (torch.float32, torch.float64):
                raise TypeError(f"CBFConstraints.{name} must be float32/float64, got {t.dtype}")
            check_like(t, self.h, f"CBFConstraints.{name}", "CBFConstraints.h")
        if self.h.dim() < 1 or self.h.shape[-1] < 1:
            raise ValueError(
                f"CBFConstraints.h must have shape (*batch, I >= 1), got {tuple(self.h.shape)}"
            )
        if self.lg_h.dim() < 2:
            raise ValueError(
                f"CBFConstraints.lg_h must have shape (*batch, I, m), got {tuple(self.lg_h.shape)}"
            )
        n_c = self.h.shape[-1]
        if self.lf_h.shape[-1] != n_c or self.lg_h.shape[-2] != n_c:
            raise ValueError(
                f"CBFConstraints: h {tuple(self.h.shape)}, lf_h {tuple(self.lf_h.shape)} and "
                f"lg_h {tuple(self.lg_h.shape)} must agree on I = {n_c} constraints"
            )
        shapes = (self.h.shape[:-1], self.lf_h.shape[:-1], self.lg_h.shape[:-2])
        if shapes[0] == shapes[1] == shapes[2]:  # the common case, without broadcast_shapes
            self.batch_shape = shapes[0]
            return
        try:
            self.batch_shape = torch.broadcast_shapes(*shapes)
        except RuntimeError as exc:
            raise ValueError(
                "CBFConstraints: batch shapes of h, lf_h, lg_h do not broadcast"
            ) from exc

    @property
    def num_constraints(self) -> int:
        return self.h.shape[-1]

    @property
    def action_dim(self) -> int:
        return self.lg_h.shape[-1]

    def detach(self) -> CBFConstraints:
        return CBFConstraints(self.h.detach(), self.lf_h.detach(), self.lg_h.detach())


def _class_k(alpha: Any) -> Callable[[Tensor], Tensor]:
    if callable(alpha):
        return alpha
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(
            f"alpha must be a positive float (linear class-K α(h) = alpha·h) or a callable, "
            f"got {alpha!r}"
        )
    a = float(alpha)
    return lambda h: a * h


def composite_barrier(h: Tensor, kappa: float) -> tuple[Tensor, Tensor]:
    """Log-sum-exp composite CBF and its weights (spec B Eqs. 14, 16), numerically stable.

    ``h = -(1/κ) log Σ_i exp(-κ h_i)`` (max-shifted, ``torch.logsumexp``),
    ``λ = softmax(-κ h_i)``.  Lemma 1: ``min_i h_i - log(I)/κ <= h <= min_i h_i``.

    Args:
        h: ``(*batch, I)``.
    Returns:
        ``h (*batch,)`` and ``λ (*batch, I)`` (``Σ λ = 1``).
    """
    z = -kappa * h
    return -torch.logsumexp(z, -1) / kappa, torch.softmax(z, -1)


def project_halfspace_box(
    u_bar: Tensor, g: Tensor, tau: Tensor, low: Tensor, high: Tensor
) -> tuple[Tensor, Tensor]:
    """Exact Euclidean projection of ``u_bar`` onto ``{u : g'u >= τ} ∩ [low, high]`` (closed
    form, batched; the bounded variant of spec B Eq. 20).

    KKT: ``u(ν) = clamp(u_bar + ν g, low, high)`` with the smallest ``ν >= 0`` such that
    ``φ(ν) = g'u(ν) >= τ``.  ``φ`` is non-decreasing and piecewise linear with breakpoints where
    a coordinate enters/leaves its bounds; we evaluate ``φ`` at all ``2m + 1`` breakpoints,
    take the last one with ``φ <= τ`` and interpolate on its segment (slope ``Σ_free g_j^2``).
    Differentiable by autograd (piecewise smooth).  Feasible iff ``max_box g'u >= τ`` (the
    box's support function, a certificate); where infeasible the result is the box point that
    maximises ``g'u`` (the least-violating point; ``clamp(u_bar_j)`` where ``g_j = 0``).

    Shapes: ``u_bar, g, low, high (B, m)``, ``tau (B,)``.  Returns ``u (B, m)``,
    ``feasible (B,)``.
    """
    thr = guard_threshold(u_bar.dtype)
    nz = g.abs() > thr
    g_safe = torch.where(nz, g, torch.ones_like(g))
    enter_b = torch.where(g > 0, low, high)
    exit_b = torch.where(g > 0, high, low)
    zero = torch.zeros_like(g)
    nu_in = torch.where(nz, (enter_b - u_bar) / g_safe, zero).clamp_min(0.0)
    nu_out = torch.where(nz, (exit_b - u_bar) / g_safe, zero).clamp_min(0.0)
    bps = torch.cat([torch.zeros_like(tau).unsqueeze(-1), nu_in, nu_out], -1)  # (B, K)
    pts = clamp_box(
        u_bar.unsqueeze(1) + bps.unsqueeze(-1) * g.unsqueeze(1), low.unsqueeze(1), high.unsqueeze(1)
    )  # (B, K, m)
    phi = (pts * g.unsqueeze(1)).sum(-1)  # (B, K)
    cand = phi <= tau.unsqueeze(-1)
    key = torch.where(cand, bps, torch.full_like(bps, -math.inf))
    idx = key.argmax(-1, keepdim=True)  # index 0 (ν = 0) if no candidate
    nu_l = bps.gather(-1, idx).squeeze(-1)
    phi_l = phi.gather(-1, idx).squeeze(-1)
    free = nz & (nu_in <= nu_l.unsqueeze(-1)) & (nu_out > nu_l.unsqueeze(-1))
    slope = torch.where(free, g * g, zero).sum(-1)
    has = slope > 0
    step = torch.where(
        has & (phi_l < tau), (tau - phi_l) / torch.where(has, slope, 1.0), torch.zeros_like(tau)
    )
    any_cand = cand.any(-1)
    nu = torch.where(any_cand, nu_l + step, torch.zeros_like(tau))
    u = clamp_box(u_bar + nu.unsqueeze(-1) * g, low, high)
    support = torch.where(g > 0, g * high, g * low).sum(-1)
    return u, support >= tau


class _CompositeCBFMap(torch.autograd.Function):
    """The unbounded composite-CBF layer with a linear class-K function ``α(h) = alpha h``
    (spec B Eqs. 14-21) in one function: ``h = -(1/κ) logsumexp(-κ h_i)``,
    ``λ = softmax(-κ h_i)``, ``L_f h = λ·L_f h_i``, ``L_g h = λ L_g h_i``,
    ``η = -(L_f h + L_g h ū + α h)/||L_g h||^2`` (0 where ``||L_g h||^2 < eps``),
    ``u = ū + relu(η) L_g h``.  Backward: the chain rule written out (``s = 1[η>0] g·L_g h``):
    ``∂L/∂ū = g - s L_g h/||L_g h||^2``;
    ``∂L/∂L_g h = relu(η) g - s (ū + 2 η L_g h)/||L_g h||^2``;
    ``∂L/∂L_f h = ∂L/∂(α h)/alpha = -s/||L_g h||^2``; then through the softmax weights and the
    log-sum-exp (``∂h/∂h_i = λ_i``).  ``side`` receives the info tensors."""

    @staticmethod
    def forward(ctx, a, h_i, lf_i, lg_i, kappa, alpha, eps, side):
        z = -kappa * h_i
        h = -torch.logsumexp(z, -1) / kappa
        lam = torch.softmax(z, -1)
        lf = (lam * lf_i).sum(-1)
        lg = torch.bmm(lam.unsqueeze(1), lg_i).squeeze(1)  # (B, m)
        nrm2 = (lg * lg).sum(-1)
        masked = nrm2 < eps
        a_h = alpha * h
        numer = lf + (lg * a).sum(-1) + a_h
        inv = 1.0 / torch.where(masked, 1.0, nrm2)
        eta = torch.where(masked, 0.0, -numer * inv)
        reta = eta.clamp_min(0.0)
        out = a + reta.unsqueeze(-1) * lg
        side.update(
            h=h, weights=lam, eta=eta, lgh_zero=masked, raw_unsafe=numer < 0,
            uncertified=masked & (lf + a_h < 0),
        )  # fmt: skip
        ctx.kappa, ctx.alpha = kappa, alpha
        ctx.save_for_backward(a, lf_i, lg_i, lam, lg, inv, eta, reta)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        a, lf_i, lg_i, lam, lg, inv, eta, reta = ctx.saved_tensors
        s = torch.where(eta > 0, (g * lg).sum(-1), 0.0) * inv  # (B,)
        s_ = s.unsqueeze(-1)
        g_a = g - s_ * lg
        g_lg = reta.unsqueeze(-1) * g - s_ * (a + 2.0 * eta.unsqueeze(-1) * lg)
        g_lf = -s  # also ∂L/∂(α h)
        g_lf_i = lam * g_lf.unsqueeze(-1)
        g_lg_i = torch.bmm(lam.unsqueeze(-1), g_lg.unsqueeze(1))  # (B, I, m)
        g_lam = torch.baddbmm(
            (lf_i * g_lf.unsqueeze(-1)).unsqueeze(-1), lg_i, g_lg.unsqueeze(-1)
        ).squeeze(-1)
        g_z = lam * (g_lam - (lam * g_lam).sum(-1, keepdim=True))
        g_h_i = lam * (ctx.alpha * g_lf).unsqueeze(-1) - ctx.kappa * g_z
        return g_a, g_h_i, g_lf_i, g_lg_i, None, None, None, None


_PAD_ROW = torch.tensor([1.0, 0.0])  # stands in for zero rows in the 2-D projection (QP then)


def _flat_constraints(cons: CBFConstraints, batch) -> tuple[Tensor, Tensor, Tensor]:
    return flat(cons.h, batch, 1), flat(cons.lf_h, batch, 1), flat(cons.lg_h, batch, 2)


def _prepare(action: Tensor, cons: Any, box_spec: Any, bounded: bool):
    if not isinstance(cons, CBFConstraints):
        raise TypeError(
            f"the safe set of a CBF layer must be a CBFConstraints, got {type(cons).__name__}"
        )
    check_like(cons.h, action, "CBFConstraints.h")
    m = action.shape[-1]
    if cons.action_dim != m:
        raise ValueError(
            f"CBFConstraints.lg_h has action dimension {cons.action_dim}, the action {m}"
        )
    shapes = [action.shape[:-1], cons.batch_shape]
    low = high = None
    if bounded:
        low, high = resolve_box(box_spec, m, action)
        shapes.append(low.shape[:-1])
    try:
        if all(sh == shapes[0] for sh in shapes[1:]):
            batch = tuple(shapes[0])
        else:
            batch = tuple(torch.broadcast_shapes(*shapes))
    except RuntimeError as exc:
        raise ValueError(
            f"batch shapes do not broadcast: action {tuple(action.shape)}, constraints "
            f"{tuple(cons.batch_shape)}"
        ) from exc
    if tuple(action.shape[:-1]) == batch and action.dim() == 2:
        a = action  # no view node in the autograd graph
    else:
        a = action.expand(*batch, m).reshape(-1, m)
    if bounded:
        low, high = flat(low, batch, 1), flat(high, batch, 1)
    return a, low, high, batch


def _finish(a, out, fb, raw_unsafe, fallback, default_fb, batch, extra):
    m = a.shape[-1]
    out = torch.nan_to_num(out)
    if bool(fb.any()):
        fb_act = fallback.expand(*batch, m).reshape(-1, m) if fallback is not None else default_fb()
        out = torch.where(fb.unsqueeze(-1), fb_act, out)
    info = base_info(a, out, raw_unsafe, fb)
    info.update({k: v.detach() if v.requires_grad else v for k, v in extra.items()})
    if len(batch) == 1:
        return out, info
    info = {k: v.reshape(*batch, *v.shape[1:]) for k, v in info.items()}
    return out.reshape(*batch, m), info


class CompositeCBF(Safeguard):
    """Closed-form composite-CBF safety layer (spec B §4-§5, Eq. 14-21).

    ``h = -(1/κ) log Σ exp(-κ h_i)``, ``λ = softmax(-κ h_i)``, ``L_f h = Σ λ_i L_f h_i``,
    ``L_g h = Σ λ_i L_g h_i`` and (Eq. 20-21, with the minus sign on the **whole** numerator)::

        η   = -(L_f h + L_g h · ū + α(h)) / ||L_g h||^2
        u_s = ū + max(0, η) L_g h^T

    i.e. the Euclidean projection of ``ū`` onto the half-space ``L_f h + L_g h u + α(h) >= 0``;
    it equals :class:`CBFQP` for ``I = 1``.  Jacobian w.r.t. ``ū``: ``I - 1[η>0] ĝĝ^T``;
    w.r.t. the constraint tensors by autograd (state path, spec B §5.3).

    ``L_g h ≈ 0`` (spec B §5.2): where ``||L_g h||^2 < eps`` the layer returns ``ū`` through a
    guarded branch (no inf/NaN gradients, also not in the unused branch).  If there
    additionally ``L_f h + α(h) < 0`` no input can satisfy the condition: the element is flagged
    ``fallback`` (safety failure, not a no-op) and gets the caller's ``fallback`` or ``ū``.

    Actuator bounds (``action_box``; default ``None`` = unbounded, the paper's layer):

    * ``bound_mode="project"``: exact projection onto the half-space ∩ box (closed form,
      :func:`project_halfspace_box`).  Where the box and the composite condition are jointly
      feasible (certified by the box support function) the composite CBF condition holds
      exactly, so the guarantee (forward invariance of ``{h >= 0}``) is kept; where not, the
      element is flagged ``fallback`` and gets the caller's fallback or the box point that
      best satisfies the condition (no guarantee there).
    * ``bound_mode="clip"``: the unbounded layer followed by clipping to the box (SAC-RCBF's
      practice).  **Unsafe**: clipping can void the CBF condition; elements where it does are
      flagged ``fallback``.

    Args:
        kappa: log-sum-exp sharpness ``κ > 0`` (paper: 2; conservatism up to ``log(I)/κ``).
        alpha: class-K function: a float ``a > 0`` (``α(h) = a h``; paper: 5) or a callable.
        eps: threshold on ``||L_g h||^2`` (default 1e-9, spec B §9).
        action_box, bound_mode: see above.
        grad_mode, passthrough_scope, strict: see :class:`~safegrad.safeguards.Safeguard`.

    ``forward(action (*batch, m), constraints: CBFConstraints, *, fallback=None)``.
    ``info`` extras: ``h`` (composite), ``weights (*batch, I)``, ``eta``, ``lgh_zero`` (masked).
    """

    def __init__(
        self,
        kappa: float = 2.0,
        alpha: float | Callable[[Tensor], Tensor] = 5.0,
        *,
        eps: float = 1e-9,
        action_box: Any = None,
        bound_mode: str = "project",
        **kw,
    ):
        super().__init__(**kw)
        if isinstance(kappa, bool) or not isinstance(kappa, (int, float)) or not kappa > 0:
            raise ValueError(f"kappa must be a positive float, got {kappa!r}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"eps must be a positive float, got {eps!r}")
        if bound_mode not in ("project", "clip"):
            raise ValueError(f"bound_mode must be 'project' or 'clip', got {bound_mode!r}")
        self.kappa = float(kappa)
        self.alpha = _class_k(alpha)
        self._alpha_value = None if callable(alpha) else float(alpha)
        self.eps = float(eps)
        self.action_box = action_box
        self.bound_mode = bound_mode

    def extra_repr(self) -> str:
        return f"kappa={self.kappa}, " + super().extra_repr()

    def _safeguard(self, action, constraints, fallback):
        bounded = self.action_box is not None
        a, low, high, batch = _prepare(action, constraints, self.action_box, bounded)
        h_i, lf_i, lg_i = _flat_constraints(constraints, batch)
        if not bounded and self._alpha_value is not None:  # closed form, one autograd node
            side: dict[str, Tensor] = {}
            out = _CompositeCBFMap.apply(
                a, h_i, lf_i, lg_i, self.kappa, self._alpha_value, self.eps, side
            )
            extra = {k: side[k] for k in ("h", "weights", "eta", "lgh_zero")}
            fb = side["uncertified"]
            return _finish(
                a, out, fb, side["raw_unsafe"], fallback, lambda: a.detach(), batch, extra
            )
        h, lam = composite_barrier(h_i, self.kappa)
        lf = (lam * lf_i).sum(-1)
        lg = (lam.unsqueeze(-1) * lg_i).sum(-2)  # (B, m)
        a_h = self.alpha(h)
        nrm2 = (lg * lg).sum(-1)
        masked = nrm2 < self.eps
        numer = lf + (lg * a).sum(-1) + a_h
        eta = -numer / torch.where(masked, torch.ones_like(nrm2), nrm2)
        eta = torch.where(masked, torch.zeros_like(eta), eta)
        with torch.no_grad():
            raw_unsafe = numer < 0
            uncertified = masked & (lf + a_h < 0)
        extra = {"h": h, "weights": lam, "eta": eta, "lgh_zero": masked}
        if not bounded:
            out = a + torch.relu(eta).unsqueeze(-1) * lg
            return _finish(
                a, out, uncertified, raw_unsafe, fallback, lambda: a.detach(), batch, extra
            )
        g = torch.where(masked.unsqueeze(-1), torch.zeros_like(lg), lg)
        tau = -(lf + a_h)
        if self.bound_mode == "project":
            out, feasible = project_halfspace_box(a, g, tau, low, high)
            fb = ~feasible | uncertified
            least = out.detach()  # where infeasible: the box point best satisfying the condition
            return _finish(a, out, fb, raw_unsafe, fallback, lambda: least, batch, extra)
        out = clamp_box(a + torch.relu(eta).unsqueeze(-1) * lg, low, high)
        with torch.no_grad():
            viol = (g * out).sum(-1) < tau - self._tol(a.dtype) * (1 + tau.abs())
        return _finish(
            a, out, viol | uncertified, raw_unsafe, fallback, lambda: out.detach(), batch, extra
        )


class CBFQP(Safeguard):
    """Exact multi-constraint CBF-QP (spec B Eq. 6), the fair baseline of :class:`CompositeCBF`::

        u_s = argmin_u 1/2 ||u - ū||^2  s.t.  L_f h_i + L_g h_i u >= -α(h_i),  i = 1..I
                                            [ low <= u <= high  if action_box is given ]

    One batched QP (:func:`safegrad.qp.solve_qp`, ``G = -L_g H``, ``h = L_f h + α(h)``);
    Jacobian by implicit differentiation (w.r.t. ``ū`` and the constraint tensors).  A raw action
    that satisfies every row is returned exactly.  Infeasible or failed problems are flagged
    ``fallback`` and get the caller's fallback, else the least-violating point of the box (LP)
    when ``action_box`` is given, else ``ū``.

    Args:
        alpha: class-K function (float ``a > 0`` for ``α(h) = a h``, or a callable); paper: 5.
        action_box: optional actuator bounds (``None``: the plain problem (6), spec B §10
            fairness rule; a bounded variant must be reported as such).
        backend: the QP solver: ``"safegrad"`` (default, :func:`safegrad.qp.solve_qp`) or a
            reference layer of :mod:`safegrad.qp.backends` (``"qpth"``, ``"cvxpylayers"``,
            ``"proxsuite"``; optional extra ``safegrad[baselines]``), so that the baselines of
            spec B §10 run inside the same safety layer (benchmarks only).  A reference backend
            reports no status: its output is certified by the same residual check (``tol``).
        backend_options: keyword options of the reference backend's ``solve`` (e.g. qpth's
            ``eps`` / ``max_iter``); ``None``: the adapter's defaults.
        grad_mode, passthrough_scope, strict, tol: see :class:`~safegrad.safeguards.Safeguard`.
    """

    def __init__(
        self,
        alpha: float | Callable[[Tensor], Tensor] = 5.0,
        *,
        action_box: Any = None,
        backend: str = "safegrad",
        backend_options: dict[str, Any] | None = None,
        **kw,
    ):
        super().__init__(**kw)
        self.alpha = _class_k(alpha)
        self.action_box = action_box
        from safegrad.qp.backends import BACKENDS, get_backend

        if backend != "safegrad" and backend not in BACKENDS:
            raise ValueError(
                f"backend must be 'safegrad' or one of {sorted(BACKENDS)}, got {backend!r}"
            )
        if backend_options is not None and not isinstance(backend_options, dict):
            raise TypeError(f"backend_options must be a dict or None, got {backend_options!r}")
        if backend_options and backend == "safegrad":
            raise ValueError(
                "backend_options only apply to a reference backend (backend != 'safegrad')"
            )
        self.backend = backend
        self.backend_options = dict(backend_options or {})
        self._backend_solve = None if backend == "safegrad" else get_backend(backend)

    def extra_repr(self) -> str:
        return f"backend={self.backend!r}, " + super().extra_repr()

    def _safeguard(self, action, constraints, fallback):
        bounded = self.action_box is not None
        a, low, high, batch = _prepare(action, constraints, self.action_box, bounded)
        B, m = a.shape
        h_i, lf_i, lg_i = _flat_constraints(constraints, batch)
        G = -lg_i
        hh = lf_i + self.alpha(h_i)
        if bounded:
            eye = torch.eye(m, dtype=a.dtype, device=a.device)
            G = torch.cat([G, torch.cat([eye, -eye], 0).expand(B, 2 * m, m)], 1)
            hh = torch.cat([hh, high, -low], 1)
        tol = self._tol(a.dtype)
        with torch.no_grad():
            nrm = torch.linalg.vector_norm(G, dim=-1)
            res_raw = (G @ a.unsqueeze(-1)).squeeze(-1) - hh
            raw_unsafe = (res_raw > 0).any(-1)
        eye = torch.eye(m, dtype=a.dtype, device=a.device)
        if self._backend_solve is None and m == 2:
            # exact 2-D projection (the QP where it cannot decide), only where it is needed
            x, ok = a, torch.ones(B, dtype=torch.bool, device=a.device)
            idx = raw_unsafe.nonzero().squeeze(-1)
            if idx.numel() > 0:
                nrm_i = nrm.index_select(0, idx)
                zero = (nrm_i == 0).any(-1)  # a zero row: leave it to the QP
                nrm_s = torch.where(nrm_i > 0, nrm_i, 1.0)
                N = G.index_select(0, idx) / nrm_s.unsqueeze(-1)
                e = hh.index_select(0, idx) / nrm_s
                if bool(zero.any()):
                    N = torch.where(zero.view(-1, 1, 1), _PAD_ROW.to(N), N)
                    e = torch.where(zero.unsqueeze(-1), 1.0, e)
                y, oky = project_polygon(a.index_select(0, idx), N, e, self._tol(a.dtype))
                if bool(zero.any()):
                    zi = zero.nonzero().squeeze(-1)
                    sel = idx.index_select(0, zi)
                    yq, iq = solve_qp(
                        eye, -a.index_select(0, sel), G.index_select(0, sel),
                        hh.index_select(0, sel), return_info=True,
                    )  # fmt: skip
                    okq = (iq.status == int(QPStatus.SOLVED)) | (
                        iq.status == int(QPStatus.MAX_ITER)
                    )
                    y, oky = y.index_copy(0, zi, yq), oky.index_copy(0, zi, okq)
                x = a.index_copy(0, idx, y)
                ok = ok.index_copy(0, idx, oky)
        elif self._backend_solve is None:
            x, info = solve_qp(eye, -a, G, hh, return_info=True)
            ok = (info.status == int(QPStatus.SOLVED)) | (info.status == int(QPStatus.MAX_ITER))
        else:  # reference layer (spec B §10): no status, certified by the residual check below
            x = self._backend_solve(eye, -a, G, hh, **self.backend_options)
            ok = torch.isfinite(x.detach()).all(-1)
        out = torch.where(raw_unsafe.unsqueeze(-1), x, a)
        with torch.no_grad():
            res = (G @ out.unsqueeze(-1)).squeeze(-1) - hh
            scale = 1.0 + hh.abs().amax(-1)
            good = (res / torch.where(nrm > 0, nrm, 1.0)).amax(-1) <= tol * scale
            fb = ~(good & (ok | ~raw_unsafe))

        def default_fb():
            if not bounded:
                return a.detach()
            n_c = lg_i.shape[-2]
            with torch.no_grad():
                nrm_s = nrm[:, :n_c]
                inert = nrm_s == 0
                nrm_s = torch.where(inert, 1.0, nrm_s)
                N = torch.where(inert.unsqueeze(-1), 0.0, G[:, :n_c] / nrm_s.unsqueeze(-1))
                e = torch.where(inert, 1.0, hh[:, :n_c] / nrm_s)
            return least_violating_point(N, e, low, high)

        return _finish(a, out, fb, raw_unsafe, fallback, default_fb, batch, {})
