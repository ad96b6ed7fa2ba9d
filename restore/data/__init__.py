"""Image I/O, augmentation and the SR datasets; importing this package registers the datasets
(``sr_hr_folder``, ``sr_paired_folder``, ``sr_benchmark``) in :data:`restore.registry.DATASETS`."""

from __future__ import annotations

from restore.data.io import Image, ImageReadError, list_images, read_image, to_numpy, to_tensor, write_image
from restore.data.sr import BenchmarkDataset, HRFolderDataset, PairedFolderDataset, imresize, mod_crop

__all__ = [
    "BenchmarkDataset",
    "HRFolderDataset",
    "Image",
    "ImageReadError",
    "PairedFolderDataset",
    "imresize",
    "list_images",
    "mod_crop",
    "read_image",
    "to_numpy",
    "to_tensor",
    "write_image",
]
