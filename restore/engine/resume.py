"""What may change between the recipe a run's checkpoints were trained with and the recipe it is resumed with.

A resumed run keeps the state it was trained with (weights, optimizer and scheduler state, the norm's buffers), so a
changed learning rate, architecture, norm, loss or data set would be silently ignored or fail deep inside
``load_state_dict``; yet ``options.yml`` would record the new values. Such changes are refused in one line that
names them. Options that only say how and where the run executes (logging, validation, checkpoint cadence, data
paths and workers, speed options, the time limit) may change; they apply from the resumed step, and that is said.
"""

from __future__ import annotations

from typing import Any

#: option paths (prefixes) that may differ on resume: they change how the run executes, not what it trains
MAY_CHANGE = (
    "path.", "val.", "checkpoint.", "data.num_workers", "train.log_every", "train.time_limit",
    "train.amp", "train.channels_last", "train.compile", "train.compile_mode", "train.tf32", "train.optimizer_impl",
    "train.pretrained_generator",  # used only to initialise a fresh run
    "losses.perceptual.weights", "losses.perceptual.fallback_weights", "losses.perceptual.download",
)
#: option names (the last part of a path) that are data locations, which move with the machine
LOCATIONS = ("root", "roots", "labels", "attributes_file", "cache_mb")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr_g": 1e-4}}`` -> ``{"train.lr_g": 1e-4}`` (lists stay values)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def _may_change(key: str) -> bool:
    return key.startswith(MAY_CHANGE) or (key.startswith("data.") and key.rsplit(".", 1)[-1] in LOCATIONS)


def recipe_changes(stored: dict[str, Any], current: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(refused, applied) differences between a checkpoint's recipe and the one given now, each as
    ``key: old -> new`` (``(absent)`` for a missing key)."""
    old, new = flatten({k: v for k, v in stored.items() if k != "source"}), \
        flatten({k: v for k, v in current.items() if k != "source"})
    refused, applied = [], []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "(absent)"), new.get(key, "(absent)")
        if a == b:
            continue
        text = f"{key}: {a!r} -> {b!r}"
        (applied if _may_change(key) else refused).append(text)
    return refused, applied
