"""Physical scale and white reference from a printed ArUco marker.

The user sticks a printed ArUco marker (dictionary ``DICT_4X4_50``, any id) of
known side on the skin near the patch. Its four corners give millimetres per
pixel; its white cells give a white reference for colour normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError
from ..vocabulary import DEFAULT_MARKER_MM  # printed side, outer black edge to edge; kept importable here
from .arrays import as_rgb

__all__ = [
    "DEFAULT_MARKER_MM",
    "MARKER_METHOD",
    "MarkerDetection",
    "detect_marker",
    "marker_exclusion_mask",
    "plane_area_mm2",
]

#: The method id saved with each area this module's marker put in cm² (its first saved name).
MARKER_METHOD = "repigment.calibration.detect_marker"

# A DICT_4X4 marker is 4x4 data cells inside a one-cell black border.
_CELLS = 6
_CELL_PX = 12


@dataclass(frozen=True)
class MarkerDetection:
    """A scale marker found in a photo.

    Attributes
    ----------
    marker_id : int
        ArUco id in ``DICT_4X4_50``.
    corners : ndarray of float, shape (4, 2)
        Outer corners (x, y) in the pixel frame of the image searched, in the
        marker's own order (top-left, top-right, bottom-right, bottom-left).
    side_px : float
        Side of the marker in pixels, the square root of its quadrilateral area
        (so a perspective-foreshortened marker is measured by its area).
    mm_per_px : float
        Millimetres per pixel at the marker.
    white_rgb : ndarray of float, shape (3,)
        Median linear-light colour of the marker's white cells.
    """

    marker_id: int
    corners: np.ndarray
    side_px: float
    mm_per_px: float
    white_rgb: np.ndarray
    marker_mm: float = DEFAULT_MARKER_MM

    def scaled(self, factor: float) -> "MarkerDetection":
        """The same detection in an image resized by ``factor``."""
        return MarkerDetection(
            marker_id=self.marker_id,
            corners=self.corners * factor,
            side_px=self.side_px * factor,
            mm_per_px=self.mm_per_px / factor,
            white_rgb=self.white_rgb,
            marker_mm=self.marker_mm,
        )


def _dictionary():
    import cv2

    return cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)


def detect_marker(rgb: np.ndarray, *, marker_mm: float = DEFAULT_MARKER_MM) -> MarkerDetection | None:
    """Find the scale marker in a photo.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
        The photo (any resolution; the detection is in its pixel frame).
    marker_mm : float, optional
        Printed side of the marker in millimetres.

    Returns
    -------
    MarkerDetection or None
        The largest marker found, or ``None`` when there is none.

    Raises
    ------
    InvalidParameterError
        If ``marker_mm`` is not a positive, plausible size (1-500 mm).

    Examples
    --------
    >>> import cv2, numpy as np
    >>> tag = cv2.aruco.generateImageMarker(
    ...     cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), 3, 120)
    >>> photo = np.full((400, 400, 3), 230, np.uint8)
    >>> photo[100:220, 150:270] = tag[..., None]
    >>> found = detect_marker(photo, marker_mm=20.0)
    >>> found.marker_id, round(found.mm_per_px, 3)
    (3, 0.167)
    """
    import cv2

    if not (np.isfinite(marker_mm) and 1.0 <= marker_mm <= 500.0):
        raise InvalidParameterError(f"marker_mm must be between 1 and 500 mm, got {marker_mm}")
    rgb = as_rgb(rgb)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    detector = cv2.aruco.ArucoDetector(_dictionary(), params)
    corners_list, ids, _ = detector.detectMarkers(grey)
    if ids is None or len(ids) == 0:
        return None
    areas = [abs(cv2.contourArea(c.reshape(4, 2).astype(np.float32))) for c in corners_list]
    best = int(np.argmax(areas))
    corners = corners_list[best].reshape(4, 2).astype(np.float64)
    marker_id = int(np.asarray(ids).reshape(-1)[best])
    side_px = float(np.sqrt(areas[best]))
    if side_px < 8:
        return None
    white = _white_cells_colour(rgb, corners, marker_id)
    return MarkerDetection(
        marker_id=marker_id,
        corners=corners,
        side_px=side_px,
        mm_per_px=marker_mm / side_px,
        white_rgb=white,
        marker_mm=marker_mm,
    )


def _white_cells_colour(rgb: np.ndarray, corners: np.ndarray, marker_id: int) -> np.ndarray:
    """Median linear colour of the centres of the marker's white data cells."""
    import cv2

    from .color import srgb_to_linear

    size = _CELLS * _CELL_PX
    canonical = np.array([[0, 0], [size, 0], [size, size], [0, size]], np.float32)
    to_canonical = cv2.getPerspectiveTransform(corners.astype(np.float32), canonical)
    rectified = cv2.warpPerspective(rgb, to_canonical, (size, size), flags=cv2.INTER_LINEAR)
    dictionary = _dictionary()
    bits = cv2.aruco.Dictionary.getBitsFromByteList(dictionary.bytesList[marker_id : marker_id + 1], 4)
    samples = []
    margin = _CELL_PX // 3
    for row in range(4):
        for col in range(4):
            if bits[row, col]:  # 1 is a white cell
                y0 = (row + 1) * _CELL_PX + margin
                x0 = (col + 1) * _CELL_PX + margin
                samples.append(rectified[y0 : y0 + _CELL_PX - 2 * margin, x0 : x0 + _CELL_PX - 2 * margin])
    if not samples:
        # No white data cell in this id: fall back to the brightest tenth.
        flat = rectified.reshape(-1, 3)
        order = np.argsort(flat.sum(axis=1))
        samples = [flat[order[-len(order) // 10 :]][None]]
    pixels = np.concatenate([s.reshape(-1, 3) for s in samples])
    return np.median(srgb_to_linear(pixels), axis=0).astype(np.float64)


def marker_exclusion_mask(shape: tuple[int, int], detection: MarkerDetection, *, margin: float = 0.75) -> np.ndarray:
    """Mask covering the marker and the paper around it.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` of the image the detection belongs to.
    detection : MarkerDetection
        The detected marker.
    margin : float, optional
        How far beyond the marker to exclude, as a fraction of its side on
        each side (the printed white quiet zone and paper edge).

    Returns
    -------
    mask : ndarray of bool, shape (H, W)
        True on the marker and its paper.
    """
    import cv2

    centre = detection.corners.mean(axis=0)
    grown = centre + (detection.corners - centre) * (1.0 + 2.0 * margin)
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, np.round(grown).astype(np.int32), 1)
    return mask.astype(bool)


#: Largest correction of pixel size, relative to the marker's, that the
#: perspective model may apply. Skin is curved, so the marker's plane is only
#: trusted near it.
MAX_PERSPECTIVE_CORRECTION = 1.5


_AREA_BLOCK = 8


def plane_area_mm2(mask: np.ndarray, detection: MarkerDetection) -> float:
    """Area of a mask measured in the marker's plane, correcting perspective.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
        Region in the same pixel frame as ``detection``.
    detection : MarkerDetection
        The scale marker; its four corners define the homography from pixels
        to millimetres on the skin plane.

    Returns
    -------
    float
        Area in mm². Each pixel counts with its own size on the plane, the
        Jacobian determinant of the pixel-to-plane homography,
        ``det(H) / w(x, y)**3``; the correction is clipped to
        ``MAX_PERSPECTIVE_CORRECTION`` in length (its square in area) of the
        marker's own pixel size.

    Notes
    -----
    With the camera square to the skin this equals ``area_px x mm_per_px**2``.
    When the photo is tilted, pixels far from the camera cover more skin than
    pixels near it; a single mm-per-pixel figure would then be off by up to
    10-20 % for a 10-15° tilt.

    Examples
    --------
    >>> import numpy as np
    >>> square = np.array([[10, 10], [110, 10], [110, 110], [10, 110]], float)
    >>> found = MarkerDetection(0, square, 100.0, 0.2, np.ones(3), marker_mm=20.0)
    >>> mask = np.zeros((200, 200), bool); mask[50:150, 50:150] = True
    >>> round(plane_area_mm2(mask, found), 1)   # 100 x 100 px at 0.2 mm/px
    400.0
    """
    import cv2

    side = detection.marker_mm
    plane = np.array([[0, 0], [side, 0], [side, side], [0, side]], np.float64)
    homography = cv2.getPerspectiveTransform(detection.corners.astype(np.float32), plane.astype(np.float32))
    homography = homography / homography[2, 2]
    det = float(np.linalg.det(homography))
    centre = detection.corners.mean(axis=0)
    w0 = homography[2, 0] * centre[0] + homography[2, 1] * centre[1] + 1.0
    reference = det / abs(w0) ** 3
    low, high = reference / MAX_PERSPECTIVE_CORRECTION**2, reference * MAX_PERSPECTIVE_CORRECTION**2

    def plane_size(xs, ys):
        w = homography[2, 0] * xs + homography[2, 1] * ys + 1.0
        return np.clip(det / np.abs(w) ** 3, low, high)

    mask = np.asarray(mask, dtype=bool)
    height, width = mask.shape
    # The pixel size varies smoothly (w is linear in x and y), so in blocks of
    # 8 x 8 pixels it is taken at the block's centre, times the block's pixel
    # count (relative error about 1e-6 for real masks, a few 1e-4 at worst for
    # a steep tilt and partly filled blocks); the ragged edge is summed per pixel.
    block = _AREA_BLOCK
    rows, cols = height // block, width // block
    total = 0.0
    if rows and cols:
        counts = (
            mask[: rows * block, : cols * block].view(np.uint8)
            .reshape(rows, block, cols * block).sum(axis=1, dtype=np.uint16)
            .reshape(rows, cols, block).sum(axis=2, dtype=np.uint16)
        )
        by, bx = np.nonzero(counts)
        centre_x, centre_y = bx * block + (block - 1) / 2.0, by * block + (block - 1) / 2.0
        total += float((counts[by, bx] * plane_size(centre_x, centre_y)).sum())
    ys, xs = np.nonzero(mask[:, cols * block:])
    total += float(plane_size(xs + cols * block, ys).sum())
    ys, xs = np.nonzero(mask[rows * block:, : cols * block])
    total += float(plane_size(xs, ys + rows * block).sum())
    return total
