"""Model cards: ``weights/<name>.yml`` next to ``weights/<name>.safetensors``.

A card says what a published generator is and how to reproduce it: task, architecture and options, critic norm,
data (source, count, license), training (steps, batch, hardware, where it ran, wall time, the exact command),
measured metrics, and the sha256 of the weights file, which :func:`verify_card` checks. ``restore publish`` writes
both files from a finished run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from restore.files import atomic_write_text, sha256_file

REQUIRED = ("name", "file", "sha256", "task", "architecture", "data", "training", "metrics")


def read_card(path: str | Path) -> dict[str, Any]:
    """A card as a dict; missing keys are an error naming the file and the keys."""
    path = Path(path)
    try:
        card = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read the model card: {err}") from None
    if not isinstance(card, dict):
        raise ValueError(f"{path}: a model card must be a mapping of keys")
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise ValueError(f"{path}: model card lacks {', '.join(missing)}")
    return card


def write_card(path: str | Path, card: dict[str, Any]) -> Path:
    """Write atomically (a half-written card would fail verification later)."""
    path = Path(path)
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise ValueError(f"model card for {path.name} lacks {', '.join(missing)}")
    return atomic_write_text(path, yaml.safe_dump(card, sort_keys=False, allow_unicode=True))


@dataclass
class CardCheck:
    card: Path
    problems: list[str]


def verify_card(card_path: str | Path, load: bool = True) -> CardCheck:
    """Problems with one card: unreadable, weights file missing, sha256 mismatch, architecture (or stored dtype)
    differing from the weights' own metadata, or (``load``) weights that do not load into their architecture."""
    card_path = Path(card_path)
    try:
        card = read_card(card_path)
    except ValueError as err:
        return CardCheck(card_path, [str(err)])
    problems = []
    weights = card_path.parent / card["file"]
    if not weights.is_file():
        return CardCheck(card_path, [f"{card_path}: weights file {weights} not found"])
    digest = sha256_file(weights)
    if digest != card["sha256"]:
        problems.append(f"{card_path}: sha256 {card['sha256']} does not match {weights.name} ({digest})")
    if load:
        from restore.engine.weights import load_generator

        try:
            _, desc = load_generator(weights)
        except (ValueError, KeyError) as err:
            problems.append(f"{card_path}: {weights.name} does not load: {err}")
        else:
            arch = card["architecture"]
            if desc["arch"] != arch.get("arch") or desc["kwargs"] != arch.get("kwargs"):
                problems.append(f"{card_path}: architecture {arch} differs from the weights' metadata "
                                f"{ {'arch': desc['arch'], 'kwargs': desc['kwargs']} }")
            if card.get("dtype") and card["dtype"] != desc.get("dtype"):
                problems.append(f"{card_path}: dtype {card['dtype']} but {weights.name} stores {desc.get('dtype')}")
            if desc.get("task") != card["task"]:
                problems.append(f"{card_path}: task {card['task']} but the weights say {desc.get('task')}")
            if card.get("palette"):
                problems += _palette_problems(card_path, card["palette"], desc)
    return CardCheck(card_path, problems)


def _palette_problems(card_path: Path, name: str, desc: dict[str, Any]) -> list[str]:
    """The palette file a card names must exist and agree with the colours and class names inside the weights."""
    import numpy as np

    from restore.data.labels import read_palette

    path = card_path.parent / name
    try:
        colours, names = read_palette(path)
    except (FileNotFoundError, ValueError) as err:
        return [f"{card_path}: palette: {err}"]
    if "palette" not in desc:
        return [f"{card_path}: names palette {name} but the weights carry no palette"]
    if not np.array_equal(colours, np.asarray(desc["palette"], dtype=np.uint8)):
        return [f"{card_path}: palette {name} differs from the colours stored in the weights"]
    if desc.get("class_names") and list(names) != list(desc["class_names"]):
        return [f"{card_path}: palette {name} class names differ from the weights' ({desc['class_names']})"]
    return []


def verify_folder(folder: str | Path, load: bool = True) -> list[str]:
    """Every weights file has a card and every card verifies; returns the problems (empty = all good)."""
    folder = Path(folder)
    problems = []
    cards = sorted(folder.glob("*.yml"))
    carded = set()
    for card_path in cards:
        check = verify_card(card_path, load=load)
        problems += check.problems
        try:
            carded.add(read_card(card_path)["file"])
        except ValueError:
            pass
    for weights in sorted(folder.glob("*.safetensors")):
        if weights.name not in carded:
            problems.append(f"{weights}: no model card names it (write {weights.with_suffix('.yml').name})")
    return problems


def make_card(name: str, weights: Path, desc: dict[str, Any], config: dict[str, Any], data: dict[str, Any],
              training: dict[str, Any], metrics: dict[str, Any], notes: str = "") -> dict[str, Any]:
    """Assemble a card from a run's resolved options and the published file's own description."""
    critic = config.get("critic")
    card: dict[str, Any] = {
        "name": name,
        "file": weights.name,
        "sha256": sha256_file(weights),
        "dtype": desc.get("dtype", "fp32"),
        "task": desc.get("task", config.get("task")),
        "architecture": {"arch": desc["arch"], "kwargs": desc["kwargs"]},
        "critic": None if critic is None else {"arch": critic.get("arch"), "norm": critic.get("norm"),
                                               "options": {k: v for k, v in critic.items()
                                                           if k not in ("arch", "norm")}},
        "losses": config.get("losses"),
        "data": data,
        "training": training,
        "metrics": metrics,
    }
    if notes:
        card["notes"] = notes
    return card
