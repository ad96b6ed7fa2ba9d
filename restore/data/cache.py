"""A bounded, per-process cache of decoded training images, kept as their integer samples.

Decoding dominates an SR item's cost (a 2560x1600 JPEG takes ~240 ms on a 2-core CPU, the crop taken from it a few
microseconds), and a training run reads every image hundreds of times. Each DataLoader worker is a process with
its own copy of the dataset, so each worker decodes an image once and keeps it: memory is up to
``num_workers x cache_mb`` (plus the main process's when ``num_workers`` is 0).

Past the bound nothing is evicted: the images already cached stay, and every image that did not fit is decoded
again each time it is read (exactly as without a cache). Evicting would make a run that cycles through more images
than fit decode on every read anyway, and would churn memory. A warning says once per process that the bound was
reached and how much more memory would hold every image.

A file is read once per process: one changed on disk during training is seen by processes started after the
change (a resumed run), not by the running ones.

Samples are stored as uint8 (8-bit sources) or uint16 (16-bit), a quarter or half of float32, and converted back
with the same float32 division :func:`restore.data.io.read_image` uses, so cached and uncached items are equal
bit for bit.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from restore.data.io import read_image
from restore.registry import OptionValueError


def check_cache_mb(value: float, key: str = "cache_mb") -> float:
    """Validate a ``cache_mb`` option: a number >= 0 (0 turns the cache off)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise OptionValueError(key, f"must be a number of megabytes >= 0 (0: no cache), got {value!r}")
    return float(value)


def to_integers(rgb: np.ndarray, bit_depth: int) -> np.ndarray:
    """(H, W, C) float32 samples that :func:`restore.data.io.read_image` made from ``bit_depth``-bit integers back
    to those integers (uint8 or uint16). Exact: float32(k) / (2^b - 1) is within 2^-24 relative of k / (2^b - 1)."""
    if bit_depth not in (8, 16):
        raise ValueError(f"only 8- and 16-bit images can be cached, got {bit_depth} bits")
    top = np.float32(2**bit_depth - 1)
    return np.rint(rgb * top).astype(np.uint8 if bit_depth == 8 else np.uint16)


def to_unit(samples: np.ndarray) -> np.ndarray:
    """Integer samples from :func:`to_integers` to float32 in [0, 1], bit-identical to ``read_image(...).rgb``."""
    top = np.float32(255.0 if samples.dtype == np.uint8 else 65535.0)
    return samples.astype(np.float32) / top


def read_integers(path: Any) -> np.ndarray:
    """Decode ``path`` as :func:`restore.data.io.read_image` does, kept as its uint8/uint16 (H, W, 3) samples."""
    img = read_image(path)
    return to_integers(img.rgb, img.bit_depth)


class DecodedCache:
    """``get(key, decode)`` returns the cached value for ``key`` or calls ``decode()`` and keeps its result while the
    total stays within ``limit_mb`` (module doc). Values are numpy arrays or tuples/dicts of them."""

    def __init__(self, limit_mb: float, what: str = "training images", option: str = "cache_mb"):
        self.limit = int(check_cache_mb(limit_mb, option) * 2**20)
        self.what, self.option = what, option
        self.used = 0
        self.missed_bytes = 0  # bytes of images that did not fit (first sight only)
        self._store: dict[Hashable, Any] = {}
        self._refused: set[Hashable] = set()
        self._warned = False

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._store

    def __getstate__(self) -> dict[str, Any]:
        """Pickled copies (spawned DataLoader workers) start empty: each process fills its own."""
        state = dict(self.__dict__)
        state.update(used=0, missed_bytes=0, _store={}, _refused=set(), _warned=False)
        return state

    def get(self, key: Hashable, decode: Callable[[], Any]) -> Any:
        if key in self._store:
            return self._store[key]
        value = decode()
        if self.limit <= 0:
            return value
        size = _nbytes(value)
        if self.used + size <= self.limit:
            self._store[key] = value
            self.used += size
        elif key not in self._refused:
            self._refused.add(key)
            self.missed_bytes += size
            if not self._warned:
                self._warned = True
                warnings.warn(f"the decoded-image cache of {self.what} is full ({self.used / 2**20:.0f} MB of "
                              f"{self.option} {self.limit / 2**20:.0f}); images that do not fit are decoded every "
                              f"time they are read. Raise {self.option} to keep them all (each DataLoader worker "
                              "holds its own cache)", RuntimeWarning, stacklevel=2)
        return value


def _nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    return 0
