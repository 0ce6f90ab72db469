"""A variational autoencoder on the digits with a 2-D latent (Kingma & Welling, 2014).

The encoder maps an 8x8 image (pixels in [0, 1]) to the mean and log-variance of a
Gaussian over z; z = mu + exp(log_var / 2) * eps with eps drawn inside the compiled step
(``sp.random_normal``: no noise array is passed in); the decoder maps z to 64 Bernoulli
logits. The loss is the negative ELBO per example: the pixels' binary cross-entropy summed
over the image plus the closed-form KL divergence to N(0, I), averaged over the batch.
The pixels are grey levels used as Bernoulli means (as Kingma & Welling did with MNIST), so
the reconstruction term cannot fall below the pixels' own entropy, 13.6 nats per test image.

After each epoch the test-set ELBO is measured through ``step.function`` with fixed noise
(the same draws every epoch, so the curve moves only with the parameters). The figure shows
the test images' mu coloured by digit and the images decoded from a grid of z at the
standard normal's quantiles.

    python examples/digits_vae.py [epochs]
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np

import compiler as sp
from compiler import nn
from runtime import datasets, fit
from runtime.figures import pyplot, save_figure

LATENT = 2
PIXELS = 64
FIGURE = Path(__file__).parent.parent / "docs" / "gallery" / "digits_vae.png"
TILE = 10  # an 8x8 image and its border in the decoded grid
EVAL_DRAWS = 10  # noise draws per test image in the ELBO estimate
EVAL_COUNTER = 1  # the fixed rng_counter of those draws


@dataclass
class VAE:
    """The graph's nodes: the posterior mean of input ``x``, the loss (negative ELBO) and its KL
    term, and the decoded images (sigmoid of the logits) of a latent Input ``z``."""
    mu: sp.Node
    loss: sp.Node
    kl: sp.Node
    decoded: sp.Node


def kl_to_standard_normal(mu, log_var):
    """KL(N(mu, exp(log_var)) || N(0, I)) per example, in closed form, averaged over the batch."""
    return sp.mean(-0.5 * sp.sum(1.0 + log_var - mu * mu - sp.exp(log_var), axis=1))


def bernoulli_reconstruction(logits, x):
    """-log p(x | z) summed over the pixels, averaged over the batch (the op averages over both)."""
    return PIXELS * sp.binary_cross_entropy_with_logits(logits, x)


def build(hidden: int = 128, noise=None) -> VAE:
    """The VAE's graph: encoder and decoder MLPs with two tanh layers each. noise: eps of shape
    (batch, 2); by default drawn in the compiled code, an Input lets a test fix it."""
    x = sp.Input("x", ("batch", PIXELS))
    with nn.names("encoder"):
        encoder = nn.Sequential(nn.Dense(hidden, activation="tanh"), nn.Dense(hidden, activation="tanh"))
        to_mu, to_log_var = nn.Dense(LATENT, name="mu"), nn.Dense(LATENT, name="log_var")
    with nn.names("decoder"):
        decoder = nn.Sequential(nn.Dense(hidden, activation="tanh"), nn.Dense(hidden, activation="tanh"),
                                nn.Dense(PIXELS, name="logits"))
    h = encoder(x)
    mu, log_var = to_mu(h), to_log_var(h)
    eps = sp.random_normal(("batch", LATENT)) if noise is None else noise
    logits = decoder(mu + sp.exp(0.5 * log_var) * eps)
    z = sp.Input("z", ("batch", LATENT))
    decoded = sp.sigmoid(decoder(z))  # the same Params: the decoder is shared
    kl = kl_to_standard_normal(mu, log_var)
    return VAE(mu, bernoulli_reconstruction(logits, x) + kl, kl, decoded)


def knn_accuracy(train_points, train_labels, test_points, test_labels, k: int = 5) -> float:
    """Accuracy of a k-nearest-neighbour vote (Euclidean) of the test points among the training points."""
    distances = ((test_points[:, None, :] - train_points[None]) ** 2).sum(axis=2)
    nearest = train_labels[np.argsort(distances, axis=1)[:, :k]]
    votes = np.stack([np.bincount(row, minlength=10) for row in nearest])
    return float(np.mean(votes.argmax(axis=1) == test_labels))


def quantile_grid(size: int) -> np.ndarray:
    """`size` points of the standard normal at evenly spaced probabilities in [0.05, 0.95]."""
    return np.array([NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, size)], dtype=np.float32)


def decode_grid(decode, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(mosaic of size x size decoded images, the grid's values): z2 grows upwards, z1 to the right.
    Each 8x8 image gets a blank border of one pixel, so digits that touch their edges stay apart."""
    values = quantile_grid(size)
    z1, z2 = np.meshgrid(values, values[::-1])
    images = decode(z=np.stack([z1.ravel(), z2.ravel()], axis=1)).reshape(size, size, 8, 8)
    tiles = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)))
    return tiles.transpose(0, 2, 1, 3).reshape(size * TILE, size * TILE), values


def plot(path, mu_test, y_test, mosaic, grid_values, summary: str) -> None:
    """Two panels: the test images' mu by digit, and the decoded grid; `summary` is the figure's title."""
    plt = pyplot()

    fig, (latent, grid) = plt.subplots(1, 2, figsize=(12, 5.6), dpi=100)
    points = latent.scatter(mu_test[:, 0], mu_test[:, 1], c=y_test, cmap="tab10", vmin=-0.5, vmax=9.5, s=12)
    colorbar = fig.colorbar(points, ax=latent, ticks=range(10))
    colorbar.set_label("digit")
    low, high = float(grid_values[0]), float(grid_values[-1])
    latent.add_patch(plt.Rectangle((low, low), high - low, high - low, fill=False, linestyle="--", color="grey"))
    latent.set(xlabel="$\\mu_1$", ylabel="$\\mu_2$", aspect="equal",
               title="Test images encoded: posterior mean $\\mu$\n(dashed: the decoded grid's extent)")
    grid.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    size = len(grid_values)
    ticks = [0, size // 2, size - 1]
    centres = [TILE * i + (TILE - 1) / 2 for i in ticks]
    grid.set_xticks(centres, [f"{grid_values[i]:.2f}" for i in ticks])
    grid.set_yticks(centres, [f"{grid_values[::-1][i]:.2f}" for i in ticks])
    grid.set(xlabel="$z_1$", ylabel="$z_2$",
             title=f"Decoded from a {size}x{size} grid of z\nat N(0, 1) quantiles 0.05 ... 0.95")
    fig.suptitle(summary)
    save_figure(fig, path)


def main(epochs: int = 300, batch_size: int = 32, figure=None, progress: bool = True, seed: int = 0,
         grid_size: int = 15) -> dict:
    x_train, y_train = datasets.load_digits("train")
    x_test, y_test = datasets.load_digits("test")
    vae = build()
    step = sp.compile_step(vae.loss, sp.optim.Adam(lr=1e-3), seed=seed)
    negative_elbo, encode, decode = step.function(vae.loss), step.function(vae.mu), step.function(vae.decoded)
    x_eval = np.tile(x_test, (EVAL_DRAWS, 1))  # each test image with EVAL_DRAWS draws of eps

    def validate():
        value = negative_elbo(x=x_eval, rng_seed=seed, rng_counter=EVAL_COUNTER)  # the same noise every epoch
        return {"test_elbo": -float(value)}

    history = fit(step, {"x": x_train}, epochs=epochs, batch_size=batch_size, validate=validate, seed=seed,
                  progress=progress)
    elbo = history["test_elbo"]
    mu_train, mu_test = encode(x=x_train), encode(x=x_test)
    accuracy = knn_accuracy(mu_train, y_train, mu_test, y_test)
    print(f"test ELBO {elbo[0]:.2f} after epoch 1 -> {elbo[-1]:.2f} nats per image after {epochs}; "
          f"5-NN accuracy in the 2-D latent (test mu among training mu): {accuracy:.1%}")
    if figure is not None:
        summary = (f"Variational autoencoder, 2-D latent, {epochs} epochs: test ELBO {elbo[-1]:.2f} nats per image, "
                   f"5-NN accuracy of the test $\\mu$ {accuracy:.0%}")
        plot(figure, mu_test, y_test, *decode_grid(decode, grid_size), summary)
    return {"test_elbo": elbo, "final_test_elbo": elbo[-1], "train_loss": history["loss"],
            "knn_accuracy": accuracy}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300, figure=FIGURE)
