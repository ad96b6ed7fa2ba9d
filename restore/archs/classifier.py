"""Attribute classifier for evaluating attribute transfer (StarGAN eval protocol: a classifier trained on real
images, separately from the critic being evaluated, judges whether translations carry the target attributes).

Registered among the generators because the engine trains "the network in the generator slot"; its task
(``attributes``) uses no critic.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from restore.registry import GENERATORS


# Our own small design: stride-2 conv-BN-ReLU stages, global average pooling, one linear head (logits per attribute).
@GENERATORS.register("attribute_classifier")
class AttributeClassifier(nn.Module):
    """x: (N, 3, H, W) in [-1, 1] (any H, W >= 32) -> (N, num_attributes) logits (sigmoid = probability)."""

    TASK: ClassVar[str] = "attributes"
    TINY: ClassVar[dict] = {"num_attributes": 3, "width": 4, "num_stages": 3}

    def __init__(self, num_attributes: int = 5, width: int = 32, num_stages: int = 5, dropout: float = 0.2):
        super().__init__()
        if num_attributes < 1:
            raise ValueError(f"num_attributes must be >= 1, got {num_attributes}")
        if num_stages < 1:
            raise ValueError(f"num_stages must be >= 1, got {num_stages}")
        self.num_attributes = num_attributes
        layers: list[nn.Module] = []
        prev = 3
        for i in range(num_stages):
            ch = width * 2 ** min(i, 3)
            layers += [nn.Conv2d(prev, ch, 3, 2, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True),
                       nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True)]
            prev = ch
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(prev, num_attributes))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"AttributeClassifier expects (N, 3, H, W) images, got shape {tuple(x.shape)}")
        return self.head(self.features(x).mean((2, 3)))

