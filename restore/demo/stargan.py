"""The attribute-transfer tab: change chosen attributes of an uploaded face with a published StarGAN model."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gradio as gr

from restore.demo.common import (
    KEEP,
    DemoContext,
    file_stem,
    grey_like,
    pick,
    read_upload,
    refuse_large,
    status_line,
    to_uint8,
    write_png,
)
from restore.hub.pipelines import StarGANPipeline


@dataclass(frozen=True)
class AttributeControl:
    """One radio of the attribute tab: an exclusive group (choose one member or keep) or a single attribute."""

    label: str
    choices: tuple[tuple[str, str], ...]  # (shown, value)
    value: str
    names: tuple[str, ...]
    group: bool


def _group_label(names: list[str]) -> str:
    parts = [n.split("_") for n in names]
    if all(len(p) > 1 for p in parts):
        if len({p[0] for p in parts}) == 1:
            return parts[0][0]
        if len({p[-1] for p in parts}) == 1:
            return parts[0][-1]
    return ""


def attribute_controls(pipe: StarGANPipeline) -> list[AttributeControl]:
    """The radios for a StarGAN model. Without an attribute classifier the model cannot know which attributes the
    photo already has, so "keep" is not offered and every attribute gets a value."""
    names = pipe.attribute_names
    keep = pipe.classifier is not None
    controls = []
    grouped: set[int] = set()
    for g in pipe.groups:
        members = [names[i] for i in g]
        grouped.update(g)
        choices = ([(KEEP, KEEP)] if keep else []) + [(m, m) for m in members]
        label = _group_label(members)
        controls.append(AttributeControl(f"{label} (one of)" if label else "One of", tuple(choices),
                                         KEEP if keep else members[0], tuple(members), True))
    for i, name in enumerate(names):
        if i in grouped:
            continue
        choices = ([(KEEP, KEEP)] if keep else []) + [("no (0)", "0"), ("yes (1)", "1")]
        controls.append(AttributeControl(name, tuple(choices), KEEP if keep else "0", (name,), False))
    return controls


def targets_from_choices(controls: list[AttributeControl], choices: list[str | None]) -> dict[str, int]:
    """The radios' values -> {attribute: 0/1} as the change_attributes endpoint takes it (keep = left out)."""
    out: dict[str, int] = {}
    for control, value in zip(controls, choices, strict=True):
        if value in (None, "", KEEP):
            continue
        if control.group:
            out[str(value)] = 1
        else:
            out[control.names[0]] = int(value)
    return out


def _parse_targets(targets: Any, pipe: StarGANPipeline) -> dict[str, int]:
    names = pipe.attribute_names
    if targets in (None, ""):
        targets = {}
    if isinstance(targets, str):  # also accept the CLI's "Male=1, Age_20-39=1"
        pairs = [t.partition("=") for t in targets.split(",") if t.strip()]
        for key, sep, _ in pairs:
            if not sep:
                raise gr.Error(f"Targets: expected NAME=0 or NAME=1, got {key.strip()!r}.")
        targets = {k.strip(): v.strip() for k, _, v in pairs}
    if not isinstance(targets, dict):
        raise gr.Error('Targets must be a mapping of attribute names to 0 or 1, e.g. {"' + names[0] + '": 1}.')
    out: dict[str, int] = {}
    for key, value in targets.items():
        if key not in names:
            raise gr.Error(f"This model has no attribute {key!r}; its attributes are {', '.join(names)}.")
        if value in (None, "", KEEP):
            continue
        if str(value).strip().lower() in ("0", "1", "0.0", "1.0", "false", "true"):
            out[key] = int(str(value).strip().lower() in ("1", "1.0", "true"))
        else:
            raise gr.Error(f"{key}: the target must be 0, 1 or {KEEP!r}, got {value!r}.")
    return out


def _undecided(settings: dict[str, int], pipe: StarGANPipeline) -> list[str]:
    names = pipe.attribute_names
    decided = {names.index(k) for k in settings}
    for g in pipe.groups:
        if any(settings.get(names[i]) == 1 for i in g):
            decided.update(g)
    return [n for i, n in enumerate(names) if i not in decided]




class StarGANTab:
    """The ``change_attributes`` endpoint and the attribute radios' targets."""

    def __init__(self, ctx: DemoContext):
        self.ctx = ctx

    def attribute_targets(self, model: str | None, *choices: str | None) -> dict[str, int]:
        """The attribute radios of ``model`` (app.py passes them in attribute_controls order) -> targets."""
        pipe: StarGANPipeline = pick(self.ctx.models.stargan, model, "stargan")
        controls = attribute_controls(pipe)
        return targets_from_choices(controls, list(choices[:len(controls)]))

    def change_attributes(self, face: str | None, model: str | None = None,
                          targets: dict[str, Any] | str | None = None) -> tuple[str, str]:
        """A photo and {attribute: 0/1} -> (PNG path of the photo with those attributes, same size; status)."""
        pipe: StarGANPipeline = pick(self.ctx.models.stargan, model, "stargan")
        settings = _parse_targets(targets, pipe)
        if not settings:
            raise gr.Error("Choose at least one attribute to change.")
        if pipe.classifier is None:
            missing = _undecided(settings, pipe)
            if missing:
                raise gr.Error("No attribute classifier is published for this model, so it cannot tell which "
                               f"attributes the photo already has: set every attribute (missing: "
                               f"{', '.join(missing)}).")
        if not face:
            raise gr.Error("Upload a photo of a face first.")
        refuse_large(face, "photo", self.ctx.max_pixels, f"the model works at {pipe.desc.get('image_size')} px anyway")
        img = read_upload(face, "a photo")
        start = time.perf_counter()
        try:
            out = pipe(img.rgb, settings)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        seconds = time.perf_counter() - start
        out = grey_like(out, img)
        h, w = out.shape[:2]
        kept = "the others keep the photo's own values (read by the attribute classifier)" \
            if pipe.classifier is not None else "no classifier: every attribute was set"
        detail = (f"Targets {', '.join(f'{k}={v}' for k, v in settings.items())}; {kept}. {w}×{h}: the centred "
                  f"square ran at {pipe.desc.get('image_size')} px and was pasted back.")
        path = write_png(self.ctx.new_folder() / f"{file_stem(face, 'photo')}_attributes.png", to_uint8(out, img.alpha))
        return path, status_line(pipe, seconds, detail)
