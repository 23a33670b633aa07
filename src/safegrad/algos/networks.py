"""Networks shared by the learning algorithms (spec A §4.1).

* :func:`mlp` -- ``[Linear -> activation -> LayerNorm] x L -> Linear`` (LayerNorm optional);
* :class:`TanhGaussianPolicy` -- Gaussian with a state-independent learnable ``log_std``
  (initialised to -1.0), reparameterised sample squashed by ``tanh`` into ``(-1, 1)``;
  deterministic action ``tanh(mu(o))``; ``log_prob`` with the tanh change of variables;
  optionally a state-dependent, smoothly bounded ``log_std`` head (SAC);
* :class:`QCritic` -- ``Q(o, a)`` on the concatenation ``[o, a]`` (SAC's twin critics);
* :class:`ValueCritic` -- ``V(o)`` with a scalar output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "mlp", "TanhGaussianPolicy", "QCritic", "ValueCritic", "tanh_log_det"]

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
) -> nn.Sequential:
    """``[Linear -> activation -> LayerNorm] x len(hidden) -> Linear(out_dim)`` (spec A §4.1).

    Args:
        in_dim, out_dim: input and output widths.
        hidden: hidden widths, e.g. ``(128, 128)``.
        activation: one of :data:`ACTIVATIONS`.
        layer_norm: append ``LayerNorm`` after every hidden activation.
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
    return nn.Sequential(*layers).to(dtype=dtype, device=device)


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
                obs_dim, 2 * act_dim, hidden, activation, layer_norm, dtype=dtype, device=device
            )
            self.register_parameter("log_std", None)
        else:
            self.mu = mlp(
                obs_dim, act_dim, hidden, activation, layer_norm, dtype=dtype, device=device
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
