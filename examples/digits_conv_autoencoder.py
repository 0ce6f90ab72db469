"""A convolutional autoencoder on the 8x8 digits, from compiler.nn layers as a torch user writes them.

The encoder convolves, normalises by groups of channels (GroupNorm: no batch statistics, so a
batch of one encodes as a batch of many) and pools twice down to a 2x2 map of 8 channels, a code
of 32 numbers; the decoder's transposed convolution with stride 2 doubles it to 4x4, a bilinear
upsampling to 8x8, and a convolution paints the image. Trained with Adam on the reconstruction's mean squared error.
Prints the error before and after training and how well the codes separate the classes.

    python examples/digits_conv_autoencoder.py [epochs]
"""
from __future__ import annotations

import sys
from pathlib import Path

import compiler as sp
from compiler import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # trained and measured as the dense autoencoder
from digits_autoencoder import train_autoencoder  # noqa: E402


def build():
    x = sp.Input("x", ("batch", 1, 8, 8))
    with nn.names():
        encoder = nn.Sequential(nn.Conv2d(16, 3, padding=1, activation="relu"), nn.GroupNorm(4), nn.MaxPool2d(2),
                                nn.Conv2d(8, 3, padding=1, activation="relu"), nn.MaxPool2d(2))
        decoder = nn.Sequential(nn.ConvTranspose2d(16, 2, stride=2, activation="relu"),
                                nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(1, 3, padding=1))
        code = encoder(x)                                   # (batch, 8, 2, 2)
        reconstruction = sp.sigmoid(decoder(code))          # (batch, 1, 8, 8)
    return x, sp.flatten(code), sp.mse(reconstruction, x)


def main(epochs: int = 20, progress: bool = True) -> dict:
    return train_autoencoder(build, epochs, shape=(1, 8, 8), progress=progress)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
