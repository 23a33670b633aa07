"""safegrad.algos: learning algorithms (spec A §4; user guide ``docs/algorithms.md``).

* :class:`SHAC` / :class:`SHACConfig` -- short-horizon actor-critic through the differentiable
  simulator and the safeguard (spec A §4.2);
* :mod:`safegrad.algos.networks` -- MLPs, tanh-Gaussian policy, value critic (spec A §4.1).
"""

from __future__ import annotations

from safegrad.algos.networks import TanhGaussianPolicy, ValueCritic, mlp
from safegrad.algos.shac import SHAC, SHACConfig, shac_policy_objective, td_lambda_targets

__all__ = [
    "SHAC",
    "SHACConfig",
    "td_lambda_targets",
    "shac_policy_objective",
    "TanhGaussianPolicy",
    "ValueCritic",
    "mlp",
]
