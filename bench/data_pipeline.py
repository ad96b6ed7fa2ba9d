"""SR training data: items/s of today's worker path and of the fast path (cache + device ops), in the same run.

    python bench/data_pipeline.py                      # gt 128, batch 32, ../shared/data/sr-train, CPU
    python bench/data_pipeline.py --device cuda --workers 4 --json bench/results/data.json

"today" is ``sr_hr_folder`` with ``cache_mb: 0, device_ops: false``: every item decodes its photo, crops, flips
and runs basicsr's numpy MATLAB bicubic in the loading process. "fast" is the default ``sr_hr_folder``: the
decoded-image cache plus staged items whose flips, rotations and downscale run batched on ``--device``. Both go
through the engine's own sampler and DataLoader setup, so the figures are what training sees. The fast path's
first pass over the images (the cache filling) is timed separately from its steady state.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from restore.data.sr import HRFolderDataset  # noqa: E402
from restore.engine.sampler import EpochIndexed, StepBatchSampler  # noqa: E402


def _loader(ds: HRFolderDataset, batch: int, workers: int, start_step: int) -> DataLoader:
    sampler = StepBatchSampler(len(ds), batch, seed=0, start_step=start_step)
    return DataLoader(EpochIndexed(ds), batch_sampler=sampler, num_workers=workers, persistent_workers=workers > 0)


def _rate(ds: HRFolderDataset, batches: int, batch: int, workers: int, device: torch.device,
          warm: int = 1) -> float:
    """Items/s over ``batches`` batches, finished on ``device`` (the time until the batch is usable there), after
    ``warm`` untimed batches (worker start-up, and the workers' own caches filling, are not throughput)."""
    it = iter(_loader(ds, batch, workers, 0))
    for _ in range(warm):
        next(it)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    tic = time.perf_counter()
    for _ in range(batches):
        b = next(it)
        b = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in b.items()}
        if ds.staged:
            b = ds.finish_batch(b)
        sync()
    return batches * batch / (time.perf_counter() - tic)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--roots", nargs="+", default=[str(ROOT.parent / "shared/data/sr-train/sun_hays80"),
                                                   str(ROOT.parent / "shared/data/sr-train/plasma_photos")])
    p.add_argument("--gt-size", type=int, default=128)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: the main process loads)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--today-batches", type=int, default=3, help="batches timed on today's path (it is slow)")
    p.add_argument("--fast-batches", type=int, default=100)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    for root in args.roots:
        if not Path(root).is_dir():
            print(f"error: training folder not found: {root} (pass --roots)", file=sys.stderr)
            return 2
    common = dict(scale=args.scale, gt_size=args.gt_size, seed=0)
    today = HRFolderDataset(args.roots, cache_mb=0, device_ops=False, **common)
    fast = HRFolderDataset(args.roots, **common)
    n = len(fast)
    print(f"{n} images from {', '.join(args.roots)}; gt {args.gt_size}, x{args.scale}, batch {args.batch}, "
          f"{args.workers} workers, device {device}")
    print(f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads; "
          f"torch {torch.__version__}" + (f"; gpu: {torch.cuda.get_device_name(device)}" if device.type == "cuda"
                                           else ""))

    tic = time.perf_counter()
    for i in range(n):  # the cache fills (in this process: with workers > 0 each worker fills its own)
        fast.load_staged(i)
    cold = n / (time.perf_counter() - tic)
    r_today = _rate(today, args.today_batches, args.batch, args.workers, device)
    # with workers, each worker fills its own cache: ~6 epochs per worker first, so that it has seen every image
    warm = 1 if args.workers == 0 else 6 * args.workers * -(-n // args.batch)
    r_fast = _rate(fast, args.fast_batches, args.batch, args.workers, device, warm=warm)
    rows = [("today (decode + numpy imresize per item)", r_today), ("fast: first pass (decode into cache)", cold),
            ("fast: steady state (cache + device ops)", r_fast)]
    print("\n| path | items/s | vs today |\n|---|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.1f} | {rate / r_today:.1f}x |")
    if args.workers > 0:
        print(f"(with workers, each fills its own cache during its first epochs: the steady-state figure starts "
              f"after {warm} untimed batches; the first-pass row is the main process's)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "images": n, "gt_size": args.gt_size, "scale": args.scale, "batch": args.batch,
            "workers": args.workers, "device": str(device), "torch": torch.__version__,
            "items_per_s": {"today": r_today, "fast_first_pass": cold, "fast": r_fast},
            "ratio_fast_to_today": r_fast / r_today}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
