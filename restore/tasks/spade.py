"""Label map -> photo (SPADE, Park et al. 2019; SAN paper Sec. 4.2): hinge + feature matching + VGG (+ KL).

Images are (N, 3, H, W) in [-1, 1] throughout (the generator ends in tanh); the label map travels as integer ids
and is one-hot encoded on the device (plus the instance-edge channel when the data set uses instances).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from restore.config import ConfigError, Options, parse_block
from restore.losses.options import PerceptualLossOptions, SPADELossOptions
from restore.registry import ADVERSARIAL, TASKS
from restore.tasks.base import build_task_critic, init_pretrained_generator
from restore.tasks.loss_options import build_perceptual, data_description

# SPADE's VGG loss: relu1_1 ... relu5_1 weighted 1/32, 1/16, 1/8, 1/4, 1 (the same names exist in VGG16 and VGG19)
SPADE_VGG_LAYERS = {"relu1_1": 1 / 32, "relu2_1": 1 / 16, "relu3_1": 1 / 8, "relu4_1": 1 / 4, "relu5_1": 1.0}


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if hasattr(module, "module") and isinstance(module.module, nn.Module) else module


@TASKS.register("spade")
class SPADETask:
    """Builds the SPADE generator and multi-scale critic from the data's label set; the engine drives it."""

    def __init__(self, opts: Options):
        import restore.data  # noqa: F401  (datasets)
        import restore.losses  # noqa: F401  (adversarial losses)
        self.opts = opts
        src = self.src = opts.source or "<options>"
        if opts.generator is None:
            raise ConfigError(f"{src}: generator is required for task spade (e.g. generator: {{arch: spade}})")
        if opts.critic is None:
            raise ConfigError(f"{src}: critic is required for task spade (e.g. critic: {{arch: multiscale_patch}})")
        spec = opts.data.train or opts.data.val
        if spec is None:
            raise ConfigError(f"{src}: data.train (or data.val) is required: the label set fixes the networks' "
                              "input channels")
        probe = self._build_dataset(spec, train=opts.data.train is not None)
        self._train_set = probe if opts.data.train is not None else None  # built once (its scan and warnings)
        self.num_classes = int(probe.num_classes)
        self.use_instance = bool(probe.use_instance)
        self.label_channels = self.num_classes + int(self.use_instance)
        self.label_info = {"label_set": probe.label_set, "num_classes": self.num_classes,
                           "use_instance": self.use_instance, "class_names": list(probe.class_names),
                           "palette": [[int(c) for c in rgb] for rgb in probe.palette]}
        from restore.data.labels import LABEL_SETS

        if probe.label_set not in LABEL_SETS:  # a generic folder set: inference must map raw values the same way
            self.label_info.update(num_labels=int(probe.spec.num_labels), dont_care=probe.spec.dont_care)
        self._gen_kwargs = self._generator_kwargs(opts.generator.kwargs)
        self.generator: nn.Module = opts.generator.build(**self._gen_kwargs)
        self.use_vae = bool(getattr(self.generator, "use_vae", False))
        init_pretrained_generator(self.generator, opts)
        given = opts.critic.kwargs.get("label_channels")
        if given is not None and given != self.label_channels:
            raise ConfigError(f"{opts.critic.source or src}: critic.label_channels is {given} but the data gives "
                              f"{self.label_channels} ({self.num_classes} classes"
                              f"{' + instance edges' if self.use_instance else ''}); remove the key")
        self.critic, self.norm = build_task_critic(opts, {"label_channels": self.label_channels})
        self.losses: SPADELossOptions = parse_block(SPADELossOptions, opts.losses, "losses", src)
        self.adversarial = ADVERSARIAL.build(self.losses.adversarial.type)
        self.perceptual: nn.Module | None = None
        p = self.losses.perceptual
        if p is not None and p.weight > 0:
            layers = p.layers if p.layers is not None else SPADE_VGG_LAYERS
            self.perceptual = build_perceptual(PerceptualLossOptions(
                weight=p.weight, network=p.network, layers=layers, weights=p.weights, criterion=p.criterion,
                download=p.download, fallback_weights=p.fallback_weights))
        self._device: Any = None

    # -- construction helpers
    def _build_dataset(self, spec: Any, train: bool) -> Any:
        kwargs = dict(spec.kwargs)
        kwargs.setdefault("seed", self.opts.seed)
        if not train:
            kwargs.setdefault("random", False)
        return spec.build(**kwargs)

    def _generator_kwargs(self, given: dict[str, Any]) -> dict[str, Any]:
        """label_channels, crop_size and aspect_ratio come from the data; a conflicting explicit value is an error."""
        spec = self.opts.data.train or self.opts.data.val
        derived = {"label_channels": self.label_channels}
        data_kwargs = dict(spec.kwargs)
        if "crop_size" in data_kwargs:
            derived["crop_size"] = data_kwargs["crop_size"]
        if "aspect_ratio" in data_kwargs:
            derived["aspect_ratio"] = data_kwargs["aspect_ratio"]
        for key, value in derived.items():
            if key in given and given[key] != value:
                raise ConfigError(f"{self.opts.generator.source or self.src}: generator.{key} is {given[key]} but "
                                  f"the data gives {value}; remove generator.{key} (it is taken from the data)")
        return derived

    def describe_generator(self) -> dict[str, Any]:
        kwargs = {**dict(self.opts.generator.kwargs), **self._gen_kwargs}
        return {"type": self.opts.generator.name, "kwargs": kwargs,
                "extra": {**self.label_info, "data": data_description(self.opts)}}

    # -- data
    def train_dataset(self) -> Any:
        if self.opts.data.train is None:
            raise ConfigError(f"{self.src}: data.train is required to train")
        dataset = self._train_set
        if not dataset.has_photos:
            raise ConfigError(f"{self.src}: data.train has label maps but no photos; training needs both")
        return dataset

    def has_validation(self) -> bool:
        return self.opts.data.val is not None

    def segmentation(self, batch: dict[str, Any]) -> Tensor:
        """(N, label_channels, H, W) float: one-hot classes (+ instance edges)."""
        from restore.data.labels import segmentation_input

        return segmentation_input(batch["label"], self.num_classes, batch["instance"] if self.use_instance else None)

    def to_device(self, batch: dict[str, Any], device: Any) -> dict[str, Any]:
        if self.perceptual is not None and self._device != device:
            self.perceptual.to(device)
            self._device = device
        out = {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}
        out["seg"] = self.segmentation(out)
        if "image" in out:
            out["real"] = out["image"] * 2 - 1
        return out

    # -- steps
    def generate(self, generator: nn.Module, batch: dict[str, Any]) -> Tensor:
        if self.use_vae:
            inner = _unwrap(generator)
            mu, logvar = inner.encode(batch["real"])
            batch["mu"], batch["logvar"] = mu, logvar
            return generator(batch["seg"], inner.reparameterize(mu, logvar))
        return generator(batch["seg"])

    def critic_forward(self, critic: nn.Module, batch: dict[str, Any], images: Tensor) -> Any:
        return critic(images, batch["seg"])

    def real_for_penalty(self, batch: dict[str, Any]) -> Tensor:
        return batch["real"]

    def _joint(self, critic: nn.Module, batch: dict[str, Any], fake: Tensor) -> tuple[Any, Any]:
        """Real and fake through the critic as one batch (as SPADE): ((fake scores, feats), (real scores, feats))."""
        n = fake.shape[0]
        scores, feats = critic(torch.cat([fake, batch["real"].to(fake.dtype)]), torch.cat([batch["seg"]] * 2))
        fake_out = ([s[:n] for s in scores], [[f[:n] for f in fs] for fs in feats])
        real_out = ([s[n:] for s in scores], [[f[n:] for f in fs] for fs in feats])
        return fake_out, real_out

    def critic_loss(self, critic: nn.Module, batch: dict[str, Any], fake: Tensor) -> tuple[Tensor, dict[str, float]]:
        fake_out, real_out = self._joint(critic, batch, fake.detach())
        loss = self.adversarial.critic(real_out[0], fake_out[0])
        mean = lambda ss: float(sum(s.detach().float().mean() for s in ss) / len(ss))  # noqa: E731
        return loss, {"d/adv": float(loss.detach()), "d/real": mean(real_out[0]), "d/fake": mean(fake_out[0])}

    def generator_loss(self, critic: nn.Module | None, batch: dict[str, Any], fake: Tensor
                       ) -> tuple[Tensor, dict[str, float]]:
        assert critic is not None
        L = self.losses
        fake_out, real_out = self._joint(critic, batch, fake)
        adv = self.adversarial.generator(fake_out[0], real_out[0])
        total = L.adversarial.weight * adv
        scalars = {"g/adv": float(adv.detach())}
        if L.feature_matching is not None and L.feature_matching.weight > 0:
            from restore.losses.matching import feature_matching

            fm = feature_matching(fake_out[1], real_out[1])
            total = total + L.feature_matching.weight * fm
            scalars["g/feature_matching"] = float(fm.detach())
        if self.perceptual is not None:
            vgg = self.perceptual((fake.float() + 1) / 2, (batch["real"].float() + 1) / 2)
            total = total + L.perceptual.weight * vgg
            scalars["g/perceptual"] = float(vgg.detach())
        if self.use_vae:
            from restore.losses.matching import kl_divergence

            kl = kl_divergence(batch["mu"], batch["logvar"])
            total = total + L.kl.weight * kl
            scalars["g/kl"] = float(kl.detach())
        return total, scalars

    # -- validation
    @torch.no_grad()
    def validate(self, generator: nn.Module, device: Any) -> tuple[dict[str, float], Tensor | None]:
        """Side-by-sides (label colours | generated | real) and, when the FID network is available, FID on the
        validation split (max_images of it)."""
        from torch.utils.data import DataLoader

        dataset = self._build_dataset(self.opts.data.val, train=False)
        limit = min(self.opts.val.max_images or len(dataset), len(dataset))
        subset = torch.utils.data.Subset(dataset, range(limit))
        fakes, reals, tiles = [], [], []
        for raw in DataLoader(subset, batch_size=4):
            batch = self.to_device(raw, device)
            z = None
            if self.use_vae:  # validation shows the label map's photo with a fixed style: the real photo's mean z
                if "real" in batch:
                    z = _unwrap(generator).encode(batch["real"])[0]
                else:
                    z = torch.zeros(batch["seg"].shape[0], _unwrap(generator).z_dim, device=device)
            fake = ((generator(batch["seg"], z) if z is not None else generator(batch["seg"])).float() + 1) / 2
            fakes.append(fake.clamp(0, 1).cpu())
            if "image" in batch:
                reals.append(batch["image"].float().cpu())
            for i in range(fake.shape[0]):
                if len(tiles) >= self.opts.val.samples * 3:
                    break
                tiles += [self.colorize(raw["label"][i]), fakes[-1][i]]
                tiles.append(reals[-1][i] if reals else torch.zeros_like(fakes[-1][i]))
        metrics: dict[str, float] = {}
        if reals and limit >= 2:
            metrics.update(self._fid(torch.cat(fakes), torch.cat(reals), device))
        from torchvision.utils import make_grid

        grid = make_grid(torch.stack(tiles), nrow=3, padding=2) if tiles else None
        return metrics, grid

    def colorize(self, label: Tensor) -> Tensor:
        """(H, W) ids -> (3, H, W) float in [0, 1] in the label set's palette."""
        import numpy as np

        from restore.data.labels import colorize

        rgb = colorize(label.cpu().numpy(), np.asarray(self.label_info["palette"], dtype=np.uint8))
        return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255

    def _fid(self, fakes: Tensor, reals: Tensor, device: Any) -> dict[str, float]:
        try:
            from restore.metrics.fid import InceptionFeatures, fid

            net = getattr(self, "_inception", None) or InceptionFeatures(device=device)
            self._inception = net
        except FileNotFoundError as err:
            if not getattr(self, "_warned_fid", False):
                warnings.warn(f"validation FID skipped: {err}", RuntimeWarning, stacklevel=2)
                self._warned_fid = True
            return {}
        return {"fid": fid(net(fakes), net(reals))}
