"""Label-map -> photo datasets: raw label reading, id mapping, layouts, preprocessing, flips, edges, errors."""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from restore.config import ConfigError, DataOptions, parse_block
from restore.data.io import write_image
from restore.data.label2photo import (
    ADE20KDataset,
    CityscapesDataset,
    CMPFacadesDataset,
    CocoStuffDataset,
    Label2PhotoFolderDataset,
)
from restore.data.labels import (
    ADE20K_CLASSES,
    COCO_STUFF_CLASSES,
    LABEL_SETS,
    colorize,
    decode_color_map,
    default_palette,
    instance_edges,
    label_map_to_ids,
    one_hot,
    read_label_map,
    read_palette,
    write_palette,
)
from restore.registry import DATASETS, OptionValueError


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def l2p(shared: Path) -> Path:
    root = shared / "data" / "label2photo"
    if not root.is_dir():
        pytest.skip(f"label2photo samples not found at {root}")
    return root


@pytest.fixture(scope="module")
def cityscapes(l2p: Path) -> Path:
    return l2p / "cityscapes_sample"


@pytest.fixture(scope="module")
def coco(l2p: Path) -> Path:
    return l2p / "coco_stuff_sample"


@pytest.fixture(scope="module")
def facades(l2p: Path) -> Path:
    return l2p / "cmp_facades" / "base"


def _save(path: Path, arr: np.ndarray) -> Path:
    """Write a raw label map (uint8 -> 8-bit grey, uint16 -> 16-bit grey, (H, W, 3) -> RGB) with Pillow."""
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(arr).save(path)
    return path


def _photo(path: Path, h: int, w: int, seed: int = 0) -> Path:
    write_image(path, np.random.default_rng(seed).random((h, w, 3), dtype=np.float32))
    return path


def _edges_brute(inst: np.ndarray) -> np.ndarray:
    h, w = inst.shape
    out = np.zeros((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w and inst[yy, xx] != inst[y, x]:
                    out[y, x] = 1.0
    return out


# ------------------------------------------------------------------------------------------------ label sets
def test_label_sets_class_counts_names_and_palettes() -> None:
    assert len(COCO_STUFF_CLASSES) == 182 and len(ADE20K_CLASSES) == 150
    counts = {name: s.num_classes for name, s in LABEL_SETS.items()}
    assert counts == {"cityscapes": 35, "coco_stuff": 183, "ade20k": 151, "cmp_facades": 12}
    for s in LABEL_SETS.values():
        assert len(s.class_names) == s.num_classes and s.palette.shape == (s.num_classes, 3)
        assert s.palette.dtype == np.uint8
    cs = LABEL_SETS["cityscapes"]
    assert cs.class_names[7] == "road" and cs.class_names[26] == "car" and cs.class_names[34] == "license plate"
    assert tuple(cs.palette[26]) == (0, 0, 142) and tuple(cs.palette[7]) == (128, 64, 128)
    assert LABEL_SETS["coco_stuff"].class_names[182] == "dont_care"


def test_default_palette_is_deterministic_distinct_and_never_black() -> None:
    pal = default_palette(300)
    assert pal.shape == (300, 3) and pal.dtype == np.uint8
    assert len({tuple(c) for c in pal.tolist()}) == 300
    assert not (pal == 0).all(axis=1).any()
    np.testing.assert_array_equal(default_palette(300)[:20], default_palette(20))
    with pytest.raises(ValueError, match="n must be"):
        default_palette(-1)


def test_label_map_to_ids_for_each_set() -> None:
    raw = np.array([[0, 181, 255]])
    np.testing.assert_array_equal(label_map_to_ids(raw, "coco_stuff"), [[0, 181, 182]])
    np.testing.assert_array_equal(label_map_to_ids(np.array([[0, 1, 150]]), "ade20k"), [[150, 0, 149]])
    np.testing.assert_array_equal(label_map_to_ids(np.array([[1, 12]]), "cmp_facades"), [[0, 11]])
    np.testing.assert_array_equal(label_map_to_ids(np.array([[3, 9]]), "label2photo_folder", num_labels=10,
                                                   dont_care=9), [[3, 10]])
    with pytest.raises(ValueError, match=r"x\.png: label value\(s\) 200 \(1 px\) outside the valid range 0\.\.181"):
        label_map_to_ids(np.array([[1, 200]]), "coco_stuff", name="x.png")
    with pytest.raises(ValueError, match="label value.*0 .*1\\.\\.12"):
        label_map_to_ids(np.array([[0, 3]]), "cmp_facades")
    with pytest.raises(ValueError, match="unknown label set 'citiscapes' \\(did you mean 'cityscapes'"):
        label_map_to_ids(raw, "citiscapes")
    with pytest.raises(ValueError, match="fixed classes"):
        label_map_to_ids(raw, "coco_stuff", num_labels=3)
    with pytest.raises(ValueError, match="integer class values"):
        label_map_to_ids(raw.astype(np.float32), "coco_stuff")


# ------------------------------------------------------------------------------------------------ reading
def test_read_label_map_keeps_raw_values(tmp_path: Path, cityscapes: Path, facades: Path) -> None:
    pal_png = sorted(facades.glob("*.png"))[0]
    assert PILImage.open(pal_png).mode == "P"
    raw = read_label_map(pal_png)
    assert raw.ndim == 2 and raw.dtype == np.int64 and 1 <= raw.min() and raw.max() <= 12
    inst = read_label_map(sorted((cityscapes / "train_inst").glob("*.png"))[0])
    assert inst.dtype == np.int64 and inst.max() > 255  # 16-bit instance ids (class * 1000 + k)
    grey16 = np.array([[0, 33008], [1000, 26001]], np.uint16)
    _save(tmp_path / "i16.png", grey16)
    np.testing.assert_array_equal(read_label_map(tmp_path / "i16.png"), grey16)


def test_read_label_map_errors_name_the_file(tmp_path: Path) -> None:
    rgb = _save(tmp_path / "colour.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"colour\.png.*colour-coded.*palette"):
        read_label_map(rgb)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"junk\.png"):
        read_label_map(junk)
    with pytest.raises(FileNotFoundError, match=r"nothere\.png"):
        read_label_map(tmp_path / "nothere.png")


# ------------------------------------------------------------------------------------------------ cityscapes
def test_cityscapes_fixed_512x256_with_instances(cityscapes: Path) -> None:
    ds = CityscapesDataset(str(cityscapes), preprocess="fixed", crop_size=512, aspect_ratio=2.0, use_instance=True)
    assert len(ds) == 8 and ds.num_classes == 35 and ds.label_channels == 36 and ds.has_photos
    assert ds.label_set == "cityscapes" and len(ds.class_names) == 35 and ds.palette.shape == (35, 3)
    item = ds[0]
    assert item["label"].shape == (256, 512) and item["label"].dtype == torch.int64
    assert item["image"].shape == (3, 256, 512) and item["image"].dtype == torch.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert item["instance"].shape == (1, 256, 512) and item["instance"].dtype == torch.float32
    assert set(item["instance"].unique().tolist()) == {0.0, 1.0}
    assert 0 <= item["label"].min() and item["label"].max() < 35
    assert item["path"].endswith("aachen_000000_000019_gtFine_labelIds.png")

    oh = one_hot(item["label"][None], ds.num_classes)
    assert oh.shape == (1, 35, 256, 512) and oh.dtype == torch.float32
    assert torch.equal(oh.sum(1), torch.ones(1, 256, 512))
    assert torch.equal(oh.argmax(1)[0], item["label"])


def test_cityscapes_resize_and_crop_and_none(cityscapes: Path) -> None:
    ds = CityscapesDataset(str(cityscapes), load_size=143, crop_size=128)
    item = ds[1]
    assert item["label"].shape == (128, 128) and item["image"].shape == (3, 128, 128) and "instance" not in item
    raw = CityscapesDataset(str(cityscapes), preprocess="none", random=False)[1]
    assert raw["label"].shape == (1024, 2048) and raw["image"].shape == (3, 1024, 2048)
    np.testing.assert_array_equal(raw["label"].numpy(), read_label_map(ds.samples[1].label))


def test_cityscapes_test_split_is_label_only(cityscapes: Path) -> None:
    ds = CityscapesDataset(str(cityscapes), split="test", preprocess="fixed", crop_size=128, aspect_ratio=2.0,
                           use_instance=True)
    assert len(ds) == 15 and not ds.has_photos
    item = ds[0]
    assert set(item) == {"label", "instance", "path"} and item["label"].shape == (64, 128)


def test_cityscapes_official_layout_matches_pix2pixhd(tmp_path: Path, cityscapes: Path) -> None:
    for kind, folder, suffix in (("img", "leftImg8bit", "_leftImg8bit"), ("label", "gtFine", "_gtFine_labelIds"),
                                 ("inst", "gtFine", "_gtFine_instanceIds")):
        for src in sorted((cityscapes / f"train_{kind}").glob("*.png"))[:2]:
            assert src.stem.endswith(suffix)
            dst = tmp_path / folder / "train" / "aachen" / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(src)
    # the official gtFine folders also hold colour maps, which must be ignored
    _save(tmp_path / "gtFine" / "train" / "aachen" / "aachen_000000_000019_gtFine_color.png",
          np.zeros((4, 4, 3), np.uint8))
    kw = {"preprocess": "fixed", "crop_size": 128, "aspect_ratio": 2.0, "use_instance": True, "random": False}
    official = CityscapesDataset(str(tmp_path), **kw)
    p2p = CityscapesDataset(str(cityscapes), **kw)
    assert len(official) == 2
    a, b = official[1], p2p[1]
    for key in ("label", "image", "instance"):
        assert torch.equal(a[key], b[key])
    with pytest.raises(OptionValueError, match="no Cityscapes split 'val'.*splits found: train"):
        CityscapesDataset(str(tmp_path), split="val")


def test_instance_edges_on_hand_made_map() -> None:
    inst = np.zeros((9, 11), np.int64)
    inst[2:6, 3:8] = 26001
    inst[4:9, 6:10] = 26002
    inst[0, 0] = 7
    edges = instance_edges(inst)
    assert edges.dtype == np.float32 and edges.shape == inst.shape
    np.testing.assert_array_equal(edges, _edges_brute(inst))
    assert edges[3, 4] == 0 and edges[8, 0] == 0  # interiors
    rand = np.random.default_rng(0).integers(0, 3, (12, 13))
    np.testing.assert_array_equal(instance_edges(rand), _edges_brute(rand))


def test_instance_edges_on_real_cityscapes_map(cityscapes: Path) -> None:
    inst = read_label_map(sorted((cityscapes / "train_inst").glob("*.png"))[0])
    edges = instance_edges(inst)
    ys, xs = np.nonzero(edges)
    y, x = int(np.median(ys)), int(np.median(xs))
    patch = inst[max(0, y - 40):y + 40, max(0, x - 60):x + 60]  # a window around real boundaries
    got = instance_edges(patch)
    assert got.sum() > 0
    np.testing.assert_array_equal(got, _edges_brute(patch))
    # edges only where the id changes: every pixel off an edge equals all its 4-neighbours
    same_right = inst[:, 1:] == inst[:, :-1]
    assert (edges[:, :-1][~same_right] == 1).all() and (edges[:, 1:][~same_right] == 1).all()
    interior = edges == 0
    assert (inst[1:-1, 1:-1][interior[1:-1, 1:-1]] == inst[:-2, 1:-1][interior[1:-1, 1:-1]]).all()


# ------------------------------------------------------------------------------------------------ coco / ade / facades
def test_coco_stuff_255_becomes_182(coco: Path) -> None:
    ds = CocoStuffDataset(str(coco), preprocess="none", random=False, use_instance=True)
    assert ds.num_classes == 183 and ds.label_channels == 184 and ds.dont_care_id == 182
    idx = next(i for i, s in enumerate(ds.samples) if (read_label_map(s.label) == 255).any())
    raw = read_label_map(ds.samples[idx].label)
    item = ds[idx]
    label = item["label"].numpy()
    assert (label[raw == 255] == 182).all()
    np.testing.assert_array_equal(label[raw != 255], raw[raw != 255])
    assert item["image"].shape[1:] == raw.shape and item["instance"].shape == (1, *raw.shape)
    crop = CocoStuffDataset(str(coco), split="val")[0]
    assert crop["label"].shape == (256, 256) and crop["image"].shape == (3, 256, 256)
    assert 0 <= crop["label"].min() and crop["label"].max() <= 182


def test_ade20k_layout_maps_zero_to_dont_care(tmp_path: Path) -> None:
    ann = np.array([[0, 1, 2, 150]] * 4, np.uint8)
    _save(tmp_path / "annotations" / "training" / "ADE_train_1.png", ann)
    _photo(tmp_path / "images" / "training" / "ADE_train_1.jpg", 4, 4)
    ds = ADE20KDataset(str(tmp_path), preprocess="none")
    assert ds.num_classes == 151 and ds.class_names[0] == "wall" and ds.class_names[150] == "dont_care"
    np.testing.assert_array_equal(ds[0]["label"].numpy()[0], [150, 0, 1, 149])
    with pytest.raises(OptionValueError, match="use_instance"):
        ADE20KDataset(str(tmp_path), use_instance=True)
    _save(tmp_path / "annotations" / "training" / "ADE_train_1.png", ann + 2)  # 152 is out of range
    with pytest.raises(ValueError, match=r"ADE_train_1\.png: label value\(s\) 152"):
        ADE20KDataset(str(tmp_path), preprocess="none")[0]  # a new set: `ds` keeps the decoded file (cache_mb)


def test_cmp_facades_ids_split_and_names(facades: Path) -> None:
    ds = CMPFacadesDataset(str(facades), split="all", preprocess="none", random=False)
    assert len(ds) == 378 and ds.num_classes == 12 and ds.class_names[0] == "background"
    assert ds.class_names[-1] == "shop"
    raw = read_label_map(ds.samples[5].label)
    item = ds[5]
    np.testing.assert_array_equal(item["label"].numpy(), raw - 1)
    assert item["image"].shape[1:] == raw.shape
    assert 0 <= item["label"].min() and item["label"].max() <= 11

    train = CMPFacadesDataset(str(facades), split="train")
    test = CMPFacadesDataset(str(facades), split="test")
    names = {s.label for s in train.samples}, {s.label for s in test.samples}
    assert len(names[1]) == 28 and len(names[0]) == 350 and not names[0] & names[1]
    assert names[0] | names[1] == {s.label for s in ds.samples}
    assert [s.label for s in CMPFacadesDataset(str(facades), split="test").samples] == [s.label for s in test.samples]
    other = {s.label for s in CMPFacadesDataset(str(facades), split="test", split_seed=1).samples}
    assert other != names[1]
    assert train[0]["label"].shape == (256, 256)
    with pytest.raises(OptionValueError, match="use_instance"):
        CMPFacadesDataset(str(facades), use_instance=True)
    with pytest.raises(OptionValueError, match="test_count"):
        CMPFacadesDataset(str(facades), split="train", test_count=378)


# ------------------------------------------------------------------------------------------------ flips, determinism
def test_flip_is_applied_to_label_photo_and_instance_together(coco: Path) -> None:
    kw = {"split": "val", "load_size": 160, "crop_size": 128, "use_instance": True, "seed": 3}
    flipping, plain = CocoStuffDataset(str(coco), **kw), CocoStuffDataset(str(coco), flip=False, **kw)
    flipped = 0
    for epoch in range(6):
        flipping.set_epoch(epoch)
        plain.set_epoch(epoch)
        a, b = flipping[2], plain[2]  # same crop position: the flip draw does not shift later draws
        if torch.equal(a["label"], b["label"]) and torch.equal(a["image"], b["image"]):
            continue
        flipped += 1
        for key in ("label", "image", "instance"):
            assert torch.equal(a[key], b[key].flip(-1)), key
    assert flipped > 0


def test_determinism_and_epochs(coco: Path) -> None:
    kw = {"load_size": 200, "crop_size": 128, "seed": 7}
    a, b = CocoStuffDataset(str(coco), **kw), CocoStuffDataset(str(coco), **kw)
    x, y = a[4], b[4]
    assert torch.equal(x["label"], y["label"]) and torch.equal(x["image"], y["image"])
    a.set_epoch(1)
    assert not torch.equal(a[4]["image"], x["image"])
    a.set_epoch(0)
    assert torch.equal(a[4]["image"], x["image"])
    fixed = CocoStuffDataset(str(coco), random=False, **kw)
    fixed.set_epoch(5)
    assert torch.equal(fixed[4]["image"], CocoStuffDataset(str(coco), random=False, **kw)[4]["image"])


# ------------------------------------------------------------------------------------------------ generic folder
def test_folder_rejects_out_of_range_values(tmp_path: Path) -> None:
    lab = np.full((8, 8), 3, np.uint8)
    lab[2, 2] = 40
    _save(tmp_path / "labels" / "bad_map.png", lab)
    ds = Label2PhotoFolderDataset(labels=str(tmp_path / "labels"), num_labels=35, preprocess="none")
    with pytest.raises(ValueError, match=r"bad_map\.png: label value\(s\) 40 \(1 px\) outside the valid range "
                                         r"0\.\.34.*num_labels.*dont_care"):
        ds[0]
    ok = Label2PhotoFolderDataset(labels=str(tmp_path / "labels"), num_labels=35, dont_care=40, preprocess="none")
    item = ok[0]
    assert ok.num_classes == 36 and item["label"][2, 2] == 35 and item["label"][0, 0] == 3
    assert set(item) == {"label", "path"} and not ok.has_photos


def test_folder_binary_masks_0_255(tmp_path: Path) -> None:
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:12] = 255
    _save(tmp_path / "labels" / "m1.png", mask)
    _photo(tmp_path / "images" / "m1.jpg", 16, 16)
    ds = Label2PhotoFolderDataset(labels=str(tmp_path / "labels"), num_labels=2, images=str(tmp_path / "images"),
                                  preprocess="none")
    item = ds[0]
    assert ds.num_classes == 2 and item["image"].shape == (3, 16, 16)
    np.testing.assert_array_equal(item["label"].numpy(), (mask == 255).astype(np.int64))
    with pytest.raises(ValueError, match="255"):  # the 0/255 reading is only for two classes
        Label2PhotoFolderDataset(labels=str(tmp_path / "labels"), num_labels=3, preprocess="none")[0]


def test_folder_missing_partner_and_empty_folder(tmp_path: Path) -> None:
    _save(tmp_path / "labels" / "a.png", np.zeros((8, 8), np.uint8))
    _photo(tmp_path / "images" / "a.jpg", 8, 8)
    _photo(tmp_path / "images" / "lonely.jpg", 8, 8)
    with pytest.raises(OptionValueError, match=r"images has 1 photo file\(s\) without a matching label map.*lonely"):
        Label2PhotoFolderDataset(labels=str(tmp_path / "labels"), num_labels=4, images=str(tmp_path / "images"))
    (tmp_path / "images" / "lonely.jpg").unlink()
    _save(tmp_path / "labels" / "b.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(OptionValueError, match=r"labels has 1 label map file\(s\) without a matching photo.*b\.png"):
        Label2PhotoFolderDataset(labels=str(tmp_path / "labels"), num_labels=4, images=str(tmp_path / "images"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(OptionValueError, match=f"labels .*{tmp_path / 'empty'}"):
        Label2PhotoFolderDataset(labels=str(tmp_path / "empty"), num_labels=4)
    with pytest.raises(OptionValueError, match="use_instance"):
        Label2PhotoFolderDataset(labels=str(tmp_path / "labels"), num_labels=4, use_instance=True)
    with pytest.raises(OptionValueError, match="crop_size"):
        Label2PhotoFolderDataset(labels=str(tmp_path / "labels"), num_labels=4, load_size=100, crop_size=128)


def test_folder_photo_size_mismatch_names_both_files(tmp_path: Path) -> None:
    _save(tmp_path / "labels" / "a.png", np.zeros((8, 8), np.uint8))
    _photo(tmp_path / "images" / "a.png", 8, 9)
    ds = Label2PhotoFolderDataset(labels=str(tmp_path / "labels"), num_labels=4, images=str(tmp_path / "images"))
    with pytest.raises(ValueError, match=r"images/a\.png: photo is 9x8.*labels/a\.png is 8x8"):
        ds[0]


# ------------------------------------------------------------------------------------------------ palettes, one-hot
def test_palette_round_trip_colorize_and_decode(tmp_path: Path) -> None:
    pal = default_palette(5)
    names = ["sky", "tall tree", "road", "car", "dont_care"]
    write_palette(tmp_path / "pal.txt", pal, names)
    pal2, names2 = read_palette(tmp_path / "pal.txt")
    np.testing.assert_array_equal(pal2, pal)
    assert names2 == names
    ids = np.random.default_rng(0).integers(0, 5, (6, 7))
    rgb = colorize(ids, pal2)
    assert rgb.shape == (6, 7, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(decode_color_map(rgb, pal2), ids)
    rgb[0, 0] = (1, 2, 3)
    rgb[1, :3] = (9, 9, 9)
    with pytest.raises(ValueError, match=r"2 colour\(s\) are not in the palette.*\(9, 9, 9\): 3 px.*\(1, 2, 3\): 1 px"):
        decode_color_map(rgb, pal2)
    # Cityscapes repeats black: the lowest id wins
    assert decode_color_map(np.zeros((1, 1, 3), np.uint8), LABEL_SETS["cityscapes"].palette)[0, 0] == 0

    (tmp_path / "bad.txt").write_text("# header\n0 1 2 3 a\n1 300 0 0 b\n")
    with pytest.raises(ValueError, match=r"bad\.txt:3: R must be in 0\.\.255, got 300"):
        read_palette(tmp_path / "bad.txt")
    (tmp_path / "gap.txt").write_text("0 1 2 3 a\n2 1 2 3 c\n")
    with pytest.raises(ValueError, match="missing 1"):
        read_palette(tmp_path / "gap.txt")


def test_folder_uses_palette_file_names(tmp_path: Path) -> None:
    _save(tmp_path / "labels" / "a.png", np.array([[0, 1], [2, 0]], np.uint8))
    write_palette(tmp_path / "pal.txt", default_palette(3), ["bg", "cat", "dog"])
    ds = Label2PhotoFolderDataset(labels=str(tmp_path / "labels"), num_labels=3, dont_care=255,
                                  palette=str(tmp_path / "pal.txt"))
    assert ds.class_names == ["bg", "cat", "dog", "dont_care"] and ds.palette.shape == (4, 3)
    with pytest.raises(OptionValueError, match="class_names"):
        Label2PhotoFolderDataset(labels=str(tmp_path / "labels"), num_labels=3, class_names=["a"])


def test_one_hot_checks_range() -> None:
    labels = torch.tensor([[[0, 2], [1, 1]]])
    oh = one_hot(labels, 3)
    assert oh.shape == (1, 3, 2, 2) and torch.equal(oh.argmax(1), labels)
    assert torch.equal(oh.sum(1), torch.ones(1, 2, 2))
    with pytest.raises(ValueError, match="label value 3 is outside \\[0, 3\\)"):
        one_hot(torch.tensor([[[0, 3]]]), 3)
    with pytest.raises(ValueError, match="label value -1"):
        one_hot(torch.tensor([[[-1, 0]]]), 3)
    with pytest.raises(ValueError, match="\\(N, H, W\\)"):
        one_hot(torch.zeros(2, 2, dtype=torch.long), 3)


def test_datasets_are_registered_with_typed_options() -> None:
    for name in ("cityscapes", "coco_stuff", "ade20k", "cmp_facades", "label2photo_folder"):
        builder = DATASETS.get(name)
        hints = typing.get_type_hints(builder.__init__)
        params = DATASETS.parameters(name)
        assert set(params) <= set(hints), name
        for key in ("preprocess", "load_size", "crop_size", "aspect_ratio", "flip", "random", "use_instance", "seed"):
            assert key in params, (name, key)
        assert typing.get_args(hints["preprocess"]) == ("resize_and_crop", "fixed", "none")


def test_config_checks_dataset_options_against_the_signature(tmp_path: Path) -> None:
    """Option files are checked against the constructors' signatures and hints (Literal choices, list[str])."""
    block = {"type": "label2photo_folder", "labels": str(tmp_path / "none"), "num_labels": 3,
             "class_names": ["a", "b", "c"], "preprocess": "fixed", "aspect_ratio": 2}
    spec = parse_block(DataOptions, {"train": block}, "data", "opts.yml").train
    assert spec.kwargs["aspect_ratio"] == 2.0
    with pytest.raises(ConfigError, match="data.train.preprocess must be one of .* \\(did you mean 'fixed'\\?\\)"):
        parse_block(DataOptions, {"train": {**block, "preprocess": "fix"}}, "data", "opts.yml")
    with pytest.raises(ConfigError, match="opts.yml: data.train.labels names no usable label map folder"):
        spec.build()
    ade = parse_block(DataOptions, {"train": {"type": "ade20k", "root": str(tmp_path), "use_instance": True}},
                      "data", "opts.yml").train
    with pytest.raises(ConfigError, match="data.train.use_instance is true but ADE20K has no instance maps"):
        ade.build()


def test_segmentation_input_is_one_hot_plus_the_edge_channel():
    from restore.data.labels import segmentation_input

    labels = torch.tensor([[[0, 1], [2, 1]]])
    edges = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    seg = segmentation_input(labels, 3, edges)
    assert seg.shape == (1, 4, 2, 2)
    assert torch.equal(seg[:, :3].argmax(1), labels) and torch.equal(seg[0, 3], edges[0])
    assert segmentation_input(labels, 3).shape == (1, 3, 2, 2)
