"""runtime.envs.CartPole and CartPoleBatch against an independent transcription of gym's CartPole-v0.

The transcription below is written out from the equations of Barto, Sutton and Anderson (1983)
as gym's ``cartpole.py`` codes them (Euler steps, the 12 degree and 2.4 limits), with the constants
as literal numbers, in plain Python floats, one pole at a time.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from runtime.envs import CartPole, CartPoleBatch


def reference_step(state, action):
    """(x, x_dot, theta, theta_dot) after one step; gravity 9.8, cart 1.0, pole 0.1 of half-length 0.5."""
    x, x_dot, theta, theta_dot = (float(v) for v in state)
    force = 10.0 if action == 1 else -10.0
    temp = (force + 0.05 * theta_dot * theta_dot * math.sin(theta)) / 1.1
    theta_acc = (9.8 * math.sin(theta) - math.cos(theta) * temp) / (0.5 * (4 / 3 - 0.1 * math.cos(theta) ** 2 / 1.1))
    x_acc = temp - 0.05 * theta_acc * math.cos(theta) / 1.1
    return (x + 0.02 * x_dot, x_dot + 0.02 * x_acc, theta + 0.02 * theta_dot, theta_dot + 0.02 * theta_acc)


def reference_fallen(state) -> bool:
    return abs(state[0]) > 2.4 or abs(state[2]) > 12 * math.pi / 180


def balancing_action(obs) -> int:
    """Push the way the pole is falling: keeps it up for 200 steps from the usual initial states."""
    return int(obs[2] + 0.5 * obs[3] > 0)


def test_one_step_by_hand():
    env = CartPole()
    env.reset(seed=0)
    env.state = np.array([0.01, -0.02, 0.03, 0.04])
    obs, reward, terminated, truncated = env.step(1)
    # by hand: temp = (10 + 0.05 * 0.0016 * sin 0.03) / 1.1 = 9.090911; the denominator
    # 0.5 * (4/3 - 0.1 * cos^2(0.03) / 1.1) = 0.621253; theta_acc = (0.293956 - 9.086820) / 0.621253;
    # x_acc = 9.090911 + 0.05 * 14.1534 * 0.99955 / 1.1
    temp = (10 + 0.05 * 0.0016 * math.sin(0.03)) / 1.1
    theta_acc = (9.8 * math.sin(0.03) - math.cos(0.03) * temp) / (0.5 * (4 / 3 - 0.1 * math.cos(0.03) ** 2 / 1.1))
    x_acc = temp - 0.05 * theta_acc * math.cos(0.03) / 1.1
    assert theta_acc == pytest.approx(-14.1534, abs=2e-4)  # the push to the right tips the pole left
    assert x_acc == pytest.approx(9.7340, abs=2e-4)
    expected = [0.01 - 0.02 * 0.02, -0.02 + 0.02 * x_acc, 0.03 + 0.02 * 0.04, 0.04 + 0.02 * theta_acc]
    np.testing.assert_allclose(env.state, expected, rtol=1e-12)
    assert obs.dtype == np.float32
    np.testing.assert_allclose(obs, expected, rtol=1e-6)
    assert (reward, terminated, truncated) == (1.0, False, False)


def test_an_episode_follows_the_transcription_to_the_step_the_pole_falls():
    env = CartPole(seed=3)
    obs = env.reset()
    state = tuple(env.state)
    actions = [1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    for t, action in enumerate(actions, 1):
        obs, reward, terminated, truncated = env.step(action)
        state = reference_step(state, action)
        np.testing.assert_allclose(env.state, state, rtol=1e-12, atol=1e-15)
        assert terminated == reference_fallen(state) and not truncated and reward == 1.0
        if terminated:
            break
    assert terminated and 5 < t < len(actions), t  # pushing right all the time tips the pole over in ~10 steps
    assert abs(obs[2]) > 12 * math.pi / 180
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_the_cart_leaving_the_track_terminates():
    env = CartPole()
    env.reset(seed=0)
    env.state = np.array([2.39, 1.0, 0.0, 0.0])  # moves 0.02 past the edge in one step, pole upright
    _, _, terminated, truncated = env.step(1)
    assert terminated and not truncated


def test_a_balanced_pole_is_truncated_at_200_steps_with_a_return_of_200():
    env = CartPole(seed=0)
    obs, total, done, steps = env.reset(), 0.0, False, 0
    while not done:
        obs, reward, terminated, truncated = env.step(balancing_action(obs))
        total, steps, done = total + reward, steps + 1, terminated or truncated
    assert (steps, total, terminated, truncated) == (200, 200.0, False, True)


def test_max_steps_sets_the_cap():
    env = CartPole(seed=0, max_steps=3)
    env.reset()
    flags = [env.step(0)[2:] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


def test_reset_draws_uniform_initial_states_repeatably_under_a_seed():
    env = CartPole()
    first = env.reset(seed=7)
    again = CartPole(seed=7).reset()
    other = env.reset(seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    starts = np.array([env.reset() for _ in range(500)])
    assert starts.shape == (500, 4) and starts.dtype == np.float32
    assert np.all(np.abs(starts) <= 0.05) and np.all(starts.max(axis=0) > 0.045) and np.all(starts.min(axis=0) < -0.045)


def test_same_seed_same_episode():
    def episode(seed):
        env = CartPole(seed=seed)
        obs, rng, seen = env.reset(), np.random.default_rng(0), []
        while True:
            obs, _, terminated, truncated = env.step(int(rng.integers(2)))
            seen.append(obs)
            if terminated or truncated:
                return np.array(seen)
    np.testing.assert_array_equal(episode(5), episode(5))


@pytest.mark.parametrize("action, error", [(2, ValueError), (-1, ValueError), (0.5, TypeError), (1.0, TypeError),
                                           ("left", TypeError), (True, TypeError), ([0, 1], ValueError)])
def test_a_bad_action_is_a_clear_error(action, error):
    env = CartPole(seed=0)
    env.reset()
    with pytest.raises(error, match=r"0 \(push left\) or 1 \(push right\)|expected an action"):
        env.step(action)
    env.step(np.int64(1))  # numpy integers are actions


def test_stepping_before_reset_is_an_error():
    with pytest.raises(RuntimeError, match="reset"):
        CartPole(seed=0).step(0)


def test_the_batch_steps_each_pole_as_the_transcription_does():
    env = CartPoleBatch(5, seed=1)
    obs = env.reset()
    states = [tuple(s) for s in env.state]
    np.testing.assert_allclose(obs, np.array(states), rtol=1e-6)
    rng = np.random.default_rng(2)
    ended = np.zeros(5, int)  # the step at which each pole's episode ended
    for t in range(1, 201):
        actions = rng.integers(0, 2, 5)
        running = env.running.copy()
        obs, rewards, terminated, truncated = env.step(actions)
        for i in range(5):
            if running[i]:
                states[i] = reference_step(states[i], actions[i])
                fell = reference_fallen(states[i])
                assert (rewards[i], terminated[i], truncated[i]) == (1.0, fell, False)
                if fell:
                    ended[i] = t
            else:  # a finished pole stays put and earns nothing
                assert (rewards[i], terminated[i], truncated[i]) == (0.0, False, False)
        np.testing.assert_allclose(env.state, np.array(states), rtol=1e-12, atol=1e-15)
        if not env.running.any():
            break
    assert np.all(ended > 0)  # random pushes drop every pole well before 200 steps
    np.testing.assert_array_equal(env.returns, ended)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(5, np.int64))


def test_a_batch_of_balanced_poles_is_truncated_once_at_the_cap():
    env = CartPoleBatch(3, seed=0)
    obs = env.reset()
    ends = np.zeros(3, int)
    for t in range(1, 201):
        obs, rewards, terminated, truncated = env.step(np.array([balancing_action(o) for o in obs]))
        assert not terminated.any()
        ends += t * truncated
    assert list(ends) == [200, 200, 200] and list(env.returns) == [200, 200, 200] and not env.running.any()


def test_a_batch_repeats_under_its_seed_and_checks_its_actions():
    np.testing.assert_array_equal(CartPoleBatch(4, seed=9).reset(), CartPoleBatch(4, seed=9).reset())
    env = CartPoleBatch(4, seed=9)
    env.reset()
    with pytest.raises(ValueError, match="expected 4 actions"):
        env.step(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"0 \(push left\) or 1 \(push right\), got 3"):
        env.step(np.array([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="n must be"):
        CartPoleBatch(0)
