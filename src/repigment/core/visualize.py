"""Pictures of results: outlines, change maps, ghosts and side-by-side views.

Colours follow the Okabe-Ito palette so they stay distinct for colour-blind
readers: repigmented since baseline in bluish green, still depigmented in sky
blue, new depigmentation (spreading) in vermillion, outlines in yellow.
"""

from __future__ import annotations

import numpy as np

from .arrays import as_rgb

__all__ = [
    "REPIGMENTED_RGB",
    "STILL_DEPIGMENTED_RGB",
    "NEW_DEPIGMENTATION_RGB",
    "OUTLINE_RGB",
    "outline_overlay",
    "change_map",
    "ghost_overlay",
    "side_by_side",
]

REPIGMENTED_RGB = (0, 158, 115)
STILL_DEPIGMENTED_RGB = (86, 180, 233)
NEW_DEPIGMENTATION_RGB = (213, 94, 0)
OUTLINE_RGB = (240, 228, 66)


def _check_rgb(rgb: np.ndarray, mask_shape: tuple[int, ...] | None = None) -> np.ndarray:
    rgb = as_rgb(rgb)
    if mask_shape is not None and rgb.shape[:2] != tuple(mask_shape):
        raise ValueError(f"image {rgb.shape[:2]} and mask {tuple(mask_shape)} must have the same size")
    return rgb


def outline_overlay(
    rgb: np.ndarray, mask: np.ndarray, *, color: tuple[int, int, int] = OUTLINE_RGB, thickness: int | None = None
) -> np.ndarray:
    """Draw the outline of every region of ``mask`` on a copy of ``rgb``.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
    mask : ndarray of bool, shape (H, W)
    color : tuple of int, optional
        Outline colour (R, G, B).
    thickness : int, optional
        Line width in pixels; default about 0.25 % of the image's long side.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
    """
    import cv2

    rgb = _check_rgb(rgb, mask.shape)
    if thickness is None:
        thickness = max(1, int(round(0.0025 * max(mask.shape))))
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    out = np.ascontiguousarray(rgb.copy())
    cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), thickness, lineType=cv2.LINE_AA)
    return out


def change_map(
    baseline_mask: np.ndarray, visit_mask: np.ndarray, *, background: np.ndarray | None = None, alpha: float = 0.6
) -> np.ndarray:
    """Colour what changed between the baseline and a visit.

    Parameters
    ----------
    baseline_mask, visit_mask : ndarray of bool, shape (H, W)
        Depigmented skin at baseline and at the visit, in the baseline frame
        (any non-zero value counts, so 0/1 or 0/255 masks draw the same).
    background : ndarray of uint8, shape (H, W, 3), optional
        Image to draw on (shown greyed); plain dark grey without it.
    alpha : float, optional
        Opacity of the colours.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        Repigmented since baseline, still depigmented, and new depigmentation
        outside the baseline footprint, each in its own colour.
    """
    import cv2

    # As bool: on a 0/1 uint8 mask, ~ and & are bitwise and indexing is by position.
    baseline_mask, visit_mask = np.asarray(baseline_mask, bool), np.asarray(visit_mask, bool)
    if baseline_mask.shape != visit_mask.shape:
        raise ValueError(f"masks must have the same shape, got {baseline_mask.shape} and {visit_mask.shape}")
    if background is None:
        canvas = np.full(baseline_mask.shape + (3,), 60, np.float32)
    else:
        background = _check_rgb(background, baseline_mask.shape)
        grey = cv2.cvtColor(background, cv2.COLOR_RGB2GRAY).astype(np.float32)
        canvas = np.repeat((0.35 * grey + 60)[..., None], 3, axis=2)
    layers = (
        (baseline_mask & ~visit_mask, REPIGMENTED_RGB),
        (baseline_mask & visit_mask, STILL_DEPIGMENTED_RGB),
        (visit_mask & ~baseline_mask, NEW_DEPIGMENTATION_RGB),
    )
    for region, colour in layers:
        canvas[region] = (1 - alpha) * canvas[region] + alpha * np.array(colour, np.float32)
    return np.clip(canvas, 0, 255).astype(np.uint8)


def ghost_overlay(baseline_rgb: np.ndarray, rgb: np.ndarray, *, alpha: float = 0.4) -> np.ndarray:
    """The baseline photo as a translucent ghost over a new photo, for lining up a retake."""
    import cv2

    rgb = _check_rgb(rgb)
    baseline_rgb = _check_rgb(baseline_rgb)
    if baseline_rgb.shape != rgb.shape:
        baseline_rgb = cv2.resize(baseline_rgb, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_AREA)
    return cv2.addWeighted(rgb, 1 - alpha, baseline_rgb, alpha, 0)


def side_by_side(left: np.ndarray, right: np.ndarray, *, gap: int = 8) -> np.ndarray:
    """Two images next to each other at the same height, on a white gap."""
    import cv2

    left, right = _check_rgb(left), _check_rgb(right)
    height = min(left.shape[0], right.shape[0])

    def fit(img):
        if img.shape[0] == height:
            return img
        width = int(round(img.shape[1] * height / img.shape[0]))
        return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)

    left, right = fit(left), fit(right)
    spacer = np.full((height, gap, 3), 255, np.uint8)
    return np.concatenate([left, spacer, right], axis=1)
