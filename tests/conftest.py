"""Shared fixtures. Real sample data lives in ../shared beside the checkout (never in the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("RESTORE_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    """The ../shared folder (data/, weights/); tests that need it skip with a clear message when it is absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"shared data folder not found at {SHARED} (set RESTORE_SHARED to its path)")
    return SHARED
