"""Benchmark: milliseconds per frame of 4x super-resolution, SRResNet (SAN paper Table 8) and RRDBNet (ESRGAN).

Default frame: 960x540 in, 3840x2160 out (540p -> 2160p). One whole frame per forward pass (no tiling), batch 1,
random weights (speed does not depend on their values), ``torch.inference_mode``, warm-up passes first, and a
``torch.cuda.synchronize`` before each clock read on CUDA. Precisions: ``fp32`` (TF32 off: true fp32), ``tf32``
(fp32 tensors, TF32 tensor-core convolutions: PyTorch's default for cuDNN convolutions), ``fp16`` and ``bf16``
(weights and input cast: what a deployed half model does; ``restore infer --half`` instead autocasts fp32
weights). The table gives the median, the spread, frames/s and the ratio to fp32 of the same model, plus the largest
output difference from fp32 (same input, same weights).

    python bench/infer_speed.py --device cuda --json infer_speed.json            # 960x540, fp32 + fp16
    python bench/infer_speed.py --device cuda --dtypes fp32,tf32,fp16,bf16
    python bench/infer_speed.py --device cpu --size 160x90 --iters 2 --warmup 1   # the CPU: a smaller frame
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "srresnet":
        from restore.archs.srresnet import SRResNet

        return SRResNet(channels=64, num_blocks=16, scale=4)  # SAN paper Table 8, ~1.5 M parameters
    if name == "rrdbnet":
        from restore.archs.rrdb import RRDBNet

        return RRDBNet(channels=64, num_blocks=23, growth_channels=32, scale=4)  # ESRGAN, 16.7 M parameters
    raise ValueError(f"unknown model {name!r} (srresnet, rrdbnet)")


def parse_size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
        raise argparse.ArgumentTypeError(f"--size must be WIDTHxHEIGHT, e.g. 960x540, got {text!r}")
    return int(w), int(h)


def time_model(model: torch.nn.Module, x: torch.Tensor, warmup: int, iters: int, device: torch.device
               ) -> tuple[list[float], torch.Tensor]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for _ in range(warmup):
            y = model(x)
        sync()
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            y = model(x)
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
    return times, y


def run(models: list[str], dtypes: list[str], device: torch.device, size: tuple[int, int], warmup: int, iters: int,
        channels_last: bool) -> list[dict]:
    w, h = size
    gen = torch.Generator().manual_seed(1)
    x32 = torch.rand(1, 3, h, w, generator=gen)
    rows = []
    cuda = device.type == "cuda"
    old_tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) if cuda else None
    for name in models:
        base = build(name).eval()
        params = sum(p.numel() for p in base.parameters())
        ref: torch.Tensor | None = None
        fp32_ms: float | None = None
        for dt in dtypes:
            row = {"model": name, "dtype": dt, "params": params, "input": f"{w}x{h}",
                   "output": f"{4 * w}x{4 * h}", "channels_last": channels_last}
            try:
                if cuda:
                    tf32 = dt == "tf32"
                    torch.backends.cuda.matmul.allow_tf32 = tf32
                    torch.backends.cudnn.allow_tf32 = tf32
                fmt = torch.channels_last if channels_last else torch.contiguous_format
                model = build(name).eval().to(device=device, dtype=DTYPES[dt], memory_format=fmt)
                x = x32.to(device=device, dtype=DTYPES[dt]).contiguous(memory_format=fmt)
                times, y = time_model(model, x, warmup, iters, device)
                med = statistics.median(times)
                q = statistics.quantiles(times, n=4) if len(times) >= 4 else [min(times), med, max(times)]
                row.update(median_ms=med, p25_ms=q[0], p75_ms=q[-1], min_ms=min(times), iters=len(times),
                           fps=1e3 / med, out_mpix_per_s=16 * w * h / med / 1e3)
                yf = y.float()
                if dt == "fp32" and ref is None:
                    ref, fp32_ms = yf, med
                elif ref is not None:
                    row["max_abs_diff_vs_fp32"] = float((yf - ref).abs().max())
                    row["ratio_vs_fp32"] = med / fp32_ms if fp32_ms else None
                if cuda:
                    row["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                    torch.cuda.reset_peak_memory_stats(device)
                del model, x, y, yf
            except (RuntimeError, NotImplementedError) as err:  # e.g. a dtype this device has no kernels for
                row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
            if cuda:
                torch.cuda.empty_cache()
            rows.append(row)
        del ref
    if old_tf32 is not None:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old_tf32
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--size", type=parse_size, default=(960, 540), help="LR frame WIDTHxHEIGHT (default 960x540)")
    ap.add_argument("--models", default="srresnet,rrdbnet")
    ap.add_argument("--dtypes", default="fp32,fp16", help="comma-separated: " + ", ".join(DTYPES))
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto",
                    help="NHWC activations and weights (auto: on for CUDA)")
    ap.add_argument("--no-cudnn-benchmark", action="store_true", help="keep cuDNN's autotuner off")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    bad = [d for d in dtypes if d not in DTYPES]
    if bad:
        ap.error(f"unknown dtype(s) {bad}; valid: {', '.join(DTYPES)}")
    if "fp32" in dtypes:  # the reference first, so every other row has its ratio
        dtypes = ["fp32"] + [d for d in dtypes if d != "fp32"]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    from restore.devices import choose_device

    try:
        device = choose_device(args.device)
    except ValueError as err:
        ap.error(str(err))
    channels_last = args.channels_last == "on" or (args.channels_last == "auto" and device.type == "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    hw = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    w, h = args.size
    print(f"4x SR inference, {w}x{h} -> {4 * w}x{4 * h}, batch 1, {args.warmup} warm-up + {args.iters} timed passes; "
          f"device {device} ({hw}); torch {torch.__version__}; channels_last {channels_last}")
    rows = run(models, dtypes, device, args.size, args.warmup, args.iters, channels_last)
    print(f"\n| {'model':<9} | {'dtype':<5} | {'median ms':>10} | {'p25-p75 ms':>17} | {'frames/s':>8} | "
          f"{'x fp32':>6} | {'max |diff| vs fp32':>18} |")
    print(f"|{'-' * 11}|{'-' * 7}|{'-' * 12}|{'-' * 19}|{'-' * 10}|{'-' * 8}|{'-' * 20}|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']:<9} | {r['dtype']:<5} | {'error: ' + r['error'][:80]}")
            continue
        ratio = f"{r['ratio_vs_fp32']:.3f}" if r.get("ratio_vs_fp32") else "-"
        diff = f"{r['max_abs_diff_vs_fp32']:.2e}" if "max_abs_diff_vs_fp32" in r else "-"
        spread = f"{r['p25_ms']:.1f}-{r['p75_ms']:.1f}"
        print(f"| {r['model']:<9} | {r['dtype']:<5} | {r['median_ms']:>10.1f} | {spread:>17} | {r['fps']:>8.2f} | "
              f"{ratio:>6} | {diff:>18} |")
    ratios = {f"{r['model']}_{r['dtype']}_over_fp32": r["ratio_vs_fp32"] for r in rows if r.get("ratio_vs_fp32")}
    for k, v in ratios.items():
        print(f"{k}: {v:.3f} (time ratio; {1 / v:.2f}x the fp32 speed)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "hardware": hw, "torch": torch.__version__, "size": [w, h],
                       "warmup": args.warmup, "iters": args.iters, "channels_last": channels_last,
                       "cudnn_benchmark": device.type == "cuda" and not args.no_cudnn_benchmark,
                       "rows": rows, "ratios": ratios}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
