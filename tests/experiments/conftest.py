"""Tiny run configurations shared by the experiments tests (seconds, CPU)."""

from __future__ import annotations

import pytest

#: SHAC on a short-episode pendulum: 2 envs x horizon 8 = 16 interactions per iteration
TINY = [
    "env=BalancePendulum-v0",
    "algo=shac",
    "num_envs=2",
    "env_kwargs.max_episode_steps=48",
    "horizon=8",
    "actor_hidden=[16, 16]",
    "critic_hidden=[16, 16]",
    "vf_num_fits=2",
    "threads=1",
    "tensorboard=false",
    "progress_bar=false",
]


def tiny(*extra: str) -> list[str]:
    """:data:`TINY` plus ``extra`` ``key=value`` overrides (later wins)."""
    return [*TINY, *extra]


@pytest.fixture
def tiny_overrides():
    return tiny
