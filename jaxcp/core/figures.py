"""Figures: matplotlib without a display, saved as PNG files atomically."""

from __future__ import annotations

import io
from pathlib import Path

from jaxcp.core import atomic


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (imported on first use: it is slow)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | Path, dpi: int = 110) -> None:
    """Write `fig` to `path` as PNG (atomically) and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    atomic.write_bytes(path, buffer.getvalue())
