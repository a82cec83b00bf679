"""Colour conversion and normalisation.

Photos of the same patch taken at different visits differ in exposure and white
balance. repigment removes a global white-balance cast against the white cells
of the printed scale marker when one is in the frame; otherwise it normalises
exposure from the image itself.

The segmentation stage is additionally built to be invariant to any remaining
per-channel gain, because it judges each pixel against the patient's own normal
skin in the same photo (see :mod:`repigment.core.segmentation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .arrays import as_rgb

__all__ = [
    "ColorNormalization",
    "srgb_to_linear",
    "linear_to_srgb",
    "normalize_color",
    "apply_gains",
    "match_to_reference",
    "rgb_to_lab",
    "individual_typology_angle",
    "ita_category",
]

#: Linear reflectance the white reference is mapped to. Printer paper reflects
#: about 85-90 % of light; mapping it to 0.85 leaves headroom for bright skin.
REFERENCE_WHITE_LINEAR = 0.85

_SRGB_TO_LINEAR_LUT = np.where(
    np.arange(256) / 255.0 <= 0.04045,
    np.arange(256) / 255.0 / 12.92,
    ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4,
).astype(np.float32)


@dataclass(frozen=True)
class ColorNormalization:
    """Result of :func:`normalize_color`.

    Attributes
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
        The colour-normalised sRGB image.
    gains : ndarray of float, shape (3,)
        Per-channel gains applied in linear light (R, G, B).
    method : {"marker", "exposure", "shared-skin"}
        ``"marker"``: white balance and exposure from the marker's white cells;
        ``"exposure"``: exposure only, from the image itself; ``"shared-skin"``:
        matched to a reference photo on normal skin both show (see
        :func:`match_to_reference`).
    veil : ndarray of float, shape (3,), or None
        Linear light of a haze subtracted from each channel before the gains.
    """

    rgb: np.ndarray
    gains: np.ndarray
    method: Literal["marker", "exposure", "shared-skin"]
    veil: np.ndarray | None = None


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """Convert 8-bit sRGB to linear light in [0, 1] (float32).

    Parameters
    ----------
    rgb : ndarray of uint8
        sRGB values, any shape.

    Returns
    -------
    linear : ndarray of float32
        Same shape, linear light.

    Examples
    --------
    >>> import numpy as np
    >>> float(srgb_to_linear(np.array([255], np.uint8))[0])
    1.0
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise TypeError(f"rgb must be uint8, got {rgb.dtype}; convert with skimage.util.img_as_ubyte")
    return _SRGB_TO_LINEAR_LUT[rgb]


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Convert linear light in [0, 1] to 8-bit sRGB (values outside are clipped)."""
    linear = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
    encoded = np.where(
        linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1 / 2.4) - 0.055
    )
    return np.round(encoded * 255.0).astype(np.uint8)


def normalize_color(
    rgb: np.ndarray,
    *,
    white_rgb: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> ColorNormalization:
    """Remove a global white-balance and exposure cast.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
        sRGB photo.
    white_rgb : array-like of float, shape (3,), optional
        Linear-light colour of a known white reference in this photo (for
        example the white cells of the scale marker, see
        :func:`repigment.core.calibration.detect_marker`). When given, the channels
        are scaled so this colour becomes neutral grey of reflectance
        ``REFERENCE_WHITE_LINEAR``.
    mask : ndarray of bool, shape (H, W), optional
        Pixels to judge exposure from when no white reference is given.

    Returns
    -------
    ColorNormalization
        The normalised image, the gains and the method used.

    Notes
    -----
    Without a white reference only exposure is normalised (one gain for all
    channels, bringing the bright end of the image to a fixed level). Grey-world
    style white balancing is deliberately not used: a close-up of skin has no
    neutral content, so it would turn the skin itself grey. The segmentation
    does not need it either, because it judges every pixel against the normal
    skin of the same photo, which cancels any per-channel gain.
    """
    rgb = as_rgb(rgb)
    if white_rgb is not None:
        white = np.asarray(white_rgb, dtype=np.float64).reshape(3)
        if np.any(white <= 1e-4):
            raise ValueError("white_rgb must be positive in every channel")
        gains = REFERENCE_WHITE_LINEAR / white
        method: Literal["marker", "exposure"] = "marker"
    else:
        # sRGB decoding is monotonic: the brightest channel in linear light is
        # the decoded brightest 8-bit channel.
        brightness = srgb_to_linear(np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2]))
        values = brightness.ravel() if mask is None else brightness[np.asarray(mask, bool)]
        if values.size < 16:
            values = brightness.ravel()
        level, brightest = (np.percentile(values, [98, 99.9]) if values.size else (1.0, 1.0))
        gain = REFERENCE_WHITE_LINEAR / max(float(level), 1e-4)
        # Never push the brightest pixels into clipping: small bright patches
        # (depigmented islands on dark skin) would lose their colour. Never
        # amplify more than 4x either: a nearly black photo stays dark and is
        # flagged by the quality check.
        gain = float(np.clip(min(gain, 0.98 / max(float(brightest), 1e-4)), 0.25, 4.0))
        gain = max(gain, min(1.0, 0.98 / max(float(brightest), 1e-4)))
        gains = np.full(3, gain)
        method = "exposure"
    return ColorNormalization(rgb=apply_gains(rgb, gains), gains=gains, method=method)


def apply_gains(rgb: np.ndarray, gains, veil=None) -> np.ndarray:
    """Scale each channel of an 8-bit sRGB image by a gain in linear light.

    With ``veil``, that much linear light is first taken off each channel
    (a haze of flare), so a channel becomes ``(linear - veil) * gain``.

    Examples
    --------
    >>> import numpy as np
    >>> apply_gains(np.full((1, 1, 3), 128, np.uint8), (1.0, 2.0, 0.5)).ravel().tolist()
    [128, 176, 92]
    """
    import cv2

    # The result depends on each 8-bit value and channel alone: apply it as a
    # 256-entry table per channel (same values as converting every pixel).
    veil = np.zeros(3) if veil is None else np.asarray(veil, np.float64)
    table = np.stack([linear_to_srgb((_SRGB_TO_LINEAR_LUT - np.float32(v)) * np.float32(g))
                      for g, v in zip(gains, veil)], axis=-1)
    return cv2.LUT(np.ascontiguousarray(rgb), table.reshape(256, 1, 3))


def match_to_reference(
    rgb: np.ndarray,
    reference_rgb: np.ndarray,
    shared: np.ndarray,
    *,
    context: np.ndarray | None = None,
    min_pixels: int = 500,
) -> ColorNormalization | None:
    """Match a photo's colour, exposure and haze to a reference photo on what both show.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
        The photo to correct, registered onto the reference's frame.
    reference_rgb : ndarray of uint8, shape (H, W, 3)
        The reference photo (a series' baseline).
    shared : ndarray of bool, shape (H, W)
        Pixels that show the same normal skin in both (outside the patch and
        its margin, off the marker and background).
    context : ndarray of bool, shape (H, W), optional
        Everything else both show unchanged (background, hair, the marker):
        its dark end measures a veil of flare that washes a photo out.
    min_pixels : int, optional
        Fewer shared pixels than this give no correction.

    Returns
    -------
    ColorNormalization or None
        The photo with a veil removed and per-channel gains applied (in
        linear light) that bring its median normal skin to the reference's;
        ``None`` without enough shared skin. ``gains`` holds the gains.

    Notes
    -----
    A change of light colour (tungsten, shade, fluorescent), white balance or
    exposure scales each channel in linear light; the patient's own normal
    skin, unchanged by treatment away from the patch, shows the scale. A hazy,
    washed-out photo also adds light to every pixel: with ``context``, the
    darkest registered pixels (hair, shadow, the marker's black) show how
    much, as the darkest tenth of the photo lies above the reference's.
    A photo whose normal skin is clipped (overexposed) is left as it is.

    Examples
    --------
    >>> import numpy as np
    >>> reference = np.full((40, 40, 3), (180, 130, 100), np.uint8)
    >>> warm = apply_gains(reference, (1.3, 1.0, 0.7))
    >>> matched = match_to_reference(warm, reference, np.ones((40, 40), bool))
    >>> int(np.abs(matched.rgb.astype(int) - reference).max()) <= 1
    True
    """
    shared = np.asarray(shared, bool)
    if np.count_nonzero(shared) < min_pixels:
        return None

    def sample(image: np.ndarray, where: np.ndarray) -> np.ndarray:
        # A regular subsample of about 20,000 pixels is plenty for medians and percentiles.
        step = max(1, int(np.sqrt(np.count_nonzero(where) / 20_000)))
        return srgb_to_linear(image[::step, ::step][where[::step, ::step]]).astype(np.float64)

    visit = sample(rgb, shared)
    reference = sample(reference_rgb, shared)
    # Pixels clipped in either photo hold no scale.
    usable = np.all((visit > 0.003) & (visit < 0.97) & (reference > 0.003) & (reference < 0.97), axis=1)
    if np.count_nonzero(usable) < min(min_pixels, len(usable) // 2):
        return None
    if np.mean(np.any(visit > 0.97, axis=1)) > 0.005:
        # Overexposed: clipped skin has lost the scale, and scaling the rest
        # down would turn clipped depigmented skin grey.
        return None
    veil = np.zeros(3)
    if context is not None and np.count_nonzero(context) >= min_pixels:
        both = np.asarray(context, bool) | shared
        dark_visit = np.percentile(sample(rgb, both), 5, axis=0)
        dark_reference = np.percentile(sample(reference_rgb, both), 5, axis=0)
        skin_visit = np.median(visit[usable], axis=0)
        skin_reference = np.median(reference[usable], axis=0)
        # visit = gain * reference + veil, at the dark end and on normal skin.
        span = skin_reference - dark_reference
        slope = np.where(span > 0.02, (skin_visit - dark_visit) / np.maximum(span, 1e-6), skin_visit / skin_reference)
        veil = np.clip(dark_visit - slope * dark_reference, 0.0, 0.5 * skin_visit)
        # Only a clear veil on every channel is haze; smaller values are noise of the estimate.
        veil = veil if np.all(veil > 0.01) else np.zeros(3)
    gains = np.median(reference[usable], axis=0) / np.maximum(np.median(visit[usable] - veil, axis=0), 1e-4)
    gains = np.clip(gains, 0.2, 5.0)
    return ColorNormalization(rgb=apply_gains(rgb, gains, veil), gains=gains, method="shared-skin", veil=veil)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of an 8-bit sRGB image, float32 with L* in [0, 100]."""
    import cv2

    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise TypeError(f"rgb must be uint8, got {rgb.dtype}")
    # OpenCV's float path gives true L*a*b* (L in 0-100) without 8-bit rounding.
    scaled = rgb.astype(np.float32)
    scaled *= np.float32(1.0 / 255.0)
    return cv2.cvtColor(scaled, cv2.COLOR_RGB2Lab)


def individual_typology_angle(lab: np.ndarray) -> np.ndarray:
    """Individual typology angle, ITA° = arctan((L* - 50) / b*) x 180 / pi.

    Parameters
    ----------
    lab : ndarray, shape (..., 3)
        CIELAB values.

    Returns
    -------
    ita : ndarray
        Angle in degrees, in (-90, 90).

    Examples
    --------
    >>> import numpy as np
    >>> round(float(individual_typology_angle(np.array([70.0, 10.0, 20.0]))), 1)
    45.0
    """
    lab = np.asarray(lab, dtype=np.float64)
    # arctan2 with b* clipped positive keeps the angle in (-90, 90) like the
    # published formula, without dividing by a b* of zero.
    return np.degrees(np.arctan2(lab[..., 0] - 50.0, np.maximum(lab[..., 2], 1e-6)))


def ita_category(ita: float) -> str:
    """Skin colour category of an ITA° value (Chardon et al. 1991).

    Examples
    --------
    >>> ita_category(45.0)
    'light'
    """
    if ita > 55:
        return "very light"
    if ita > 41:
        return "light"
    if ita > 28:
        return "intermediate"
    if ita > 10:
        return "tan"
    if ita > -30:
        return "brown"
    return "dark"
