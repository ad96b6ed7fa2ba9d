"""Reading and writing images as float RGB arrays, with their alpha, bit depth and greyness kept on the side.

Every image in restore is an :class:`Image` whose ``rgb`` is ``(H, W, 3) float32 in [0, 1]``. Reading applies the
EXIF orientation, expands palettes (with their transparency) and grey to three equal channels, and keeps 16-bit
precision; writing reverses this (16-bit PNG/TIFF, RGBA, single-channel grey) and replaces the target atomically so
that a crash never leaves a half-written file under the final name.

Decoding uses Pillow (formats, EXIF, palettes) except for files with more than 8 bits per sample, which OpenCV
decodes (Pillow reduces 16-bit RGB PNGs to 8 bits).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from restore.files import atomic_write_bytes

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""Extensions (lower case) that :func:`list_images` picks up and :func:`write_image` can write."""

_ALPHA_EXTENSIONS = (".png", ".tif", ".tiff", ".webp")
_16BIT_EXTENSIONS = (".png", ".tif", ".tiff")

# BT.601 luma weights (R, G, B), used when a colour image is written as one grey channel.
_LUMA_601 = np.array([0.299, 0.587, 0.114], dtype=np.float64)

# numpy ops that undo each EXIF orientation (1..8) of an (H, W, ...) array, the same as Pillow's exif_transpose.
_ORIENT_OPS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
    7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
    8: lambda a: np.swapaxes(a, 0, 1)[::-1],
}


class ImageReadError(ValueError):
    """A file exists but cannot be decoded as an image; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"cannot read {path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass
class Image:
    """A decoded image; what :func:`read_image` returns and :func:`write_image` takes apart.

    ``rgb`` is (H, W, 3) float32 in [0, 1] (grey sources have three equal channels), ``alpha`` is (H, W) float32
    in [0, 1] or None, ``bit_depth`` is the source's bits per sample (8 or 16), ``grey`` says the source had a single
    colour channel (so that it can be written back as one).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    grey: bool
    path: str = ""


# --------------------------------------------------------------------------------------------------------- reading
def _header_info(pil: PILImage.Image, path: Path) -> tuple[int, bool]:
    """(bits per sample, single colour channel?) from the file header only; Pillow's mode hides 16-bit depth."""
    grey = pil.mode in ("1", "L", "LA", "La", "I", "F") or pil.mode.startswith("I;16")
    if pil.format == "PNG":
        with open(path, "rb") as f:
            head = f.read(26)
        # signature(8) + chunk length(4) + b"IHDR"(4) + width(4) + height(4) + bit depth(1) + colour type(1)
        if len(head) >= 26 and head[12:16] == b"IHDR":
            return int(head[24]), int(head[25]) in (0, 4)
    elif pil.format == "TIFF":
        bits = pil.tag_v2.get(258, 8)  # BitsPerSample
        if isinstance(bits, (tuple, list)):
            bits = max(bits) if bits else 8
        return int(bits), pil.tag_v2.get(262, 2) in (0, 1)  # PhotometricInterpretation: min-is-white/black
    return (16 if pil.mode.startswith("I;16") else 8), grey


def _exif_orientation(pil: PILImage.Image) -> int:
    try:
        value = int(pil.getexif().get(0x0112, 1))
    except Exception:  # broken EXIF blocks must not make an otherwise good image unreadable
        return 1
    return value if value in _ORIENT_OPS else 1


def _read_high_depth(path: Path, grey: bool, orientation: int) -> Image:
    """Decode a >8-bit PNG/TIFF with OpenCV (keeps 16 bits); ``grey``: the header says one colour channel."""
    data = np.fromfile(str(path), dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageReadError(path, "corrupt or truncated image data (OpenCV could not decode it)")
    if arr.dtype == np.uint16:
        scale, bit_depth = 65535.0, 16
    elif arr.dtype == np.uint8:
        scale, bit_depth = 255.0, 8
    else:
        raise ImageReadError(path, f"unsupported sample type {arr.dtype} (only 8- and 16-bit images are supported)")
    if orientation != 1:
        arr = np.ascontiguousarray(_ORIENT_OPS[orientation](arr))
    x = arr.astype(np.float32) / np.float32(scale)
    alpha = None
    if x.ndim == 2:
        rgb = np.repeat(x[:, :, None], 3, axis=2)
    elif x.shape[2] == 1:
        rgb = np.repeat(x, 3, axis=2)
    elif x.shape[2] == 2:  # grey + alpha
        rgb, alpha = np.repeat(x[:, :, :1], 3, axis=2), x[:, :, 1]
    elif x.shape[2] == 3:
        rgb = x[:, :, ::-1]
    elif x.shape[2] == 4:
        rgb, alpha = x[:, :, 2::-1], x[:, :, 3]
    else:
        raise ImageReadError(path, f"unsupported number of channels {x.shape[2]}")
    return Image(
        rgb=np.ascontiguousarray(rgb, dtype=np.float32),
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
        bit_depth=bit_depth,
        grey=grey,
        path=str(path),
    )


def _from_pil(pil: PILImage.Image, path: Path) -> Image:
    """Convert an already EXIF-transposed 8-bit Pillow image to an :class:`Image`."""
    mode = pil.mode
    has_trns = "transparency" in pil.info
    grey = mode in ("1", "L", "LA", "La")
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(pil, dtype=np.float64)
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageReadError(path, f"unsupported {mode} image with values outside 0..65535")
        y = (arr / 65535.0).astype(np.float32)
        return Image(rgb=np.repeat(y[:, :, None], 3, axis=2), alpha=None, bit_depth=16, grey=True, path=str(path))
    if mode == "F":
        raise ImageReadError(path, "32-bit floating-point images are not supported")
    if mode in ("P", "PA") or (mode in ("RGB", "L") and has_trns):
        pil = pil.convert("RGBA" if (mode == "PA" or has_trns) else "RGB")
        if grey:  # grey with a tRNS colour key stays grey
            pil = pil.convert("LA")
    elif mode in ("1", "L"):
        pil = pil.convert("L")
    elif mode == "La":
        pil = pil.convert("LA")
    elif mode == "RGBa":
        pil = pil.convert("RGBA")
    elif mode not in ("LA", "RGB", "RGBA"):
        pil = pil.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...
    arr = np.asarray(pil, dtype=np.float32) / np.float32(255.0)
    alpha = None
    if pil.mode == "L":
        rgb = np.repeat(arr[:, :, None], 3, axis=2)
    elif pil.mode == "LA":
        rgb, alpha = np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1]
    elif pil.mode == "RGBA":
        rgb, alpha = arr[:, :, :3], arr[:, :, 3]
    else:
        rgb = arr
    return Image(
        rgb=np.ascontiguousarray(rgb),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        bit_depth=8,
        grey=grey,
        path=str(path),
    )


def read_image(path: str | os.PathLike) -> Image:
    """Decode PNG/JPEG/BMP/TIFF/WebP (8 or 16 bit; grey, grey+alpha, RGB, RGBA, palette) into an upright Image.

    A file with several frames (animated GIF/PNG/WebP, multi-page TIFF) gives its first (:func:`frame_count`).
    Raises FileNotFoundError for a missing file and :class:`ImageReadError` (naming the file) for anything that
    cannot be decoded: not an image, truncated, corrupt, or an unsupported sample type.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image file not found: {p}")
    if p.is_dir():
        raise ImageReadError(p, "is a directory, not an image file")
    try:
        pil = PILImage.open(p)
    except UnidentifiedImageError:
        raise ImageReadError(p, "not an image file (cannot identify image)") from None
    except PILImage.DecompressionBombError as err:  # Pillow's limit: over twice MAX_IMAGE_PIXELS
        raise ImageReadError(p, f"too large to decode safely ({err})") from None
    except (OSError, ValueError, SyntaxError, struct.error) as err:
        raise ImageReadError(p, f"corrupt image header ({err})") from None
    with pil:
        try:
            bits, grey = _header_info(pil, p)
            pil.load()  # decode before reading EXIF: PNG's getexif() loads too, and must not hide a decode error
            orientation = _exif_orientation(pil)
            if bits > 8:
                return _read_high_depth(p, grey, orientation)
            if orientation != 1:
                pil = ImageOps.exif_transpose(pil)
            return _from_pil(pil, p)
        except ImageReadError:
            raise
        except (OSError, ValueError, SyntaxError, struct.error, EOFError) as err:
            reason = str(err) or type(err).__name__
            raise ImageReadError(p, f"corrupt or truncated image data ({reason})") from None


def frame_count(path: str | os.PathLike) -> int:
    """Frames in an image file: more than 1 for an animated GIF, PNG (APNG) or WebP, or a multi-page TIFF, of which
    :func:`read_image` decodes only the first (so callers can say so). 1 when the file has one frame or cannot be
    opened (:func:`read_image` reports why)."""
    try:
        with PILImage.open(path) as pil:
            return max(1, int(getattr(pil, "n_frames", 1)))
    except (OSError, ValueError, SyntaxError, struct.error, EOFError, PILImage.DecompressionBombError):
        return 1


# --------------------------------------------------------------------------------------------------------- writing
def _check_array(name: str, arr: np.ndarray, shape: tuple[int, ...], path: Path) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.shape != shape:
        raise ValueError(f"cannot write {path}: {name} must have shape {shape}, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"cannot write {path}: {name} must be a real numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"cannot write {path}: {name} contains NaN or infinite values")
    return arr


def _quantise(x: np.ndarray, bit_depth: int) -> np.ndarray:
    """[0, 1] floats -> rounded integers (values outside [0, 1] are clipped)."""
    top = 65535.0 if bit_depth == 16 else 255.0
    q = np.rint(np.clip(x, 0.0, 1.0) * top)
    return q.astype(np.uint16 if bit_depth == 16 else np.uint8)


def _png_grey_alpha_16(grey: np.ndarray, alpha: np.ndarray) -> bytes:
    """A 16-bit grey+alpha PNG (colour type 4), which neither OpenCV nor Pillow can write."""
    h, w = grey.shape
    pixels = np.stack([grey, alpha], axis=2).astype(">u2")  # PNG samples are big-endian
    raw = np.ascontiguousarray(pixels.reshape(h, w * 2)).view(np.uint8)
    rows = np.concatenate([np.zeros((h, 1), np.uint8), raw], axis=1)  # filter type 0 (none) before each row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))


def _encode_16(path: Path, ext: str, colour: np.ndarray, alpha: np.ndarray | None) -> bytes:
    """16-bit PNG (OpenCV, or our own writer for grey+alpha) or TIFF (tifffile, deflate) bytes."""
    if ext == ".png" and colour.ndim == 2 and alpha is not None:
        return _png_grey_alpha_16(colour, alpha)
    if colour.ndim == 2 and alpha is not None:  # 16-bit grey+alpha TIFF is poorly supported by readers: use RGBA
        colour = np.repeat(colour[:, :, None], 3, axis=2)
    if ext == ".png":
        arr = colour if colour.ndim == 2 else colour[:, :, ::-1]
        if alpha is not None:
            arr = np.concatenate([arr, alpha[:, :, None]], axis=2)
        ok, buf = cv2.imencode(ext, np.ascontiguousarray(arr))
        if not ok:
            raise ValueError(f"cannot write {path}: OpenCV could not encode a 16-bit PNG")
        return buf.tobytes()
    import tifffile  # installed with scikit-image

    arr = colour if alpha is None else np.concatenate([colour, alpha[:, :, None]], axis=2)
    out = BytesIO()
    tifffile.imwrite(out, arr, photometric="minisblack" if colour.ndim == 2 else "rgb",
                     extrasamples=["unassalpha"] if alpha is not None else None, compression="zlib")
    return out.getvalue()


def _encode(path: Path, ext: str, colour: np.ndarray, alpha: np.ndarray | None, bit_depth: int) -> bytes:
    """Encode quantised ``colour`` ((H, W) grey or (H, W, 3) RGB) plus optional (H, W) alpha to file bytes."""
    if bit_depth == 16:
        return _encode_16(path, ext, colour, alpha)
    if alpha is not None:
        colour = np.concatenate([colour.reshape(*colour.shape[:2], -1), alpha[:, :, None]], axis=2)
    pil = PILImage.fromarray(np.ascontiguousarray(colour))  # uint8 (H, W) / 2 / 3 / 4 channels: L, LA, RGB, RGBA
    out = BytesIO()
    if ext in (".jpg", ".jpeg"):
        pil.save(out, format="JPEG", quality=95)
    elif ext == ".webp":
        if pil.mode in ("L", "LA"):  # WebP stores colour only
            pil = pil.convert("RGB" if pil.mode == "L" else "RGBA")
        pil.save(out, format="WEBP", lossless=True)
    elif ext in (".tif", ".tiff"):
        pil.save(out, format="TIFF", compression="tiff_deflate")
    else:
        pil.save(out, format={".png": "PNG", ".bmp": "BMP"}[ext])
    return out.getvalue()



def write_image(
    path: str | os.PathLike,
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    bit_depth: int = 8,
    grey: bool = False,
) -> None:
    """Write ``rgb`` ((H, W, 3) float in [0, 1]; clipped, then rounded to 8 or 16 bits) atomically to ``path``.

    The format follows the extension (PNG, JPEG at quality 95, BMP, TIFF deflate, lossless WebP). ``alpha``
    ((H, W) in [0, 1]) makes an RGBA (or grey+alpha) PNG/TIFF/WebP. ``bit_depth=16`` needs PNG or TIFF.
    ``grey=True`` writes one channel: the R channel if the three channels are equal, else ITU-R BT.601 luma
    Y = 0.299 R + 0.587 G + 0.114 B (WebP, and 16-bit TIFF with alpha, are written as colour: few readers
    support those grey variants). Parent folders are created.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ValueError(f"cannot write {p}: unknown image extension '{p.suffix}'; use one of "
                         f"{', '.join(IMAGE_EXTENSIONS)}")
    if bit_depth not in (8, 16):
        raise ValueError(f"cannot write {p}: bit_depth must be 8 or 16, got {bit_depth}")
    if bit_depth == 16 and ext not in _16BIT_EXTENSIONS:
        raise ValueError(f"cannot write {p}: 16-bit images need PNG or TIFF, not {ext}")
    if alpha is not None and ext not in _ALPHA_EXTENSIONS:
        raise ValueError(f"cannot write {p}: an alpha channel needs PNG, TIFF or WebP, not {ext}")
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"cannot write {p}: rgb must have shape (H, W, 3), got {arr.shape}")
    h, w = arr.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"cannot write {p}: image is empty (shape {arr.shape})")
    x = _check_array("rgb", arr, (h, w, 3), p)
    a = None if alpha is None else _quantise(_check_array("alpha", alpha, (h, w), p), bit_depth)
    if grey:
        if np.array_equal(x[:, :, 0], x[:, :, 1]) and np.array_equal(x[:, :, 0], x[:, :, 2]):
            x = x[:, :, 0]
        else:
            x = x @ _LUMA_601
    data = _encode(p, ext, _quantise(x, bit_depth), a, bit_depth)
    atomic_write_bytes(p, data)


# --------------------------------------------------------------------------------------------------------- listing
def list_images(folder: str | os.PathLike, recursive: bool = False,
                extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files in ``folder`` (by extension, case-insensitive; hidden files skipped), sorted by path.

    ``extensions`` (lower case): what counts as an image; readers that take more than :func:`write_image` writes
    (``restore infer`` also reads GIFs) pass their own. Raises FileNotFoundError naming the folder and the
    extensions when it is missing or holds no image.
    """
    root = Path(folder)
    exts = ", ".join(extensions)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root} (looked for {exts})")
    candidates = root.rglob("*") if recursive else root.iterdir()
    found = sorted(
        p for p in candidates
        if p.suffix.lower() in extensions and not p.name.startswith(".") and p.is_file()
    )
    if not found:
        where = "or its subfolders " if recursive else ""
        raise FileNotFoundError(f"no images in {root} {where}(looked for {exts})")
    return found


# ---------------------------------------------------------------------------------------------------- conversions
def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, C) (or (H, W)) array -> (C, H, W) float32 tensor, values unchanged."""
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"to_tensor expects an (H, W, C) or (H, W) array, got shape {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32))


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor -> (H, W, C) float32 array (the inverse of :func:`to_tensor`); detaches and moves to CPU."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"to_numpy expects a torch.Tensor, got {type(t).__name__}")
    if t.ndim != 3:
        raise ValueError(f"to_numpy expects a (C, H, W) tensor, got shape {tuple(t.shape)}")
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy().transpose(1, 2, 0))
