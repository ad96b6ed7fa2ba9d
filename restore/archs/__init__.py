"""Networks, one module per family, imported explicitly here (no filename auto-discovery)."""

from restore.archs import layers, rrdb, srresnet, standard_critic, vgg_critic  # noqa: F401  (registers the architectures)
