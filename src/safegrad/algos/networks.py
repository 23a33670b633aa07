"""Networks shared by the learning algorithms (spec A §4.1).

* :func:`mlp` -- ``[Linear -> activation -> LayerNorm] x L -> Linear`` (LayerNorm optional);
* :class:`TanhGaussianPolicy` -- Gaussian with a state-independent learnable ``log_std``
  (initialised to -1.0), reparameterised sample squashed by ``tanh`` into ``(-1, 1)``;
  deterministic action ``tanh(mu(o))``; ``log_prob`` with the tanh change of variables;
  optionally a state-dependent, smoothly bounded ``log_std`` head (SAC);
* :class:`QCritic` -- ``Q(o, a)`` on the concatenation ``[o, a]`` (SAC's twin critics);
* :class:`QEnsemble` -- ``E`` such critics as one batched MLP (stacked weights, one ``bmm`` per
  layer), with :class:`QEnsembleMember` views that act like a :class:`QCritic`;
* :class:`ValueCritic` -- ``V(o)`` with a scalar output;
* :func:`relu_mlp` -- ``[Linear -> ReLU] x L -> Linear`` (single or ensemble) with a hand-written
  backward pass: in-place activations, in-place ReLU masks and only the gradients asked for (the
  fast path of SAC's networks, ``mlp(..., fused=True)``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = [
    "ACTIVATIONS",
    "mlp",
    "relu_mlp",
    "FusedReLUMLP",
    "TanhGaussianPolicy",
    "QCritic",
    "QEnsemble",
    "QEnsembleMember",
    "ValueCritic",
    "tanh_log_det",
]

#: activation names accepted by :func:`mlp`
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "elu": nn.ELU,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}


def _check_hidden(hidden: Sequence[int]) -> tuple[int, ...]:
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise TypeError(f"hidden sizes must be a sequence of ints, got {hidden!r}")
    out = []
    for h in hidden:
        if isinstance(h, bool) or not isinstance(h, int) or h < 1:
            raise ValueError(f"hidden sizes must be positive ints, got {list(hidden)!r}")
        out.append(int(h))
    return tuple(out)


def mlp(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int],
    activation: str = "elu",
    layer_norm: bool = True,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    fused: bool = False,
) -> nn.Sequential:
    """``[Linear -> activation -> LayerNorm] x len(hidden) -> Linear(out_dim)`` (spec A §4.1).

    Args:
        in_dim, out_dim: input and output widths.
        hidden: hidden widths, e.g. ``(128, 128)``.
        activation: one of :data:`ACTIVATIONS`.
        layer_norm: append ``LayerNorm`` after every hidden activation.
        fused: with ``activation="relu"`` and no LayerNorm, a :class:`FusedReLUMLP` (same
            modules, parameters and ``state_dict`` keys, same function; forward and backward by
            :func:`relu_mlp`); otherwise ignored.
    """
    hidden = _check_hidden(hidden)
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {list(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        if layer_norm:
            layers.append(nn.LayerNorm(h))
        width = h
    layers.append(nn.Linear(width, out_dim))
    cls = FusedReLUMLP if fused and activation == "relu" and not layer_norm else nn.Sequential
    return cls(*layers).to(dtype=dtype, device=device)


# ---------------------------------------------------------------------------- fused ReLU MLP
def _linear(h: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``h W^T + b`` for ``w (out, in)``, ``b (out,)``, ``h (B, in)``; or for an ensemble
    ``w (E, out, in)``, ``b (E, out)`` and ``h (E, B, in)`` or a shared ``h (B, in)``."""
    # the product first, then the bias in place: cheaper than addmm / baddbmm, which first
    # write the broadcast bias into the (fresh, cold) output
    if w.dim() == 2:
        return torch.mm(h, w.t()).add_(b)
    if h.dim() == 2:
        h = h.expand(w.shape[0], *h.shape)
    return torch.bmm(h, w.transpose(1, 2)).add_(b.unsqueeze(1))


def _grad_weight(d: Tensor, h: Tensor, w: Tensor) -> Tensor:
    """``d^T h``: the gradient of :func:`_linear` w.r.t. ``w``, in ``w``'s layout."""
    if w.dim() == 2:
        return torch.mm(d.t(), h)
    return torch.matmul(d.transpose(1, 2), h)  # h (B, in) broadcasts over the members


class _ReLUMLPFunction(torch.autograd.Function):
    """:func:`relu_mlp`'s forward and backward (first-order only)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, *params: Tensor) -> Tensor:
        n = len(params) // 2
        ws, bs = params[:n], params[n:]
        h = x
        hidden = []
        for i in range(n):
            h = _linear(h, ws[i], bs[i])
            if i < n - 1:
                h = h.relu_()  # in place: the pre-activation is not needed by the backward
                hidden.append(h)
        ctx.save_for_backward(x, *ws, *hidden)
        ctx.num_layers = n
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        n = ctx.num_layers
        saved = ctx.saved_tensors
        x, ws, hidden = saved[0], saved[1 : n + 1], saved[n + 1 :]
        need = ctx.needs_input_grad  # (x, w_0 .. w_{n-1}, b_0 .. b_{n-1})
        gw: list[Tensor | None] = [None] * n
        gb: list[Tensor | None] = [None] * n
        gx = None
        d = grad
        for i in reversed(range(n)):
            h = hidden[i - 1] if i > 0 else x
            if need[1 + i]:
                gw[i] = _grad_weight(d, h, ws[i])
            if need[1 + n + i]:
                gb[i] = d.sum(-2)
            if i > 0:
                if not (need[0] or any(need[1 : 1 + i]) or any(need[1 + n : 1 + n + i])):
                    break  # nothing below this layer needs a gradient
                d = torch.matmul(d, ws[i])
                # d <- d [h > 0] in place: autograd's ReLU backward (threshold_backward)
                torch.ops.aten.threshold_backward.grad_input(d, h, 0.0, grad_input=d)
            elif need[0]:
                gx = torch.matmul(d, ws[0])
                if gx.dim() > x.dim():  # a shared input: sum over the members
                    gx = gx.sum(0)
        return (gx, *gw, *gb)


def relu_mlp(x: Tensor, weights: Sequence[Tensor], biases: Sequence[Tensor]) -> Tensor:
    """``[Linear -> ReLU] x (L - 1) -> Linear`` with ``L = len(weights)`` layers.

    Single network: ``w_l (out_l, in_l)`` (``nn.Linear`` layout), ``b_l (out_l,)``, ``x (B,
    in_0)`` -> ``(B, out)``.  Ensemble of ``E`` members: ``w_l (E, out_l, in_l)``, ``b_l (E,
    out_l)``, ``x (B, in_0)`` (shared) or ``(E, B, in_0)`` -> ``(E, B, out)``.

    The same function as the ``nn.Sequential`` of ``nn.Linear`` / ``nn.ReLU`` (the gradients of
    autograd's ReLU, ``relu'(0) = 0``), computed with in-place activations and masks, and a
    backward that skips the gradients nobody asked for (e.g. of detached weights) and stops
    below the lowest layer that needs one.  First-order only (no double backward)."""
    if len(weights) != len(biases) or not weights:
        raise ValueError(
            f"relu_mlp needs as many weights as biases (>= 1), got {len(weights)} and {len(biases)}"
        )
    if not torch.is_grad_enabled() or not (
        x.requires_grad or any(p.requires_grad for p in (*weights, *biases))
    ):
        h = x
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            h = _linear(h, w, b)
            if i < len(weights) - 1:
                h = h.relu_()
        return h
    return _ReLUMLPFunction.apply(x, *weights, *biases)


class FusedReLUMLP(nn.Sequential):
    """An ``nn.Sequential`` of ``nn.Linear`` / ``nn.ReLU`` (as :func:`mlp` builds it, same
    ``state_dict`` keys) whose forward is :func:`relu_mlp` (same function, fewer buffers)."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        lins = [m for m in self if isinstance(m, nn.Linear)]
        if x.dim() != 2:  # relu_mlp takes (B, in); fold other batch shapes
            return self.forward(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)
        return relu_mlp(x, [m.weight for m in lins], [m.bias for m in lins])


def tanh_log_det(u: Tensor) -> Tensor:
    """``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))`` elementwise (stable for large
    ``|u|``): the log-Jacobian of the tanh squashing."""
    return 2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))


class TanhGaussianPolicy(nn.Module):
    """``a = tanh(mu(o) + exp(log_std) * eps)``, ``eps ~ N(0, I)`` (spec A §4.1).

    ``log_std`` ``(m,)`` is a state-independent learnable parameter initialised to
    ``log_std_init`` (-1.0 in the paper-era code).  With ``state_dependent_std=True`` (the usual
    SAC head, e.g. spec B §9's SAC-RCBF defaults) one MLP outputs ``(mu, s)`` and
    ``log_std = lo + (hi - lo) (tanh(s) + 1) / 2`` with ``(lo, hi) = log_std_bounds`` (smooth
    bounds, the CleanRL form); ``log_std`` is then ``None`` and ``log_std_init`` unused.
    ``fused=True``: the MLP is a :class:`FusedReLUMLP` where it applies (ReLU, no LayerNorm);
    same parameters, keys and function.

    Shapes: ``obs (*batch, obs_dim)`` -> actions ``(*batch, m)``.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (128, 128),
        activation: str = "elu",
        layer_norm: bool = True,
        log_std_init: float = -1.0,
        *,
        state_dependent_std: bool = False,
        log_std_bounds: tuple[float, float] = (-5.0, 2.0),
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        fused: bool = False,
    ) -> None:
        super().__init__()
        self.act_dim = int(act_dim)
        self.state_dependent_std = bool(state_dependent_std)
        lo, hi = (float(v) for v in log_std_bounds)
        if not lo < hi:
            raise ValueError(f"log_std_bounds={log_std_bounds!r} must be (low, high), low < high")
        self.log_std_bounds = (lo, hi)
        if self.state_dependent_std:
            self.net = mlp(
                obs_dim,
                2 * act_dim,
                hidden,
                activation,
                layer_norm,
                dtype=dtype,
                device=device,
                fused=fused,
            )
            self.register_parameter("log_std", None)
        else:
            self.mu = mlp(
                obs_dim,
                act_dim,
                hidden,
                activation,
                layer_norm,
                dtype=dtype,
                device=device,
                fused=fused,
            )
            self.log_std = nn.Parameter(
                torch.full((act_dim,), float(log_std_init), dtype=dtype, device=device)
            )

    def dist(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Pre-squash mean and log-std, both ``(*batch, m)``."""
        if not self.state_dependent_std:
            mu = self.mu(obs)
            return mu, self.log_std.expand_as(mu)
        out = self.net(obs)
        mu, s = out[..., : self.act_dim], out[..., self.act_dim :]
        lo, hi = self.log_std_bounds
        return mu, lo + 0.5 * (hi - lo) * (torch.tanh(s) + 1.0)

    def mean(self, obs: Tensor) -> Tensor:
        """Pre-squash mean ``mu(o)``: ``(*batch, m)``."""
        if not self.state_dependent_std:
            return self.mu(obs)
        return self.net(obs)[..., : self.act_dim]

    def deterministic(self, obs: Tensor) -> Tensor:
        """Evaluation action ``tanh(mu(o))`` (spec A §4.1, §6)."""
        return torch.tanh(self.mean(obs))

    def sample(self, obs: Tensor, eps: Tensor) -> Tensor:
        """Reparameterised action ``tanh(mu(o) + sigma * eps)`` for given noise ``eps (*batch, m)``
        (differentiable w.r.t. ``obs`` and the parameters)."""
        if not self.state_dependent_std:
            return torch.tanh(self.mu(obs) + self.log_std.exp() * eps)
        mu, log_std = self.dist(obs)
        return torch.tanh(mu + log_std.exp() * eps)

    def rsample(self, obs: Tensor, eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Reparameterised ``(a, u, log pi(a|o))``: ``u = mu + sigma eps`` (pre-squash),
        ``a = tanh(u)``, the log-prob with the tanh change of variables computed from ``eps``
        and ``u`` (no ``atanh``): ``sum_i [-eps_i^2/2 - log sigma_i - log(2 pi)/2
        - log(1 - tanh(u_i)^2)]``, ``(*batch,)``."""
        mu, log_std = self.dist(obs)
        u = mu + log_std.exp() * eps
        logp = -0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi) - tanh_log_det(u)
        return torch.tanh(u), u, logp.sum(-1)

    def log_prob_pre_tanh(self, obs: Tensor, u: Tensor) -> Tensor:
        """``log pi(tanh(u)|o)`` of a stored pre-squash sample ``u (*batch, m)``: ``(*batch,)``
        (PPO's ratio; the tanh term cancels in ratios but is kept for honest values)."""
        mu, log_std = self.dist(obs)
        z = (u - mu) * torch.exp(-log_std)
        logp = -0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi) - tanh_log_det(u)
        return logp.sum(-1)

    def log_prob(self, obs: Tensor, action: Tensor, eps: float = 1e-6) -> Tensor:
        """``log pi(a|o)`` with the tanh change of variables: ``(*batch,)``."""
        a = action.clamp(-1 + eps, 1 - eps)
        u = torch.atanh(a)
        mu, log_std = self.dist(obs)
        z = (u - mu) / log_std.exp()
        logp = -0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        return (logp - torch.log1p(-a.pow(2))).sum(-1)

    def entropy(self, obs: Tensor | None = None) -> Tensor:
        """Gaussian entropy (no tanh correction, spec A §4.1): scalar for the state-independent
        ``log_std``; ``(*batch,)`` for ``obs`` with ``state_dependent_std``."""
        if not self.state_dependent_std:
            return (0.5 + 0.5 * math.log(2 * math.pi) + self.log_std).sum()
        if obs is None:
            raise ValueError("entropy(obs) needs obs with state_dependent_std=True")
        _, log_std = self.dist(obs)
        return (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1)

    def mean_log_std(self, obs: Tensor | None = None) -> Tensor:
        """Mean ``log_std`` (a scalar, for logs; needs ``obs`` if state dependent)."""
        if not self.state_dependent_std:
            return self.log_std.detach().mean()
        if obs is None:
            raise ValueError("mean_log_std(obs) needs obs with state_dependent_std=True")
        return self.dist(obs)[1].detach().mean()


class QCritic(nn.Module):
    """Action-value critic ``Q(o, a)`` on ``[o, a]`` (spec A §4.1: "Q-critics take [o, a]"):
    ``obs (*batch, obs_dim), action (*batch, m)`` -> ``(*batch,)``."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        layer_norm: bool = False,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        self.net = mlp(
            obs_dim + act_dim, 1, hidden, activation, layer_norm, dtype=dtype, device=device
        )

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.net(torch.cat((obs, action), dim=-1)).squeeze(-1)


class QEnsemble(nn.Module):
    """``E`` action-value critics ``Q_j(o, a)`` on ``[o, a]`` (SAC's twin critics, spec A §4.1)
    evaluated as one batched MLP: ``obs (*batch, obs_dim), action (*batch, m)`` ->
    ``(E, *batch)``.

    Parameters, stacked over the members: ``weights[l] (E, out_l, in_l)``, ``biases[l] (E,
    out_l)`` and, with ``layer_norm``, the LayerNorm affine ``ln_weights[l]``, ``ln_biases[l]``
    ``(E, width_l)``.  The members are initialised exactly as ``E`` :class:`QCritic` built one
    after the other (the same ``nn.Linear`` draws from the global RNG), so member ``j`` is the
    function of that critic.  ReLU without LayerNorm runs through :func:`relu_mlp` (one
    ``baddbmm`` per layer, in-place activations, no weight gradients when
    ``detach_params=True``); other activations through autograd.

    :meth:`member` returns a :class:`QEnsembleMember`: member ``j`` as a QCritic-like view
    (call, ``parameters``, ``state_dict`` with QCritic's keys ``net.<i>.weight`` ...)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        layer_norm: bool = False,
        num_critics: int = 2,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        if isinstance(num_critics, bool) or not isinstance(num_critics, int) or num_critics < 1:
            raise ValueError(f"num_critics={num_critics!r} must be a positive int")
        critics = [
            QCritic(obs_dim, act_dim, hidden, activation, layer_norm, dtype=dtype, device=device)
            for _ in range(num_critics)
        ]
        self.num_critics = num_critics
        self.activation = activation
        self.layer_norm = bool(layer_norm)
        self._act = ACTIVATIONS[activation]()
        lins = [[m for m in c.net if isinstance(m, nn.Linear)] for c in critics]
        lns = [[m for m in c.net if isinstance(m, nn.LayerNorm)] for c in critics]

        def stack(mods: list[list[nn.Module]], attr: str) -> nn.ParameterList:
            return nn.ParameterList(
                nn.Parameter(torch.stack([getattr(ms[i], attr).detach() for ms in mods]))
                for i in range(len(mods[0]))
            )

        self.weights = stack(lins, "weight")
        self.biases = stack(lins, "bias")
        self.ln_weights = stack(lns, "weight") if self.layer_norm else nn.ParameterList()
        self.ln_biases = stack(lns, "bias") if self.layer_norm else nn.ParameterList()
        self.ln_eps = lns[0][0].eps if self.layer_norm else 1e-5
        # (QCritic key, parameter list, layer) in QCritic's parameter order
        keys: list[tuple[str, str, int]] = []
        idx = 0
        for layer in range(len(self.weights)):
            keys += [(f"net.{idx}.weight", "weights", layer), (f"net.{idx}.bias", "biases", layer)]
            idx += 2
            if self.layer_norm and layer < len(self.weights) - 1:
                keys += [
                    (f"net.{idx}.weight", "ln_weights", layer),
                    (f"net.{idx}.bias", "ln_biases", layer),
                ]
                idx += 1
        self._member_keys = keys

    @property
    def fused(self) -> bool:
        """``True`` if the forward runs through :func:`relu_mlp`."""
        return self.activation == "relu" and not self.layer_norm

    def forward(self, obs: Tensor, action: Tensor, *, detach_params: bool = False) -> Tensor:
        """``(Q_1(o, a), ..., Q_E(o, a))``: ``(E, *batch)``.  ``detach_params``: no gradient
        flows to the parameters (only to ``obs`` / ``action``; SAC's actor loss)."""
        x = torch.cat((obs, action), dim=-1)
        batch = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        ws, bs = list(self.weights), list(self.biases)
        lnw, lnb = list(self.ln_weights), list(self.ln_biases)
        if detach_params:
            ws, bs = [w.detach() for w in ws], [b.detach() for b in bs]
            lnw, lnb = [w.detach() for w in lnw], [b.detach() for b in lnb]
        if self.fused:
            out = relu_mlp(x, ws, bs)
        else:
            out = x
            for i in range(len(ws)):
                out = _linear(out, ws[i], bs[i])
                if i < len(ws) - 1:
                    out = self._act(out)
                    if self.layer_norm:
                        out = nn.functional.layer_norm(out, out.shape[-1:], eps=self.ln_eps)
                        out = torch.addcmul(lnb[i].unsqueeze(1), out, lnw[i].unsqueeze(1))
        return out.squeeze(-1).reshape(self.num_critics, *batch)

    def member_forward(self, j: int, obs: Tensor, action: Tensor) -> Tensor:
        """``Q_j(o, a)`` alone (``(*batch,)``), as the :class:`QCritic` of member ``j``."""
        h = torch.cat((obs, action), dim=-1)
        n = len(self.weights)
        for i in range(n):
            h = nn.functional.linear(h, self.weights[i][j], self.biases[i][j])
            if i < n - 1:
                h = self._act(h)
                if self.layer_norm:
                    h = nn.functional.layer_norm(
                        h, h.shape[-1:], self.ln_weights[i][j], self.ln_biases[i][j], self.ln_eps
                    )
        return h.squeeze(-1)

    def member(self, j: int) -> QEnsembleMember:
        """Member ``j`` as a :class:`QEnsembleMember` view."""
        if not 0 <= j < self.num_critics:
            raise IndexError(f"member {j} of a {self.num_critics}-member QEnsemble")
        return QEnsembleMember(self, j)


class QEnsembleMember:
    """Member ``j`` of a :class:`QEnsemble` with the interface of a :class:`QCritic`: call
    ``(obs, action) -> (*batch,)``, ``parameters()`` / ``named_parameters()`` (views into the
    stacked tensors, so in-place changes reach the ensemble), ``state_dict()`` (copies, QCritic
    keys) and ``load_state_dict()`` (a QCritic's or a member's)."""

    def __init__(self, ensemble: QEnsemble, index: int) -> None:
        self.ensemble = ensemble
        self.index = int(index)

    def __call__(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.ensemble.member_forward(self.index, obs, action)

    forward = __call__

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        for key, group, layer in self.ensemble._member_keys:
            yield key, getattr(self.ensemble, group)[layer][self.index]

    def parameters(self) -> Iterator[Tensor]:
        for _, p in self.named_parameters():
            yield p

    def state_dict(self) -> dict[str, Tensor]:
        return {k: p.detach().clone() for k, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        own = dict(self.named_parameters())
        if set(state) != set(own):
            raise ValueError(
                f"critic state_dict keys {sorted(state)} != the expected {sorted(own)}"
            )
        with torch.no_grad():
            for k, p in own.items():
                if tuple(state[k].shape) != tuple(p.shape):
                    raise ValueError(
                        f"critic parameter {k} has shape {tuple(state[k].shape)}; expected "
                        f"{tuple(p.shape)}"
                    )
                p.copy_(state[k])

    def __repr__(self) -> str:
        return f"QEnsembleMember({self.index} of {self.ensemble.num_critics})"


class ValueCritic(nn.Module):
    """State-value critic ``V(o)``: ``obs (*batch, obs_dim)`` -> ``(*batch,)`` (spec A §4.1)."""

    def __init__(
        self,
        obs_dim: int,
        hidden: Sequence[int] = (128, 128, 128),
        activation: str = "elu",
        layer_norm: bool = True,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        self.net = mlp(obs_dim, 1, hidden, activation, layer_norm, dtype=dtype, device=device)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs).squeeze(-1)
