"""Drawing the demo's figures: matplotlib without a display, PNG files written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Resolution of the report's PNG figures.
DPI = 120


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path) -> None:
    """Write ``fig`` as PNG through a temporary file renamed into place, and close it."""
    from .evaluate import atomic_output

    try:
        with atomic_output(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=DPI)
    finally:
        pyplot().close(fig)
