"""Published models as callables for the CLI and the Gradio app: load once, call many times.

A pipeline is built from a weights file (its metadata describes the architecture) and, when present, its model card
(``weights/<name>.yml``: a human name, metrics, data). Each call takes and returns plain numpy images, so front ends
need no model code: ``(H, W, 3)`` float32 RGB in [0, 1], label maps as ``(H, W)`` integer ids. Community model files
(ESRGAN, Real-ESRGAN, SwinIR, ... without restore's metadata: :mod:`restore.engine.community`) are SR pipelines.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restore.data.io import Image
from restore.devices import choose_device


@dataclass
class Pipeline:
    """A loaded generator with its description (``desc``: weights metadata) and card (or None)."""

    path: Path
    model: torch.nn.Module
    desc: dict[str, Any]
    card: dict[str, Any] | None
    device: torch.device
    half: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def task(self) -> str:
        return self.desc.get("task", "sr")

    @property
    def name(self) -> str:
        return (self.card or {}).get("name") or self.path.stem

    def describe(self) -> str:
        where = f"{self.device.type}{' fp16' if self.half else ''}"
        return f"{self.name} ({self.desc['arch']}, {where})"


class SRPipeline(Pipeline):
    def __call__(self, rgb: np.ndarray, outscale: float | None = None, tile: int | None = 256,
                 alpha: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(H, W, 3) -> (sH, sW, 3) (and the alpha resized alongside)."""
        from restore.inference.upscale import upscale_image

        scale = int(self.desc["kwargs"].get("scale", 4))
        with self.lock, torch.no_grad():
            out = upscale_image(self.model, Image(rgb=rgb.astype(np.float32), alpha=alpha, bit_depth=8, grey=False),
                                scale, outscale=outscale, tile=tile, device=self.device, half=self.half)
        return out.rgb, out.alpha


class SPADEPipeline(Pipeline):
    @property
    def class_names(self) -> list[str]:
        return list(self.desc["class_names"])

    @property
    def palette(self) -> np.ndarray:
        return np.asarray(self.desc["palette"], dtype=np.uint8)

    def ids_from_colours(self, rgb: np.ndarray) -> np.ndarray:
        """A colour-coded label map (H, W, 3) float in [0, 1] or uint8 -> ids (unknown colours are an error)."""
        from restore.data.labels import decode_color_map

        u8 = rgb if rgb.dtype == np.uint8 else np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
        return decode_color_map(u8[..., :3], self.palette)

    def __call__(self, ids: np.ndarray, instance: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
        from restore.inference.translate import spade_generate

        with self.lock:
            return spade_generate(self.model, self.desc, ids, instance, seed=seed)


class StarGANPipeline(Pipeline):
    classifier: torch.nn.Module | None = None

    @property
    def attribute_names(self) -> list[str]:
        return list(self.desc["attribute_names"])

    @property
    def groups(self) -> list[list[int]]:
        return [list(g) for g in self.desc.get("exclusive_groups", [])]

    def __call__(self, rgb: np.ndarray, settings: dict[str, int]) -> np.ndarray:
        """Change the attributes in ``settings`` (name -> 0/1); the rest keep the photo's values (read by the
        attached classifier) and the output has the input's size."""
        from restore.inference.translate import (
            classify_attributes,
            parse_attribute_settings,
            stargan_translate,
            target_vector,
        )

        size = int(self.desc.get("image_size") or 128)
        chosen = parse_attribute_settings([f"{k}={int(v)}" for k, v in settings.items()], self.attribute_names)
        with self.lock:
            source = classify_attributes(self.classifier, rgb, size) if self.classifier is not None else None
            target = target_vector(source, chosen, self.attribute_names, self.groups)
            return stargan_translate(self.model, rgb, target, size)


KINDS = {"sr": SRPipeline, "spade": SPADEPipeline, "stargan": StarGANPipeline}


def load_pipeline(path: str | Path, device: str | torch.device = "auto", half: bool = False) -> Pipeline:
    """The pipeline for a weights file (task from its metadata; a community file is an SR model); ``half`` = fp16
    on CUDA only, and only for models that support it (a community model that does not runs in fp32, said once)."""
    from restore.engine.weights import load_generator
    from restore.hub.cards import read_card

    path = Path(path)
    dev = choose_device(device)
    model, desc = load_generator(path, dev)
    task = desc.get("task", "sr")
    if task not in KINDS:
        raise ValueError(f"{path}: a {task} model is not an image pipeline (tasks: {', '.join(KINDS)})")
    use_half = bool(half and dev.type == "cuda")
    if use_half and not (desc.get("hints") or {}).get("fp16", True):
        print(f"note: {path.name}: {desc['arch']} does not support fp16 (spandrel); it runs in fp32", file=sys.stderr)
        use_half = False
    if use_half:
        model = model.half()
    card_path = path.with_suffix(".yml")
    card = read_card(card_path) if card_path.is_file() else None
    return KINDS[task](path=path, model=model, desc=desc, card=card, device=dev, half=use_half)


COMMUNITY_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")
"""Model files a weights folder may hold without a card: community models (and restore's own files)."""


def uncarded(folder: str | Path = "weights") -> list[Path]:
    """Model files in ``folder`` that no card names (community models dropped into a demo's weights folder), by
    name; what each holds is known once it is loaded (:func:`load_pipeline`)."""
    from restore.hub.cards import read_card

    folder = Path(folder)
    named = set()
    for card_path in folder.glob("*.yml"):
        try:
            named.add(str(read_card(card_path)["file"]))
        except (ValueError, KeyError, TypeError):
            named.add(card_path.with_suffix(".safetensors").name)  # a broken card still claims its weights
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in COMMUNITY_SUFFIXES
                  and p.name not in named) if folder.is_dir() else []


def published(folder: str | Path = "weights") -> dict[str, list[Path]]:
    """Weights files with a card in ``folder``, by task (the card's task), sorted by name."""
    from restore.hub.cards import read_card

    out: dict[str, list[Path]] = {}
    for card_path in sorted(Path(folder).glob("*.yml")):
        try:
            card = read_card(card_path)
        except ValueError:
            continue
        weights = card_path.parent / card["file"]
        if weights.is_file():
            out.setdefault(card["task"], []).append(weights)
    return out
