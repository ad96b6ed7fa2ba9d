"""Benchmark: one critic training step per critic normalization, as a ratio to no normalization.

The step is what the engine does: forward real + fake, hinge loss, the norm's penalty, backward, Adam step and
``norm.step()``, on the SAN paper's Table 4 "standard CNN" critic (32x32, batch 64; App. F times the same step).
All methods are timed in the same process, interleaved round-robin so machine noise hits them alike; the table
reports the median and the ratio to ``none`` measured in that run. Uses CUDA when present (``--device``).

    python bench/critic_step.py            # full run
    python bench/critic_step.py --quick    # a short run (docs/study.md)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch

from restore.builders import build_critic
from restore.norms import build_norm

# name -> norm spec (plus the critic's padding_mode where it differs from the default zeros). "none-circular" is
# the same-padding baseline for SAN, which needs circular padding (the paper times every method with it, App. J).
# SAN at every: 1 is the strict setting; every: 10 / 100 amortise the FFT (paper Sec. 3.1).
METHODS: dict[str, dict] = {
    "none": {"type": "none"},
    "none-circular": {"type": "none", "padding_mode": "circular"},
    "sn": {"type": "sn"},
    "bsn": {"type": "bsn"},
    "san": {"type": "san", "every": 1},
    "san-every10": {"type": "san", "every": 10},
    "san-every100": {"type": "san", "every": 100},
    "san-r0.25": {"type": "san", "ratio": 0.25, "every": 1},
    "gp": {"type": "gp"},
    "r1": {"type": "r1"},
    "gran": {"type": "gran"},
}


def make_step(spec: dict, device: torch.device, batch: int, size: int, width: int) -> Callable[[], None]:
    torch.manual_seed(0)
    spec = dict(spec)
    arch = {"image_size": size, "width": width}
    if "padding_mode" in spec:
        arch["padding_mode"] = spec.pop("padding_mode")
    critic, norm = build_critic("standard_cnn", arch, build_norm(spec))
    critic.to(device).train()
    opt = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.9))
    gen = torch.Generator(device="cpu").manual_seed(1)
    real = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(device)
    fake = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.relu(1 - critic(real)).mean() + torch.relu(1 + critic(fake)).mean()
        loss = loss + norm.penalty(critic, real, fake)
        loss.backward()
        opt.step()
        norm.step()

    return step


def run(methods: dict[str, dict], device: torch.device, batch: int, size: int, width: int, rounds: int,
        steps_per_round: int, warmup: int) -> dict[str, list[float]]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    steps = {name: make_step(spec, device, batch, size, width) for name, spec in methods.items()}
    for step in steps.values():
        for _ in range(warmup):
            step()
    sync()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for r in range(rounds):
        order = list(steps) if r % 2 == 0 else list(reversed(steps))  # alternate order against drift
        for name in order:
            for _ in range(steps_per_round):
                t0 = time.perf_counter()
                steps[name]()
                sync()
                times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def table(times: dict[str, list[float]]) -> list[dict]:
    """Rows with the ratio to ``none`` and to the baseline with the same padding (SAN: ``none-circular``)."""
    base = statistics.median(times["none"])
    base_circ = statistics.median(times["none-circular"]) if "none-circular" in times else None
    rows = []
    for name, ts in times.items():
        q = statistics.quantiles(ts, n=4) if len(ts) >= 4 else [min(ts), statistics.median(ts), max(ts)]
        med = statistics.median(ts)
        circular = name.startswith("san") or name == "none-circular"
        same = base_circ if circular else base
        rows.append({"method": name, "median_ms": med, "p25_ms": q[0], "p75_ms": q[-1], "ratio": med / base,
                     "ratio_same_padding": med / same if same else None, "steps": len(ts)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--steps-per-round", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="3 rounds of 2 steps: a smoke run, not for reporting")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of: " + ", ".join(METHODS))
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.steps_per_round, args.warmup = 3, 2, 1
    chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        ap.error(f"unknown method(s) {unknown}; valid: {', '.join(METHODS)}")
    if "none" not in chosen:
        chosen.insert(0, "none")  # the baseline is always measured in the same run
    from restore.devices import choose_device

    try:
        device = choose_device(args.device)
    except ValueError as err:
        ap.error(str(err))
    hw = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"critic step, SAN paper Table 4 critic, batch {args.batch}, {args.size}x{args.size}, width {args.width}; "
          f"device {device} ({hw}); torch {torch.__version__}; {args.rounds} rounds x {args.steps_per_round} steps")
    times = run({m: METHODS[m] for m in chosen}, device, args.batch, args.size, args.width, args.rounds,
                args.steps_per_round, args.warmup)
    rows = table(times)
    head = f"| {'method':<14} | {'median ms':>9} | {'p25-p75 ms':>15} | {'x none':>6} | {'x none, same padding':>20} |"
    print("\n" + head)
    print(f"|{'-' * 16}|{'-' * 11}|{'-' * 17}|{'-' * 8}|{'-' * 22}|")
    for r in rows:
        spread = f"{r['p25_ms']:.1f}-{r['p75_ms']:.1f}"
        same = f"{r['ratio_same_padding']:.3f}" if r["ratio_same_padding"] else "-"
        print(f"| {r['method']:<14} | {r['median_ms']:>9.1f} | {spread:>15} | {r['ratio']:>6.3f} | {same:>20} |")
    print("\nx none: ratio to the vanilla critic (zeros padding). x none, same padding: SAN rows against "
          "none-circular,\nthe normalization's own cost (SAN requires circular padding; see docs/norms.md).")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "hardware": hw, "batch": args.batch, "size": args.size,
                       "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
