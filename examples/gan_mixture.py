"""A GAN learns a ring of eight Gaussians: two compiled steps share parameter buffers.

The data is the standard test of mode collapse (the "Unrolled GAN" paper's ring): eight Gaussians
of standard deviation 0.05 centred on a circle of radius 2, drawn in NumPy. The generator maps 16
standard normal numbers to a point in the plane. Both networks are MLPs with two hidden layers of
128 LeakyReLU(0.2) units, trained with Adam (betas 0.5, 0.999; the rate annealed from 1e-3 by a
cosine) on the non-saturating losses, one discriminator step then one generator step per round.

The noise is never passed in: ``sp.random_normal(("batch", 16))`` is a leaf of the graph, drawn
inside each compiled step (and the sampling function) by the counter-based generator, a new draw
every step; the generator's step, whose only input is noise, takes the batch size by name. The
discriminator's step trains only its parameters and reads the generator's from the shared buffers;
the generator's step trains only the generator, its gradient flowing back through the discriminator.

Mode collapse is the known failure, and this setup shows it: with a discriminator that judges one
sample at a time (``main(pack=1)``) the generator ends on 2 of the 8 modes in two of three seeds.
So the discriminator judges two samples side by side (PacGAN, Lin et al. 2018): a real pair comes
from two modes at random, while a collapsed generator's pairs keep landing on the same few modes,
which the discriminator sees and the generator is pushed away from.

At the end, a sample is "high quality" when it lies within three standard deviations of its
nearest mode, and a mode is covered when its high-quality samples are at least a quarter of its
fair share (1/8) of all samples.

    python examples/gan_mixture.py [steps]      # writes docs/gallery/gan_mixture.png
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import compiler as sp
from compiler import nn, optim
from compiler.schedules import Cosine
from runtime.figures import pyplot, save_figure

MODES, RADIUS, STD = 8, 2.0, 0.05
NOISE = 16  # numbers per generator input
PACK = 2  # samples the discriminator judges at once
FINAL_LR = 0.05  # the learning rate at the end, as a fraction of the initial one
SAMPLES = 2048  # drawn for each snapshot and for the metrics
FIGURE = Path(__file__).parent.parent / "docs" / "gallery" / "gan_mixture.png"


def mode_centres() -> np.ndarray:
    """(8, 2): the modes, evenly spaced on the circle of radius 2."""
    angles = 2 * np.pi * np.arange(MODES) / MODES
    return RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def real_samples(count: int, rng) -> np.ndarray:
    """(count, 2) float32 drawn from the mixture, each mode equally likely."""
    centres = mode_centres()[rng.integers(0, MODES, count)]
    return (centres + STD * rng.standard_normal((count, 2))).astype(np.float32)


def quality(samples: np.ndarray) -> dict:
    """Modes covered and the fraction of high-quality samples (within 3 std of the nearest mode)."""
    distances = np.linalg.norm(samples[:, None, :] - mode_centres()[None], axis=2)
    nearest, close = distances.argmin(axis=1), distances.min(axis=1) < 3 * STD
    per_mode = np.bincount(nearest[close], minlength=MODES)
    covered = per_mode >= len(samples) / MODES / 4
    return {"modes": int(covered.sum()), "high_quality": float(close.mean()), "per_mode": per_mode}


def leaky(t):
    """LeakyReLU with slope 0.2, the usual choice in GANs: no unit of the discriminator goes silent,
    so the generator's gradient through it never vanishes."""
    return sp.leaky_relu(t, 0.2)


def mlp(prefix: str, hidden: int, outputs: int) -> nn.Sequential:
    """Two hidden layers; the prefix keeps the generator's and the discriminator's Params apart."""
    with nn.names(prefix):
        return nn.Sequential(nn.Dense(hidden, activation=leaky), nn.Dense(hidden, activation=leaky),
                             nn.Dense(outputs))


def build(hidden: int = 128, pack: int = PACK):
    """(sample, d_loss, g_loss, generator, discriminator). The discriminator scores `pack` samples side by
    side (PacGAN): real ones come in as rows of `pack` points, fake ones are `pack` independent draws of
    the generator. `sample` is one draw; every noise leaf is drawn inside the compiled code."""
    generator, discriminator = mlp("generator", hidden, 2), mlp("discriminator", hidden, 1)
    fakes = [generator(sp.random_normal(("batch", NOISE))) for _ in range(pack)]
    fake = fakes[0] if pack == 1 else sp.concat(fakes, axis=1)
    real = sp.Input("real", ("batch", 2 * pack))
    d_loss = (sp.binary_cross_entropy_with_logits(discriminator(real), 1.0)
              + sp.binary_cross_entropy_with_logits(discriminator(fake), 0.0))
    g_loss = sp.binary_cross_entropy_with_logits(discriminator(fake), 1.0)  # non-saturating
    return fakes[0], d_loss, g_loss, generator, discriminator


def snapshot_steps(steps: int, panels: int) -> list:
    """The steps after which samples are kept for the figure: 0, then roughly doubling to `steps`."""
    points = np.geomspace(steps / 2 ** (panels - 2), steps, panels - 1)
    return [0] + sorted({int(round(p)) for p in points})


def compile_steps(hidden: int, pack: int, lr: float, steps: int, seed: int):
    """(d_step, g_step, sample): two steps sharing the parameter buffers, each training its own network,
    with Adam's rate annealed to FINAL_LR of `lr` over the run (the samples settle onto the modes)."""
    sample, d_loss, g_loss, generator, discriminator = build(hidden, pack)
    schedule = Cosine(lr, steps, lr * FINAL_LR)
    adam = optim.Adam(lr=lr, betas=(0.5, 0.999))
    d_step = sp.compile_step(d_loss, adam, params=discriminator.params, seed=2 * seed, schedule=schedule)
    g_step = sp.compile_step(g_loss, adam, params=generator.params, share=d_step, seed=2 * seed + 1,
                             schedule=schedule)
    return d_step, g_step, g_step.function(sample)


def main(steps: int = 15000, batch: int = 256, figure=FIGURE, seed: int = 0, progress: bool = True,
         pack: int = PACK, lr: float = 1e-3, hidden: int = 128, panels: int = 6) -> dict:
    """Train, print and return the modes covered, the high-quality fraction and the snapshots
    ({step: generated samples}); draw the figure when `figure` is a path."""
    started = time.perf_counter()
    d_step, g_step, sample = compile_steps(hidden, pack, lr, steps, seed)
    compiled = time.perf_counter() - started
    rng = np.random.default_rng(seed)
    keep = snapshot_steps(steps, panels)

    def generated():  # one seed and counter for every snapshot: the panels follow the same noise
        return sample(batch=SAMPLES, rng_seed=10_000 + seed, rng_counter=1)

    snapshots = {0: generated()}
    rounds = range(1, steps + 1)
    if progress:
        from tqdm import tqdm
        rounds = tqdm(rounds, unit="step", desc="GAN", dynamic_ncols=True, mininterval=0.5)
    for step in rounds:  # a step: one discriminator step, then one generator step
        d_step(real=real_samples(batch * pack, rng).reshape(batch, 2 * pack))
        g_step(batch=batch)
        if step in keep:
            snapshots[step] = generated()
    result = quality(snapshots[steps])
    seconds = time.perf_counter() - started
    print(f"GAN (pack {pack}) on 8 Gaussians after {steps} steps: {result['modes']}/8 modes covered, "
          f"{result['high_quality']:.1%} high-quality samples (within 3 std of a mode); "
          f"{seconds:.1f} s wall time ({compiled:.1f} s compiling)")
    if figure is not None:
        draw(snapshots, real_samples(SAMPLES, rng), figure)
    return {**result, "snapshots": snapshots, "seconds": seconds, "compile_seconds": compiled}


def draw(snapshots: dict, real: np.ndarray, path) -> None:
    """One panel per snapshot: generated samples over faint real ones, mode centres marked."""
    plt = pyplot()
    from matplotlib.patches import Circle
    centres = mode_centres()
    columns = -(-len(snapshots) // 2)
    fig, axes = plt.subplots(2, columns, figsize=(3.2 * columns, 6.8), sharex=True, sharey=True, squeeze=False)
    for ax in axes.flat[len(snapshots):]:
        ax.set_visible(False)
    for ax, (step, samples) in zip(axes.flat, sorted(snapshots.items())):
        q = quality(samples)
        ax.scatter(real[:, 0], real[:, 1], s=6, color="0.8", label="real samples")
        ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5, color="tab:blue", label="generated")
        ax.scatter(centres[:, 0], centres[:, 1], s=20, marker="+", color="tab:red", linewidths=0.8,
                   label="mode centre;\ncircle: 3 std")
        for centre in centres:
            ax.add_patch(Circle(centre, 3 * STD, fill=False, color="tab:red", linewidth=0.6))
        ax.set_title(f"step {step}: {q['modes']}/8 modes, {q['high_quality']:.0%} high quality", fontsize=9)
        ax.set_xlim(-2.8, 2.8), ax.set_ylim(-2.8, 2.8), ax.set_aspect("equal")
    axes[0, 0].legend(loc="lower left", fontsize=7, markerscale=2, framealpha=0.9)
    fig.suptitle("GAN on a ring of 8 Gaussians (std 0.05): generated samples during training", fontsize=11)
    save_figure(fig, path)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15000)
