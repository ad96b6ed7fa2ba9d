"""Networks, one module per family, imported explicitly here (no filename auto-discovery)."""

# noqa below: the imports register the architectures
from restore.archs import (  # noqa: F401
    classifier,
    layers,
    patch_critic,
    rrdb,
    spade,
    srresnet,
    standard_critic,
    stargan,
    unet_critic,
    vgg_critic,
)
