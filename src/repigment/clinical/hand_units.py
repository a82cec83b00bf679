"""The patient's hand unit measured from a photo of the hand beside the scale marker.

One VASI hand unit is the palm plus the volar surface of all five digits. The
user photographs the open hand, palm up, fingers together or slightly apart, on
a plain dark background (black, dark blue or green cloth), with the printed
ArUco marker flat beside it, camera square to the table.

Assumption: the photo shows the hand up to the wrist crease. When the hand
reaches the edge of the photo (the forearm is in the frame), the forearm is cut
off at the wrist, found as the start of the narrowest stretch between the palm
and the photo's edge; a note says so, and the result is less certain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.calibration import DEFAULT_MARKER_MM, MarkerDetection, detect_marker, marker_exclusion_mask, plane_area_mm2
from ..errors import HandPhotoError
from .vasi import HAND_UNIT_RANGE_CM2, HandUnit

__all__ = [
    "HandPhotoError",
    "HandMeasurement",
    "hand_mask",
    "measure_hand_unit",
]

#: Longest side at which hand photos are analysed.
HAND_WORKING_SIZE = 1600


@dataclass(frozen=True)
class HandMeasurement:
    """Result of :func:`measure_hand_unit`.

    Attributes
    ----------
    hand_unit : HandUnit
        The hand unit (source ``"photo"``), with a plausible range.
    mask : ndarray of bool, shape (H, W)
        The hand (palm and digits) at the analysed resolution.
    marker : MarkerDetection
        The scale marker at the analysed resolution.
    wrist_cut : bool
        Whether a forearm was cut off at the wrist.
    notes : tuple of str
        Conditions worth telling the user.
    """

    hand_unit: HandUnit
    mask: np.ndarray
    marker: MarkerDetection
    wrist_cut: bool
    notes: tuple[str, ...] = ()


def _largest_component(mask: np.ndarray) -> np.ndarray:
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(mask, dtype=bool)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == best


def _cut_at_wrist(mask: np.ndarray) -> tuple[np.ndarray, bool]:
    """Remove a forearm entering from the photo's edge, beyond the wrist."""
    import cv2

    height, width = mask.shape
    edge = np.zeros_like(mask)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    if not (mask & edge).any():
        return mask, False
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    cy, cx = np.unravel_index(int(np.argmax(distance)), distance.shape)
    radius = float(distance[cy, cx])
    ey, ex = np.nonzero(mask & edge)
    axis = np.array([ex.mean() - cx, ey.mean() - cy], float)
    if np.linalg.norm(axis) < 1e-6:
        return mask, False
    axis /= np.linalg.norm(axis)
    ys, xs = np.nonzero(mask)
    along = (xs - cx) * axis[0] + (ys - cy) * axis[1]
    # Width of the hand across the axis, per 1-px step along it, from the palm's centre outwards.
    steps = np.floor(along).astype(int)
    start = int(np.ceil(radius * 0.8))
    stop = int(steps.max())
    if stop - start < 5:
        return mask, False
    widths = np.bincount(steps[steps >= 0], minlength=stop + 1)[start : stop + 1].astype(float)
    widths = np.convolve(widths, np.ones(5) / 5.0, mode="same")
    narrowest = float(widths[2:-2].min()) if len(widths) > 4 else float(widths.min())
    # The wrist is where the narrow stretch begins (the forearm widens little towards the elbow).
    wrist = start + int(np.argmax(widths <= narrowest * 1.04))
    cut = mask.copy()
    cut[ys[along > wrist], xs[along > wrist]] = False
    return _largest_component(cut), True


def hand_mask(rgb: np.ndarray, *, exclude: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
    """The hand (palm and digits) in a colour-normalised photo on a plain background.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
        Colour-normalised photo.
    exclude : ndarray of bool, shape (H, W), optional
        Pixels that are never hand (the marker and its paper).

    Returns
    -------
    mask : ndarray of bool, shape (H, W)
        The largest skin region, holes (creases, rings) filled, forearm removed.
    wrist_cut : bool
        Whether a forearm was cut off.
    """
    from scipy import ndimage as ndi

    from ..core.color import rgb_to_lab
    from ..core.segmentation import skin_mask

    skin = skin_mask(rgb, exclude=exclude)
    hand = _largest_component(skin)
    if hand.sum() < 0.02 * hand.size:
        # Very fair or very dark skin under odd light: fall back to lightness against the dark background.
        from skimage.filters import threshold_otsu

        lightness = rgb_to_lab(rgb)[..., 0]
        bright = lightness > threshold_otsu(lightness)
        if exclude is not None:
            bright &= ~exclude
        hand = _largest_component(bright)
    hand = _refine_outline(rgb, ndi.binary_fill_holes(hand), exclude)
    hand = ndi.binary_fill_holes(_largest_component(hand))
    return _cut_at_wrist(hand)


def _local_mean(values: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted mean of ``values`` over ``valid`` pixels only."""
    import cv2

    weight = valid.astype(np.float32)
    num = cv2.GaussianBlur(values * weight, (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    return num / np.maximum(den, 1e-6)


def _refine_outline(rgb: np.ndarray, hand: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
    """Put the outline where the brightness is halfway between hand and background.

    The skin detector accepts pixels only partly covered by the hand (a faint
    skin tint on the dark cloth), which would overstate the area by a pixel or
    two all round. Near the outline each pixel is judged instead against the
    local hand and background brightness (linear light, where optical blur
    mixes them), so partly covered pixels count by halves.
    """
    import cv2

    from ..core.color import srgb_to_linear

    if not hand.any():
        return hand
    luminance = (srgb_to_linear(rgb) @ np.array([0.2126, 0.7152, 0.0722], np.float32)).astype(np.float32)
    size = max(3, int(0.004 * max(hand.shape)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    inner = cv2.erode(hand.astype(np.uint8), kernel, iterations=2).astype(bool)
    outer = ~cv2.dilate(hand.astype(np.uint8), kernel, iterations=2).astype(bool)
    if exclude is not None:
        outer &= ~exclude
    if inner.sum() < 100 or outer.sum() < 100:
        return hand
    sigma = 0.03 * max(hand.shape)
    hand_level = _local_mean(luminance, inner, sigma)
    background_level = _local_mean(luminance, outer, sigma)
    decided = luminance > 0.5 * (hand_level + background_level)
    band = ~inner & ~outer
    return np.where(band, decided, inner)


def measure_hand_unit(
    source,
    *,
    marker_mm: float = DEFAULT_MARKER_MM,
    working_size: int = HAND_WORKING_SIZE,
) -> HandMeasurement:
    """Measure one hand unit (palm and volar digits) from a photo with the marker.

    Parameters
    ----------
    source : path, bytes or file-like
        Photo of the open hand, palm up, on a plain dark background, with the
        printed marker flat beside it.
    marker_mm : float, optional
        Printed side of the marker, mm.
    working_size : int, optional
        Longest side at which the photo is analysed.

    Returns
    -------
    HandMeasurement

    Raises
    ------
    ImageLoadError
        If the photo cannot be read.
    HandPhotoError
        If there is no marker, no hand, the hand is implausibly small or large,
        or it lies across the marker.

    Notes
    -----
    The area is measured in the marker's plane (:func:`repigment.core.calibration.plane_area_mm2`),
    so a slightly tilted camera is corrected. The plausible range adds one
    pixel all along the outline either way.
    """
    import cv2

    from ..core.color import normalize_color
    from ..io import load_image

    loaded = load_image(source, max_side=working_size)
    marker = detect_marker(loaded.rgb, marker_mm=marker_mm)
    if marker is None:
        raise HandPhotoError(
            "no scale marker found in the hand photo; lay the printed marker flat beside the hand, fully in view"
        )
    exclude = marker_exclusion_mask(loaded.rgb.shape[:2], marker)
    normalized = normalize_color(loaded.rgb, white_rgb=marker.white_rgb)
    mask, wrist_cut = hand_mask(normalized.rgb, exclude=exclude)
    if not mask.any():
        raise HandPhotoError("no hand found in the photo; photograph the open hand on a plain dark background")
    notes: list[str] = []
    if wrist_cut:
        notes.append("the forearm was in the photo and was cut off at the narrowest point above the palm; "
                     "for a surer figure, frame the hand up to the wrist crease only")
    area_cm2 = plane_area_mm2(mask, marker) / 100.0
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline_px = float(sum(cv2.arcLength(c, True) for c in contours))
    cm2_per_px = area_cm2 / float(mask.sum())
    spread = outline_px * cm2_per_px
    low, high = HAND_UNIT_RANGE_CM2
    if not low <= area_cm2 <= high:
        raise HandPhotoError(
            f"the hand measured {area_cm2:.0f} cm², outside the plausible {low:g}-{high:g} cm²; check the marker size "
            "and that only the hand (up to the wrist) is on the dark background"
        )
    unit = HandUnit(
        cm2=round(area_cm2, 3),
        source="photo",
        detail=f"palm and fingers measured in {loaded.name or 'the hand photo'} against a {marker_mm:g} mm marker"
        + (" (forearm cut off at the wrist)" if wrist_cut else ""),
        interval_cm2=(round(area_cm2 - spread, 3), round(area_cm2 + spread, 3)),
    )
    return HandMeasurement(hand_unit=unit, mask=mask, marker=marker, wrist_cut=wrist_cut, notes=tuple(notes))
