"""Schedules against torch.optim.lr_scheduler's documented closed and recursive forms."""
import math

import pytest

from compiler.optim import HyperparameterError
from compiler.schedules import Constant, Cosine, Exponential, LinearWarmup, StepDecay

T = range(0, 40)


def test_constant():
    assert [Constant(0.3)(t) for t in T] == [0.3] * len(T)


def test_step_decay_closed_form_and_recursion():
    schedule = StepDecay(0.5, step_size=3, gamma=0.5)
    assert [schedule(t) for t in range(7)] == [0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]
    lr = 0.5
    for t in T:  # torch's recursion: multiply by gamma whenever t is a multiple of step_size
        if t and t % 3 == 0:
            lr *= 0.5
        assert schedule(t) == pytest.approx(lr, rel=1e-15)


def test_step_decay_default_gamma_is_torchs():
    assert StepDecay(1.0, step_size=2)(2) == pytest.approx(0.1)


def test_exponential():
    schedule = Exponential(0.2, gamma=0.9)
    lr = 0.2
    for t in T:
        assert schedule(t) == pytest.approx(lr, rel=1e-13)
        lr *= 0.9


def test_cosine_closed_form_and_torch_recursion():
    lr, t_max, eta_min = 0.1, 10, 0.001
    schedule = Cosine(lr, T_max=t_max, eta_min=eta_min)
    assert schedule(0) == lr
    assert schedule(t_max) == pytest.approx(eta_min, rel=1e-15)
    assert schedule(t_max // 2) == pytest.approx((lr + eta_min) / 2, rel=1e-15)
    eta = lr
    for t in range(t_max):  # torch's documented recursion for eta_{t+1}
        ratio = (1 + math.cos((t + 1) * math.pi / t_max)) / (1 + math.cos(t * math.pi / t_max))
        eta = eta_min + (eta - eta_min) * ratio
        assert schedule(t + 1) == pytest.approx(eta, rel=1e-12, abs=1e-15)


def test_cosine_continues_past_t_max_like_torchs_closed_form():
    schedule = Cosine(1.0, T_max=4)
    assert schedule(6) == pytest.approx((1 + math.cos(math.pi * 6 / 4)) / 2)
    assert schedule(8) == pytest.approx(1.0)


def test_linear_warmup_then_the_wrapped_schedule_from_its_start():
    after = Cosine(0.4, T_max=10)
    schedule = LinearWarmup(after, warmup_steps=4, start_factor=0.25)
    expected = [0.4 * (0.25 + 0.75 * t / 4) for t in range(4)]
    assert [schedule(t) for t in range(4)] == pytest.approx(expected, rel=1e-15)
    assert schedule(0) == pytest.approx(0.1)
    for t in range(4, 20):
        assert schedule(t) == after(t - 4)


def test_linear_warmup_default_start_factor_is_torchs():
    assert LinearWarmup(Constant(0.3), warmup_steps=2)(0) == pytest.approx(0.1)


@pytest.mark.parametrize("make, argument", [
    (lambda: Constant(-1.0), "lr"),
    (lambda: StepDecay(0.1, step_size=0), "step_size"),
    (lambda: StepDecay(0.1, step_size=2.5), "step_size"),
    (lambda: Exponential(0.1, gamma="x"), "gamma"),
    (lambda: Cosine(0.1, T_max=0), "T_max"),
    (lambda: LinearWarmup(Constant(0.1), warmup_steps=2, start_factor=0.0), "start_factor"),
    (lambda: LinearWarmup(0.1, warmup_steps=2), "after"),
])
def test_bad_arguments_name_the_argument(make, argument):
    with pytest.raises(HyperparameterError, match=argument) as info:
        make()
    assert info.value.argument == argument


def test_step_must_be_a_count():
    with pytest.raises(ValueError, match="0-based"):
        Constant(0.1)(-1)
