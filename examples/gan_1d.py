"""A tiny GAN: two compiled steps sharing parameter buffers (compile_step(..., share=...)).

The generator maps noise z ~ N(0, 1) to samples; the discriminator learns to tell them from
real data ~ N(3, 0.5). The discriminator's step trains only its parameters and reads the
generator's from the shared buffers; the generator's step does the reverse.

    python examples/gan_1d.py [rounds]
"""
from __future__ import annotations

import sys

import numpy as np

import compiler as sp
from compiler import optim


def discriminator(x, params):
    w1, c1, w2, c2 = params
    return sp.tanh(x @ w1 + c1) @ w2 + c2


def build(hidden: int = 16):
    real = sp.Input("real", ("batch", 1))
    z = sp.Input("z", ("batch", 1))
    g_params = [sp.Param("g_w1", (1, hidden)), sp.Param("g_c1", (hidden,), init="zeros"),
                sp.Param("g_w2", (hidden, 1)), sp.Param("g_c2", (1,), init="zeros")]
    d_params = [sp.Param("d_w1", (1, hidden)), sp.Param("d_c1", (hidden,), init="zeros"),
                sp.Param("d_w2", (hidden, 1)), sp.Param("d_c2", (1,), init="zeros")]
    fake = discriminator(z, g_params)  # the generator has the same shape of network
    d_loss = (sp.binary_cross_entropy_with_logits(discriminator(real, d_params), 1.0)
              + sp.binary_cross_entropy_with_logits(discriminator(fake, d_params), 0.0))
    g_loss = sp.binary_cross_entropy_with_logits(discriminator(fake, d_params), 1.0)
    return fake, d_loss, g_loss, d_params, g_params


def main(rounds: int = 1500, batch: int = 64, seed: int = 0) -> dict:
    fake, d_loss, g_loss, d_params, g_params = build()
    d_step = sp.compile_step(d_loss, optim.Adam(lr=2e-3, betas=(0.5, 0.999)), params=d_params, seed=seed)
    g_step = sp.compile_step(g_loss, optim.Adam(lr=2e-3, betas=(0.5, 0.999)), params=g_params, share=d_step)
    sample = g_step.function(fake)
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        real = rng.normal(3.0, 0.5, (batch, 1)).astype(np.float32)
        d_step(real=real, z=rng.standard_normal((batch, 1)).astype(np.float32))
        g_step(z=rng.standard_normal((batch, 1)).astype(np.float32))
    samples = sample(z=rng.standard_normal((4096, 1)).astype(np.float32))
    mean, std = float(samples.mean()), float(samples.std())
    print(f"generated samples: mean {mean:.3f} (real 3.0), std {std:.3f} (real 0.5)")
    return {"mean": mean, "std": std}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1500)
