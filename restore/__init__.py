"""restore: image-restoration GANs with swappable critic normalization (SAN, SN, BSN, GP, R1, GraN)."""

__version__ = "0.1.0"
