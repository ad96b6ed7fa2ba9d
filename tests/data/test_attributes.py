"""Attribute datasets (CelebA format, UTKFace, folder per domain) and StarGAN's target helpers."""

from __future__ import annotations

import random
import shutil
import typing
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from restore.data.attributes import (
    AttributeFolderDataset,
    CelebADataset,
    UTKFaceDataset,
    age_group_names,
    domain_name,
    grouped_split,
    parse_celeba_attributes,
    parse_utkface_name,
    shuffled_targets,
    translation_targets,
)
from restore.registry import DATASETS, OptionValueError

NAMES = ["5_o_Clock_Shadow", "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Male", "Young"]
ROWS = [  # file, values in NAMES order
    ("000001.jpg", [-1, 1, -1, -1, -1, 1, 1]),
    ("000002.jpg", [-1, -1, 1, -1, -1, -1, 1]),
    ("000003.jpg", [1, -1, -1, 1, -1, 1, -1]),
    ("000004.jpg", [-1, -1, -1, -1, 1, -1, -1]),
    ("000005.jpg", [-1, 1, -1, -1, -1, -1, 1]),
    ("000006.jpg", [1, -1, 1, -1, -1, 1, 1]),
]


def _write_jpeg(path: Path, h: int, w: int, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((h, w, 3), value, np.uint8)
    img[h // 2 - 2:h // 2 + 2, w // 2 - 2:w // 2 + 2] = 255 - value  # a mark in the centre
    assert cv2.imwrite(str(path), img)


def _attr_text(rows=ROWS, count: int | None = None, names=NAMES) -> str:
    lines = [str(len(rows) if count is None else count), " ".join(names) + " "]
    for file, values in rows:  # CelebA aligns with two spaces before a 1 and one before a -1
        lines.append(file + "".join(f"  {v}" if v == 1 else f" {v}" for v in values))
    return "\n".join(lines) + "\n"


@pytest.fixture()
def celeba(tmp_path: Path) -> Path:
    root = tmp_path / "celeba"
    for i, (file, _) in enumerate(ROWS):
        _write_jpeg(root / "img_align_celeba" / file, 24, 20, 40 * i)
    (root / "list_attr_celeba.txt").write_text(_attr_text())
    (root / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for (f, _), p in zip(ROWS, [0, 0, 1, 2, 0, 2],
                                                                                             strict=True)))
    return root


def tiny(**kw) -> dict:
    return {"image_size": 8, "crop_size": 16, "attributes": ["Black_Hair", "Blond_Hair", "Male"], **kw}


def test_registered_with_type_hints():
    for name, cls in (("celeba", CelebADataset), ("utkface", UTKFaceDataset),
                      ("attribute_folder", AttributeFolderDataset)):
        assert DATASETS.get(name) is cls
        assert set(DATASETS.parameters(name)) <= set(typing.get_type_hints(cls.__init__))


# ------------------------------------------------------------------------------------------------ CelebA
def test_parse_celeba_attributes(celeba: Path):
    names, rows = parse_celeba_attributes(celeba / "list_attr_celeba.txt")
    assert names == NAMES
    assert [f for f, _ in rows] == [f for f, _ in ROWS]
    for (_, got), (_, want) in zip(rows, ROWS, strict=True):
        assert got.tolist() == want


def test_celeba_labels_items_and_groups(celeba: Path):
    ds = CelebADataset(str(celeba), split="all", **tiny(attributes=["Blond_Hair", "Male", "Gray_Hair", "Black_Hair"]))
    assert ds.attribute_names == ["Blond_Hair", "Male", "Gray_Hair", "Black_Hair"]
    assert ds.exclusive_groups == [[0, 2, 3]]
    assert len(ds) == 6 and [p.name for p in ds.paths] == [f for f, _ in ROWS]
    cols = [NAMES.index(n) for n in ds.attribute_names]
    want = (np.array([v for _, v in ROWS], np.float32)[:, cols] + 1) / 2
    assert ds.labels.dtype == np.float32 and np.array_equal(ds.labels, want)
    item = ds[2]
    assert item["image"].shape == (3, 8, 8) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert torch.equal(item["attrs"], torch.from_numpy(want[2])) and item["path"].endswith("000003.jpg")
    # no group without two hair colours
    assert CelebADataset(str(celeba), split="all", **tiny(attributes=["Blond_Hair", "Male"])).exclusive_groups == []


def test_celeba_centre_crop_resize_and_seeded_flip(celeba: Path):
    ds = CelebADataset(str(celeba), split="all", **tiny(image_size=16, flip=False))
    img = ds[1]["image"]  # 20x24 image cropped to its central 16x16: the 4x4 mark lands in the middle
    assert img.shape == (3, 16, 16)
    assert torch.allclose(img[:, 6:10, 6:10], torch.full((3, 4, 4), (255 - 40) / 255), atol=0.02)
    assert torch.allclose(img[:, :4, :4], torch.full((3, 4, 4), 40 / 255), atol=0.02)
    flip = CelebADataset(str(celeba), split="all", **tiny(image_size=16, seed=3))
    flipped = []
    for epoch in range(6):
        flip.set_epoch(epoch)
        a, b = flip[1]["image"], flip[1]["image"]
        assert torch.equal(a, b)  # same (seed, epoch, index): same item
        assert torch.equal(a, img) or torch.equal(a, img.flip(-1))
        flipped.append(not torch.equal(a, img))
    assert any(flipped) and not all(flipped)


def test_celeba_stargan_split_matches_stargans_shuffle(celeba: Path):
    state = random.getstate()
    lines = [line.rstrip() for line in open(celeba / "list_attr_celeba.txt")][2:]
    random.seed(1234)
    random.shuffle(lines)  # StarGAN's CelebA.preprocess
    random.setstate(state)
    want_test = sorted(line.split()[0] for line in lines[:2])
    test = CelebADataset(str(celeba), split="test", test_count=2, **tiny())
    train = CelebADataset(str(celeba), split="train", test_count=2, **tiny())
    assert sorted(p.name for p in test.paths) == want_test
    assert len(train) == 4 and not {p.name for p in train.paths} & set(want_test)
    assert random.getstate() == state  # global random state untouched


@pytest.mark.parametrize("mode", ["stargan", "seeded", "official"])
def test_celeba_split_modes_are_disjoint_and_deterministic(celeba: Path, mode: str):
    def names(split: str, seed: int = 7) -> list[str]:
        return [p.name for p in CelebADataset(str(celeba), split=split, split_mode=mode, test_count=2,
                                              split_seed=seed, **tiny()).paths]

    train, test = names("train"), names("test")
    assert names("train") == train and names("test") == test
    assert not set(train) & set(test) and sorted(train + test) == [f for f, _ in ROWS]
    if mode == "official":  # partitions 0, 0, 1, 2, 0, 2: validation (1) goes to train
        assert test == ["000004.jpg", "000006.jpg"]
    else:
        assert len(test) == 2
        assert any(names("test", s) != test for s in range(8))  # the seed matters


def test_celeba_errors(celeba: Path):
    root = str(celeba)
    with pytest.raises(OptionValueError, match=r"'Blonde_Hair' is not an attribute.*did you mean 'Blond_Hair'.*"
                                               r"available: 5_o_Clock_Shadow, Black_Hair"):
        CelebADataset(root, **tiny(attributes=["Blonde_Hair"]))
    bad = [(f, list(v)) for f, v in ROWS]
    bad[2][1][4] = 0
    (celeba / "bad.txt").write_text(_attr_text(bad))
    with pytest.raises(ValueError, match=r"bad\.txt:5: 000003\.jpg has value '0' for Gray_Hair; values must be 1 or "
                                         r"-1"):
        CelebADataset(root, attr_file="bad.txt", **tiny())
    short = [(f, list(v)) for f, v in ROWS]
    short[0] = (short[0][0], short[0][1][:-1])
    (celeba / "short.txt").write_text(_attr_text(short))
    with pytest.raises(ValueError, match=r"short\.txt:3: 000001\.jpg has 6 attribute values, expected 7"):
        parse_celeba_attributes(celeba / "short.txt")
    (celeba / "count.txt").write_text(_attr_text(count=9))
    with pytest.raises(ValueError, match=r"count\.txt:1: says 9 images but the file lists 6"):
        parse_celeba_attributes(celeba / "count.txt")
    (celeba / "img_align_celeba" / "000005.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 image\(s\) listed in .*list_attr_celeba\.txt are missing from "
                                                r".*img_align_celeba: 000005\.jpg"):
        CelebADataset(root, split="all", **tiny())
    with pytest.raises(OptionValueError, match="split_mode must be one of"):
        CelebADataset(root, split_mode="random", **tiny())
    with pytest.raises(OptionValueError, match="test_count is 7, more than the 6 images"):
        CelebADataset(root, test_count=7, **tiny())


def test_celeba_custom_paths(celeba: Path, tmp_path: Path):
    """attr_file / images point anywhere (own multi-label data in the CelebA format)."""
    other = tmp_path / "mine"
    shutil.copytree(celeba / "img_align_celeba", other / "pics")
    (other / "labels.txt").write_text(_attr_text())
    ds = CelebADataset(str(tmp_path), attr_file=str(other / "labels.txt"), images="mine/pics", split="all",
                       **tiny())
    assert len(ds) == 6 and ds.paths[0] == other / "pics" / "000001.jpg"


# ------------------------------------------------------------------------------------------------ UTKFace
UTK = "data/faces/utkface"


def _utk(shared: Path, **kw) -> UTKFaceDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return UTKFaceDataset(str(shared / UTK), **kw)


def test_utkface_name_parsing_and_age_groups():
    assert parse_utkface_name("14_0_0_2017011022340900.jpg.chip.jpg") == (14, 0, 0)  # 16-digit date is fine
    assert parse_utkface_name("61_1_20170109142408075.jpg.chip.jpg") is None  # race missing
    assert parse_utkface_name("x_1_0_20170109142408075.jpg.chip.jpg") is None
    assert parse_utkface_name("²_1_0_20170109142408075.jpg.chip.jpg") is None
    assert parse_utkface_name("30_2_0_20170109142408075.jpg.chip.jpg") is None  # gender is 0 or 1
    assert age_group_names([20, 40, 60]) == ["Age_0-19", "Age_20-39", "Age_40-59", "Age_60+"]
    assert age_group_names([18]) == ["Age_0-17", "Age_18+"]


def test_utkface_real_files(shared: Path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = UTKFaceDataset(str(shared / UTK), split="all")
    msgs = [str(w.message) for w in caught if "utkface" in str(w.message)]
    assert len(msgs) == 1 and "skipped 2 file(s)" in msgs[0]
    assert "61_1_20170109142408075.jpg.chip.jpg" in msgs[0] and "61_3_20170109150557335.jpg.chip.jpg" in msgs[0]
    assert len(ds) == 5000
    assert ds.attribute_names == ["Male", "Age_0-19", "Age_20-39", "Age_40-59", "Age_60+"]
    assert ds.exclusive_groups == [[1, 2, 3, 4]]
    by_name = {p.name: ds.labels[i].tolist() for i, p in enumerate(ds.paths)}
    assert by_name["10_0_0_20161220222308131.jpg.chip.jpg"] == [1, 1, 0, 0, 0]
    assert by_name["30_1_0_20170103180631960.jpg.chip.jpg"] == [0, 0, 1, 0, 0]
    assert by_name["40_0_0_20170103182925914.jpg.chip.jpg"] == [1, 0, 0, 1, 0]
    assert by_name["60_1_0_20170109221030205.jpg.chip.jpg"] == [0, 0, 0, 0, 1]
    assert np.all(ds.labels[:, 1:].sum(1) == 1)  # every face in exactly one age group
    item = ds[0]
    assert item["image"].shape == (3, 128, 128) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1 and item["attrs"].shape == (5,)


def test_utkface_split_is_disjoint_and_deterministic(shared: Path):
    train, test = _utk(shared, split="train"), _utk(shared, split="test")
    assert (len(train), len(test)) == (4500, 500)
    assert not set(train.paths) & set(test.paths) and len(set(train.paths) | set(test.paths)) == 5000
    assert _utk(shared, split="test").paths == test.paths
    assert _utk(shared, split="test", split_seed=1).paths != test.paths
    sub = _utk(shared, split="all", attributes=["Age_60+", "Male"])
    assert sub.attribute_names == ["Age_60+", "Male"] and sub.exclusive_groups == []


def test_grouped_split_keeps_duplicates_together(shared: Path, tmp_path: Path):
    files = sorted((shared / UTK).glob("*_0_0_*.jpg"))[:12]
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    dup = tmp_path / f"{files[0].name.split('_')[0]}_0_0_20990101000000000.jpg.chip.jpg"
    shutil.copy(files[0], dup)  # same bytes under another name
    paths = sorted(tmp_path.iterdir())
    a, b = paths.index(tmp_path / files[0].name), paths.index(dup)
    sides = set()
    for seed in range(12):
        mask = grouped_split(paths, 0.5, seed)
        assert mask[a] == mask[b]
        assert np.array_equal(mask, grouped_split(paths, 0.5, seed))
        assert mask.sum() in (6, 7)  # 12 groups (the pair is one), half of them
        sides.add(bool(mask[a]))
    assert sides == {True, False}
    ds = UTKFaceDataset(str(tmp_path), split="test", test_fraction=0.5, image_size=16)
    assert (tmp_path / files[0].name in ds.paths) == (dup in ds.paths)


def test_utkface_errors(shared: Path):
    with pytest.raises(OptionValueError, match="'White' is not an attribute of UTKFace.*race/ethnicity labels are "
                                               "deliberately not offered"):
        _utk(shared, attributes=["Male", "White"])
    with pytest.raises(OptionValueError, match=r"'Age_20-29'.*did you mean 'Age_20-39'"):
        _utk(shared, attributes=["Age_20-29"])
    with pytest.raises(OptionValueError, match="age_groups must be increasing"):
        _utk(shared, age_groups=[40, 20])
    with pytest.raises(OptionValueError, match=r"test_fraction must be in \[0, 1\)"):
        _utk(shared, test_fraction=1.5)


# ------------------------------------------------------------------------------------------------ folder per domain
def test_attribute_folder(tmp_path: Path):
    counts = {"summer": 3, "autumn": 4, "winter": 5}
    for d, n in counts.items():
        for i in range(n):
            _write_jpeg(tmp_path / "data" / d / f"{i}.png", 10, 12, 20 * i + 5 * len(d))
    root = str(tmp_path / "data")
    ds = AttributeFolderDataset(root, split="all", image_size=8)
    assert ds.attribute_names == ["autumn", "summer", "winter"] and ds.exclusive_groups == [[0, 1, 2]]
    assert len(ds) == 12 and np.array_equal(ds.labels.sum(0), [4, 3, 5]) and np.all(ds.labels.sum(1) == 1)
    for i, p in enumerate(ds.paths):
        assert ds.labels[i, ds.attribute_names.index(p.parent.name)] == 1
    assert ds[0]["image"].shape == (3, 8, 8)
    train = AttributeFolderDataset(root, split="train", test_fraction=0.25, image_size=8)
    test = AttributeFolderDataset(root, split="test", test_fraction=0.25, image_size=8)
    assert (len(train), len(test)) == (9, 3) and not set(train.paths) & set(test.paths)
    assert AttributeFolderDataset(root, split="test", test_fraction=0.25, image_size=8).paths == test.paths
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(OptionValueError, match="one subfolder of images per domain.*found 1: only"):
        AttributeFolderDataset(str(tmp_path / "one"))


# ------------------------------------------------------------------------------------------------ targets
GROUPS = [[0, 1, 2]]
ATTRS = torch.tensor([[1.0, 0, 0, 1, 0], [0, 0, 1, 0, 1], [0, 1, 0, 1, 1], [0, 0, 0, 0, 0]])


def test_translation_targets_set_group_members_and_flip_the_rest():
    src = ATTRS.clone()
    for index in range(5):
        t = translation_targets(ATTRS, index, GROUPS)
        assert t.shape == ATTRS.shape
        others = [j for j in range(5) if j not in (GROUPS[0] if index in GROUPS[0] else [index])]
        assert torch.equal(t[:, others], ATTRS[:, others])
        if index in GROUPS[0]:
            assert torch.equal(t[:, GROUPS[0]], torch.eye(3)[index].expand(4, 3))
        else:
            assert torch.equal(t[:, index], 1 - ATTRS[:, index])
    assert torch.equal(ATTRS, src)  # input untouched
    with pytest.raises(ValueError, match="domain index 5 is out of range for 5 attributes"):
        translation_targets(ATTRS, 5, GROUPS)


def test_shuffled_targets_are_a_seeded_permutation_of_the_batch():
    a = shuffled_targets(ATTRS, torch.Generator().manual_seed(0))
    b = shuffled_targets(ATTRS, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert sorted(map(tuple, a.tolist())) == sorted(map(tuple, ATTRS.tolist()))
    assert any(not torch.equal(shuffled_targets(ATTRS, torch.Generator().manual_seed(s)), ATTRS) for s in range(5))


def test_domain_names():
    names = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    assert [domain_name(names, i, GROUPS) for i in range(5)] == ["Black_Hair", "Blond_Hair", "Brown_Hair",
                                                                 "Male=flip", "Young=flip"]
