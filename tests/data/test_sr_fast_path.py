"""The fast SR data path: the decoded-image cache and the batched device ops against the numpy reference path."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from restore.data.cache import DecodedCache, to_integers, to_unit
from restore.data.device_ops import augment_batch, downscale_batch, matlab_resize, resize_matrix
from restore.data.io import list_images, read_image, write_image
from restore.data.sr import HRFolderDataset, downscale, imresize
from restore.data.transforms import augment
from restore.registry import OptionValueError

# basicsr's imresize computes its weights and products in float32; ours in float64. The bound:
TOL = 1e-5


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].numpy().transpose(1, 2, 0)


# ------------------------------------------------------------------------------------------------ MATLAB resize
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_matlab_resize_equals_basicsr_on_real_crops(shared: Path, scale: int) -> None:
    train = shared / "data/sr-train"
    photos = list_images(train / "plasma_photos")[:3] + list_images(train / "sun_hays80")[:2]
    sizes = [(128, 128), (96, 96), (37, 53), (64, 101), (129, 75), (9, 7)]  # odd ones, not multiples of the scale
    worst = 0.0
    for k, path in enumerate(photos):
        img = read_image(path).rgb
        for j, (h, w) in enumerate(sizes):
            top, left = 17 * (k + 1) + j, 29 * (k + 1)
            crop = img[top:top + h, left:left + w]
            ref = imresize(crop, 1 / scale)
            out = _hwc(matlab_resize(_nchw(crop), 1 / scale))
            assert out.shape == ref.shape, (path, h, w)
            worst = max(worst, float(np.abs(out - ref).max()))
    assert worst <= TOL, f"max |ours - basicsr| = {worst:.3g} at scale 1/{scale}"


def test_matlab_resize_matrix_rows_and_mirroring() -> None:
    m = resize_matrix(10, 5, 0.5)
    torch.testing.assert_close(m.sum(dim=1), torch.ones(5, dtype=torch.float64), rtol=0, atol=1e-12)
    # a constant image stays constant, and upscaling (no antialias stretch) agrees with basicsr too
    x = np.random.default_rng(0).random((11, 13, 3), dtype=np.float32)
    np.testing.assert_allclose(_hwc(matlab_resize(_nchw(x), 2.0)), imresize(x, 2.0), rtol=0, atol=TOL)
    const = torch.full((1, 3, 12, 12), 0.3)
    torch.testing.assert_close(matlab_resize(const, 1 / 3), torch.full((1, 3, 4, 4), 0.3))


def test_matlab_resize_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"cannot resize a 1x5 \(WxH\) image"):
        matlab_resize(torch.zeros(1, 3, 5, 1), 0.5)
    with pytest.raises(TypeError, match="floating-point"):
        matlab_resize(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 0.5)
    with pytest.raises(ValueError, match="positive number"):
        resize_matrix(8, 4, float("nan"))


def test_downscale_batch_equals_the_per_item_downscale() -> None:
    rng = np.random.default_rng(1)
    crops = [rng.random((36, 36, 3), dtype=np.float32) for _ in range(4)]
    for scale in (2, 3, 4):
        out = downscale_batch(torch.cat([_nchw(c) for c in crops]), scale)
        for i, c in enumerate(crops):
            ref = downscale(c, scale)
            got = out[i].numpy().transpose(1, 2, 0)
            assert got.shape == ref.shape and float(got.min()) >= 0 and float(got.max()) <= 1
            np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)


# ------------------------------------------------------------------------------------------------ augmentation
def test_augment_batch_equals_numpy_augment_for_all_eight_symmetries() -> None:
    x = np.random.default_rng(2).random((8, 8, 3), dtype=np.float32)
    codes = [[bool(c & 1), bool(c & 2), bool(c & 4)] for c in range(8)]
    batch = torch.cat([_nchw(x)] * 8)
    out = augment_batch(batch, torch.tensor(codes))
    for i, (h, v, r) in enumerate(codes):
        np.testing.assert_array_equal(out[i].numpy().transpose(1, 2, 0), augment([x], h, v, r)[0])
    with pytest.raises(ValueError, match="square"):
        augment_batch(torch.zeros(1, 3, 4, 6), torch.zeros(1, 3, dtype=torch.bool))


# ------------------------------------------------------------------------------------------------ cache
def test_integer_round_trip_is_bit_exact_for_8_and_16_bit(tmp_path: Path) -> None:
    img = np.random.default_rng(3).random((20, 24, 3), dtype=np.float32)
    for bits in (8, 16):
        path = tmp_path / f"x{bits}.png"
        write_image(path, img, bit_depth=bits)
        decoded = read_image(path)
        assert decoded.bit_depth == bits
        ints = to_integers(decoded.rgb, bits)
        assert ints.dtype == (np.uint8 if bits == 8 else np.uint16)
        np.testing.assert_array_equal(to_unit(ints), decoded.rgb)


def test_cache_keeps_what_fits_and_warns_once_past_the_bound() -> None:
    calls: list[int] = []

    def decoder(i: int):
        return lambda: calls.append(i) or np.zeros(2**20, dtype=np.uint8)  # 1 MiB each

    cache = DecodedCache(2.5, what="test images")
    for i in (0, 1, 0, 1):
        cache.get(i, decoder(i))
    assert calls == [0, 1] and len(cache) == 2
    with pytest.warns(RuntimeWarning, match=r"cache of test images is full .*decoded every time") as record:
        cache.get(2, decoder(2))
        cache.get(3, decoder(3))
    assert len(record) == 1
    cache.get(2, decoder(2))
    assert calls == [0, 1, 2, 3, 2] and 2 not in cache  # past the bound: decoded again on every read
    off = DecodedCache(0)
    off.get(0, decoder(0))
    assert len(off) == 0
    with pytest.raises(OptionValueError, match=r"cache_mb must be a number of megabytes >= 0"):
        DecodedCache(-1)


def _folder(tmp_path: Path, n: int = 4, size: tuple[int, int] = (40, 52)) -> Path:
    rng = np.random.default_rng(4)
    for i in range(n):
        write_image(tmp_path / f"img{i}.png", rng.random((*size, 3), dtype=np.float32))
    return tmp_path


def test_hr_folder_decodes_each_image_once(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "a")
    ds = HRFolderDataset([str(folder)], gt_size=16)
    uncached = HRFolderDataset([str(folder)], gt_size=16, cache_mb=0)
    first = [ds[i]["gt"] for i in range(4)]
    for i in range(4):  # the cache changes no bit of an item
        assert torch.equal(uncached[i]["gt"], first[i]) and torch.equal(uncached[i]["lq"], ds[i]["lq"])
    for p in folder.iterdir():
        p.unlink()  # cached: the items no longer need the files
    for i in range(4):
        assert torch.equal(ds[i]["gt"], first[i]) and torch.equal(ds.load_staged(i)["gt_raw"],
                                                                   ds.load_staged(i)["gt_raw"])
    with pytest.raises(FileNotFoundError, match="img0.png"):
        uncached[0]


# ------------------------------------------------------------------------------------------------ staged items
def _staged_batch(ds: HRFolderDataset, indices: list[int]) -> dict:
    return ds.finish_batch(default_collate([ds.load_staged(i) for i in indices]))


def _assert_staged_equals_reference(ds: HRFolderDataset, indices: list[int]) -> None:
    batch = _staged_batch(ds, indices)
    for k, i in enumerate(indices):
        ref = ds[i]
        assert torch.equal(batch["gt"][k], ref["gt"]), f"gt of item {i} differs"
        assert batch["lq"][k].shape == ref["lq"].shape
        torch.testing.assert_close(batch["lq"][k], ref["lq"], rtol=0, atol=TOL)
        assert batch["path"][k] == ref["path"]


def test_staged_items_equal_the_reference_items_on_real_photos(shared: Path) -> None:
    roots = [str(shared / "data/sr-train/sun_hays80"), str(shared / "data/sr-train/plasma_photos")]
    for scale, gt in ((4, 128), (3, 96), (2, 64)):
        ds = HRFolderDataset(roots, scale=scale, gt_size=gt, seed=7)
        assert ds.staged
        for epoch in (0, 3):
            ds.set_epoch(epoch)
            _assert_staged_equals_reference(ds, [0, 5, 81, 88, 40, 13])


def test_staged_items_follow_flip_and_rotate_flags_and_16_bit(tmp_path: Path) -> None:
    folder = _folder(tmp_path, n=3)
    write_image(folder / "deep.png", np.random.default_rng(5).random((40, 40, 3), dtype=np.float32), bit_depth=16)
    for flip, rotate in ((False, False), (True, False), (False, True), (True, True)):
        ds = HRFolderDataset([str(folder)], scale=4, gt_size=16, flip=flip, rotate=rotate, seed=1)
        for epoch in range(3):
            ds.set_epoch(epoch)
            _assert_staged_equals_reference(ds, [0, 1, 2, 3])  # mixes uint8 and 16-bit crops in one batch
    assert not HRFolderDataset([str(folder)], gt_size=16, device_ops=False).staged


def test_staged_items_are_deterministic_from_seed_epoch_index(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    a, b = HRFolderDataset([str(folder)], gt_size=16, seed=3), HRFolderDataset([str(folder)], gt_size=16, seed=3)
    b.load_staged(2)  # access order must not matter
    for epoch in (0, 1):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        x, y = _staged_batch(a, [3, 1, 0]), _staged_batch(b, [3, 1, 0])
        assert torch.equal(x["gt"], y["gt"]) and torch.equal(x["lq"], y["lq"])
    a.set_epoch(0)
    b.set_epoch(1)
    assert not torch.equal(_staged_batch(a, [0])["gt"], _staged_batch(b, [0])["gt"])


def test_staged_batches_reach_the_engine_and_training_resumes_bit_exactly(shared: Path, tmp_path: Path,
                                                                         monkeypatch) -> None:
    """The SR smoke recipe (device_ops on by default) trained 4 steps equals 2 steps + resume + 2 steps."""
    from restore.cli import main
    from restore.engine.checkpoint import load

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    data, weights = shared / "data", shared / "weights" / "vgg16_imagenet_features.pth"
    common = ["-opt", "options/train/sr/x4_smoke.yml", "--no-progress", "--set", "train.steps=4",
              "--set", f"data.train.roots=[{data / 'sr-train' / 'sun_hays80'}]", "--set", "data.val=null",
              "--set", "data.num_workers=1", "--set", f"losses.perceptual.weights={weights}",
              "--set", "checkpoint.every=2", "--set", "checkpoint.keep=5"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["train", *common, "--set", f"path.root={tmp_path / 'a'}"]) == 0
        assert main(["train", *common, "--set", f"path.root={tmp_path / 'b'}", "--until", "2"]) == 0
        assert main(["train", *common, "--set", f"path.root={tmp_path / 'b'}"]) == 0
    a = load(tmp_path / "a/x4_smoke/checkpoints/step_00000004.pt")
    b = load(tmp_path / "b/x4_smoke/checkpoints/step_00000004.pt")
    assert a["config"]["data"]["train"].get("device_ops", True)
    for key in ("ema", "critic"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resume"
    for name, tensor in a["generator"]["state"].items():
        assert torch.equal(tensor, b["generator"]["state"][name]), f"generator.{name} differs after resume"


# ------------------------------------------------------------------------------------------------ label maps, faces
def _items_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k]
                                        for k in a)


def test_label_map_and_face_sets_decode_each_file_once(shared: Path, tmp_path: Path) -> None:
    import shutil

    from restore.data.attributes import UTKFaceDataset
    from restore.data.label2photo import CityscapesDataset

    src = shared / "data/label2photo/cityscapes_sample"
    city = tmp_path / "city"
    for sub in ("train_img", "train_label", "train_inst"):
        (city / sub).mkdir(parents=True)
        for f in sorted((src / sub).iterdir())[:3]:
            shutil.copy(f, city / sub / f.name)
    faces = tmp_path / "faces"
    faces.mkdir()
    for f in sorted((shared / "data/faces/utkface").iterdir())[:12]:
        shutil.copy(f, faces / f.name)
    opts = dict(preprocess="fixed", crop_size=64, aspect_ratio=2.0, use_instance=True, seed=2)
    sets = [(CityscapesDataset(str(city), **opts), CityscapesDataset(str(city), cache_mb=0, **opts), city),
            (UTKFaceDataset(str(faces), split="all", image_size=32, seed=2),
             UTKFaceDataset(str(faces), split="all", image_size=32, seed=2, cache_mb=0), faces)]
    for cached, uncached, folder in sets:
        for epoch in (0, 1):
            cached.set_epoch(epoch)
            uncached.set_epoch(epoch)
            for i in range(len(cached)):
                assert _items_equal(cached[i], uncached[i]), (type(cached).__name__, i)
        reference = [cached[i] for i in range(len(cached))]
        shutil.rmtree(folder)
        for i, ref in enumerate(reference):  # every file was decoded once and kept
            assert _items_equal(cached[i], ref)
        with pytest.raises((FileNotFoundError, ValueError)):
            uncached[0]
