"""A tiny, fully deterministic task for engine tests (no files, no pretrained weights)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from restore.builders import build_critic_from_spec
from restore.config import parse_options
from restore.tasks.base import default_description


class ToyData(Dataset):
    """16 random 16x16 'HR' images; each draw adds epoch/index-seeded noise (checks the sampler's contract)."""

    def __init__(self, n: int = 16, seed: int = 0):
        gen = torch.Generator().manual_seed(1234)
        self.hr = torch.rand(n, 3, 16, 16, generator=gen)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        gt = (self.hr[i] + torch.from_numpy(rng.normal(0, 0.05, (3, 16, 16)).astype(np.float32))).clamp(0, 1)
        return {"lq": F.avg_pool2d(gt.unsqueeze(0), 2)[0], "gt": gt}


class ToyGen(nn.Module):
    scale = 2

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(8, 12, 3, padding=1),
                                  nn.PixelShuffle(2))

    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="nearest") + 0.1 * self.body(x)


class ToyTask:
    def __init__(self, opts, nan_at: int | None = None, signal_at: int | None = None):
        self.opts = opts
        self.generator = ToyGen()
        self.critic, self.norm = build_critic_from_spec(opts.critic)
        self.calls = 0
        self.nan_at, self.signal_at = nan_at, signal_at

    def train_dataset(self):
        return ToyData(seed=self.opts.seed)

    def describe_generator(self):
        return default_description(self.opts, self.generator)

    def has_validation(self):
        return True

    def to_device(self, batch, device):
        return {k: v.to(device) for k, v in batch.items()}

    def generate(self, g, batch):
        self.calls += 1
        if self.signal_at is not None and self.calls == self.signal_at:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGINT)
        return g(batch["lq"])

    def critic_forward(self, d, batch, x):
        return d(x * 2 - 1)

    def real_for_penalty(self, batch):
        return batch["gt"]

    def critic_loss(self, d, batch, fake):
        loss = torch.relu(1 - d(batch["gt"] * 2 - 1)).mean() + torch.relu(1 + d(fake * 2 - 1)).mean()
        return loss, {"d/adv": float(loss.detach())}

    def generator_loss(self, d, batch, fake):
        content = F.l1_loss(fake, batch["gt"])
        adv = -d(fake * 2 - 1).mean()
        loss = content + 0.1 * adv
        if self.nan_at is not None and self.calls >= self.nan_at:
            loss = loss * float("nan")
        return loss, {"g/content": float(content.detach())}

    @torch.no_grad()
    def validate(self, g, device):
        data = ToyData()
        sr = g(torch.stack([data[i]["lq"] for i in range(2)]).to(device)).clamp(0, 1)
        return {"l1": float((sr.cpu() - torch.stack([data[i]["gt"] for i in range(2)])).abs().mean())}, sr[0].cpu()


def toy_options(tmp_path, norm="none", steps=6, **train):
    data = {
        "name": "toy", "task": "sr", "seed": 0, "path": {"root": str(tmp_path)},
        "critic": {"arch": "standard_cnn", "width": 4, "image_size": 16, "norm": {"type": norm}},
        "data": {"num_workers": 0},
        "train": {"steps": steps, "batch_size": 4, "ema": 0.9, "log_every": 2, "lr_g": 1e-3, "lr_d": 1e-3, **train},
        "val": {"every": 3}, "checkpoint": {"every": 3, "keep": 2},
    }
    return parse_options(data, source="toy")
