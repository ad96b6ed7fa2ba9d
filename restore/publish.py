"""``restore publish``: a finished run's generator + model card into a weights folder (see :mod:`restore.cards`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from restore.cards import hardware, make_card, write_card


def estimated_wall_time(run: Path) -> float | None:
    """Seconds of training from the logged throughput (each log line covers the steps since the previous one)."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return None
    total, prev = 0.0, 0
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if "speed/it_per_s" in row and row["speed/it_per_s"] > 0:
            total += (row["step"] - prev) / row["speed/it_per_s"]
            prev = row["step"]
    return total or None


def _metrics(files: list[str]) -> dict[str, Any]:
    """restore eval --json results, summarised per data set (SR) or kept whole (translation tasks)."""
    out: dict[str, Any] = {}
    for f in files:
        result = json.loads(Path(f).read_text())
        if "datasets" in result:  # SR
            for ds in result["datasets"]:
                out[ds["name"]] = {k: v for k, v in ds["mean"].items() if v is not None}
            out["protocol"] = result.get("protocol")
        else:
            out[Path(f).stem] = result
    return out


def publish(run: Path, out: Path, name: str | None, data_source: str, data_license: str,
            data_count: int | None = None, metrics: list[str] | None = None, wall_time: float | None = None,
            notes: str = "") -> Path:
    from restore.weights import read_generator

    run = Path(run)
    options = run / "options.yml"
    if not options.is_file():
        raise FileNotFoundError(f"{run}: not a run folder (no options.yml)")
    config = yaml.safe_load(options.read_text())
    src = run / f"{config['name']}.safetensors"
    if not src.is_file():
        raise FileNotFoundError(f"{src} not found: the run has not finished (rerun its training command, which "
                                "resumes, until it writes the final generator)")
    desc, _ = read_generator(src)
    name = name or config["name"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dst = out / f"{name}.safetensors"
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)
    if data_count is None:
        data_count = _count_training_images(config)
    train = config.get("train", {})
    recipe = out / "recipes" / f"{name}.yml"  # the resolved recipe: training it again reproduces the run
    recipe.parent.mkdir(exist_ok=True)
    recipe.write_text(options.read_text())
    training = {**hardware(), "steps": desc.get("steps"), "batch_size": train.get("batch_size"),
                "wall_time_s": round(wall_time if wall_time is not None else (estimated_wall_time(run) or 0), 1),
                "recipe": f"{out.name}/recipes/{recipe.name}",
                "command": f"restore train -opt {out.name}/recipes/{recipe.name}"}
    card = make_card(name, dst, desc, config, {"source": data_source, "count": data_count, "license": data_license},
                     training, _metrics(metrics or []), notes)
    return write_card(out / f"{name}.yml", card)


def _count_training_images(config: dict[str, Any]) -> int | None:
    """Build the run's training data set to count its images (None when the data is not here)."""
    from restore.config import parse_options

    try:
        opts = parse_options({k: v for k, v in config.items() if k != "source"}, "options.yml")
        spec = opts.data.train
        return len(spec.build(**spec.kwargs)) if spec is not None else None
    except Exception:  # the data may live elsewhere; the count is then left to --data-count
        return None
