"""Policy gradient balances a pole: CartPole-v0 solved by one compiled step per batch of episodes.

The environment is ``runtime.envs.CartPoleBatch``: gym's CartPole-v0 (a pole on a cart, a reward of 1
per step it stays up, episodes cut at 200 steps) in NumPy, 8 poles stepped at once. The agent is
REINFORCE with a learned baseline: a policy (4-64-2, tanh) and a value function (4-64-1, tanh),
trained together by one compiled step with Adam on

    loss = -mean(log pi(a|s) * (G - V(s))) + 0.5 * mean((V(s) - G)^2)

over every step of the batch's 8 episodes, G being the discounted return (gamma 0.99) from that step
to the episode's end. An episode cut at the step limit did not fail, so its return goes on as
gamma^k V(last state); a fallen pole's ends there. ``log pi(a|s)`` is ``take_along_axis`` of
``log_softmax``; the advantage G - V(s) is an input, so no gradient flows through it into the critic.

A batch holds only the steps the episodes lived, a different number every update (from ~150 at the
start to 1,600 when every pole lasts 200 steps): the step's batch dimension is symbolic ("steps"),
so any length is one call that neither recompiles nor, once the longest batch has been seen,
allocates -- no padding, no masks. Acting is a compiled ``step.function`` of the logits and the
values on the live parameters, called on the 8 poles at once.

CartPole-v0 counts as solved when the average return over 100 consecutive episodes reaches 195.

    python examples/cartpole.py [episodes]      # writes docs/gallery/cartpole.png
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import compiler as sp
from compiler import nn, optim
from runtime.envs import ACTIONS, SOLVED_RETURN, CartPoleBatch
from runtime.figures import pyplot, save_figure

FIGURE = Path(__file__).parent.parent / "docs" / "gallery" / "cartpole.png"
WINDOW = 100  # episodes in the solved criterion's average
GAMMA = 0.99
VALUE_COEF = 0.5


def build(hidden: int = 64):
    """(loss, logits, value): the loss over a batch of ("steps",) transitions, and the policy's
    logits and the critic's value for acting."""
    obs = sp.Input("obs", ("steps", 4))
    actions = sp.Input("actions", ("steps",), "int64")
    advantages = sp.Input("advantages", ("steps",))
    returns = sp.Input("returns", ("steps",))
    with nn.names():
        policy = nn.Sequential(nn.Dense(hidden, activation="tanh", name="policy_hidden"),
                               nn.Dense(ACTIONS, name="policy_out"))
        critic = nn.Sequential(nn.Dense(hidden, activation="tanh", name="value_hidden"),
                               nn.Dense(1, name="value_out"))
        logits, value = policy(obs), sp.reshape(critic(obs), -1)
    log_pi = sp.take_along_axis(sp.log_softmax(logits), sp.reshape(actions, -1, 1), 1)  # log pi(a|s), (steps, 1)
    loss = -sp.mean(sp.reshape(log_pi, -1) * advantages) + VALUE_COEF * sp.mean((value - returns) ** 2)
    return loss, logits, value


def sample_actions(logits: np.ndarray, rng) -> np.ndarray:
    """One action per row drawn from softmax(logits) (two actions: push right with sigmoid(l1 - l0))."""
    push_right = 1 / (1 + np.exp(logits[:, 0] - logits[:, 1]))
    return (rng.random(len(logits)) < push_right).astype(np.int64)


def rollout(env: CartPoleBatch, act, rng) -> dict:
    """One episode on each of the env's poles, acting on samples of the policy. Arrays are (T, n)
    over the steps taken, `live` marking each pole's steps; `end_value` is V of a pole's last state
    when its episode was cut at the step limit, 0 when the pole fell."""
    obs = env.reset()
    steps = []
    fell = np.zeros(env.n, bool)
    while env.running.any():
        logits, values = act(obs=obs)
        actions, live = sample_actions(logits, rng), env.running.copy()
        next_obs, rewards, terminated, _ = env.step(actions)
        steps.append({"obs": obs, "actions": actions, "values": values, "rewards": rewards, "live": live})
        obs, fell = next_obs, fell | terminated
    _, last_values = act(obs=obs)
    episode = {name: np.stack([step[name] for step in steps]) for name in steps[0]}
    episode["end_value"] = np.where(fell, 0.0, last_values)
    episode["returns"] = env.returns.copy()
    return episode


def discounted_returns(episode: dict, gamma: float = GAMMA) -> np.ndarray:
    """(T, n): each live step's discounted return to its episode's end, plus gamma^k times the
    end value (V of the last state if the episode was cut at the step limit, 0 if the pole fell)."""
    rewards, live = episode["rewards"], episode["live"]
    result, following = np.zeros_like(rewards), episode["end_value"]
    for t in reversed(range(len(rewards))):
        following = result[t] = np.where(live[t], rewards[t] + gamma * following, following)
    return result


def training_batch(episode: dict) -> dict:
    """The step's inputs: every live step of the episodes as one batch of transitions, the advantage
    of each being its return less the value the critic predicted."""
    live = episode["live"]
    returns = discounted_returns(episode)[live]
    advantages = returns - episode["values"][live]
    return {"obs": episode["obs"][live], "actions": episode["actions"][live],
            "advantages": advantages.astype(np.float32), "returns": returns.astype(np.float32)}


def solved_at(returns, window: int = WINDOW, threshold: float = SOLVED_RETURN) -> int | None:
    """The 1-based episode that completes the first `window` consecutive episodes averaging `threshold`."""
    averages = moving_average(returns, window)
    hits = np.flatnonzero(averages >= threshold)
    return int(hits[0]) + window if len(hits) else None


def moving_average(values, window: int) -> np.ndarray:
    """Means of each `window` consecutive values (len(values) - window + 1 of them)."""
    sums = np.cumsum(np.concatenate([[0.0], np.asarray(values, np.float64)]))
    return (sums[window:] - sums[:-window]) / window


def main(episodes: int = 1000, envs: int = 8, figure=None, seed: int = 0, progress: bool = True,
         lr: float = 1e-2, hidden: int = 64) -> dict:
    started = time.perf_counter()
    loss, logits, value = build(hidden)
    step = sp.compile_step(loss, optim.Adam(lr=lr), seed=seed)
    act = step.function([logits, value])
    compiled = time.perf_counter() - started
    env, rng = CartPoleBatch(envs, seed=seed), np.random.default_rng(seed)
    returns = []
    bar = _progress(episodes, progress)
    while len(returns) < episodes:
        episode = rollout(env, act, rng)
        step(**training_batch(episode))
        kept = episode["returns"][:episodes - len(returns)]
        returns.extend(kept)
        bar.update(len(kept))
        bar.set_postfix({"last 100": f"{np.mean(returns[-WINDOW:]):.1f}"})
    bar.close()
    returns = np.array(returns)
    solved = solved_at(returns)
    seconds = time.perf_counter() - started
    outcome = f"solved at episode {solved}" if solved else "not solved"
    print(f"REINFORCE with a learned baseline on CartPole-v0: {outcome} (average of the last {WINDOW}: "
          f"{returns[-WINDOW:].mean():.1f}); {episodes} episodes in {seconds:.1f} s wall time "
          f"({compiled:.1f} s compiling)")
    if figure is not None:
        draw(returns, solved, envs, figure)
    return {"returns": returns, "solved": solved is not None, "solved_at": solved, "seconds": seconds,
            "compile_seconds": compiled, "updates": step.step_count}


def _progress(episodes: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=episodes, unit="episode", desc="CartPole", dynamic_ncols=True, disable=not enabled)


def draw(returns: np.ndarray, solved: int | None, envs: int, path) -> None:
    """The return of every episode, its 100-episode moving average and the 195 line."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    episodes = np.arange(1, len(returns) + 1)
    ax.plot(episodes, returns, lw=0.6, color="tab:blue", alpha=0.45, label="return of each episode")
    average = moving_average(returns, WINDOW)
    ax.plot(episodes[WINDOW - 1:], average, lw=2, color="tab:orange", label=f"average of the last {WINDOW}")
    ax.axhline(SOLVED_RETURN, color="tab:red", ls="--", lw=1, label=f"solved: {SOLVED_RETURN:g}")
    if solved is not None:
        ax.axvline(solved, color="0.4", ls=":", lw=1)
        ax.annotate(f"solved at episode {solved}", (solved, 60), xytext=(6, 0), textcoords="offset points",
                    fontsize=9, color="0.3")
    ax.set_xlabel("episode")
    ax.set_ylabel("return (steps balanced, at most 200)")
    ax.set_title(f"REINFORCE with a learned baseline on CartPole-v0 ({envs} episodes per update)")
    ax.set_ylim(0, 210)
    ax.set_xlim(0, len(returns))
    ax.legend(loc="lower right", fontsize=9)
    save_figure(fig, path)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, figure=FIGURE)
