"""Multi-domain attribute transfer (StarGAN, Choi et al. 2018; SAN paper App. G): adversarial + attribute
classification (critic on real, generator on translated) + cycle reconstruction.

Images are (N, 3, H, W) in [-1, 1] inside the task (the generator ends in tanh); ``attrs`` are (N, A) in {0, 1}.
Training targets are the attribute vectors of a random permutation of the batch, as in StarGAN.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restore.config import ConfigError, Options, parse_block
from restore.losses.options import StarGANLossOptions
from restore.registry import ADVERSARIAL, TASKS
from restore.tasks.base import build_task_critic, check_derived, init_pretrained_generator
from restore.tasks.loss_options import data_description


def classification_loss(logits: Tensor, target: Tensor) -> Tensor:
    """BCE summed over attributes, averaged over the batch (StarGAN's scaling)."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="sum") / logits.shape[0]


def attribute_info(dataset: Any) -> dict[str, Any]:
    """What inference needs to name and build targets: attribute names and mutually exclusive groups."""
    return {"attribute_names": list(dataset.attribute_names),
            "exclusive_groups": [list(map(int, g)) for g in dataset.exclusive_groups]}


def build_attribute_dataset(opts: Options, spec: Any, train: bool) -> Any:
    """A face data set from a data block; evaluation splits get no random flips."""
    kwargs = dict(spec.kwargs)
    kwargs.setdefault("seed", opts.seed)
    if not train:
        kwargs.setdefault("flip", False)
    return spec.build(**kwargs)


@TASKS.register("stargan")
class StarGANTask:
    """Builds the StarGAN generator and critic with the data's attribute count; the engine drives it."""

    def __init__(self, opts: Options):
        import restore.data  # noqa: F401  (datasets)
        import restore.losses  # noqa: F401  (adversarial losses)
        self.opts = opts
        src = self.src = opts.source or "<options>"
        if opts.generator is None or opts.critic is None:
            raise ConfigError(f"{src}: task stargan needs both a generator block (arch: stargan) and a critic block "
                              "(arch: stargan_critic)")
        spec = opts.data.train or opts.data.val
        if spec is None:
            raise ConfigError(f"{src}: data.train (or data.val) is required: the attribute list fixes the networks")
        probe = self._build_dataset(spec, train=opts.data.train is not None)
        self._train_set = probe if opts.data.train is not None else None  # built once (its scan and warnings)
        self.attr_info = attribute_info(probe)
        self.num_attributes = len(self.attr_info["attribute_names"])
        self.image_size = int(probe.image_size) if hasattr(probe, "image_size") else None
        self._gen_kwargs = {"num_attributes": self.num_attributes}
        check_derived(opts.generator, "generator", self._gen_kwargs, src)
        self.generator: nn.Module = opts.generator.build(**self._gen_kwargs)
        init_pretrained_generator(self.generator, opts)
        critic_kwargs = {"num_attributes": self.num_attributes}
        if self.image_size is not None:
            critic_kwargs["image_size"] = self.image_size
        self.critic, self.norm = build_task_critic(opts, critic_kwargs)
        self.losses: StarGANLossOptions = parse_block(StarGANLossOptions, opts.losses, "losses", src)
        self.adversarial = ADVERSARIAL.build(self.losses.adversarial.type)

    def _build_dataset(self, spec: Any, train: bool) -> Any:
        return build_attribute_dataset(self.opts, spec, train)

    def describe_generator(self) -> dict[str, Any]:
        kwargs = {**dict(self.opts.generator.kwargs), **self._gen_kwargs}
        return {"type": self.opts.generator.name, "kwargs": kwargs,
                "extra": {**self.attr_info, "image_size": self.image_size, "data": data_description(self.opts)}}

    # -- data
    def train_dataset(self) -> Any:
        if self.opts.data.train is None:
            raise ConfigError(f"{self.src}: data.train is required to train")
        return self._train_set

    def has_validation(self) -> bool:
        return self.opts.data.val is not None

    def to_device(self, batch: dict[str, Any], device: Any) -> dict[str, Any]:
        out = {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}
        out["real"] = out["image"] * 2 - 1
        perm = torch.randperm(out["attrs"].shape[0])  # global RNG: restored exactly on resume
        out["target"] = out["attrs"][perm.to(out["attrs"].device)]
        return out

    # -- steps
    def generate(self, generator: nn.Module, batch: dict[str, Any]) -> Tensor:
        fake = generator(batch["real"], batch["target"])
        if torch.is_grad_enabled():  # the batch the generator step will use: cycle back to the source attributes
            batch["reconstruction"] = generator(fake, batch["attrs"])
        return fake

    def critic_forward(self, critic: nn.Module, batch: dict[str, Any], images: Tensor) -> Any:
        return critic(images)

    def real_for_penalty(self, batch: dict[str, Any]) -> Tensor:
        return batch["real"]

    def critic_loss(self, critic: nn.Module, batch: dict[str, Any], fake: Tensor) -> tuple[Tensor, dict[str, float]]:
        real_scores, real_logits = critic(batch["real"])
        fake_scores, _ = critic(fake.detach())
        adv = self.adversarial.critic(real_scores, fake_scores)
        cls = classification_loss(real_logits, batch["attrs"])
        loss = self.losses.adversarial.weight * adv + self.losses.classification.weight * cls
        acc = ((real_logits.detach() > 0).float() == batch["attrs"]).float().mean()
        return loss, {"d/adv": float(adv.detach()), "d/cls": float(cls.detach()), "d/cls_acc": float(acc),
                      "d/real": float(real_scores.detach().float().mean()),
                      "d/fake": float(fake_scores.detach().float().mean())}

    def generator_loss(self, critic: nn.Module | None, batch: dict[str, Any], fake: Tensor
                       ) -> tuple[Tensor, dict[str, float]]:
        assert critic is not None
        L = self.losses
        fake_scores, fake_logits = critic(fake)
        real_scores = None
        if self.adversarial.generator_needs_real:
            with torch.no_grad():
                real_scores = critic(batch["real"])[0]
        adv = self.adversarial.generator(fake_scores, real_scores)
        cls = classification_loss(fake_logits, batch["target"])
        rec = F.l1_loss(batch["reconstruction"].float(), batch["real"].float())
        total = L.adversarial.weight * adv + L.classification.weight * cls + L.reconstruction.weight * rec
        return total, {"g/adv": float(adv.detach()), "g/cls": float(cls.detach()), "g/rec": float(rec.detach())}

    # -- validation
    @torch.no_grad()
    def validate(self, generator: nn.Module, device: Any) -> tuple[dict[str, float], Tensor | None]:
        """A grid: each row an input followed by its translation to every test domain; metrics: cycle L1."""
        from restore.data.attributes import translation_targets

        dataset = self._build_dataset(self.opts.data.val, train=False)
        limit = min(self.opts.val.max_images or len(dataset), len(dataset))
        rows, rec_err = [], []
        groups = self.attr_info["exclusive_groups"]
        for i in range(limit):
            item = dataset[i]
            real = item["image"].unsqueeze(0).to(device) * 2 - 1
            attrs = item["attrs"].unsqueeze(0).to(device)
            rec = generator(generator(real, attrs), attrs)
            rec_err.append(float((rec - real).abs().mean()))
            if i < self.opts.val.samples:
                outs = [real] + [generator(real, translation_targets(attrs, k, groups))
                                 for k in range(self.num_attributes)]
                rows += [((o[0].float().cpu() + 1) / 2).clamp(0, 1) for o in outs]
        from torchvision.utils import make_grid

        grid = make_grid(torch.stack(rows), nrow=self.num_attributes + 1, padding=2) if rows else None
        return ({"identity_l1": sum(rec_err) / len(rec_err)} if rec_err else {}), grid

