"""Helpers of the prepared GPU run (scripts/gpu/README.md): packing here, unpacking and summarising there.

Only the standard library, numpy, OpenCV and (for ``half``/``export``) torch + safetensors are used, so every
subcommand runs on the lent machine as it comes (no restore install needed for the pack side).

    python scripts/gpu/tool.py crops --out DIR --size 480 --quality 90 --budget-mib 4 SRC_DIR [SRC_DIR ...]
    python scripts/gpu/tool.py subset --out DIR --count N [--pair .png] SRC_DIR
    python scripts/gpu/tool.py vgg-pack SRC.pth OUT_DIR [--fast]       # lossless: byte planes, high plane compressed
    python scripts/gpu/tool.py vgg-unpack IN_DIR OUT.pth               # checks size and sha256
    python scripts/gpu/tool.py travel-size REPO [--pack DIR]           # MiB that would travel to the device
    python scripts/gpu/tool.py half IN OUT [IN OUT ...]               # fp16 safetensors, metadata kept
    python scripts/gpu/tool.py export RUN_DIR OUT.safetensors          # EMA generator of a run's newest checkpoint
    python scripts/gpu/tool.py summarize WORK_DIR OUT.json             # the results JSON of run.sh
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import statistics
import subprocess
import sys
import zlib
from pathlib import Path

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
MIB = 1024 * 1024


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXT)


# ------------------------------------------------------------------------------------------------ pack side
def crop_boxes(h: int, w: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners of the crops of one image, best first: the centre, then a grid of non-overlapping crops
    (row-major, the centre's own cell skipped when it would overlap the centre crop by more than half)."""
    if h < size or w < size:
        return []
    cy, cx = (h - size) // 2, (w - size) // 2
    boxes = [(cy, cx)]
    ny, nx = h // size, w // size
    oy, ox = (h - ny * size) // 2, (w - nx * size) // 2
    for i in range(ny):
        for j in range(nx):
            y, x = oy + i * size, ox + j * size
            if abs(y - cy) * 2 < size and abs(x - cx) * 2 < size:
                continue
            boxes.append((y, x))
    return boxes


def cmd_crops(args: argparse.Namespace) -> int:
    """JPEG crops of the photos of several folders, round-robin over the folders (sorted names), first every
    image's centre crop, then its further grid crops, until the byte budget is reached. Deterministic."""
    import cv2

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    folders = [Path(s) for s in args.sources]
    for f in folders:
        if not f.is_dir():
            raise SystemExit(f"error: {f} is not a folder")
    lists = [_images(f) for f in folders]
    order = [paths[i] for i in range(max(len(x) for x in lists)) for paths in lists if i < len(paths)]
    budget = args.budget_mib * MIB
    total, count, k, full = 0, 0, 0, False
    active = order
    while active and not full:  # round k: crop k of every image that has one
        still: list[Path] = []
        for path in active:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                print(f"warning: unreadable, skipped: {path}", file=sys.stderr)
                continue
            boxes = crop_boxes(img.shape[0], img.shape[1], args.size)
            if k >= len(boxes) or (args.max_per_image and k >= args.max_per_image):
                continue
            y, x = boxes[k]
            ok, buf = cv2.imencode(".jpg", img[y:y + args.size, x:x + args.size],
                                   [cv2.IMWRITE_JPEG_QUALITY, args.quality])
            if not ok:
                raise SystemExit(f"error: JPEG encoding failed for {path}")
            if total + len(buf) > budget:
                full = True
                break
            (out / f"{path.parent.name}__{path.stem}__{k:02d}.jpg").write_bytes(buf.tobytes())
            total += len(buf)
            count += 1
            still.append(path)
        active, k = still, k + 1
    print(f"crops: {count} JPEG crops of {args.size}px (quality {args.quality}) from "
          f"{', '.join(str(f) for f in folders)}: {total / MIB:.2f} MiB in {out}")
    if count == 0:
        raise SystemExit("error: no crop was written (images smaller than --size, or a zero budget)")
    return 0


def cmd_subset(args: argparse.Namespace) -> int:
    """Copy ``count`` files of a folder, unchanged, spread evenly over its sorted listing (a fixed stride); with
    ``--pair .png`` each chosen photo brings the file of the same stem with that suffix (label maps, lossless)."""
    import shutil

    src, out = Path(args.source), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = [p for p in _images(src) if not (args.pair and p.suffix.lower() == args.pair)]
    if args.pair:
        files = [p for p in files if p.with_suffix(args.pair).is_file()]
    if not files:
        raise SystemExit(f"error: no images in {src}")
    n = min(args.count, len(files))
    chosen = [files[(i * len(files)) // n] for i in range(n)]
    total = 0
    for p in chosen:
        for f in [p] + ([p.with_suffix(args.pair)] if args.pair else []):
            shutil.copyfile(f, out / f.name)
            total += f.stat().st_size
    for extra in args.also:
        f = Path(extra)
        shutil.copyfile(f, out / f.name)
        total += f.stat().st_size
    print(f"subset: {n} of {len(files)} from {src}{' (+ ' + args.pair + ' pairs)' if args.pair else ''}: "
          f"{total / MIB:.2f} MiB in {out}")
    return 0


def _sha256(path: Path) -> str:
    from restore.files import sha256_file

    return sha256_file(path)


def cmd_vgg_pack(args: argparse.Namespace) -> int:
    """Lossless packing of an fp16 weights file: the bytes at even offsets (fp16 low bytes: mantissa, close to
    random) are stored raw, those at odd offsets (sign, exponent, top mantissa bits) compressed: ~16 % smaller than
    the file, where compressing the whole file saves ~10 %. Tensor data in a torch zip is 64-byte aligned, so the
    parity split matches the fp16 byte order."""
    import numpy as np

    src, out = Path(args.source), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = np.fromfile(src, dtype=np.uint8)
    lo, hi = data[0::2].tobytes(), data[1::2].tobytes()
    (out / "lo.bin").write_bytes(lo)
    if args.fast:
        (out / "hi.bin.zz").write_bytes(zlib.compress(hi, 6))
    else:
        (out / "hi.bin.xz").write_bytes(lzma.compress(hi, preset=6))
    meta = {"name": src.name, "size": int(data.size), "sha256": _sha256(src)}
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    packed = sum(f.stat().st_size for f in out.iterdir())
    print(f"vgg-pack: {src.name} {data.size / MIB:.2f} MiB -> {packed / MIB:.2f} MiB in {out}")
    return 0


def cmd_vgg_unpack(args: argparse.Namespace) -> int:
    import numpy as np

    src, dst = Path(args.source), Path(args.out)
    meta = json.loads((src / "meta.json").read_text())
    lo = np.frombuffer((src / "lo.bin").read_bytes(), dtype=np.uint8)
    if (src / "hi.bin.xz").is_file():
        hi_bytes = lzma.decompress((src / "hi.bin.xz").read_bytes())
    else:
        hi_bytes = zlib.decompress((src / "hi.bin.zz").read_bytes())
    hi = np.frombuffer(hi_bytes, dtype=np.uint8)
    data = np.empty(meta["size"], dtype=np.uint8)
    data[0::2], data[1::2] = lo, hi
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    data.tofile(tmp)
    digest = _sha256(tmp)
    if digest != meta["sha256"]:
        tmp.unlink()
        raise SystemExit(f"error: {dst}: sha256 {digest} != {meta['sha256']} (pack damaged)")
    os.replace(tmp, dst)
    print(f"vgg-unpack: {dst} ({meta['size']} bytes, sha256 ok)")
    return 0


SKIP_DIRS = {".git", ".venv", "__pycache__", "runs", ".pytest_cache", ".ruff_cache", "build", "demo_out"}


def _git_files(repo: Path) -> tuple[list[Path], str]:
    """The files that travel (tracked + untracked-not-ignored); outside a git checkout (a copied tree), every file
    but the usual ignored folders."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "ls-files", "-co", "--exclude-standard", "-z"], check=True,
                             capture_output=True).stdout
        return [repo / p for p in out.decode().split("\0") if p], "git ls-files -co --exclude-standard"
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in repo.rglob("*") if p.is_file() and not SKIP_DIRS & set(p.relative_to(repo).parts)]
        return files, "no git checkout: every file"


def _tree_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def cmd_travel_size(args: argparse.Namespace) -> int:
    """Bytes that travel to the device: tracked + untracked-not-ignored files, plus the carried pack; breakdown."""
    repo = Path(args.repo).resolve()
    listed, how = _git_files(repo)
    files = [f for f in listed if f.is_file() and not f.is_symlink()]
    pack = Path(args.pack).resolve() if args.pack else None
    if pack is not None:
        files = [f for f in files if pack not in f.parents]  # the pack is ignored; counted once, below
    tree = sum(f.stat().st_size for f in files)
    weights = sum(f.stat().st_size for f in files if (repo / "weights") in f.parents)
    rows = [(f"working tree ({how})", tree),
            ("  of which weights/", weights)]
    pack_total = 0
    if pack is not None and pack.is_dir():
        for sub in sorted(p for p in pack.iterdir()):
            size = _tree_size(sub) if sub.is_dir() else sub.stat().st_size
            rows.append((f"  {pack.name}/{sub.name}", size))
            pack_total += size
        rows.insert(2, (f"{pack.name}/ (carried)", pack_total))
    total = tree + pack_total
    for name, size in rows:
        print(f"{name:<60} {size / MIB:8.2f} MiB")
    print(f"{'total that travels':<60} {total / MIB:8.2f} MiB (cap {args.cap_mib:g} MiB; device limit 64 MiB)")
    if args.json:
        sizes = {n.strip(): round(s / MIB, 3) for n, s in rows} | {"total": round(total / MIB, 3)}
        Path(args.json).write_text(json.dumps({"mib": sizes}, indent=1) + "\n")
    if total > args.cap_mib * MIB:
        print(f"error: {total / MIB:.2f} MiB would travel, more than {args.cap_mib:g} MiB: lower SR_MIB, FACES or "
              "FACADES (scripts/gpu/pack.sh)", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------------------------ run side
def half_copy(source: str, dest: str) -> None:
    """fp16 copy of a safetensors file: floating tensors ``.half()``, others unchanged, metadata kept."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(source, framework="pt") as f:
        meta = dict(f.metadata() or {})
        state = {k: f.get_tensor(k) for k in f.keys()}
    out = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    if "restore" in meta:  # restore's own metadata records the stored dtype (restore.engine.weights)
        try:
            desc = json.loads(meta["restore"])
            desc["dtype"] = "fp16"
            meta["restore"] = json.dumps(desc)
        except (ValueError, TypeError):
            pass
    bad = [k for k, v in out.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise SystemExit(f"error: {source}: tensors do not fit fp16: {bad[:5]}")
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    save_file(out, dest, metadata=meta)
    print(f"half: {dest} ({os.path.getsize(dest) / MIB:.2f} MiB)")


def cmd_half(args: argparse.Namespace) -> int:
    if len(args.files) % 2:
        raise SystemExit("error: half takes SOURCE DEST pairs")
    failed = 0
    for source, dest in zip(args.files[0::2], args.files[1::2], strict=True):
        try:
            half_copy(source, dest)
        except (OSError, SystemExit, ValueError) as err:
            print(f"error: {source}: {err}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def cmd_export(args: argparse.Namespace) -> int:
    """The generator (EMA when present) of a run's newest checkpoint as ``.safetensors`` with restore's metadata:
    the fallback when a time-limited run stopped without exporting its weights."""
    from restore.engine.checkpoint import latest_checkpoint, load
    from restore.engine.runs import RunFolder
    from restore.engine.weights import save_state

    run = RunFolder.at(args.run)
    path = latest_checkpoint(run.checkpoints)
    if path is None:
        raise SystemExit(f"error: no checkpoint in {run.checkpoints}")
    state = load(path, map_location="cpu")
    gen = state["generator"]
    weights = state.get("ema") or gen["state"]
    desc = {"arch": gen["type"], "kwargs": gen["kwargs"], "task": state["config"]["task"],
            **gen.get("extra", {}), "steps": int(state["step"])}
    out = save_state(weights, args.out, desc)
    print(f"export: {out} from {path} (step {state['step']})")
    return 0


def train_summary(run_dir: Path) -> dict:
    """Steps, steps/s (median of the logged ``speed/it_per_s``, and overall from the log span) and last losses."""
    from restore.engine.runs import RunFolder

    run = RunFolder.at(run_dir)
    rows = run.metric_rows()
    speeds = [r["speed/it_per_s"] for r in rows if "speed/it_per_s" in r]
    out: dict = {"run_dir": str(run_dir), "metrics_rows": len(rows)}
    if rows:
        out["last_step"] = max(r.get("step", 0) for r in rows)
    if speeds:
        out["steps_per_s_median"] = statistics.median(speeds)
        out["steps_per_s_last"] = speeds[-1]
        out["steps_per_s_after_warmup"] = statistics.median(speeds[1:]) if len(speeds) > 1 else speeds[0]
    crit = [r["speed/critic_ms"] for r in rows if "speed/critic_ms" in r]
    if crit:
        out["critic_ms_median"] = statistics.median(crit)
    val = [r for r in rows if any(k.startswith("val/") for k in r)]
    if val:
        out["val_last"] = val[-1]
    losses = [r for r in rows if "g/total" in r]
    if losses:
        out["losses_last"] = {k: v for k, v in losses[-1].items() if "/" in k and not k.startswith("speed")}
    hw = run.hardware_rows()
    if hw:
        out["hardware"] = hw[-1]
    return out


def gpu_summary(csv_path: Path) -> dict:
    """Mean / median / max utilisation (%) and max memory (MiB) of an nvidia-smi CSV log."""
    if not csv_path.is_file():
        return {"available": False, "why": "no nvidia-smi log (nvidia-smi absent or not started)"}
    util, mem = [], []
    for line in csv_path.read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0].split()[0].replace(".", "").isdigit():
            continue  # header
        try:
            util.append(float(parts[0].split()[0]))
            mem.append(float(parts[1].split()[0]))
        except (ValueError, IndexError):
            continue
    if not util:
        return {"available": False, "why": f"{csv_path.name} holds no samples"}
    busy = [u for u in util if u > 0]
    return {"available": True, "samples": len(util), "util_mean": statistics.fmean(util),
            "util_median": statistics.median(util), "util_max": max(util),
            "util_mean_nonzero": statistics.fmean(busy) if busy else 0.0, "mem_used_max_mib": max(mem)}


def _json_or_none(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def cmd_summarize(args: argparse.Namespace) -> int:
    """Collect every figure of a run.sh work folder into one JSON: steps (exit codes, seconds), benchmarks,
    pytest summary, training speed and GPU utilisation per stage, evaluation."""
    from restore.files import read_jsonl

    work = Path(args.work)
    steps = read_jsonl(work / "steps.jsonl")
    result: dict = {"meta": _json_or_none(work / "meta.json") or {}, "steps": steps, "failed_steps":
                    [s["step"] for s in steps if s.get("rc") not in (0, None)]}
    for name in ("critic_step", "infer_speed", "train_step"):
        result[f"bench_{name}"] = _json_or_none(work / f"{name}.json")
    pytest_txt = work / "pytest_summary.txt"
    if pytest_txt.is_file():
        lines = [ln for ln in pytest_txt.read_text().splitlines() if ln.strip()]
        result["pytest_cuda"] = {"summary": lines[-1] if lines else "", "lines": lines[-60:]}
    for stage in args.stage:
        name, _, run_dir = stage.partition("=")
        entry = train_summary(Path(run_dir))
        entry["gpu"] = gpu_summary(work / f"gpu_{name}.csv")
        result[f"train_{name}"] = entry
    for ev in sorted(work.glob("eval_*.json")):
        result[ev.stem] = _json_or_none(ev)
    Path(args.out).write_text(json.dumps(result, indent=1, default=str) + "\n")
    if args.print:
        print_key_figures(result)
    print(f"summarize: {args.out} ({len(steps)} steps, failed: {result['failed_steps'] or 'none'})")
    return 0


def print_key_figures(result: dict) -> None:
    """A few lines for the command's output tail: each step's exit code, training speed, Set5 PSNR, benchmarks."""
    print("steps: " + ", ".join(f"{s['step']}={s['rc']}" for s in result["steps"]))
    for key in [k for k in result if k.startswith("train_")]:
        t = result[key]
        gpu = t.get("gpu", {})
        util = f", GPU util mean {gpu['util_mean']:.0f}% (max mem {gpu['mem_used_max_mib']:.0f} MiB)" \
            if gpu.get("available") else f", GPU: {gpu.get('why')}"
        speed = t.get("steps_per_s_median")
        print(f"{key}: last step {t.get('last_step')}, "
              f"{f'{speed:.2f} steps/s' if speed else 'no speed logged'}{util}")
    for key in [k for k in result if k.startswith("eval_")]:
        for ds in (result[key] or {}).get("datasets", []):
            mean = ", ".join(f"{m} {v:.4g}" for m, v in (ds.get("mean") or {}).items())
            print(f"{key} {ds.get('name')}: {mean}")
    inf = result.get("bench_infer_speed") or {}
    for r in inf.get("rows", []):
        if "median_ms" in r:
            print(f"infer {r['model']} {r['dtype']} {r['input']}: {r['median_ms']:.1f} ms/frame")
    for r in (result.get("bench_critic_step") or {}).get("rows", []):
        print(f"critic step {r['method']}: {r['median_ms']:.2f} ms, x none {r['ratio']:.3f}")
    ts = result.get("bench_train_step")
    if ts:
        print(f"train step bench: {json.dumps(ts, default=str)[:400]}")
    if result.get("pytest_cuda"):
        print(f"pytest -m cuda: {result['pytest_cuda']['summary']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("crops")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=480)
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--budget-mib", type=float, default=4.0)
    p.add_argument("--max-per-image", type=int, default=0, help="0: no limit")
    p.add_argument("sources", nargs="+")
    p.set_defaults(func=cmd_crops)
    p = sub.add_parser("subset")
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--pair", help="suffix of a file that goes with each photo (e.g. .png label maps)")
    p.add_argument("--also", action="append", default=[], help="extra file to copy (e.g. label_names.txt)")
    p.add_argument("source")
    p.set_defaults(func=cmd_subset)
    p = sub.add_parser("vgg-pack")
    p.add_argument("source")
    p.add_argument("out")
    p.add_argument("--fast", action="store_true", help="zlib instead of xz (seconds instead of ~40 s; +0.5 MiB)")
    p.set_defaults(func=cmd_vgg_pack)
    p = sub.add_parser("vgg-unpack")
    p.add_argument("source")
    p.add_argument("out")
    p.set_defaults(func=cmd_vgg_unpack)
    p = sub.add_parser("travel-size")
    p.add_argument("repo")
    p.add_argument("--pack")
    p.add_argument("--cap-mib", type=float, default=60.0)
    p.add_argument("--json")
    p.set_defaults(func=cmd_travel_size)
    p = sub.add_parser("half")
    p.add_argument("files", nargs="+", metavar="SOURCE DEST")
    p.set_defaults(func=cmd_half)
    p = sub.add_parser("export")
    p.add_argument("run")
    p.add_argument("out")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("summarize")
    p.add_argument("work")
    p.add_argument("out")
    p.add_argument("--stage", action="append", default=[], metavar="NAME=RUN_DIR")
    p.add_argument("--print", action="store_true", help="print the key figures")
    p.set_defaults(func=cmd_summarize)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
