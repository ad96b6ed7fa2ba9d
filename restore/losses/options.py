"""The ``losses:`` option blocks of every task, as typed dataclasses.

They live with the losses (layer "parts") rather than with the tasks so that :mod:`restore.config` can validate a
recipe's ``losses`` block (``restore check``) and :mod:`restore.schema` can describe it, without importing a task;
each task reads the same classes when it builds its losses. Defaults follow each task's paper (cited per class).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from restore.losses import adversarial  # noqa: F401  (fills ADVERSARIAL, which `type` is checked against)
from restore.registry import ADVERSARIAL, OptionValueError, did_you_mean


@dataclass(frozen=True)
class ContentLossOptions:
    """Pixel loss between the output and the ground truth."""

    weight: float = 1.0
    type: Literal["l1"] = "l1"


@dataclass(frozen=True)
class PerceptualLossOptions:
    """VGG features before activation (SAN paper / ESRGAN: VGG19 conv5_4; VGG16 conv5_3 offline here)."""

    weight: float = 1.0
    network: Literal["vgg19", "vgg16", "auto"] = "vgg19"  # auto: VGG19 if obtainable, else VGG16
    layers: dict[str, float] | None = None
    weights: str | None = None
    criterion: Literal["l1", "l2"] = "l1"
    download: bool = True  # fetch torchvision's ImageNet weights into the hub cache when missing
    fallback_weights: str | None = None  # network auto: VGG16 features file used when VGG19 cannot be had


@dataclass(frozen=True)
class AdversarialLossOptions:
    """The GAN loss (``type``: a registered adversarial loss) and its weight lambda_adv."""

    # the registry in the metadata lets restore.schema list the valid names (the check is __post_init__'s)
    type: str = field(default="hinge", metadata={"registry": ADVERSARIAL})
    weight: float = 0.01

    def __post_init__(self) -> None:
        if self.type not in ADVERSARIAL:
            raise OptionValueError("type", f"unknown adversarial loss '{self.type}'"
                                           f"{did_you_mean(self.type, ADVERSARIAL.names())}; "
                                           f"valid: {', '.join(ADVERSARIAL.names())}")


@dataclass(frozen=True)
class WeightOptions:
    """A loss term that only has a weight (feature matching, KL, cycle reconstruction, classification)."""

    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise OptionValueError("weight", f"must be >= 0, got {self.weight}")


# ----------------------------------------------------------------------------------------------- task "sr"
@dataclass(frozen=True)
class SRLossOptions:
    """Losses of task sr (SAN paper Sec. 4.3): L1 content + VGG perceptual + adversarial."""

    content: ContentLossOptions | None = ContentLossOptions()
    perceptual: PerceptualLossOptions | None = None
    adversarial: AdversarialLossOptions | None = None


# ----------------------------------------------------------------------------------------------- task "spade"
@dataclass(frozen=True)
class SPADEAdversarial(AdversarialLossOptions):
    weight: float = 1.0


@dataclass(frozen=True)
class FeatureMatchingOptions(WeightOptions):
    weight: float = 10.0  # SPADE's lambda_feat


@dataclass(frozen=True)
class SPADEPerceptual(PerceptualLossOptions):
    weight: float = 10.0  # SPADE's lambda_vgg
    network: Literal["vgg19", "vgg16", "auto"] = "auto"
    layers: dict[str, float] | None = None  # None: SPADE's relu1_1 ... relu5_1 weights (restore.tasks.spade)


@dataclass(frozen=True)
class KLOptions(WeightOptions):
    weight: float = 0.05  # SPADE's lambda_kld


@dataclass(frozen=True)
class SPADELossOptions:
    """Losses of task spade (Park et al. 2019, App. A): hinge + feature matching + VGG (+ KL with the encoder)."""

    adversarial: SPADEAdversarial = SPADEAdversarial()
    feature_matching: FeatureMatchingOptions | None = FeatureMatchingOptions()
    perceptual: SPADEPerceptual | None = SPADEPerceptual()
    kl: KLOptions = KLOptions()  # used only with generator.use_vae


# ----------------------------------------------------------------------------------------------- task "stargan"
@dataclass(frozen=True)
class StarGANAdversarial(AdversarialLossOptions):
    weight: float = 1.0


@dataclass(frozen=True)
class ReconstructionOptions(WeightOptions):
    weight: float = 10.0  # StarGAN's lambda_rec (Choi et al. 2018, eq. 5)


@dataclass(frozen=True)
class StarGANLossOptions:
    """Losses of task stargan (Choi et al. 2018, eq. 5): adversarial + attribute classification + cycle."""

    adversarial: StarGANAdversarial = StarGANAdversarial()
    classification: WeightOptions = WeightOptions(1.0)
    reconstruction: ReconstructionOptions = ReconstructionOptions()


# ----------------------------------------------------------------------------------------------- task "attributes"
@dataclass(frozen=True)
class AttributeLossOptions:
    """Task attributes has no loss options: the classifier always trains on BCE (leave ``losses`` out)."""


TASK_LOSSES: dict[str, type] = {
    "sr": SRLossOptions,
    "spade": SPADELossOptions,
    "stargan": StarGANLossOptions,
    "attributes": AttributeLossOptions,
}
"""``task:`` name -> the dataclass its ``losses:`` block is validated into."""
