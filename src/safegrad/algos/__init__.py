"""safegrad.algos: learning algorithms (spec A §4; user guide ``docs/algorithms.md``).

* :class:`SHAC` / :class:`SHACConfig` -- short-horizon actor-critic through the differentiable
  simulator and the safeguard (spec A §4.2);
* :class:`SAC` / :class:`SACConfig` -- soft actor-critic, safeguard on the environment side
  (spec A §4.3) or as the policy's last layer (spec B §3);
* :class:`PPO` / :class:`PPOConfig` -- clipped-surrogate PPO with GAE, safeguard on either side
  (spec A §4.4);
* :mod:`safegrad.algos.networks` -- MLPs, tanh-Gaussian policy, Q and value critics (spec A §4.1).

All three follow one contract: ``Algo(env, config=None, **overrides)``, ``learn(total_steps,
callback)``, ``save(path)`` / ``Algo.load(path, env)`` (resumes identically), ``predict``,
``evaluate``, ``num_steps``, ``violations``, ``logs``, ``config``.  :data:`ALGORITHMS` maps the
lower-case names to ``(class, config class)``.
"""

from __future__ import annotations

from safegrad.algos.networks import QCritic, TanhGaussianPolicy, ValueCritic, mlp
from safegrad.algos.ppo import PPO, PPOConfig, gae_advantages
from safegrad.algos.sac import SAC, ReplayBuffer, SACConfig, sac_critic_target
from safegrad.algos.shac import SHAC, SHACConfig, shac_policy_objective, td_lambda_targets

#: algorithm name -> (agent class, config class)
ALGORITHMS: dict[str, tuple[type, type]] = {
    "shac": (SHAC, SHACConfig),
    "sac": (SAC, SACConfig),
    "ppo": (PPO, PPOConfig),
}

__all__ = [
    "ALGORITHMS",
    "SHAC",
    "SHACConfig",
    "SAC",
    "SACConfig",
    "PPO",
    "PPOConfig",
    "td_lambda_targets",
    "shac_policy_objective",
    "sac_critic_target",
    "gae_advantages",
    "ReplayBuffer",
    "TanhGaussianPolicy",
    "QCritic",
    "ValueCritic",
    "mlp",
]
