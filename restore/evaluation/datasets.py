"""The data a model is evaluated on: the held-out split of the data set its weights file says it was trained on.

``restore eval`` and ``restore ablate`` use it; ``--dataset``, ``--split`` and ``--data-opt key=value`` change it.
"""

from __future__ import annotations

from typing import Any

EVAL_SPLITS = {"cityscapes": "val", "coco_stuff": "val", "ade20k": "validation", "cmp_facades": "test",
               "label2photo_folder": None, "celeba": "test", "utkface": "test", "attribute_folder": "test"}


def eval_dataset(desc: dict[str, Any], root: str, dataset: str | None, split: str | None, overrides: list[str],
                 train: bool = False) -> Any:
    """The evaluation (or, for StarGAN's real domain images, training) split a model's own data block describes,
    rooted at ``root``; ``--dataset``/``--split``/``--data-opt key=value`` change it."""
    import yaml

    import restore.data  # noqa: F401
    from restore.registry import DATASETS

    stored = desc.get("data") or {}
    name = dataset or stored.get("type")
    if name is None:
        raise ValueError("the model file does not record its data set type; pass --dataset (one of "
                         f"{', '.join(DATASETS.names())})")
    kwargs = dict(stored.get("kwargs", {})) if name == stored.get("type") else {}
    params = DATASETS.parameters(name)
    root_key = "root" if "root" in params else "labels"
    kwargs[root_key] = root
    for text in overrides:
        key, sep, value = text.partition("=")
        if not sep or key not in params:
            raise ValueError(f"--data-opt {text!r}: expected KEY=VALUE with KEY one of {', '.join(params)}")
        kwargs[key] = yaml.safe_load(value)
    split = "train" if train else (split or EVAL_SPLITS.get(name))
    if split is not None and "split" in params:
        kwargs["split"] = split
    for key, value in (("random", False), ("flip", False)):
        if key in params:
            kwargs[key] = value
    return DATASETS.build_checked(name, kwargs)
