"""``restore publish``: a finished run's generator + model card into a weights folder (see :mod:`restore.hub.cards`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from restore.engine.hardware import hardware
from restore.engine.runs import RunFolder
from restore.hub.cards import make_card, write_card


def estimated_wall_time(run: Path, until: int | None = None) -> float | None:
    """Seconds of training from the logged throughput (each log line covers the steps since the previous one), up
    to step ``until`` (a published checkpoint's: steps after it did not make the weights). A run resumed from an
    earlier checkpoint logs steps again; those lines count from the chunk's start in hardware.jsonl."""
    folder = RunFolder.at(run)
    if not folder.metrics.is_file():
        return None
    starts = sorted(r["step"] for r in folder.hardware_rows())
    total, prev = 0.0, 0
    for row in folder.metric_rows():
        step = row["step"]
        if step <= prev:  # resumed from an earlier checkpoint
            prev = max((s for s in starts if s < step), default=step)
        if "speed/it_per_s" in row and row["speed/it_per_s"] > 0 and (until is None or step <= until):
            total += (step - prev) / row["speed/it_per_s"]
        prev = step
    return total or None


def _metrics(files: list[str]) -> dict[str, Any]:
    """restore eval --json results, summarised per data set (SR) or kept whole (translation tasks)."""
    out: dict[str, Any] = {}
    for f in files:
        result = json.loads(Path(f).read_text())
        if "datasets" in result:  # SR
            protocol = result.get("protocol")
            first = out.setdefault("protocol", protocol)
            for ds in result["datasets"]:
                entry = {k: v for k, v in ds["mean"].items() if v is not None}
                if protocol != first:  # e.g. a degraded-LR run next to the clean one: each row says how it was made
                    entry["protocol"] = protocol
                out[ds["name"]] = entry
            photos = result.get("real_photos")
            if photos:  # restore eval --degradation / --real-photos: NIQE of the outputs of real photos
                out["real photos"] = {**photos["mean"], "images": len(photos["images"]), "crop": photos.get("crop"),
                            "inputs": [os.path.relpath(p) for p in photos["inputs"]]}  # as the card's other paths
        else:
            out[Path(f).stem] = result
    return out


def publish(run: Path, out: Path, name: str | None, data_source: str, data_license: str,
            data_count: int | None = None, metrics: list[str] | None = None, wall_time: float | None = None,
            notes: str = "", checkpoint: str | None = None, dtype: str = "fp16") -> Path:
    """``checkpoint``: publish a paused run from a checkpoint (``latest`` or a path; its EMA weights when kept)
    instead of the final generator; the card's steps are the checkpoint's. ``dtype``: how the published file stores
    its floating-point tensors, "fp16" (half the size; loading gives fp32 modules) or "fp32"."""
    from restore.engine.weights import convert_weights, read_generator

    run = Path(run)
    options = RunFolder.at(run).options
    if not options.is_file():
        raise FileNotFoundError(f"{run}: not a run folder (no options.yml)")
    config = yaml.safe_load(options.read_text())
    name = name or config["name"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dst = out / f"{name}.safetensors"
    if checkpoint is None:
        src = RunFolder(run, config["name"]).weights
        if not src.is_file():
            raise FileNotFoundError(f"{src} not found: the run has not finished (rerun its training command, which "
                                    "resumes, until it writes the final generator), or publish a checkpoint with "
                                    "--checkpoint latest")
        convert_weights(src, dst, dtype=dtype)
        desc, _ = read_generator(dst)
    else:
        desc = _export_checkpoint(run, checkpoint, dst, dtype)
    if data_count is None:
        data_count = _count_training_images(config)
    train = config.get("train", {})
    recipe = out / "recipes" / f"{name}.yml"  # the resolved recipe: training it again reproduces the run
    recipe.parent.mkdir(exist_ok=True)
    recipe.write_text(options.read_text())
    training = {**_run_hardware(run), "steps": desc.get("steps"), "batch_size": train.get("batch_size"),
                "wall_time_s": round(wall_time if wall_time is not None
                                     else (estimated_wall_time(run, desc.get("steps")) or 0), 1),
                "recipe": f"{out.name}/recipes/{recipe.name}",
                "command": f"restore train -opt {out.name}/recipes/{recipe.name}"}
    card = make_card(name, dst, desc, config, {"source": data_source, "count": data_count, "license": data_license},
                     training, _metrics(metrics or []), notes)
    if "palette" in desc:  # label -> photo: the colours users paint label maps with, next to the weights
        card["palette"] = _write_palette(out / f"{name}.palette.txt", desc)
    return write_card(out / f"{name}.yml", card)


def _write_palette(path: Path, desc: dict[str, Any]) -> str:
    from restore.data.labels import stored_values, write_palette

    names = desc.get("class_names") or [f"class_{i}" for i in range(len(desc["palette"]))]
    values = stored_values(desc)
    stored = ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True) if v is not None)
    comments = [f"Colours of {path.name.removesuffix('.palette.txt')}'s classes, for colour-coded label maps "
                "(restore infer --palette).", f"Integer-id label maps store these values: {stored}."]
    write_palette(path, desc["palette"], names, comments)
    return path.name


def _run_hardware(run: Path) -> dict[str, Any]:
    """Where the run's chunks trained (hardware.jsonl, written by the engine); runs from before that file existed
    get this machine's hardware, marked as recorded at publish time."""
    rows = RunFolder.at(run).hardware_rows()
    if not rows:
        return {**hardware(), "hardware_recorded": "at publish time (the run has no hardware.jsonl)"}
    kinds = sorted({r["trained_on"] for r in rows})
    devices = list(dict.fromkeys(r["device"] for r in rows))
    out: dict[str, Any] = {"trained_on": "+".join(kinds), "device": "; ".join(devices)}
    if max(r.get("processes", 1) for r in rows) > 1:
        out["processes"] = max(r.get("processes", 1) for r in rows)
    return out


def _count_training_images(config: dict[str, Any]) -> int | None:
    """Build the run's training data set to count its images (None when the data is not here)."""
    from restore.config import parse_options

    try:
        opts = parse_options({k: v for k, v in config.items() if k != "source"}, "options.yml")
        spec = opts.data.train
        return len(spec.build(**spec.kwargs)) if spec is not None else None
    except Exception:  # the data may live elsewhere; the count is then left to --data-count
        return None


def _export_checkpoint(run: Path, which: str, dst: Path, dtype: str = "fp16") -> dict[str, Any]:
    """Write the generator of a checkpoint (EMA when present) as self-describing safetensors; returns its
    description with the checkpoint's step."""
    import restore.archs  # noqa: F401
    from restore.engine import checkpoint as ckpt
    from restore.engine.weights import read_generator, save_generator
    from restore.registry import GENERATORS

    path = ckpt.latest_checkpoint(RunFolder.at(run).checkpoints) if which == "latest" else Path(which)
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"{run}: no checkpoint to publish ({which})")
    desc, state = read_generator(path)
    module = GENERATORS.build(desc["arch"], **desc["kwargs"])
    module.load_state_dict(state)
    step = int(ckpt.load(path)["step"])
    extra = {k: v for k, v in desc.items() if k not in ("arch", "kwargs", "task", "dtype")}
    save_generator(module, dst, arch=desc["arch"], kwargs=desc["kwargs"], task=desc["task"],
                   extra={**extra, "steps": step, "checkpoint": Path(path).name}, dtype=dtype)
    return {**desc, "steps": step, "dtype": dtype}


def convert_published(weights: Path, dtype: str = "fp16") -> Path | None:
    """Rewrite a published weights file in place with its floating-point tensors stored as ``dtype`` (all metadata
    kept) and update the card that names it (``sha256``, ``dtype``); returns that card (None when none names the
    file). ``python -m restore.hub.publish --dtype fp16 weights/*.safetensors`` does this for each file given."""
    from restore.engine.weights import convert_weights
    from restore.files import sha256_file
    from restore.hub.cards import read_card

    weights = Path(weights)
    convert_weights(weights, dtype=dtype)
    for card_path in sorted(weights.parent.glob("*.yml")):
        try:
            card = read_card(card_path)
        except ValueError:
            continue
        if card["file"] == weights.name:
            updated: dict[str, Any] = {}
            for k, v in card.items():
                if k != "dtype":
                    updated[k] = v
                if k == "sha256":
                    updated["sha256"] = sha256_file(weights)
                    updated["dtype"] = dtype
            write_card(card_path, updated)
            return card_path
    return None


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from restore.engine.weights import DTYPES

    ap = argparse.ArgumentParser(prog="python -m restore.hub.publish",
                                 description="Store published weights files as fp16 (or fp32) in place, keeping "
                                             "their metadata, and update their cards' sha256 and dtype.")
    ap.add_argument("weights", nargs="+", help=".safetensors files (e.g. weights/*.safetensors)")
    ap.add_argument("--dtype", default="fp16", choices=list(DTYPES))
    args = ap.parse_args(argv)
    for w in args.weights:
        try:
            card = convert_published(Path(w), args.dtype)
        except (ValueError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        size = Path(w).stat().st_size / 1e6
        print(f"{w}: {args.dtype}, {size:.1f} MB" + (f"; updated {card}" if card else "; no card names it"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
