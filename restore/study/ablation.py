"""``restore ablate``: one recipe, trained once per critic norm (and seed) with everything else fixed, then
evaluated; a table (markdown + CSV), per-norm critic step time, and loss/metric curves (PNG).

Each run is an ordinary ``restore train`` run under ``<out>/runs/<name>_<norm>_s<seed>/`` (so it resumes if the
ablation is interrupted and rerun). Runs go one after another on one device, or, when several CUDA devices are
visible and ``parallel`` allows it, one run per GPU at a time in subprocesses.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from restore.config import ConfigError, load_options, to_dict
from restore.devices import choose_device
from restore.engine.runs import RunFolder


@dataclass
class RunPlan:
    norm: str
    seed: int
    name: str
    overrides: list[str] = field(default_factory=list)


def norm_block(recipe_norm: dict[str, Any] | None, norm: str) -> str:
    """The ``critic.norm`` override for ``norm``: the recipe's own block when it already uses that norm (so its
    options, e.g. SAN's ratio, are kept), else the norm with its defaults."""
    if recipe_norm and recipe_norm.get("type") == norm:
        return json.dumps(recipe_norm)
    return json.dumps({"type": norm})


def plan_runs(recipe: str | Path, norms: Sequence[str], seeds: int, steps: int | None, out: Path,
              overrides: Sequence[str] = ()) -> tuple[Any, list[RunPlan]]:
    """Validate the recipe once per norm (so a bad name fails before anything trains) and list the runs."""
    from restore.registry import NORMS

    base = load_options(recipe, overrides)
    if base.critic is None:
        raise ConfigError(f"{recipe}: has no critic block, so there is no critic normalization to ablate")
    unknown = [n for n in norms if n not in NORMS]
    if unknown:
        raise ConfigError(f"--norms: unknown norm(s) {', '.join(unknown)}; valid: {', '.join(NORMS.names())}")
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    n_steps = steps if steps is not None else base.train.steps
    recipe_norm = to_dict(base.critic.norm)
    plans = []
    for norm in norms:
        for k in range(seeds):
            seed = base.seed + k
            name = f"{base.name}_{norm}_s{seed}"
            sets = [*overrides, f"critic.norm={norm_block(recipe_norm, norm)}", f"seed={seed}", f"name={name}",
                    f"path.root={out / 'runs'}", f"train.steps={n_steps}", f"checkpoint.every={n_steps}",
                    f"val.every={n_steps}", f"train.log_every={max(1, min(base.train.log_every, n_steps // 10 or 1))}"]
            load_options(recipe, sets)  # fail early, naming the file and key
            plans.append(RunPlan(norm, seed, name, sets))
    return base, plans


def train_run(recipe: str, plan: RunPlan, device: str) -> None:
    """One run of the ablation, in this process."""
    from restore.engine.trainer import TrainingDiverged
    from restore.train import train

    try:
        train(recipe, plan.overrides, device=device, progress=False)
    except TrainingDiverged as err:
        raise RuntimeError(f"training {plan.name} failed: {err}") from None


def _train_on_gpu(recipe: str, overrides: list[str], gpu: int) -> None:
    """A spawned process's run: it sees only GPU ``gpu``, set before anything initialises CUDA."""
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    from restore.train import train

    train(recipe, overrides, device="cuda", progress=False)


def train_parallel(recipe: str, plans: list[RunPlan], gpus: int) -> None:
    """One spawned process per GPU, ``gpus`` runs at a time."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no CUDA state inherited from this one
    pending = list(plans)
    running: list[tuple[Any, RunPlan, int]] = []
    free = list(range(gpus))
    failed = []
    while pending or running:
        while pending and free:
            gpu = free.pop(0)
            plan = pending.pop(0)
            proc = ctx.Process(target=_train_on_gpu, args=(str(recipe), plan.overrides, gpu), name=plan.name)
            proc.start()
            running.append((proc, plan, gpu))
        proc, plan, gpu = running.pop(0)
        proc.join()
        if proc.exitcode != 0:
            failed.append(plan.name)
        free.append(gpu)
    if failed:
        raise RuntimeError(f"training failed for {', '.join(failed)}")


def read_metrics(run: Path) -> list[dict[str, Any]]:
    return RunFolder.at(run).metric_rows()


def evaluate_run(opts: Any, run: Path, eval_data: Sequence[str], device: str, limit: int | None) -> dict[str, float]:
    """SR: PSNR/SSIM/NIQE/LPIPS means over ``eval_data``; SPADE / StarGAN: FID on the held-out split."""
    import torch

    from restore.engine.weights import load_generator

    dev = choose_device(device)
    weights = RunFolder.at(run).weights
    model, desc = load_generator(weights, dev)
    if opts.task == "sr":
        from restore.evaluation.sr import evaluate_sr
        from restore.inference.tiling import tiled_forward

        scale = int(desc["kwargs"].get("scale", 4))

        def upscale(lq: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(lq).permute(2, 0, 1).unsqueeze(0).float()
            return tiled_forward(model, x, scale, tile=512, device=dev)[0].clamp(0, 1).permute(1, 2, 0).numpy()

        result = evaluate_sr(upscale, list(eval_data), scale=scale)
        out: dict[str, float] = {}
        for ds in result["datasets"]:
            for metric, value in ds["mean"].items():
                if value is not None:
                    out[f"{ds['name']}/{metric}"] = float(value)
        return out
    from restore.evaluation.datasets import eval_dataset
    from restore.evaluation.translation import evaluate_spade, evaluate_stargan
    from restore.metrics.fid import InceptionFeatures

    feats = InceptionFeatures(device=dev)
    root = eval_data[0] if eval_data else _data_root(desc)
    data = eval_dataset(desc, root, None, None, [])
    if opts.task == "spade":
        return {"fid": evaluate_spade(model, desc, data, feats, limit=limit)["fid"]}
    train = eval_dataset(desc, root, None, None, [], train=True)
    result = evaluate_stargan(model, desc, data, train, feats, None, limit=limit, max_real=limit)
    return {"mean_fid": result["mean_fid"]}


def _data_root(desc: dict[str, Any]) -> str:
    kwargs = desc.get("data", {}).get("kwargs", {})
    root = kwargs.get("root") or kwargs.get("labels")
    if root is None:
        raise ConfigError("cannot tell where the evaluation data is; pass --eval-data")
    return str(root)


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds, per norm (in the order the norms were given)."""
    out = []
    for norm in dict.fromkeys(r["norm"] for r in rows):
        group = [r for r in rows if r["norm"] == norm]
        keys = [k for k in group[0] if k not in ("norm", "seed", "run")]
        agg: dict[str, Any] = {"norm": norm, "seeds": len(group)}
        for k in keys:
            vals = [r[k] for r in group if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])]
            agg[k] = float(np.mean(vals)) if vals else None
            agg[f"{k}_std"] = float(np.std(vals)) if len(vals) > 1 else None
        out.append(agg)
    return out


def format_markdown(summary: list[dict[str, Any]], header: str) -> str:
    keys = [k for k in summary[0] if k not in ("norm", "seeds") and not k.endswith("_std")]
    lines = [header, "", "| norm | seeds | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for row in summary:
        cells = []
        for k in keys:
            v, sd = row.get(k), row.get(f"{k}_std")
            cells.append("-" if v is None else (f"{v:.4g} ± {sd:.2g}" if sd is not None else f"{v:.4g}"))
        lines.append(f"| {row['norm']} | {row['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(runs: dict[str, list[dict[str, Any]]], path: Path, keys: Sequence[str]) -> None:
    """One panel per logged quantity, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [k for k in keys if any(k in r for rows in runs.values() for r in rows)]
    if not present:
        return
    fig, axes = plt.subplots(1, len(present), figsize=(4.5 * len(present), 3.4), squeeze=False)
    for ax, key in zip(axes[0], present, strict=True):
        for name, rows in runs.items():
            pts = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=name, marker="." if len(pts) < 20 else None)
        ax.set_title(key)
        ax.set_xlabel("step")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ablate(recipe: str, norms: Sequence[str], steps: int | None, seeds: int, out: Path,
           overrides: Sequence[str] = (), eval_data: Sequence[str] = (), device: str = "auto",
           limit: int | None = None, parallel: bool = True) -> dict[str, Any]:
    """Train, evaluate and tabulate; returns {"rows", "summary", "markdown"} and writes them under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base, plans = plan_runs(recipe, norms, seeds, steps, out, overrides)
    gpus = 0
    if parallel and device in ("auto", "cuda"):
        import torch

        gpus = torch.cuda.device_count()
    if gpus > 1:
        train_parallel(recipe, plans, gpus)
    else:
        for plan in plans:
            train_run(recipe, plan, device)
    if not eval_data and base.task == "sr" and base.data.val is not None:
        eval_data = [base.data.val.kwargs.get("root")]
    rows, curves = [], {}
    for plan in plans:
        run = out / "runs" / plan.name
        logged = read_metrics(run)
        curves[plan.name] = logged
        speed = [r["speed/critic_ms"] for r in logged if "speed/critic_ms" in r]
        its = [r["speed/it_per_s"] for r in logged if "speed/it_per_s" in r]
        row: dict[str, Any] = {"norm": plan.norm, "seed": plan.seed, "run": str(run),
                               "critic_ms": float(np.median(speed[1:] or speed)) if speed else None,
                               "it_per_s": float(np.median(its[1:] or its)) if its else None}
        row.update(evaluate_run(base, run, eval_data, device, limit))
        rows.append(row)
    summary = summarise(rows)
    n_steps = steps if steps is not None else base.train.steps
    header = (f"Ablation of `{recipe}` ({base.task}): {n_steps} steps, {seeds} seed(s) per norm, batch "
              f"{base.train.batch_size}; critic_ms = median critic step time, it_per_s = training steps per second "
              "(same device, runs one after another).")
    markdown = format_markdown(summary, header)
    (out / "ablation.md").write_text(markdown)
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (out / "ablation.csv").write_text(buf.getvalue())
    (out / "ablation.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))
    val_keys = sorted({k for rows_ in curves.values() for r in rows_ for k in r if k.startswith("val/")})
    plot_curves(curves, out / "curves.png", ["g/total", "d/adv", "g/adv", *val_keys])
    return {"rows": rows, "summary": summary, "markdown": markdown}
