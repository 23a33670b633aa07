"""Networks shared by the learning algorithms (spec A §4.1).

* :func:`mlp` -- ``[Linear -> activation -> LayerNorm] x L -> Linear`` (LayerNorm optional);
* :class:`TanhGaussianPolicy` -- Gaussian with a state-independent learnable ``log_std``
  (initialised to -1.0), reparameterised sample squashed by ``tanh`` into ``(-1, 1)``;
  deterministic action ``tanh(mu(o))``; ``log_prob`` with the tanh change of variables;
* :class:`ValueCritic` -- ``V(o)`` with a scalar output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "mlp", "TanhGaussianPolicy", "ValueCritic"]

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


class TanhGaussianPolicy(nn.Module):
    """``a = tanh(mu(o) + exp(log_std) * eps)``, ``eps ~ N(0, I)`` (spec A §4.1).

    ``log_std`` ``(m,)`` is a state-independent learnable parameter initialised to
    ``log_std_init`` (-1.0 in the paper-era code).

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
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        self.mu = mlp(obs_dim, act_dim, hidden, activation, layer_norm, dtype=dtype, device=device)
        self.log_std = nn.Parameter(
            torch.full((act_dim,), float(log_std_init), dtype=dtype, device=device)
        )

    def mean(self, obs: Tensor) -> Tensor:
        """Pre-squash mean ``mu(o)``: ``(*batch, m)``."""
        return self.mu(obs)

    def deterministic(self, obs: Tensor) -> Tensor:
        """Evaluation action ``tanh(mu(o))`` (spec A §4.1, §6)."""
        return torch.tanh(self.mu(obs))

    def sample(self, obs: Tensor, eps: Tensor) -> Tensor:
        """Reparameterised action ``tanh(mu(o) + sigma * eps)`` for given noise ``eps (*batch, m)``
        (differentiable w.r.t. ``obs`` and the parameters)."""
        return torch.tanh(self.mu(obs) + self.log_std.exp() * eps)

    def log_prob(self, obs: Tensor, action: Tensor, eps: float = 1e-6) -> Tensor:
        """``log pi(a|o)`` with the tanh change of variables: ``(*batch,)``."""
        a = action.clamp(-1 + eps, 1 - eps)
        u = torch.atanh(a)
        std = self.log_std.exp()
        z = (u - self.mu(obs)) / std
        logp = -0.5 * z.pow(2) - self.log_std - 0.5 * math.log(2 * math.pi)
        return (logp - torch.log1p(-a.pow(2))).sum(-1)

    def entropy(self) -> Tensor:
        """Gaussian entropy (no tanh correction, spec A §4.1): scalar."""
        return (0.5 + 0.5 * math.log(2 * math.pi) + self.log_std).sum()


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
