"""Figures written to files: matplotlib's pyplot on a backend that needs no display, and one way
to save a figure (its directory made, laid out, written, closed). matplotlib is the optional
``plot`` extra, imported only here and only when a figure is drawn."""
from __future__ import annotations

from pathlib import Path

PLOT_HINT = 'drawing figures needs matplotlib, an optional extra: pip install "symprop[plot]"'


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, never a window)."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(PLOT_HINT) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(figure, path, dpi: int = 100):
    """Lay out `figure`, write it to `path` (its directory made if missing; format from the suffix)
    and close it. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    pyplot().close(figure)
    return path
