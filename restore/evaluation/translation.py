"""Evaluation of the translation tasks (``restore eval --task spade|stargan``).

* SPADE: FID between the photos generated from a split's label maps and that split's real photos (both at the
  model's resolution).
* StarGAN (SAN paper App. G protocol): for every target domain, translate the test images that are not already in
  it, and compute FID against the real *training* images of that domain; an attribute classifier trained on real
  images only (task ``attributes``) reports how often the translation carries the target value and how often the
  other attributes are kept.

FID is "clean" FID with the Inception-v3 2015-12-05 network (see :mod:`restore.metrics.fid`); on small sets it is
strongly biased upwards, so compare only numbers computed on the same sets, and report the counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

FID_LABEL = "FID (clean, Inception-v3 2015-12-05)"


def spread(n: int, limit: int | None) -> list[int]:
    """``limit`` indices spread evenly over range(n) (all of them when limit is None): files are often sorted by
    a label (UTKFace by age), so the first N would not be a fair sample."""
    if limit is None or limit >= n:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, limit)})


def _batches(dataset: Dataset, indices: list[int], batch_size: int) -> Any:
    return DataLoader(Subset(dataset, indices), batch_size=batch_size, num_workers=0)


@torch.no_grad()
def evaluate_spade(model: nn.Module, desc: dict[str, Any], dataset: Any, features: Callable[[torch.Tensor], Any],
                   batch_size: int = 8, limit: int | None = None, save: Callable[[int, np.ndarray, Any], None]
                   | None = None, seed: int = 0) -> dict[str, Any]:
    """FID of generated vs real photos over ``dataset`` (label maps with photos, deterministic preprocessing)."""
    from restore.data.labels import segmentation_input
    from restore.metrics.fid import fid

    if not dataset.has_photos:
        raise ValueError("SPADE evaluation needs the split's real photos (this data set has label maps only)")
    chosen = spread(len(dataset), limit)
    n = len(chosen)
    if n < 2:
        raise ValueError(f"FID needs at least 2 images, the split has {n}")
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    fake_feats, real_feats, k = [], [], 0
    for batch in _batches(dataset, chosen, batch_size):
        edges = batch["instance"].to(device) if desc.get("use_instance") else None
        seg = segmentation_input(batch["label"].to(device), int(desc["num_classes"]), edges)
        if getattr(model, "use_vae", False):
            z = torch.randn(seg.shape[0], model.z_dim, generator=gen).to(device)
            fake = model(seg, z)
        else:
            fake = model(seg)
        fake = ((fake.float().clamp(-1, 1) + 1) / 2).cpu()
        fake_feats.append(features(fake))
        real_feats.append(features(batch["image"].float()))
        if save is not None:
            for i in range(fake.shape[0]):
                save(k + i, fake[i].permute(1, 2, 0).numpy(), batch["label"][i].numpy())
        k += fake.shape[0]
    value = fid(np.concatenate(fake_feats), np.concatenate(real_feats))
    return {"task": "spade", "metric": FID_LABEL, "images": n, "fid": value}


def stargan_domains(names: list[str], groups: list[list[int]]) -> list[tuple[str, int, float]]:
    """(domain name, attribute index, target value): every attribute of an exclusive group set to 1, and both
    values of every other (binary) attribute."""
    grouped = {i for g in groups for i in g}
    out = []
    for i, name in enumerate(names):
        if i in grouped:
            out.append((name, i, 1.0))
        else:
            out += [(f"{name}=1", i, 1.0), (f"{name}=0", i, 0.0)]
    return out


@torch.no_grad()
def evaluate_stargan(model: nn.Module, desc: dict[str, Any], test_set: Any, train_set: Any,
                     features: Callable[[torch.Tensor], Any] | None, classifier: nn.Module | None = None,
                     batch_size: int = 16, limit: int | None = None, max_real: int | None = None
                     ) -> dict[str, Any]:
    """Per target domain: count, FID(translations, real training images of the domain), target accuracy and
    kept-attribute accuracy by ``classifier`` (None: not measured)."""
    from restore.data.attributes import translation_targets
    from restore.metrics.fid import fid

    names, groups = list(desc["attribute_names"]), [list(g) for g in desc.get("exclusive_groups", [])]
    if list(test_set.attribute_names) != names:
        raise ValueError(f"the evaluation data has attributes {list(test_set.attribute_names)} but the model was "
                         f"trained on {names}; build the data set with the model's attributes")
    device = next(model.parameters()).device
    test_labels, train_labels = np.asarray(test_set.labels), np.asarray(train_set.labels)
    test_idx = spread(len(test_set), limit)
    n_test = len(test_idx)
    rows = []
    real_cache: dict[tuple[int, float], Any] = {}
    for domain, index, value in stargan_domains(names, groups):
        sources = [i for i in test_idx if test_labels[i, index] != value]
        in_domain = [i for i in range(len(train_set)) if train_labels[i, index] == value]
        reals = [in_domain[k] for k in spread(len(in_domain), max_real)]
        row: dict[str, Any] = {"domain": domain, "translated": len(sources), "real": len(reals)}
        if len(sources) < 2 or len(reals) < 2:
            row.update({"fid": None, "target_acc": None, "kept_acc": None})
            rows.append(row)
            continue
        fake_feats, hits, kept, kept_n = [], 0, 0, 0
        for batch in _batches(test_set, sources, batch_size):
            attrs = batch["attrs"].to(device)
            if index in {i for g in groups for i in g}:
                target = translation_targets(attrs, index, groups)
            else:
                target = attrs.clone()
                target[:, index] = value
            fake = model(batch["image"].to(device) * 2 - 1, target)
            fake01 = ((fake.float().clamp(-1, 1) + 1) / 2)
            if features is not None:
                fake_feats.append(features(fake01.cpu()))
            if classifier is not None:
                pred = (classifier(fake01 * 2 - 1).float() > 0).float()
                hits += int((pred[:, index] == target[:, index]).sum())
                others = [j for j in range(len(names)) if j != index and not any(index in g and j in g
                                                                                 for g in groups)]
                if others:
                    kept += int((pred[:, others] == target[:, others]).sum())
                    kept_n += pred.shape[0] * len(others)
        if features is not None:
            key = (index, value)
            if key not in real_cache:
                real_cache[key] = np.concatenate([features(b["image"].float())
                                                  for b in _batches(train_set, reals, batch_size)])
            row["fid"] = fid(np.concatenate(fake_feats), real_cache[key])
        else:
            row["fid"] = None
        row["target_acc"] = hits / len(sources) if classifier is not None else None
        row["kept_acc"] = kept / kept_n if classifier is not None and kept_n else None
        rows.append(row)
    fids = [r["fid"] for r in rows if r["fid"] is not None]
    accs = [r["target_acc"] for r in rows if r["target_acc"] is not None]
    return {"task": "stargan", "metric": FID_LABEL, "test_images": n_test, "domains": rows,
            "mean_fid": float(np.mean(fids)) if fids else None,
            "mean_target_acc": float(np.mean(accs)) if accs else None}


def format_translation(result: dict[str, Any]) -> str:
    """Markdown for a SPADE or StarGAN result."""
    if result["task"] == "spade":
        return (f"| images | FID |\n|---|---|\n| {result['images']} | {result['fid']:.2f} |\n\n"
                f"{result['metric']}, generated vs real photos of the same split.")
    f = lambda v, p=2: "-" if v is None else f"{v:.{p}f}"  # noqa: E731
    lines = ["| target domain | translated | real (train) | FID | target acc. | kept acc. |",
             "|---|---|---|---|---|---|"]
    for r in result["domains"]:
        lines.append(f"| {r['domain']} | {r['translated']} | {r['real']} | {f(r['fid'])} | "
                     f"{f(r['target_acc'], 3)} | {f(r['kept_acc'], 3)} |")
    lines.append(f"| mean | | | {f(result['mean_fid'])} | {f(result['mean_target_acc'], 3)} | |")
    return "\n".join(lines) + (f"\n\n{result['metric']} of translated test images vs real training images of the "
                               "target domain; accuracies by the separately trained attribute classifier.")
