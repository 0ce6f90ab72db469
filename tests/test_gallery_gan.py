"""The GAN on the ring of eight Gaussians covers the modes with sharp samples (a short run)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).parent.parent / "examples" / "gan_mixture.py"


def load():
    spec = importlib.util.spec_from_file_location("gan_mixture", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quality_counts_modes_and_close_samples():
    gan = load()
    centres = gan.mode_centres()
    assert np.allclose(np.linalg.norm(centres, axis=1), 2.0)
    on_three = np.repeat(centres[:3], 100, axis=0)  # 300 samples on three modes, 100 far from all
    samples = np.concatenate([on_three, np.zeros((100, 2))])
    result = gan.quality(samples)
    assert result["modes"] == 3 and result["high_quality"] == pytest.approx(0.75)


def test_gan_covers_the_modes_with_high_quality_samples(tmp_path):
    result = load().main(steps=STEPS, figure=None, progress=False)
    assert result["modes"] >= 7, result["per_mode"]
    assert result["high_quality"] >= 0.8
    assert sorted(result["snapshots"])[0] == 0 and sorted(result["snapshots"])[-1] == STEPS


def test_figure_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "gan.png"
    load().main(steps=20, figure=path, progress=False, panels=4)
    assert path.stat().st_size > 10_000
