"""Image I/O, augmentation and the data sets; importing this package registers every data set in
:data:`restore.registry.DATASETS`: SR (``sr_hr_folder``, ``sr_paired_folder``, ``sr_benchmark``), label map -> photo
(``cityscapes``, ``coco_stuff``, ``ade20k``, ``cmp_facades``, ``label2photo_folder``) and face attributes
(``celeba``, ``utkface``, ``attribute_folder``)."""

from __future__ import annotations

from restore.data import attributes, label2photo  # noqa: F401  (registers their data sets)
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
