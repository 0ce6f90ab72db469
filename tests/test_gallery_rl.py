"""examples/cartpole.py: policy gradient on CartPole learns, solves v0, and trains on episode batches of any
length without recompiling or reallocating (the step's "steps" dimension is symbolic)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import compiler as sp
import runtime.programs
import runtime.workspace
from compiler import optim
from runtime.engine import Engine
from runtime.envs import CartPoleBatch

EXAMPLE = Path(__file__).parent.parent / "examples" / "cartpole.py"


@pytest.fixture(scope="module")
def cartpole():
    spec = importlib.util.spec_from_file_location("cartpole", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def builds(monkeypatch):
    """Counts of what would mean recompiling: program builds or cache loads, LLVM compiles, arena blocks."""
    counts = {"programs": 0, "llvm": 0, "arena": 0}

    def counting(name, real):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(runtime.programs, "_load_or_build", counting("programs", runtime.programs._load_or_build))
    monkeypatch.setattr(Engine, "compile", counting("llvm", Engine.compile))
    monkeypatch.setattr(runtime.workspace, "aligned_empty", counting("arena", runtime.workspace.aligned_empty))
    return counts


def synthetic_batch(length: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"obs": rng.uniform(-0.1, 0.1, (length, 4)).astype(np.float32), "actions": rng.integers(0, 2, length),
            "advantages": rng.standard_normal(length).astype(np.float32),
            "returns": rng.uniform(0, 50, length).astype(np.float32)}


def test_episode_batches_of_any_length_neither_recompile_nor_reallocate(cartpole, builds):
    loss, logits, value = cartpole.build()
    step = sp.compile_step(loss, optim.Adam(lr=1e-2), seed=0)
    act = step.function([logits, value])
    env, rng = CartPoleBatch(4, seed=0), np.random.default_rng(0)
    act(obs=env.reset())
    step(**synthetic_batch(4 * 200, 0))  # the longest batch 4 poles can give: sizes the arena
    programs = len(runtime.programs._loaded)
    before = dict(builds)
    lengths = []
    for update in range(6):  # real episode batches: a new length nearly every update
        batch = cartpole.training_batch(cartpole.rollout(env, act, rng))
        lengths.append(len(batch["obs"]))
        step(**batch)
    for length in [1, 799, 3, 800, 57]:
        step(**synthetic_batch(length, length))
    assert len(set(lengths)) >= 4, lengths  # the test is about lengths that change
    assert step.step_count == 12
    assert builds == before, (before, builds)  # no program built or loaded, no LLVM, no arena block
    assert len(runtime.programs._loaded) == programs
    step(**synthetic_batch(801, 1))  # the counter sees growth: a longer batch grows the arena once
    assert builds["arena"] > before["arena"] and builds["programs"] == before["programs"]


def test_discounted_returns_by_hand(cartpole):
    # pole 0 falls at its 3rd step; pole 1 is cut after 3 steps with V(last state) = 10; pole 2 falls at once
    live = np.array([[1, 1, 1], [1, 1, 0], [1, 1, 0]], bool)
    episode = {"rewards": live.astype(float), "live": live, "end_value": np.array([0.0, 10.0, 0.0])}
    returns = cartpole.discounted_returns(episode, gamma=0.5)
    np.testing.assert_allclose(returns[:, 0], [1 + 0.5 + 0.25, 1 + 0.5, 1])
    np.testing.assert_allclose(returns[:, 1], [1 + 0.5 + 0.25 + 1.25, 1 + 0.5 + 2.5, 1 + 5])
    assert returns[0, 2] == 1


def test_solved_at_finds_the_first_window_averaging_195(cartpole):
    # a window starting at 0-based episode i holds max(0, 50 - i) zeros: 200 (100 - z) / 100 >= 195 needs z <= 2
    returns = [0.0] * 50 + [200.0] * 100
    assert cartpole.solved_at(returns) == 48 + 100
    assert cartpole.solved_at([194.0] * 300) is None and cartpole.solved_at([200.0] * 99) is None


def test_a_short_run_learns_to_balance(cartpole):
    result = cartpole.main(episodes=320, progress=False)
    returns = result["returns"]
    assert len(returns) == 320 and result["updates"] == 40
    assert returns[:20].mean() < 40  # a random policy keeps the pole up ~20 steps
    assert returns[-20:].mean() > 100, returns[-20:]  # (150 to 200 over seeds 0 to 7)


def test_the_full_run_solves_cartpole_v0(cartpole):
    result = cartpole.main(progress=False)
    assert result["solved"], result["returns"][-100:].mean()  # 100 consecutive episodes averaging >= 195
    assert result["solved_at"] <= 1000
    assert result["returns"][-100:].mean() >= 195  # and the policy stays solved


def test_the_figure_is_drawn_when_asked(cartpole, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "gallery" / "cartpole.png"
    cartpole.main(episodes=24, figure=path, progress=False)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size < 200_000
