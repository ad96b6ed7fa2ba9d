"""Attribute classifier training (task ``attributes``): the independent judge of attribute transfer.

StarGAN-style evaluation scores translations with a classifier trained on real images only, so the score does not
come from the critic being evaluated. The engine trains it in its generator slot, with no critic.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from restore.config import ConfigError, Options
from restore.registry import TASKS
from restore.tasks.base import check_derived, init_pretrained_generator
from restore.tasks.loss_options import data_description
from restore.tasks.stargan import attribute_info, build_attribute_dataset, classification_loss


@TASKS.register("attributes")
class AttributeClassifierTask:
    """Trains the attribute classifier used to score translations (no critic): BCE on real images; validation
    reports per-attribute and mean accuracy."""

    def __init__(self, opts: Options):
        import restore.data  # noqa: F401
        from restore.norms import NoNorm

        self.opts = opts
        src = self.src = opts.source or "<options>"
        if opts.generator is None:
            raise ConfigError(f"{src}: task attributes needs generator: {{arch: attribute_classifier}} (the network "
                              "the engine trains)")
        if opts.critic is not None:
            raise ConfigError(f"{src}: task attributes trains a classifier alone; remove the critic block")
        spec = opts.data.train or opts.data.val
        if spec is None:
            raise ConfigError(f"{src}: data.train is required")
        probe = self._build_dataset(spec, train=opts.data.train is not None)
        self.attr_info = attribute_info(probe)
        self._gen_kwargs = {"num_attributes": len(self.attr_info["attribute_names"])}
        check_derived(opts.generator, "generator", self._gen_kwargs, src)
        self.generator = opts.generator.build(**self._gen_kwargs)
        init_pretrained_generator(self.generator, opts)
        self.critic = None
        self.norm = NoNorm()

    def _build_dataset(self, spec: Any, train: bool) -> Any:
        return build_attribute_dataset(self.opts, spec, train)

    def describe_generator(self) -> dict[str, Any]:
        kwargs = {**dict(self.opts.generator.kwargs), **self._gen_kwargs}
        return {"type": self.opts.generator.name, "kwargs": kwargs,
                "extra": {**self.attr_info, "data": data_description(self.opts)}}

    def train_dataset(self) -> Any:
        if self.opts.data.train is None:
            raise ConfigError(f"{self.src}: data.train is required to train")
        return self._build_dataset(self.opts.data.train, train=True)

    def has_validation(self) -> bool:
        return self.opts.data.val is not None

    def to_device(self, batch: dict[str, Any], device: Any) -> dict[str, Any]:
        out = {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}
        out["real"] = out["image"] * 2 - 1
        return out

    def generate(self, generator: nn.Module, batch: dict[str, Any]) -> Tensor:
        return generator(batch["real"])

    def critic_forward(self, critic: nn.Module, batch: dict[str, Any], images: Tensor) -> Any:
        raise RuntimeError("the attributes task has no critic")

    def real_for_penalty(self, batch: dict[str, Any]) -> Tensor:
        return batch["real"]

    def critic_loss(self, critic: nn.Module, batch: dict[str, Any], fake: Tensor) -> tuple[Tensor, dict[str, float]]:
        raise RuntimeError("the attributes task has no critic")

    def generator_loss(self, critic: nn.Module | None, batch: dict[str, Any], logits: Tensor
                       ) -> tuple[Tensor, dict[str, float]]:
        loss = classification_loss(logits, batch["attrs"])
        acc = ((logits.detach() > 0).float() == batch["attrs"]).float().mean()
        return loss, {"g/bce": float(loss.detach()), "g/acc": float(acc)}

    @torch.no_grad()
    def validate(self, generator: nn.Module, device: Any) -> tuple[dict[str, float], Tensor | None]:
        from torch.utils.data import DataLoader, Subset

        dataset = self._build_dataset(self.opts.data.val, train=False)
        from restore.evaluation.translation import spread

        chosen = spread(len(dataset), self.opts.val.max_images)
        limit = len(chosen)
        correct = torch.zeros(len(self.attr_info["attribute_names"]))
        for raw in DataLoader(Subset(dataset, chosen), batch_size=32):
            logits = generator(raw["image"].to(device) * 2 - 1).float().cpu()
            correct += ((logits > 0).float() == raw["attrs"]).float().sum(0)
        acc = correct / max(limit, 1)
        metrics = {f"acc_{n}": float(a) for n, a in zip(self.attr_info["attribute_names"], acc, strict=True)}
        metrics["acc_mean"] = float(acc.mean())
        return metrics, None
