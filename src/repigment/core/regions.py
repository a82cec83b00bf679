"""Regions of interest, strokes images and mask clean-up for the segmentation.

A clinician's region of interest, a rectangle or a polygon, is rasterised by
:func:`roi_mask`; a strokes image (``LABEL_*`` values) is checked by
:func:`validate_labels` and resized stroke-preserving by :func:`resize_labels`;
and the mask helpers that skin detection (:mod:`repigment.core.skin`), the
colour-contrast model (:mod:`repigment.core.guided`) and the optical-density
segmentation (:mod:`repigment.core.segmentation`) share live here: filling
holes, dropping small regions, coarse dilation and an image's border pixels.
It imports no other segmentation module, so each of them can import from it.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameterError

__all__ = [
    "LABEL_UNLABELLED",
    "LABEL_DEPIGMENTED",
    "LABEL_NORMAL_SKIN",
    "LABEL_NOT_SKIN",
    "roi_mask",
    "fill_holes",
    "remove_small_regions",
    "validate_labels",
    "resize_labels",
]


def roi_mask(shape: tuple[int, int], roi) -> np.ndarray:
    """Rasterise a region of interest.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` of the image.
    roi : tuple of 4 numbers or ndarray of shape (N, 2)
        A rectangle ``(x, y, width, height)`` or a polygon of ``N >= 3``
        ``(x, y)`` vertices, in pixels of that image.

    Returns
    -------
    mask : ndarray of bool, shape (H, W)

    Raises
    ------
    InvalidParameterError
        If the rectangle or polygon is malformed or does not overlap the image.

    Examples
    --------
    >>> int(roi_mask((10, 10), (2, 3, 4, 5)).sum())
    20
    """
    import cv2

    height, width = shape
    arr = np.asarray(roi, dtype=np.float64)
    if arr.ndim == 1:
        if arr.shape != (4,) or not np.all(np.isfinite(arr)):
            raise InvalidParameterError(f"a rectangle ROI needs 4 numbers x,y,width,height; got {roi!r}")
        x, y, w, h = arr
        if w <= 0 or h <= 0:
            raise InvalidParameterError(f"ROI width and height must be positive; got {w:g}x{h:g}")
        mask = np.zeros(shape, bool)
        x0, y0 = int(round(max(x, 0))), int(round(max(y, 0)))
        x1, y1 = int(round(min(x + w, width))), int(round(min(y + h, height)))
        if x1 <= x0 or y1 <= y0:
            raise InvalidParameterError(
                f"ROI {x:g},{y:g},{w:g},{h:g} lies outside the {width}x{height} image"
            )
        mask[y0:y1, x0:x1] = True
        return mask
    if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) < 3 or not np.all(np.isfinite(arr)):
        raise InvalidParameterError("a polygon ROI needs at least 3 (x, y) vertices")
    if np.abs(arr).max() > 1e7:
        raise InvalidParameterError("ROI polygon vertices must be within ±10,000,000 px")
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.round(arr).astype(np.int32)], 1)
    if not canvas.any():
        raise InvalidParameterError(f"the ROI polygon lies outside the {width}x{height} image")
    return canvas.astype(bool)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a mask: background not 4-connected to the image border.

    Same result as :func:`scipy.ndimage.binary_fill_holes` with its default
    structure, by one flood fill from the border.

    Examples
    --------
    >>> import numpy as np
    >>> ring = np.zeros((7, 7), bool); ring[1:6, 1:6] = True; ring[3, 3] = False
    >>> bool(fill_holes(ring)[3, 3]), int(fill_holes(ring).sum())
    (True, 25)
    """
    import cv2

    height, width = mask.shape
    canvas = np.zeros((height + 2, width + 2), np.uint8)  # a free border joins all outside background
    canvas[1:-1, 1:-1] = mask
    cv2.floodFill(canvas, None, (0, 0), 2, flags=4)
    return canvas[1:-1, 1:-1] != 2


def _border(array: np.ndarray) -> np.ndarray:
    """The values along an image's four edges, each pixel once."""
    return np.concatenate([array[0], array[-1], array[1:-1, 0], array[1:-1, -1]])


def _dilate_coarsely(mask: np.ndarray, radius: float) -> np.ndarray:
    """Grow ``mask`` by about ``radius`` pixels, working at half resolution.

    For wide safety margins, where a pixel more or less does not matter: the
    disk is four times smaller at half resolution, and the result is at most
    one pixel wider than an exact dilation.
    """
    import cv2

    height, width = mask.shape
    half = ((width + 1) // 2, (height + 1) // 2)
    # Any marked pixel in a 2 x 2 block marks the block (255 / 4 survives the rounding).
    small = cv2.resize(mask.view(np.uint8) * np.uint8(255), half, interpolation=cv2.INTER_AREA) > 0
    size = 2 * max(1, round(radius / 2)) + 1
    grown = cv2.dilate(small.view(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    return cv2.resize(grown, (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


def remove_small_regions(mask: np.ndarray, min_px: int) -> np.ndarray:
    """Drop 8-connected regions smaller than ``min_px`` pixels.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((10, 10), bool); m[0, 0] = True; m[4:8, 4:8] = True
    >>> int(remove_small_regions(m, 4).sum())
    16
    """
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    keep = stats[:, cv2.CC_STAT_AREA] >= min_px
    keep[0] = False
    return np.take(keep, labels)


#: Label values of a strokes image.
LABEL_UNLABELLED, LABEL_DEPIGMENTED, LABEL_NORMAL_SKIN, LABEL_NOT_SKIN = 0, 1, 2, 3


def validate_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Check a strokes image and return it as uint8.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        0 unlabelled, 1 depigmented skin, 2 normal skin, 3 not skin.
    shape : tuple of int
        ``(H, W)`` of the photo the strokes were drawn on.

    Returns
    -------
    ndarray of uint8, shape (H, W)

    Raises
    ------
    InvalidParameterError
        If the size differs, a value is not 0-3, or no stroke marks depigmented skin.

    Examples
    --------
    >>> import numpy as np
    >>> strokes = np.zeros((4, 5), np.uint8); strokes[1, 1:4] = 1
    >>> validate_labels(strokes, (4, 5)).dtype.name
    'uint8'
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InvalidParameterError(f"labels must be a single-channel image, got shape {labels.shape}")
    if labels.shape != tuple(shape):
        raise InvalidParameterError(
            f"labels are {labels.shape[1]}x{labels.shape[0]} px but the photo is {shape[1]}x{shape[0]} px; "
            "draw them on the upright photo at its full size"
        )
    values = np.unique(labels)
    if values.min() < 0 or values.max() > LABEL_NOT_SKIN:
        raise InvalidParameterError(
            f"labels may only hold 0 (unlabelled), 1 (depigmented), 2 (normal skin), 3 (not skin); "
            f"found {', '.join(str(v) for v in values[:8])}"
        )
    if not np.any(labels == LABEL_DEPIGMENTED):
        raise InvalidParameterError("labels hold no stroke of class 1 (depigmented skin): mark at least one patch")
    return labels.astype(np.uint8)


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a strokes image to ``(H, W)`` keeping every stroke.

    Nearest-neighbour, after widening each stroke so that a thin stroke still
    covers a pixel when the image shrinks.

    Examples
    --------
    >>> import numpy as np
    >>> strokes = np.zeros((100, 100), np.uint8); strokes[50, 10:90] = 1
    >>> int((resize_labels(strokes, (25, 25)) == 1).sum()) > 0
    True
    """
    import cv2

    labels = np.asarray(labels, np.uint8)
    if labels.shape == tuple(shape):
        return labels
    factor = max(labels.shape[0] / shape[0], labels.shape[1] / shape[1])
    if factor > 1.5:
        kernel = np.ones((int(np.ceil(factor)) | 1,) * 2, np.uint8)
        grown = labels.copy()
        # Widened only into unlabelled pixels; depigmented strokes are widened last and win ties.
        for value in (LABEL_NOT_SKIN, LABEL_NORMAL_SKIN, LABEL_DEPIGMENTED):
            widened = cv2.dilate((labels == value).view(np.uint8), kernel).astype(bool)
            grown[widened & (labels == LABEL_UNLABELLED)] = value
        labels = grown
    return cv2.resize(labels, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
