"""NIQE (Mittal et al. 2013, "Making a completely blind image quality analyzer"), via basicsr's MATLAB-exact port.

No-reference: lower is better (natural-looking). Computed on the Y channel of MATLAB's YCbCr of the 8-bit image,
with the official pristine-model parameters and 96x96 blocks without overlap.
"""

from __future__ import annotations

import warnings

import numpy as np

from restore.compat import import_basicsr
from restore.metrics.fidelity import _quantised_bgr

_BLOCK = 96


def _basicsr_niqe():
    with warnings.catch_warnings():  # basicsr imports scipy.ndimage.filters, deprecated in SciPy 1.x
        warnings.simplefilter("ignore", DeprecationWarning)
        return import_basicsr("metrics.niqe").calculate_niqe


def niqe(img: np.ndarray, crop_border: int) -> float:
    """NIQE of an (H, W, 3) float RGB image in [0, 1] (quantised to 8 bits first); lower is better.

    Needs at least two 96x96 blocks after dropping ``crop_border`` pixels per side (the model's covariance is
    undefined for one block).
    """
    bgr = _quantised_bgr("img", img)
    if not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise ValueError(f"crop_border must be an integer >= 0, got {crop_border!r}")
    h, w = bgr.shape[0] - 2 * crop_border, bgr.shape[1] - 2 * crop_border
    if h < _BLOCK or w < _BLOCK or (h // _BLOCK) * (w // _BLOCK) < 2:
        raise ValueError(f"NIQE needs at least two {_BLOCK}x{_BLOCK} blocks; an image of shape {np.shape(img)} "
                         f"with crop_border {crop_border} leaves {max(w, 0)}x{max(h, 0)} (WxH)")
    fn = _basicsr_niqe()
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # flat blocks give NaN features, which basicsr drops
            value = float(fn(bgr.astype(np.float32), crop_border, input_order="HWC", convert_to="y"))
    except np.linalg.LinAlgError as err:
        raise ValueError(f"NIQE is undefined for this image of shape {np.shape(img)} (its 96x96 blocks are too "
                         f"flat to fit the model: {err})") from None
    if not np.isfinite(value):
        raise ValueError(f"NIQE is undefined for this image of shape {np.shape(img)} (non-finite result)")
    return value
