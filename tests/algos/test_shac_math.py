"""SHAC's pure pieces against brute force (spec A §4.2 steps 3-4)."""

from __future__ import annotations

import pytest
import torch

from safegrad.algos import shac_policy_objective, td_lambda_targets


def _random_segments(T, N, gen, p_done=0.2):
    """Random episode ends with next-step autoreset slots, as SHAC's rollout produces them."""
    valid = torch.ones(T, N, dtype=torch.bool)
    end = torch.zeros(T, N, dtype=torch.bool)
    prev_done = torch.rand(N, generator=gen) < 0.3  # a reset slot at t = 0 for some envs
    for t in range(T):
        valid[t] = ~prev_done
        done = (torch.rand(N, generator=gen) < p_done) & valid[t]
        end[t] = done | (valid[t] if t == T - 1 else torch.zeros(N, dtype=torch.bool))
        prev_done = done
    return end, valid


def _segment_end_of(t, n, end):
    e = t
    while not end[e, n]:
        e += 1
    return e


def _brute_td_lambda(r, v, end, valid, gamma, lam):
    T, N = r.shape
    y = torch.zeros_like(r)
    for n in range(N):
        for t in range(T):
            if not valid[t, n]:
                continue
            e = _segment_end_of(t, n, end)
            K = e + 1 - t

            def G(k, t=t, n=n):
                # r_{t+l} for l < k, bootstrap V^(o_{t+k}) = next_values[t+k-1]
                return sum(gamma**l * r[t + l, n] for l in range(k)) + gamma**k * v[t + k - 1, n]

            y[t, n] = (1 - lam) * sum(lam ** (k - 1) * G(k) for k in range(1, K)) + lam ** (
                K - 1
            ) * G(K)
    return y


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_td_lambda_matches_brute_force(lam):
    gen = torch.Generator().manual_seed(3)
    T, N, gamma = 12, 5, 0.9
    end, valid = _random_segments(T, N, gen)
    r = torch.randn(T, N, generator=gen, dtype=torch.float64)
    v = torch.randn(T, N, generator=gen, dtype=torch.float64)
    y = td_lambda_targets(r, v, end, valid, gamma, lam)
    ref = _brute_td_lambda(r, v, end, valid, gamma, lam)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    assert (y[~valid] == 0).all()
    assert end.any() and (~valid).any()  # the case exercises both segment kinds


def test_td_lambda_limits():
    """lam = 0 gives the one-step TD target; lam = 1 the Monte-Carlo return + bootstrap."""
    gen = torch.Generator().manual_seed(0)
    T, N, gamma = 6, 3, 0.8
    valid = torch.ones(T, N, dtype=torch.bool)
    end = torch.zeros(T, N, dtype=torch.bool)
    end[-1] = True
    r = torch.randn(T, N, generator=gen, dtype=torch.float64)
    v = torch.randn(T, N, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(td_lambda_targets(r, v, end, valid, gamma, 0.0), r + gamma * v)
    mc = sum(gamma**k * r[k] for k in range(T)) + gamma**T * v[-1]
    torch.testing.assert_close(td_lambda_targets(r, v, end, valid, gamma, 1.0)[0], mc)


def test_policy_objective_matches_brute_force():
    gen = torch.Generator().manual_seed(5)
    T, N, gamma = 10, 4, 0.95
    end, valid = _random_segments(T, N, gen, p_done=0.25)
    r = torch.randn(T, N, generator=gen, dtype=torch.float64)
    v = torch.randn(T, N, generator=gen, dtype=torch.float64)
    Z = 7.0
    total = 0.0
    for n in range(N):
        t = 0
        while t < T:
            if not valid[t, n]:
                t += 1
                continue
            e = _segment_end_of(t, n, end)
            K = e + 1 - t
            total += sum(gamma**k * r[t + k, n] for k in range(K)) + gamma**K * v[e, n]
            t = e + 1
    got = shac_policy_objective(r, v, end, valid, gamma, Z)
    torch.testing.assert_close(got, -total / Z)
