"""4x super-resolution (ESRGAN-style; SAN paper Sec. 4.3): L1 content + VGG perceptual + adversarial losses."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restore.config import ConfigError, Options, parse_block
from restore.losses.options import SRLossOptions
from restore.norms import CriticNorm, NoNorm
from restore.registry import ADVERSARIAL, TASKS
from restore.tasks.base import build_task_critic, default_description, init_pretrained_generator
from restore.tasks.loss_options import build_perceptual


@TASKS.register("sr")
class SRTask:
    """Builds the SR generator, critic (+ norm), datasets and losses; the engine drives it.

    Images are (N, 3, H, W) in [0, 1]; the critic sees them mapped to [-1, 1].
    """

    def __init__(self, opts: Options):
        import restore.data  # noqa: F401  (datasets)
        import restore.losses  # noqa: F401  (adversarial losses)
        self.opts = opts
        src = opts.source or "<options>"
        if opts.generator is None:
            raise ConfigError(f"{src}: generator is required for task sr (e.g. generator: {{arch: srresnet}})")
        self.generator: nn.Module = opts.generator.build()
        self.scale = int(getattr(self.generator, "scale", 4))
        self.losses: SRLossOptions = parse_block(SRLossOptions, opts.losses, "losses", src)
        init_pretrained_generator(self.generator, opts)
        self.critic: nn.Module | None = None
        self.norm: CriticNorm = NoNorm()
        adv = self.losses.adversarial
        if adv is not None and adv.weight > 0:
            if opts.critic is None:
                raise ConfigError(f"{src}: losses.adversarial needs a critic block (e.g. critic: {{arch: vgg_critic}})")
            self.critic, self.norm = build_task_critic(opts)
            self.adversarial = ADVERSARIAL.build(adv.type)
        elif opts.critic is not None:
            raise ConfigError(f"{src}: critic is given but losses.adversarial is missing or has weight 0; add "
                              "losses.adversarial or remove the critic block")
        self.perceptual: nn.Module | None = None
        p = self.losses.perceptual
        if p is not None and p.weight > 0:
            self.perceptual = build_perceptual(p)
        self._device: Any = None
        self._train_set: Any = None
        self._check_sizes()

    def _check_sizes(self) -> None:
        train = self.opts.data.train
        if train is None:
            return
        src = train.source or self.opts.source
        scale = train.kwargs.get("scale")
        if scale is not None and scale != self.scale:
            raise ConfigError(f"{src}: data.train.scale is {scale} but the generator upscales x{self.scale}")
        gt = train.kwargs.get("gt_size", 128)
        size = getattr(self.critic, "image_size", None)
        if self.critic is not None and size is not None and gt != size:
            raise ConfigError(f"{src}: data.train.gt_size is {gt} but critic.image_size is {size}; "
                              "they must match (the critic sees the training crops)")

    # -- data
    def describe_generator(self) -> dict[str, Any]:
        return default_description(self.opts, self.generator)

    def train_dataset(self) -> Any:
        if self.opts.data.train is None:
            raise ConfigError(f"{self.opts.source}: data.train is required to train")
        kwargs = dict(self.opts.data.train.kwargs)
        kwargs.setdefault("scale", self.scale)
        kwargs.setdefault("seed", self.opts.seed)
        self._train_set = self.opts.data.train.build(**kwargs)
        return self._train_set

    def has_validation(self) -> bool:
        return self.opts.data.val is not None

    def to_device(self, batch: dict[str, Any], device: Any) -> dict[str, Any]:
        if self.perceptual is not None and self._device != device:
            self.perceptual.to(device)
            self._device = device
        batch = {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}
        if "gt_raw" in batch:  # a staged batch (device_ops): flips, rotations and the LR (bicubic or the realesrgan
            batch = self._train_set.finish_batch(batch)  # degradation, restore.data.degradations) are made here
        return batch

    # -- steps
    def generate(self, generator: nn.Module, batch: dict[str, Any]) -> Tensor:
        return generator(batch["lq"])

    def critic_forward(self, critic: nn.Module, batch: dict[str, Any], images: Tensor) -> Any:
        return critic(images * 2 - 1)

    def real_for_penalty(self, batch: dict[str, Any]) -> Tensor:
        return batch["gt"]

    def critic_loss(self, critic: nn.Module, batch: dict[str, Any], fake: Tensor) -> tuple[Tensor, dict[str, float]]:
        real_scores = self.critic_forward(critic, batch, batch["gt"])
        fake_scores = self.critic_forward(critic, batch, fake)
        loss = self.adversarial.critic(real_scores, fake_scores)
        return loss, {"d/adv": float(loss.detach()), "d/real": float(real_scores.detach().float().mean()),
                      "d/fake": float(fake_scores.detach().float().mean())}

    def generator_loss(self, critic: nn.Module | None, batch: dict[str, Any], fake: Tensor
                       ) -> tuple[Tensor, dict[str, float]]:
        gt = batch["gt"]
        target = batch.get("gt_usm", gt)  # degradation usm_gt: L1/perceptual see the sharpened GT, the critic not
        total = fake.new_zeros(())
        scalars: dict[str, float] = {}
        c = self.losses.content
        if c is not None and c.weight > 0:
            content = F.l1_loss(fake, target)
            total = total + c.weight * content
            scalars["g/content"] = float(content.detach())
        if self.perceptual is not None:
            perc = self.perceptual(fake.float(), target.float())
            total = total + self.losses.perceptual.weight * perc
            scalars["g/perceptual"] = float(perc.detach())
        if critic is not None:
            fake_scores = self.critic_forward(critic, batch, fake)
            real_scores = None
            if self.adversarial.generator_needs_real:
                with torch.no_grad():
                    real_scores = self.critic_forward(critic, batch, gt)
            adv = self.adversarial.generator(fake_scores, real_scores)
            total = total + self.losses.adversarial.weight * adv
            scalars["g/adv"] = float(adv.detach())
        return total, scalars

    # -- validation
    @torch.no_grad()
    def validate(self, generator: nn.Module, device: Any) -> tuple[dict[str, float], Tensor | None]:
        from restore.inference.tiling import tiled_forward
        from restore.metrics.fidelity import psnr, ssim

        spec = self.opts.data.val
        kwargs = dict(spec.kwargs)
        kwargs.setdefault("scale", self.scale)
        dataset = spec.build(**kwargs)
        limit = self.opts.val.max_images or len(dataset)
        scores: dict[str, list[float]] = {"psnr": [], "ssim": []}
        tiles = []
        for i in range(min(limit, len(dataset))):
            item = dataset[i]
            lq = item["lq"].unsqueeze(0).to(device)
            # one pass, in tiles only if the device runs out of memory on a large validation image
            sr = tiled_forward(generator, lq, self.scale, tile=0, device=device).clamp(0, 1)[0]
            gt = item["gt"]
            sr_np, gt_np = sr.permute(1, 2, 0).numpy(), gt.permute(1, 2, 0).numpy()
            scores["psnr"].append(psnr(sr_np, gt_np, crop_border=self.scale))
            scores["ssim"].append(ssim(sr_np, gt_np, crop_border=self.scale))
            if len(tiles) < self.opts.val.samples * 3:
                bic = F.interpolate(item["lq"].unsqueeze(0), scale_factor=self.scale, mode="bicubic",
                                    align_corners=False).clamp(0, 1)[0]
                tiles += [_center(t, 128) for t in (bic, sr, gt)]
        from torchvision.utils import make_grid

        grid = make_grid(torch.stack(tiles), nrow=3, padding=2) if tiles else None
        return {k: sum(v) / len(v) for k, v in scores.items() if v}, grid


def _center(img: Tensor, size: int) -> Tensor:
    """Centre crop (3, H, W) to size x size, padding with zeros when smaller (so every grid cell matches)."""
    _, h, w = img.shape
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    crop = img[:, top:top + size, left:left + size]
    return F.pad(crop, (0, size - crop.shape[2], 0, size - crop.shape[1]))
