"""Benchmark: one GAN training step of the SAN paper's Table 8 SR setup under each engine speed option, as a ratio
to fp32 eager measured in the same run.

The step is the engine's own (``Trainer.train_step``: generator forward, critic step with SAN's refresh, generator
step, Adam) on an SRResNet generator and the VGG critic with SAN (options/train/sr/x4_srresnet_san.yml), with L1
1e-2 + hinge 0.01 on random images (the VGG perceptual loss is left out: its weights are a separate download and it
is the same fixed network in every mode). Modes are timed round-robin, one step each per round, so machine noise
hits them alike; the table reports the median.

    python bench/train_step.py --device cuda --batch 16 --gt-size 128 --json bench_cuda.json
    python bench/train_step.py --batch 2 --gt-size 64 --channels 16 --blocks 4 --steps 5   # a quick CPU run
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from restore.builders import build_critic_from_spec
from restore.config import parse_options
from restore.engine.trainer import Trainer

# mode -> train options. "fp32" is the baseline (TF32 off on CUDA, so it is real fp32 there).
MODES: dict[str, dict[str, Any]] = {
    "fp32": {},
    "bf16": {"amp": "bf16"},
    "fp16": {"amp": "fp16"},  # CUDA only
    "tf32": {"tf32": True},  # CUDA only
    "channels_last": {"channels_last": True},
    "fused_adam": {"optimizer_impl": "fused"},
    "foreach_adam": {"optimizer_impl": "foreach"},
    "compile": {"compile": "all"},
    "bf16+channels_last": {"amp": "bf16", "channels_last": True},
    "bf16+channels_last+fused": {"amp": "bf16", "channels_last": True, "optimizer_impl": "fused"},
    "all": {"amp": "bf16", "channels_last": True, "optimizer_impl": "fused", "compile": "all", "tf32": True},
}
CUDA_ONLY = {"fp16", "tf32"}


class RandomSR:
    """The SR task's contract with random HR crops (LR = 4x bicubic-free average pooling): no files needed."""

    def __init__(self, opts: Any, batch: int, gt_size: int, channels: int, blocks: int):
        from restore.registry import GENERATORS

        self.opts = opts
        self.gen_kwargs = {"channels": channels, "num_blocks": blocks, "scale": 4}
        self.generator = GENERATORS.build("srresnet", **self.gen_kwargs)
        self.critic, self.norm = build_critic_from_spec(opts.critic)
        gen = torch.Generator().manual_seed(0)
        self.gt = torch.rand(8, batch, 3, gt_size, gt_size, generator=gen)

    def batches(self) -> Iterator[dict[str, torch.Tensor]]:
        i = 0
        while True:
            gt = self.gt[i % len(self.gt)]
            yield {"gt": gt, "lq": F.avg_pool2d(gt, 4)}
            i += 1

    def to_device(self, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    def generate(self, g: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return g(batch["lq"])

    def critic_forward(self, d: torch.nn.Module, batch: Any, x: torch.Tensor) -> torch.Tensor:
        return d(x * 2 - 1)

    def real_for_penalty(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["gt"]

    def critic_loss(self, d: torch.nn.Module, batch: dict[str, torch.Tensor], fake: torch.Tensor):
        loss = F.relu(1 - d(batch["gt"] * 2 - 1)).mean() + F.relu(1 + d(fake * 2 - 1)).mean()
        return loss, {}

    def generator_loss(self, d: torch.nn.Module, batch: dict[str, torch.Tensor], fake: torch.Tensor):
        return 1e-2 * F.l1_loss(fake.float(), batch["gt"]) - 0.01 * d(fake * 2 - 1).float().mean(), {}

    def has_validation(self) -> bool:
        return False

    def train_dataset(self) -> list[dict[str, torch.Tensor]]:
        """The random crops as items (the benchmark feeds :meth:`batches` to ``train_step`` directly)."""
        return [{"gt": gt, "lq": F.avg_pool2d(gt[None], 4)[0]} for batch in self.gt for gt in batch]

    def validate(self, g: torch.nn.Module, device: Any) -> tuple[dict[str, float], None]:
        """No validation set (``has_validation`` is False): nothing to measure."""
        return {}, None

    def describe_generator(self) -> dict[str, Any]:
        return {"type": "srresnet", "kwargs": dict(self.gen_kwargs), "extra": {}}


def make_trainer(mode: dict[str, Any], args: argparse.Namespace, device: torch.device) -> tuple[Trainer, Iterator]:
    train = {"steps": 10**9, "batch_size": args.batch, "lr_g": 1e-4, "lr_d": 1e-4, "ema": 0.999, **mode}
    if device.type == "cuda":
        train.setdefault("tf32", False)
    opts = parse_options({"name": "bench", "task": "sr", "critic": {"arch": "vgg_critic", "image_size": args.gt_size,
                                                                    "norm": {"type": args.norm}},
                          "train": train}, source="bench")
    torch.manual_seed(0)
    task = RandomSR(opts, args.batch, args.gt_size, args.channels, args.blocks)
    trainer = Trainer(opts, task, "/tmp/restore-bench-unused", device, progress=False)
    trainer.G_train.train()
    trainer.D.train()
    return trainer, task.batches()


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--gt-size", type=int, default=128, help="HR crop = critic input size (multiple of 16)")
    ap.add_argument("--channels", type=int, default=64, help="SRResNet width (Table 8: 64)")
    ap.add_argument("--blocks", type=int, default=16, help="SRResNet residual blocks (Table 8: 16)")
    ap.add_argument("--norm", default="san", help="critic norm (Table 8 setup: san)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per mode (round-robin)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per mode first (compilation happens here)")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of: " + ", ".join(MODES))
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON")
    args = ap.parse_args()
    device = torch.device(args.device)
    names = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODES]
    if unknown:
        raise SystemExit(f"error: --modes: unknown {unknown}; valid: {', '.join(MODES)}")
    if device.type != "cuda":
        names = [m for m in names if m not in CUDA_ONLY]
    if "fp32" not in names:
        names.insert(0, "fp32")

    print(f"hardware: {hardware(device)}")
    print(f"setup: srresnet {args.channels}ch x {args.blocks} blocks, vgg_critic {args.gt_size}px + {args.norm}, "
          f"batch {args.batch}, {args.warmup} warm-up + {args.steps} timed steps per mode")
    if device.type == "cpu":
        print("note: on a CPU without bf16 hardware (e.g. AMD Zen 3: AVX2 only) bf16 is emulated; its row checks that "
              "the mode runs, not its speed")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    runs = {}
    for name in names:
        tic = time.perf_counter()
        trainer, data = make_trainer(MODES[name], args, device)
        for _ in range(args.warmup):
            trainer.train_step(data)
        sync()
        runs[name] = (trainer, data, [])
        print(f"  {name}: built + {args.warmup} warm-up steps in {time.perf_counter() - tic:.1f}s", flush=True)
    for _ in range(args.steps):
        for _name, (trainer, data, times) in runs.items():
            sync()
            tic = time.perf_counter()
            trainer.train_step(data)
            sync()
            times.append(time.perf_counter() - tic)
    base = statistics.median(runs["fp32"][2])
    results = {}
    print("\n| mode | median step (ms) | ratio to fp32 eager |\n|---|---|---|")
    for name, (_, _, times) in runs.items():
        med = statistics.median(times)
        results[name] = {"median_ms": 1000 * med, "ratio": med / base, "options": MODES[name]}
        print(f"| {name} | {1000 * med:.1f} | {med / base:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"hardware": hardware(device), "device": device.type, "torch": torch.__version__,
                       "settings": {k: v for k, v in vars(args).items() if k != "json"}, "results": results}, f,
                      indent=2)


if __name__ == "__main__":
    main()
