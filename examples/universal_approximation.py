"""The universal approximation theorem, shown: one hidden layer of tanh units fits sin(3x), |x| and a
smoothed step on [-pi, pi], and the largest error falls as the layer widens.

The theorem (Cybenko 1989, Hornik 1991) says that sums c_0 + sum_i c_i tanh(a_i x + b_i) of enough
units come uniformly close to any continuous function on a closed interval. It does not say how to
find the weights: here Adam does, full-batch on a grid of 256 points, and the error is measured as
the theorem states it, in the sup norm: max |f(x) - net(x)| over 4,001 points of [-pi, pi].

The targets: sin(3x) (six turning points, more than a few units can make), |x| (a kink that smooth
units can only round off) and the cubic smoothstep rising from 0 to 1 over [-1/2, 1/2]. The step is
not sigmoid(10x): that is 0.5 + 0.5 tanh(5x), one unit exactly, which every width would fit.

One graph per width: the three targets, each from eight random starts, are 24 networks side by
side (parameters of shape (networks, width); the target is an input with one column per network).
The loss is the sum of their mean squared errors, so each network gets the gradient of its own
error and Adam, which scales each parameter on its own, trains it as if it were alone. Per target,
the start with the lowest training error is kept: a few starts get past the local minima that
gradient descent finds for sin(3x) at small widths. Each epoch is the grid repeated 100 times, read
in order in batches of one grid: 100 full-batch steps in one native call. float32 reaches the same
errors as float64 here, and four times faster at width 64.

    python examples/universal_approximation.py [steps]   # writes docs/gallery/universal_approximation.png
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

import compiler as sp
from compiler import optim
from compiler.schedules import Cosine
from runtime import fit
from runtime.figures import pyplot, save_figure

FIGURE = Path(__file__).parent.parent / "docs" / "gallery" / "universal_approximation.png"
GRID, DENSE = 256, 4001  # training points, points of the sup norm
STARTS = 8  # random starts per target
REPEATS = 100  # full-batch steps per native call (an epoch of the grid repeated), when it divides the steps


def smoothstep(x: np.ndarray) -> np.ndarray:
    """3t^2 - 2t^3 with t = x + 1/2 clipped to [0, 1]: a step smoothed over [-1/2, 1/2]."""
    t = np.clip(x + 0.5, 0.0, 1.0)
    return t * t * (3 - 2 * t)


TARGETS = {"sin(3x)": lambda x: np.sin(3 * x), "|x|": np.abs, "smoothed step": smoothstep}


def slopes(shape, rng):
    """a_i ~ N(0, 2^2), with the offsets below: most units change within [-pi, pi]."""
    return rng.normal(0.0, 2.0, shape)


def offsets(shape, rng):
    return rng.uniform(-4.0, 4.0, shape)


def output_weights(shape, rng):
    return rng.normal(0.0, shape[1] ** -0.5, shape)


def build(width: int, networks: int):
    """(x, target, prediction): `networks` one-hidden-layer tanh networks of `width` units side by
    side; x (batch, 1) -> prediction (batch, networks), one column per network."""
    x = sp.Input("x", ("batch", 1))
    target = sp.Input("target", ("batch", networks))
    a = sp.Param("a", (networks, width), init=slopes)
    b = sp.Param("b", (networks, width), init=offsets)
    c = sp.Param("c", (networks, width), init=output_weights)
    c0 = sp.Param("c0", (networks,), init="zeros")
    prediction = sp.sum(sp.tanh(x[:, :, None] * a + b) * c, axis=2) + c0
    return x, target, prediction


def grid(points: int) -> np.ndarray:
    """`points` evenly spaced float32 values from -pi to pi."""
    return np.linspace(-np.pi, np.pi, points, dtype=np.float32)


def targets_on(x: np.ndarray) -> np.ndarray:
    """(len(x), targets * STARTS) float32: each target's column repeated for every start."""
    columns = np.stack([f(x) for f in TARGETS.values()], axis=1)
    return np.tile(columns, (1, STARTS)).astype(np.float32)


def train(width: int, steps: int, lr: float, seed: int, progress: bool):
    """Train every (target, start) network of `width` units; returns their prediction function."""
    x, target, prediction = build(width, len(TARGETS) * STARTS)
    loss = sp.sum(sp.mean((prediction - target) ** 2, axis=0))  # each network's own MSE, summed
    step = sp.compile_step(loss, optim.Adam(lr=lr), schedule=Cosine(lr, steps), seed=seed)
    x_train = grid(GRID)
    repeats = math.gcd(steps, REPEATS)  # epochs of whole repeats: exactly `steps` steps
    repeated = {"x": np.tile(x_train[:, None], (repeats, 1)), "target": np.tile(targets_on(x_train), (repeats, 1))}
    fit(step, repeated, epochs=steps // repeats, batch_size=GRID, shuffle=False, progress=progress)
    return step.function(prediction)


def best_starts(predict) -> np.ndarray:
    """(DENSE, targets) float32: per target, the fit on the dense grid of the start with the lowest training MSE."""
    x_train = grid(GRID)
    mse = ((predict(x=x_train[:, None]) - targets_on(x_train)) ** 2).mean(axis=0).reshape(STARTS, len(TARGETS))
    fits = predict(x=grid(DENSE)[:, None]).reshape(DENSE, STARTS, len(TARGETS))
    return fits[:, mse.argmin(axis=0), np.arange(len(TARGETS))]


def main(widths=(2, 4, 8, 16, 64), steps: int = 10_000, figure=None, progress: bool = True, lr: float = 3e-2,
         seed: int = 0) -> dict:
    started = time.perf_counter()
    x = grid(DENSE).astype(np.float64)
    exact = np.stack([f(x) for f in TARGETS.values()], axis=1)
    fits, errors = {name: {} for name in TARGETS}, {name: {} for name in TARGETS}
    for width in widths:
        best = best_starts(train(width, steps, lr, seed, progress))
        for k, name in enumerate(TARGETS):
            fits[name][width] = best[:, k]
            errors[name][width] = float(np.abs(best[:, k] - exact[:, k]).max())
        print(f"{width:3d} tanh units: max error " + ", ".join(f"{n} {e[width]:.4f}" for n, e in errors.items()))
    seconds = time.perf_counter() - started
    print(f"{len(widths)} widths x {len(TARGETS)} targets x {STARTS} starts, {steps} full-batch Adam steps each: "
          f"{seconds:.1f} s wall time")
    if figure is not None:
        draw(x, exact, fits, errors, widths, figure)
    return {"max_error": errors, "fits": fits, "x": x, "widths": tuple(widths), "seconds": seconds}


def draw(x, exact, fits: dict, errors: dict, widths, path) -> None:
    """One panel per target (the target and the fit at every width), and the max error against width."""
    plt = pyplot()
    colours = plt.cm.viridis(np.linspace(0.0, 0.85, len(widths)))
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    for k, (ax, name) in enumerate(zip(axes.flat, TARGETS)):
        ax.plot(x, exact[:, k], color="black", linewidth=3, alpha=0.35, label="target")
        for width, colour in zip(widths, colours):
            ax.plot(x, fits[name][width], color=colour, linewidth=1.2, label=f"{width} units")
        ax.set_title(f"{name} on [-pi, pi]")
        ax.set_xlabel("x")
    axes[1, 0].legend(fontsize=8, loc="lower right")  # the step's empty corner
    ax = axes[1, 1]
    for name, marker in zip(TARGETS, "osd"):
        ax.plot(widths, [errors[name][w] for w in widths], marker=marker, label=name)
    ax.set_xscale("log", base=2), ax.set_yscale("log")
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.set_xlabel("hidden units (tanh)")
    ax.set_ylabel("max |target - fit| on 4,001 points")
    ax.set_title("sup-norm error against width")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle("One hidden layer of tanh units: the error falls as the layer widens")
    save_figure(fig, path)


if __name__ == "__main__":
    main(steps=int(sys.argv[1]) if len(sys.argv) > 1 else 10_000, figure=FIGURE)
