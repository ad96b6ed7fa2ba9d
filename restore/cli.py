"""Command line: ``restore train | eval | infer | diagnose | check | norms | schema``."""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from enum import IntEnum
from pathlib import Path
from typing import Any

import yaml

from restore.config import ConfigError, load_options, parse_duration, to_dict
from restore.devices import choose_device


class Exit(IntEnum):
    """The exit codes of every ``restore`` command (docs/cli.md)."""

    OK = 0  #: done
    INTERNAL = 1  #: an internal error (a bug, or the environment failed): the message says which
    BAD_INPUT = 2  #: bad input: a file, key or value named in the message (nothing was done, or it was undone)
    DIVERGED = 3  #: training stopped on a non-finite loss; the last good checkpoint stays
    PAUSED = 4  #: training paused by a signal (SIGINT/SIGTERM) with a checkpoint: the same command continues
    PARTIAL = 5  #: some inputs were done and some failed (each failure has its own line)


def _cmd_check(args: argparse.Namespace) -> int:
    """Validate an option file (with overrides) and print the resolved recipe."""
    opts = load_options(args.opt, args.set)
    missing = missing_paths(opts)
    if missing:
        raise ConfigError(f"{args.opt}: {len(missing)} path(s) do not exist (relative paths start at the working "
                          f"directory {Path.cwd()}): {'; '.join(missing)}")
    print(f"# {args.opt}: valid" + (f" (with {len(args.set)} override(s))" if args.set else ""))
    print(yaml.safe_dump(to_dict(opts), sort_keys=False), end="")
    if opts.critic is not None:
        from restore.builders import build_critic_from_spec

        critic, norm = build_critic_from_spec(opts.critic)
        params = sum(p.numel() for p in critic.parameters())
        print(f"# critic: {type(critic).__name__}, {params:,} parameters, norm {norm!r}")
    return 0


def missing_paths(opts: Any) -> list[str]:
    """``key path`` for every file or folder a recipe names that does not exist (data roots, the perceptual
    loss's weights, a pretrained generator), so that ``restore check`` catches them before a run starts."""
    found: list[tuple[str, Any]] = []
    for split in ("train", "val"):
        spec = getattr(opts.data, split)
        if spec is not None:
            for key in ("root", "roots", "labels", "attributes_file"):
                if spec.kwargs.get(key) is not None:
                    found.append((f"data.{split}.{key}", spec.kwargs[key]))
    perceptual = opts.losses.get("perceptual") if isinstance(opts.losses, dict) else None
    if isinstance(perceptual, dict):
        for key in ("weights", "fallback_weights"):
            if perceptual.get(key):
                found.append((f"losses.perceptual.{key}", perceptual[key]))
    if opts.train.pretrained_generator:
        found.append(("train.pretrained_generator", opts.train.pretrained_generator))
    out = []
    for key, value in found:
        values = value if isinstance(value, (list, tuple)) else [value]
        for i, item in enumerate(values):
            if isinstance(item, str) and not Path(item).expanduser().exists():
                out.append(f"{key}{f'[{i}]' if isinstance(value, (list, tuple)) else ''} {item}")
    return out


def _cmd_schema(args: argparse.Namespace) -> int:
    """Write the recipes' JSON Schema (generated from the typed options and registries) for editors."""
    from restore.schema import schema_text, write_schema

    if args.output:
        print(f"wrote {write_schema(args.output)}")
    else:
        sys.stdout.write(schema_text())
    return 0


def _cmd_norms(args: argparse.Namespace) -> int:
    """List the critic normalizations and their options with defaults, then the critics each of them applies to."""
    import restore.archs  # noqa: F401  (fills CRITICS)
    import restore.norms  # noqa: F401  (fills NORMS)
    from restore.registry import CRITICS, NORMS

    for name in NORMS.names():
        cls = NORMS.get(name)
        doc = (inspect.getdoc(cls) or "").split("\n")[0]
        params = NORMS.parameters(name)
        opts = ", ".join(f"{p}={v.default!r}" for p, v in params.items()) or "(no options)"
        print(f"{name:<5} {doc}\n      options: {opts}")
    print("\ncritics (critic.arch; every norm above applies to each):")
    for name in CRITICS.names():
        module = inspect.getmodule(CRITICS.get(name))
        doc = (inspect.getdoc(module) or "").split("\n")[0]
        opts = ", ".join(f"{p}={v.default!r}" for p, v in CRITICS.parameters(name).items()) or "(no options)"
        print(f"  {name}  {doc}\n      options: {opts}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    """Train a recipe; resumes from the run folder's newest checkpoint when there is one.

    ``--time-limit`` (or ``train.time_limit``) counts from the start of the command (``main``): importing torch,
    building the task, loading pretrained weights and resuming are inside the budget, so the weights are written
    before an outer limit (SLURM's ``--time``) of the same length; only the Python start-up before it is not."""
    from restore.engine.trainer import CheckpointWriteError, TrainingDiverged
    from restore.train import train

    try:
        result = train(args.opt, args.set, device=args.device, resume=args.resume, until=args.until,
                       time_limit=args.time_limit, progress=not args.no_progress,
                       started=getattr(args, "started", None))
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return Exit.DIVERGED
    except CheckpointWriteError as err:
        print(f"error: {err}", file=sys.stderr)
        return Exit.PAUSED
    return Exit.PAUSED if result.stop_reason == "signal" else Exit.OK


def _cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate an SR model (or bicubic) on benchmark folders: PSNR/SSIM (Y), NIQE, LPIPS."""
    from restore.evaluation.sr import evaluate_sr, format_table, write_csv, write_json

    if args.task != "sr":
        if args.degradation or args.degradation_seed is not None or args.real_photos or args.no_real_photos:
            raise ValueError(f"--degradation, --degradation-seed and --real-photos are for --task sr, not {args.task}")
        return _eval_translation(args)
    _check_degradation_args(args)
    if args.model == "bicubic":
        upscale = "bicubic"
    else:
        upscale = _model_upscaler(args)
    metrics = tuple(m for m in ("psnr", "ssim", "niqe", "lpips") if not (m == "lpips" and args.no_lpips))
    real = _real_photo_inputs(args)
    result = evaluate_sr(upscale, args.data, scale=args.scale, metrics=metrics, lpips_weights=args.lpips_weights,
                         progress=True, degradation=args.degradation, degradation_seed=args.degradation_seed or 0,
                         real_photos=real, real_crop=args.real_crop)
    print(format_table(result))
    if args.json:
        write_json(result, args.json)
    if args.csv:
        write_csv(result, args.csv)
    return 0


def _check_degradation_args(args: argparse.Namespace) -> None:
    """Refuse eval's degradation and real-photo flags that cannot work together, before any model is loaded."""
    from restore.evaluation.sr import degradation_names

    if args.degradation is not None and args.degradation not in degradation_names():
        raise ValueError(f"--degradation {args.degradation!r} is not a known degradation; valid: "
                         f"{', '.join(degradation_names())} (leave it out for the clean bicubic LR)")
    if args.degradation_seed is not None:
        if args.degradation is None:
            raise ValueError("--degradation-seed needs --degradation (e.g. --degradation realesrgan)")
        if args.degradation_seed < 0:
            raise ValueError(f"--degradation-seed must be >= 0, got {args.degradation_seed}")
    if args.real_photos and args.no_real_photos:
        raise ValueError("--real-photos and --no-real-photos contradict each other; give one")
    if args.real_crop < 0:
        raise ValueError(f"--real-crop must be >= 0 (0: whole photos), got {args.real_crop}")


def _real_photo_inputs(args: argparse.Namespace) -> list[str]:
    """``--real-photos`` as given (each must exist); else, with ``--degradation``, the default real photos that
    exist, with a note for each that does not; else none."""
    from restore.evaluation.sr import default_real_photos

    if args.no_real_photos:
        return []
    if args.real_photos:
        return list(args.real_photos)
    if args.degradation is None:
        return []
    found = []
    for path in default_real_photos():
        if path.exists():
            found.append(str(path))
        else:
            print(f"note: real photos {path} not found; NIQE on them skipped (--real-photos PATH gives others)",
                  file=sys.stderr)
    return found


def _side_by_side_writer(folder: Path, desc: dict[str, Any], data: Any):
    """For ``restore eval --task spade --save DIR``: label colours | generated photo, one PNG per label map."""
    import numpy as np

    from restore.data.io import write_image
    from restore.data.labels import colorize

    palette = np.asarray(desc["palette"], dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)

    def save(index: int, photo: np.ndarray, label: np.ndarray) -> None:
        colours = colorize(label, palette).astype(np.float32) / 255
        write_image(folder / f"{index:05d}.png", np.concatenate([colours, photo], axis=1))

    return save


def _eval_translation(args: argparse.Namespace) -> int:
    """FID (SPADE) or per-domain FID + attribute accuracy (StarGAN) of a model on its data set's held-out split."""
    from restore.engine.weights import load_generator
    from restore.evaluation.sr import write_json
    from restore.evaluation.translation import evaluate_spade, evaluate_stargan, format_translation

    device = choose_device(args.device)
    model, desc = load_generator(args.model, device)
    if desc.get("task") != args.task:
        raise ValueError(f"{args.model} is a {desc.get('task')} model, not {args.task}")
    from restore.metrics.fid import InceptionFeatures

    features = InceptionFeatures(path=args.inception, device=device) if not args.no_fid else None
    from restore.evaluation.datasets import eval_dataset

    data = eval_dataset(desc, args.data[0], args.dataset, args.split, args.data_opt)
    if args.task == "spade":
        if features is None:
            raise ValueError("--no-fid leaves nothing to compute for SPADE")
        save = None
        if args.save:
            save = _side_by_side_writer(Path(args.save), desc, data)
        result = evaluate_spade(model, desc, data, features, limit=args.limit, save=save)
    else:
        train = eval_dataset(desc, args.data[0], args.dataset, None, args.data_opt, train=True)
        classifier = None
        if args.classifier:
            classifier, cdesc = load_generator(args.classifier, device)
            if cdesc.get("attribute_names") != desc["attribute_names"]:
                raise ValueError(f"{args.classifier} classifies {cdesc.get('attribute_names')}, but the model "
                                 f"translates {desc['attribute_names']}")
        result = evaluate_stargan(model, desc, data, train, features, classifier, limit=args.limit,
                                  max_real=args.max_real)
    result["model"] = str(args.model)
    text = format_translation(result)
    print(text)
    if args.json:
        write_json(result, args.json)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


def _model_upscaler(args: argparse.Namespace):
    import torch

    from restore.engine.weights import load_generator
    from restore.inference.tiling import tiled_forward

    device = choose_device(args.device)
    model, desc = load_generator(args.model, device)
    scale = int(desc["kwargs"].get("scale", getattr(model, "scale", 4)))
    if hasattr(args, "scale") and args.scale != scale:
        raise SystemExit(f"error: --scale {args.scale} but {args.model} upscales x{scale}")

    def upscale(lq):
        x = torch.from_numpy(lq).permute(2, 0, 1).unsqueeze(0).float()
        y = tiled_forward(model, x, scale, tile=args.tile, device=device)
        return y[0].clamp(0, 1).permute(1, 2, 0).numpy()

    return upscale


def _cmd_infer(args: argparse.Namespace) -> int:
    """Run a generator on image files / folders: upscale (sr), label map -> photo (spade), attributes (stargan).

    Exit codes tell a script what happened: OK when every input was written, PARTIAL when some failed (each named
    on its own stderr line), BAD_INPUT when none was written (or the command was refused before any work)."""
    from restore.engine.weights import load_generator
    from restore.inference.upscale import upscale_paths

    device = choose_device(args.device)
    model, desc = load_generator(args.model, device)
    task = desc.get("task", "sr")
    inputs, output = [Path(p) for p in args.inputs], Path(args.output)
    files = {"suffix": args.suffix, "overwrite": args.overwrite}
    noun = "image(s)"
    if task == "spade":
        from restore.inference.translate import spade_paths

        palette = None
        if args.palette:
            from restore.data.labels import read_palette

            palette = read_palette(args.palette)[0]
        outputs = spade_paths(model, desc, inputs, output, palette=palette,
                              instances=Path(args.instances) if args.instances else None,
                              keep_size=args.keep_size, seed=args.seed, **files)
        noun = "photo(s)"
    elif task == "stargan":
        from restore.inference.translate import stargan_paths

        classifier = load_generator(args.classifier, device)[0] if args.classifier else None
        outputs = stargan_paths(model, desc, inputs, output, args.set, classifier=classifier, **files)
    elif task != "sr":
        raise ValueError(f"{args.model} is a {task} model; restore infer runs sr, spade and stargan models")
    elif args.set:
        raise ValueError("--set NAME=VALUE chooses attributes of a StarGAN model; this is an SR model")
    else:
        scale = int(desc["kwargs"].get("scale", getattr(model, "scale", 4)))
        outputs = upscale_paths(model, inputs, output, scale, outscale=args.outscale, tile=args.tile,
                                overlap=args.overlap, device=device, half=args.half, **files)
    failed = len(outputs.failed)
    if not failed:
        print(f"wrote {len(outputs)} {noun} to {args.output}")
        return Exit.OK
    print(f"error: wrote {len(outputs)} of {len(outputs) + failed} {noun} to {args.output}; {failed} failed "
          "(named above)", file=sys.stderr)
    return Exit.PARTIAL if outputs else Exit.BAD_INPUT


def _cmd_ablate(args: argparse.Namespace) -> int:
    """Train one recipe once per critic norm (and seed), evaluate each, and tabulate."""
    from restore.study.ablation import ablate

    norms = [n.strip() for n in args.norms.split(",") if n.strip()]
    result = ablate(args.opt, norms, args.steps, args.seeds, Path(args.out), overrides=args.set,
                    eval_data=args.eval_data, device=args.device, limit=args.limit)
    print(result["markdown"])
    print(f"wrote {args.out}/ablation.md, ablation.csv, ablation.json, curves.png")
    return 0


def _cmd_diagnose(args: argparse.Namespace) -> int:
    """Measure a trained critic (per-layer norms, input sparsity, input gradients) and write a report."""
    from restore.study.diagnose import diagnose

    result = diagnose(args.checkpoint, args.data, out=args.output, images=args.images, batch=args.batch,
                      device=choose_device(args.device), overrides=args.set)
    print(f"wrote {result.report} ({result.diagnosis.header['images']} images, "
          f"{len(result.diagnosis.layers)} conv layers; numbers in {result.json.name})")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    """Copy a finished run's generator into a weights folder with its model card."""
    from restore.hub.publish import publish

    card = publish(Path(args.run), Path(args.out), name=args.name, data_source=args.data_source,
                   data_license=args.data_license, data_count=args.data_count, metrics=args.metrics,
                   wall_time=args.wall_time, notes=args.notes, checkpoint=args.checkpoint, dtype=args.dtype)
    print(f"wrote {card} and {card.with_suffix('.safetensors')}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    """Check every model card of a weights folder (sha256, weights load into their architecture)."""
    from restore.hub.cards import verify_folder

    problems = verify_folder(args.folder)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    print(f"{args.folder}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return Exit.OK if not problems else Exit.BAD_INPUT


def _cmd_export(args: argparse.Namespace) -> int:
    """Export a generator to ONNX or TorchScript, checked against PyTorch before the file is kept."""
    from restore.hub.export import export

    result = export(args.model, args.format, args.output, fp16=args.fp16, tolerance=args.tolerance,
                    verify_image=args.verify_image, overwrite=args.overwrite, weights=args.weights,
                    fixed_size=args.fixed_size)
    print(result.summary())
    return Exit.OK


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="restore", description="Image-restoration GANs with swappable critic norms.")
    sub = ap.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate an option file and print the resolved options")
    check.add_argument("-opt", "--opt", required=True, help="YAML option file")
    check.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                       help="override one option (repeatable), e.g. --set critic.norm.ratio=0.25")
    check.set_defaults(func=_cmd_check)
    norms = sub.add_parser("norms", help="list the critic normalizations and their options")
    norms.set_defaults(func=_cmd_norms)
    schema = sub.add_parser("schema", help="write the recipes' JSON Schema (editor completion and checks)")
    schema.add_argument("-o", "--output", metavar="FILE",
                        help="write to FILE (e.g. options/schema.json) instead of stdout")
    schema.set_defaults(func=_cmd_schema)

    train = sub.add_parser("train", help="train a recipe (auto-resumes from the run folder)")
    train.add_argument("-opt", "--opt", required=True, help="YAML option file")
    train.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help="override an option")
    train.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                       help="resume from CHECKPOINT, or from the run folder's newest (the default when one exists)")
    train.add_argument("--until", type=int, metavar="STEP",
                       help="pause at STEP with a checkpoint (train in chunks; rerun to continue)")
    train.add_argument("--time-limit", type=_duration_arg, metavar="DURATION",
                       help="stop with checkpoint and weights before DURATION (90s, 8m, 1h30m, 2h or seconds) has "
                            "passed since the command started; overrides train.time_limit; rerun to continue")
    train.add_argument("--device", default="auto", help="auto | cpu | cuda")
    train.add_argument("--no-progress", action="store_true", help="no progress bar (logs still written)")
    train.set_defaults(func=_cmd_train)

    ab = sub.add_parser("ablate", help="train a recipe once per critic norm (and seed), evaluate, tabulate")
    ab.add_argument("-opt", "--opt", required=True, help="YAML recipe (with a critic)")
    ab.add_argument("--norms", default="san,sn,bsn,gp,r1,gran,none", help="comma-separated critic norms")
    ab.add_argument("--steps", type=int, help="training steps per run (default: the recipe's)")
    ab.add_argument("--seeds", type=int, default=1, help="seeds per norm (recipe seed, +1, ...)")
    ab.add_argument("--out", default="runs/ablation", help="output folder (runs/, ablation.md/.csv/.json, curves.png)")
    ab.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                    help="override an option for every run")
    ab.add_argument("--eval-data", action="append", default=[],
                    help="SR: benchmark folder(s) (default: the recipe's val folder); spade/stargan: data root")
    ab.add_argument("--limit", type=int, help="spade/stargan: FID on at most N held-out images")
    ab.add_argument("--device", default="auto", help="auto | cpu | cuda (several GPUs: one run per GPU)")
    ab.set_defaults(func=_cmd_ablate)

    pub = sub.add_parser("publish", help="copy a finished run's generator to weights/ with its model card")
    pub.add_argument("--run", required=True, help="run folder (runs/<name>/) whose training has finished")
    pub.add_argument("--out", default="weights", help="weights folder")
    pub.add_argument("--name", help="published name (default: the run's name)")
    pub.add_argument("--data-source", required=True, help="where the training data came from")
    pub.add_argument("--data-license", required=True, help="the training data's license / terms")
    pub.add_argument("--data-count", type=int, help="number of training images (default: counted from the data set)")
    pub.add_argument("--metrics", action="append", default=[], metavar="JSON",
                     help="results of restore eval --json to include (repeatable)")
    pub.add_argument("--wall-time", type=float, help="training wall time in seconds (default: estimated from logs)")
    pub.add_argument("--notes", default="", help="free text for the card (caveats, substitutions)")
    pub.add_argument("--checkpoint", help="publish a paused run from a checkpoint: 'latest' or a path")
    pub.add_argument("--dtype", default="fp16", choices=["fp16", "fp32"],
                     help="how the published file stores its weights (default fp16: half the size; always loaded "
                          "as fp32; refused when a tensor does not fit fp16)")
    pub.set_defaults(func=_cmd_publish)
    ver = sub.add_parser("verify", help="check the model cards of a weights folder (sha256, loading)")
    ver.add_argument("folder", nargs="?", default="weights")
    ver.set_defaults(func=_cmd_verify)
    exp = sub.add_parser("export", help="write a generator as ONNX or TorchScript (dynamic sizes, metadata), checked "
                                        "against PyTorch", epilog="exit codes: 0 written and checked; 2 bad input, or "
                                        "the check failed (nothing written); 1 internal error; see docs/export.md")
    exp.add_argument("--model", required=True, help="weights file (.safetensors / checkpoint) or a published name")
    exp.add_argument("--format", required=True, help="onnx | torchscript")
    exp.add_argument("-o", "--output", required=True, help="file to write (its folder must exist)")
    exp.add_argument("--fp16", action="store_true", help="store weights and compute in fp16 (inputs too)")
    exp.add_argument("--tolerance", type=float, help="largest allowed max abs difference from PyTorch (default: "
                                                     "the measured one for fp32 / fp16, docs/export.md)")
    exp.add_argument("--verify-image", help="real image (SPADE: label map) to check on besides random inputs "
                                            "(default: the bundled example of the task)")
    exp.add_argument("--weights", default="weights", help="folder of published models that --model names")
    exp.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    exp.add_argument("--fixed-size", metavar="HxW", help="SR: a graph for exactly this input size (LR pixels), for "
                                                         "models that cannot have dynamic sizes (SwinIR)")
    exp.set_defaults(func=_cmd_export)

    ev = sub.add_parser("eval", help="SR: PSNR/SSIM (Y)/NIQE/LPIPS on benchmark folders; spade/stargan: FID "
                                     "(+ attribute accuracy) on a held-out split")
    ev.add_argument("--task", default="sr", choices=["sr", "spade", "stargan"])
    ev.add_argument("--model", required=True, help="weights (.safetensors / checkpoint), a community model file "
                                                   "(ESRGAN, SwinIR, ... .pth/.safetensors) or 'bicubic'")
    ev.add_argument("--data", action="append", required=True,
                    help="SR: folder of HR images (repeatable); spade/stargan: the data set root")
    ev.add_argument("--scale", type=int, default=4)
    ev.add_argument("--json", help="write the results as JSON")
    ev.add_argument("--csv", help="write per-image rows as CSV")
    ev.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    ev.add_argument("--lpips-weights", help="AlexNet ImageNet features file for LPIPS")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--tile", type=int, default=512, help="LR tile size for large images (0: no tiling)")
    ev.add_argument("--dataset", help="spade/stargan: data set type (default: the one the model was trained on)")
    ev.add_argument("--split", help="spade/stargan: split to evaluate (default: the data set's held-out split)")
    ev.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE",
                    help="spade/stargan: change one data set option (repeatable)")
    ev.add_argument("--classifier", help="stargan: attribute classifier weights (task attributes) for accuracy")
    ev.add_argument("--inception", help="FID Inception TorchScript file (default: found automatically)")
    ev.add_argument("--no-fid", action="store_true", help="stargan: accuracies only")
    ev.add_argument("--limit", type=int, help="spade/stargan: evaluate the first N images of the split")
    ev.add_argument("--max-real", type=int, help="stargan: at most N real training images per domain")
    ev.add_argument("--markdown", help="write the table as markdown")
    ev.add_argument("--save", help="spade: write label colours | generated side-by-sides into this folder")
    ev.add_argument("--degradation", metavar="TYPE",
                    help="sr: make each LR by degrading the HR (realesrgan) instead of bicubic; also reports NIQE on "
                         "real photos")
    ev.add_argument("--degradation-seed", type=int, metavar="N",
                    help="sr: seed of --degradation (default 0); each image's seed comes from it and its file name")
    ev.add_argument("--real-photos", action="append", default=[], metavar="PATH",
                    help="sr: NIQE of the outputs of these photos or folders, used as LR as they are (repeatable; "
                         "default with --degradation: weights/examples/sr_* and ../shared/data/sr-train/plasma_photos)")
    ev.add_argument("--no-real-photos", action="store_true", help="sr: no NIQE on real photos")
    ev.add_argument("--real-crop", type=int, default=256, metavar="PX",
                    help="sr: centre-crop real photos to at most PX x PX LR pixels first (0: whole photos)")
    ev.set_defaults(func=_cmd_eval)

    inf = sub.add_parser("infer", help="run a model on images or folders: upscale (sr), label map -> photo (spade), "
                                       "change face attributes (stargan)",
                         epilog="exit codes: 0 every input written; 5 some inputs failed (each named on stderr); "
                                "2 none written, or bad input (one error line); 1 internal error")
    inf.add_argument("--model", required=True, help="generator weights (.safetensors or checkpoint), or a "
                                                    "community model file (ESRGAN, SwinIR, ... .pth/.safetensors)")
    inf.add_argument("inputs", nargs="+", help="image file(s) or folder(s)")
    inf.add_argument("-o", "--output", required=True, help="output file or folder")
    inf.add_argument("--overwrite", action="store_true",
                     help="replace existing output files (default: refuse them; in a folder each is a failure)")
    inf.add_argument("--suffix", default="", metavar="TEXT",
                     help="add TEXT to the names of outputs written into a folder (a.png -> a_x4.png for _x4)")
    inf.add_argument("--outscale", type=float, help="final scale (default: the model's)")
    inf.add_argument("--tile", type=int, default=256, help="LR tile size (0: no tiling)")
    inf.add_argument("--overlap", type=int, default=16, help="LR pixels of context around each tile")
    inf.add_argument("--device", default="auto")
    inf.add_argument("--half", action="store_true", help="fp16 (CUDA only)")
    inf.add_argument("--set", action="append", default=[], metavar="NAME=0|1",
                     help="stargan: target attribute (repeatable), e.g. --set Male=1")
    inf.add_argument("--classifier", help="stargan: attribute classifier that reads the attributes you do not set")
    inf.add_argument("--palette", help="spade: palette file for colour-coded label maps (default: the model's)")
    inf.add_argument("--instances", help="spade: folder of instance-id maps matched by file stem")
    inf.add_argument("--keep-size", action="store_true", help="spade: resize the photo to the label map's size")
    inf.add_argument("--seed", type=int, default=0, help="spade (VAE models): style seed")
    inf.set_defaults(func=_cmd_infer)

    diag = sub.add_parser("diagnose", help="measure a trained critic: per-layer norms (SN/SAN/true), conv-input "
                                           "sparsity, input gradients; writes report.md + plots")
    diag.add_argument("--checkpoint", required=True, help="run folder (its newest checkpoint) or a .pt checkpoint")
    diag.add_argument("--data", required=True, help="training data folder (replaces the stored data.train root)")
    diag.add_argument("-o", "--output", help="output folder (default: <run>/diagnostics/)")
    diag.add_argument("--images", type=int, default=32, help="real training images to use (spread over the set)")
    diag.add_argument("--batch", type=int, default=8, help="images per forward pass")
    diag.add_argument("--device", default="auto", help="auto | cpu | cuda")
    diag.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                      help="override one stored option (repeatable), e.g. --set data.train.gt_size=64")
    diag.set_defaults(func=_cmd_diagnose)
    return ap


def _duration_arg(text: str) -> float:
    """argparse type of ``--time-limit`` (argparse prefixes the flag to the message)."""
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _debug() -> bool:
    return os.environ.get("RESTORE_DEBUG", "").strip() not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (:class:`Exit`). Errors are one ``error:`` line on stderr;
    ``RESTORE_DEBUG=1`` shows the traceback instead."""
    started = time.monotonic()  # the origin of --time-limit / train.time_limit
    args = build_parser().parse_args(argv)
    args.started = started
    try:
        return int(args.func(args))
    except (ConfigError, FileNotFoundError, ValueError) as err:
        if _debug():
            raise
        print(f"error: {err}", file=sys.stderr)
        return Exit.BAD_INPUT
    except KeyboardInterrupt:
        if _debug():
            raise
        print("error: interrupted", file=sys.stderr)
        return Exit.PAUSED
    except Exception as err:  # a bug or an environment failure: one line, and how to see more
        if _debug():
            raise
        print(f"error: {type(err).__name__}: {err} (an internal error; RESTORE_DEBUG=1 shows the traceback, "
              "please report it)", file=sys.stderr)
        return Exit.INTERNAL
