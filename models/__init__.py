"""The bundled model files (TOML), shipped as package data of ``netderive.models`` so that
``netderive demo`` and ``netderive.load("weight_decay")`` work from any folder.

Holds data and the two functions that find it; imports nothing of netderive."""

from importlib import resources
from pathlib import Path


def bundled_model_paths() -> list[Path]:
    """Paths of every bundled ``*.toml`` model, sorted by name."""
    root = resources.files(__name__)
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".toml"))


def bundled_model(name: str) -> Path:
    """Path of the bundled model ``name`` (with or without ``.toml``)."""
    stem = name.removesuffix(".toml")
    for path in bundled_model_paths():
        if path.stem == stem:
            return path
    raise FileNotFoundError(stem)
