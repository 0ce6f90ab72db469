"""CartPole in NumPy: the cart-and-pole balancing task of Barto, Sutton and Anderson (1983), for
reinforcement-learning examples that need no gym.

The equations, constants and limits are gym's CartPole-v0 (``gym/envs/classic_control/cartpole.py``):
a pole of half-length 0.5 and mass 0.1 on a cart of mass 1.0 under gravity 9.8, pushed by a force
of 10 to the left (action 0) or the right (action 1), integrated by explicit Euler steps of 0.02 s.
An episode starts from a state drawn uniformly from [-0.05, 0.05]^4, earns a reward of 1 per step
(the last one included), terminates when the pole leans more than 12 degrees or the cart leaves
[-2.4, 2.4], and is truncated after 200 steps (v0's limit; 500 is v1's). An observation is
(x, x_dot, theta, theta_dot) as float32; the state itself is kept in float64.

``CartPole`` is one environment with gym's ``reset`` and ``step``; ``CartPoleBatch`` steps n
independent poles at once, each running one episode per ``reset``.
"""
from __future__ import annotations

import math

import numpy as np

GRAVITY = 9.8
MASS_CART = 1.0
MASS_POLE = 0.1
TOTAL_MASS = MASS_CART + MASS_POLE
HALF_LENGTH = 0.5  # gym's `length`: half the pole's length
POLE_MASS_LENGTH = MASS_POLE * HALF_LENGTH
FORCE = 10.0
TAU = 0.02  # seconds per step
THETA_LIMIT = 12 * 2 * math.pi / 360  # radians
X_LIMIT = 2.4
MAX_STEPS = 200  # CartPole-v0
SOLVED_RETURN = 195.0  # v0 is solved by an average return of 195 over 100 consecutive episodes
INITIAL_RANGE = 0.05
ACTIONS = 2

__all__ = ["CartPole", "CartPoleBatch", "cartpole_step", "MAX_STEPS", "SOLVED_RETURN", "ACTIONS"]


def cartpole_step(state: np.ndarray, actions) -> np.ndarray:
    """The state after one Euler step of 0.02 s: state (..., 4) as (x, x_dot, theta, theta_dot),
    actions 0 (push left) or 1 (push right) broadcasting against state[..., 0]."""
    x, x_dot, theta, theta_dot = np.moveaxis(state, -1, 0)
    force = np.where(actions == 1, FORCE, -FORCE)
    cos, sin = np.cos(theta), np.sin(theta)
    temp = (force + POLE_MASS_LENGTH * theta_dot ** 2 * sin) / TOTAL_MASS
    theta_acc = (GRAVITY * sin - cos * temp) / (HALF_LENGTH * (4.0 / 3.0 - MASS_POLE * cos ** 2 / TOTAL_MASS))
    x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS
    return np.stack([x + TAU * x_dot, x_dot + TAU * x_acc, theta + TAU * theta_dot, theta_dot + TAU * theta_acc],
                    axis=-1)


def fallen(state: np.ndarray) -> np.ndarray:
    """Whether the pole leans past 12 degrees or the cart has left the track (the episode terminates)."""
    return (np.abs(state[..., 0]) > X_LIMIT) | (np.abs(state[..., 2]) > THETA_LIMIT)


def checked_actions(actions, count: int | None) -> np.ndarray:
    """`actions` as an int64 array of 0s and 1s: one action (count None) or `count` of them; anything
    else (a float, a 2, the wrong number) is an error that says what was expected."""
    array = np.asarray(actions)
    what = "an action" if count is None else f"{count} actions"
    if array.dtype.kind not in "iu":
        raise TypeError(f"CartPole: expected {what} as integers 0 (push left) or 1 (push right), "
                        f"got {actions!r} of dtype {array.dtype}")
    if array.shape != (() if count is None else (count,)):
        raise ValueError(f"CartPole: expected {what}, got an array of shape {array.shape}")
    bad = (array < 0) | (array >= ACTIONS)
    if np.any(bad):
        raise ValueError(f"CartPole: an action is 0 (push left) or 1 (push right), got {array[bad].flat[0]}")
    return array.astype(np.int64)


def _check_max_steps(max_steps) -> int:
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"CartPole: max_steps must be an int >= 1, got {max_steps!r}")
    return int(max_steps)


class CartPole:
    """One cart and pole with gym's interface: ``reset(seed=None) -> obs`` and
    ``step(action) -> (obs, reward, terminated, truncated)``.

    seed: the generator of initial states (``numpy.random.default_rng``); ``reset(seed=s)``
    starts it afresh, so the same seed gives the same episodes. Stepping before ``reset`` or
    after the episode has ended is an error (gym only warns), as is an action other than 0 or 1.
    """

    def __init__(self, seed=None, max_steps: int = MAX_STEPS):
        self.max_steps = _check_max_steps(max_steps)
        self._rng = np.random.default_rng(seed)
        self.state = None
        self.steps = 0
        self.done = True

    def reset(self, seed=None) -> np.ndarray:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.state = self._rng.uniform(-INITIAL_RANGE, INITIAL_RANGE, 4)
        self.steps, self.done = 0, False
        return self.state.astype(np.float32)

    def step(self, action) -> tuple:
        action = checked_actions(action, None)
        if self.done:
            raise RuntimeError("CartPole: the episode has ended (or never started): call reset() first")
        self.state = cartpole_step(self.state, action)
        self.steps += 1
        terminated = bool(fallen(self.state))
        truncated = self.steps >= self.max_steps
        self.done = terminated or truncated
        return self.state.astype(np.float32), 1.0, terminated, truncated


class CartPoleBatch:
    """n independent carts and poles stepped together: ``reset(seed=None) -> obs (n, 4)`` starts an
    episode on every pole; ``step(actions) -> (obs, rewards, terminated, truncated)`` takes n actions
    and returns arrays of n.

    Each pole runs one episode per ``reset``. Once it has ended (``running`` is False) it stays where
    it was, earns 0 and ignores its action, so ``terminated | truncated`` is True exactly once per
    pole: at the step its episode ends. The poles draw their initial states from one generator.
    """

    def __init__(self, n: int, seed=None, max_steps: int = MAX_STEPS):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"CartPoleBatch: n must be an int >= 1, got {n!r}")
        self.n, self.max_steps = int(n), _check_max_steps(max_steps)
        self._rng = np.random.default_rng(seed)
        self.state = np.zeros((self.n, 4))
        self.steps = 0
        self.running = np.zeros(self.n, bool)
        self.returns = np.zeros(self.n)  # the return of each pole's episode so far

    def reset(self, seed=None) -> np.ndarray:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.state = self._rng.uniform(-INITIAL_RANGE, INITIAL_RANGE, (self.n, 4))
        self.steps = 0
        self.running[:] = True
        self.returns[:] = 0
        return self.state.astype(np.float32)

    def step(self, actions) -> tuple:
        actions = checked_actions(actions, self.n)
        if not self.running.any():
            raise RuntimeError("CartPoleBatch: every episode has ended (or none started): call reset() first")
        running = self.running
        self.state[running] = cartpole_step(self.state[running], actions[running])
        self.steps += 1
        rewards = running.astype(np.float64)
        terminated = running & fallen(self.state)
        truncated = running & (self.steps >= self.max_steps)
        self.returns += rewards
        self.running = running & ~(terminated | truncated)
        return self.state.astype(np.float32), rewards, terminated, truncated
