"""Checkpoints: atomic writes, self-describing contents, retention, and finding the latest for resume.

Layout: ``<run>/checkpoints/step_00000500.pt``. A checkpoint is a plain dict of tensors and Python values (no pickled
code), loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from restore.files import atomic_output

_NAME = re.compile(r"^step_(\d{8,})\.pt$")


def checkpoint_path(folder: str | Path, step: int) -> Path:
    return Path(folder) / f"step_{step:08d}.pt"


def save_atomic(obj: Any, path: str | Path) -> Path:
    """torch.save to a temp file in the same folder, fsync, then rename: a crash never leaves a half-written file."""
    path = Path(path)
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)
    return path


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """(step, path) pairs sorted by step; temp files and other names are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(folder: str | Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def prune(folder: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints."""
    for _, p in list_checkpoints(folder)[:-keep]:
        p.unlink(missing_ok=True)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated / foreign file
        raise ValueError(f"cannot load checkpoint {path}: {err}") from None
