"""The digits VAE: its negative ELBO against a NumPy transcription, the test ELBO rising epoch by
epoch, a latent that keeps the classes apart (short runs), and its figure."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import compiler as sp
from runtime import datasets

EXAMPLE = Path(__file__).parent.parent / "examples" / "digits_vae.py"


def load():
    spec = importlib.util.spec_from_file_location("digits_vae", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def numpy_negative_elbo(params, x, eps):
    """(negative ELBO, KL), both per example averaged over the batch, written from the formulas:
    -log p(x|z) = -sum_pixels [x log sigmoid(l) + (1 - x) log(1 - sigmoid(l))] and
    KL = 1/2 sum_latent (mu^2 + sigma^2 - 1 - log sigma^2)."""
    def dense(h, name):
        return h @ params[f"{name}.weight"] + params[f"{name}.bias"]

    h = np.tanh(dense(np.tanh(dense(x, "encoder.dense")), "encoder.dense_1"))
    mu, log_var = dense(h, "encoder.mu"), dense(h, "encoder.log_var")
    z = mu + np.exp(0.5 * log_var) * eps
    logits = dense(np.tanh(dense(np.tanh(dense(z, "decoder.dense")), "decoder.dense_1")), "decoder.logits")
    log_p = x * -np.logaddexp(0, -logits) + (1 - x) * -np.logaddexp(0, logits)  # log sigmoid, log(1 - sigmoid)
    kl = 0.5 * np.sum(mu ** 2 + np.exp(log_var) - 1 - log_var, axis=1)
    return np.mean(-log_p.sum(axis=1) + kl), np.mean(kl)


def test_compiled_negative_elbo_matches_numpy_with_the_noise_fixed():
    vae_module = load()
    vae = vae_module.build(noise=sp.Input("eps", ("batch", 2)))
    shapes = {name: array.shape for name, array in sp.compile_step(vae.loss, sp.optim.Adam()).params.items()}
    rng = np.random.default_rng(0)
    # weights of std 1.5/sqrt(fan_in), biases of std 0.5: mu and log_var of order one, so each term counts
    params = {name: rng.normal(0, 1.5 / np.sqrt(shape[0]) if len(shape) == 2 else 0.5, shape).astype(np.float32)
              for name, shape in shapes.items()}
    x = datasets.load_digits("test")[0][:48]
    eps = rng.standard_normal((48, 2)).astype(np.float32)
    loss, kl = sp.compile([vae.loss, vae.kl])(x=x, eps=eps, **params)
    as64 = {name: array.astype(np.float64) for name, array in params.items()}
    expected_loss, expected_kl = numpy_negative_elbo(as64, x.astype(np.float64), eps.astype(np.float64))
    assert 0.5 < expected_kl < 20  # log-variances away from 0, and no term swamps the others
    assert float(kl) == pytest.approx(expected_kl, rel=1e-4)
    assert float(loss) == pytest.approx(expected_loss, rel=1e-4)


def test_test_elbo_is_deterministic_between_calls():
    vae_module = load()
    vae = vae_module.build()
    step = sp.compile_step(vae.loss, sp.optim.Adam(), seed=0)
    negative_elbo = step.function(vae.loss)
    x = datasets.load_digits("test")[0]
    first = negative_elbo(x=x, rng_seed=0, rng_counter=1)
    assert negative_elbo(x=x, rng_seed=0, rng_counter=1) == first
    assert negative_elbo(x=x, rng_seed=0, rng_counter=2) != first  # the noise is drawn, not zero


def test_elbo_rises_every_epoch_and_the_latent_separates_the_digits():
    result = load().main(epochs=60, progress=False)
    elbo = result["test_elbo"]
    assert all(later > earlier for earlier, later in zip(elbo[:5], elbo[1:5])), elbo[:5]
    assert result["final_test_elbo"] > elbo[0] + 2.5  # nats per image (3.1 measured)
    assert result["knn_accuracy"] > 0.65, result["knn_accuracy"]  # 77 % measured; chance is 10 %


def test_decoded_grid_and_figure(tmp_path):
    vae_module = load()
    def grey(z):  # a stand-in decoder: every image 0.5
        return np.full((len(z), 64), 0.5, np.float32)
    mosaic, values = vae_module.decode_grid(grey, 4)
    assert mosaic.shape == (40, 40) and values[0] == pytest.approx(-1.6449, abs=1e-4)
    assert mosaic[0].max() == 0 and mosaic[1, 1] == 0.5  # each image has a blank border
    pytest.importorskip("matplotlib")
    path = tmp_path / "vae.png"
    vae_module.main(epochs=2, figure=path, progress=False, grid_size=5)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
