"""Is a photo usable for serial comparison? Specific, actionable advice.

Checks what the vitiligo photography consensus asks for (van Geel et al., JAAD
2020): sharp focus, even exposure without clipped highlights or shadows, no
specular glare on the patch, a scale marker in the frame, and framing close to
the baseline photo's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .arrays import as_rgb
from .calibration import MarkerDetection

__all__ = ["QualityIssue", "PhotoQuality", "assess_photo", "FramingDifference", "framing_difference"]

# Thresholds, checked on the synthetic series (see tests/core/test_quality.py).
_MIN_SHARPNESS = 0.02
#: The longest side _MIN_SHARPNESS holds at. A reduced photo reads sharper (its
#: blur spans fewer pixels), so the threshold scales with this over the photo's
#: longest side: the upload check judges a photo alike at 900 px and at 1024 px.
_SHARPNESS_REFERENCE_SIDE = 1024
_MAX_CLIPPED_HIGH = 0.03
_MAX_CLIPPED_LOW = 0.20
_MIN_MEDIAN_BRIGHTNESS = 50
_MAX_MEDIAN_BRIGHTNESS = 235
_MAX_GLARE = 0.01
# Framing against the baseline: advice past these (visit-to-baseline scale, degrees of
# rotation, and the patch centre's shift as a share of the photo's diagonal).
_MAX_FRAMING_SCALE = 1.25
_MIN_FRAMING_SCALE = 0.8
_MAX_FRAMING_ROTATION_DEG = 15.0
_MAX_FRAMING_SHIFT = 0.15


@dataclass(frozen=True)
class QualityIssue:
    """One problem with a photo.

    Attributes
    ----------
    code : str
        Stable identifier: ``blurred``, ``overexposed``, ``underexposed``,
        ``glare``, ``no_marker``, ``framing``.
    message : str
        What is wrong and what to do, in plain words.
    """

    code: str
    message: str


@dataclass(frozen=True)
class PhotoQuality:
    """Result of :func:`assess_photo`.

    Attributes
    ----------
    sharpness : float
        Fine-detail energy relative to brightness (higher is sharper).
    clipped_high, clipped_low : float
        Share of pixels blown out to white or crushed to black.
    median_brightness : float
        Median grey level, 0-255.
    glare : float
        Share of skin covered by specular highlights.
    marker_found : bool
    issues : tuple of QualityIssue
    """

    sharpness: float
    clipped_high: float
    clipped_low: float
    median_brightness: float
    glare: float
    marker_found: bool
    issues: tuple[QualityIssue, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """No issue other than a missing marker (areas then stay in pixels)."""
        return all(issue.code == "no_marker" for issue in self.issues)


def _sharpness(grey: np.ndarray) -> float:
    """Mean absolute Laplacian of a lightly denoised image over mean brightness.

    Band-limited so sensor noise does not pass for detail.
    """
    import cv2

    smoothed = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 0.8)
    laplacian = cv2.Laplacian(smoothed, cv2.CV_32F, ksize=3)
    return float(np.mean(np.abs(laplacian)) / max(float(smoothed.mean()), 1.0))


def assess_photo(
    rgb: np.ndarray, *, marker: MarkerDetection | None = None, skin: np.ndarray | None = None
) -> PhotoQuality:
    """Check a photo's focus, exposure, glare and marker.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
        The photo at working resolution (about 1000 px on the long side). Its
        sharpness depends on resolution; the blur threshold follows the photo's
        size (see ``_SHARPNESS_REFERENCE_SIDE``).
    marker : MarkerDetection, optional
        The scale marker found in it, if any.
    skin : ndarray of bool, shape (H, W), optional
        Skin pixels; glare is judged on skin only when given.

    Returns
    -------
    PhotoQuality
        Measures and a list of issues with advice.
    """
    import cv2

    rgb = as_rgb(rgb)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    region = np.ones(grey.shape, bool) if skin is None or not skin.any() else skin
    sharpness = _sharpness(grey)
    values = grey[region]
    clipped_high = float(np.mean(rgb[region].max(axis=1) >= 250))
    clipped_low = float(np.mean(values <= 8))
    median = float(np.median(values))
    highlight = (rgb.min(axis=2) >= 245) & region
    glare = float(highlight.mean() / max(region.mean(), 1e-6))

    issues: list[QualityIssue] = []
    if sharpness < _MIN_SHARPNESS * _SHARPNESS_REFERENCE_SIDE / max(grey.shape):
        issues.append(QualityIssue("blurred", "The photo is blurred: hold the phone still, tap the patch to focus, "
                                              "and keep 20-30 cm away."))
    if clipped_high > _MAX_CLIPPED_HIGH or median > _MAX_MEDIAN_BRIGHTNESS:
        issues.append(QualityIssue("overexposed", "The photo is too bright (white areas lose detail): turn off the "
                                                  "flash or move away from direct light."))
    if clipped_low > _MAX_CLIPPED_LOW or median < _MIN_MEDIAN_BRIGHTNESS:
        issues.append(QualityIssue("underexposed", "The photo is too dark: use soft daylight or a brighter room, "
                                                   "without flash."))
    if glare > _MAX_GLARE:
        issues.append(QualityIssue("glare", "Shiny reflections cover part of the skin: avoid direct flash and "
                                            "overhead lamps, and let creams dry before the photo."))
    if marker is None:
        issues.append(QualityIssue("no_marker", "No scale marker found: stick the printed marker on the skin next "
                                                "to the patch so areas can be given in cm²."))
    return PhotoQuality(
        sharpness=sharpness,
        clipped_high=clipped_high,
        clipped_low=clipped_low,
        median_brightness=median,
        glare=glare,
        marker_found=marker is not None,
        issues=tuple(issues),
    )


@dataclass(frozen=True)
class FramingDifference:
    """How a visit photo's framing differs from the baseline's.

    Attributes
    ----------
    scale : float
        Visit-to-baseline zoom (> 1: the visit was taken from farther away).
    rotation_deg : float
        Rotation of the visit relative to the baseline, degrees.
    shift : float
        Shift of the image centre, as a fraction of the image diagonal.
    issue : QualityIssue or None
        Advice when the framing is far from the baseline's.
    """

    scale: float
    rotation_deg: float
    shift: float
    issue: QualityIssue | None


def framing_difference(homography: np.ndarray, image_shape: tuple[int, int]) -> FramingDifference:
    """Compare a visit's framing with the baseline from the registration homography.

    Parameters
    ----------
    homography : ndarray, shape (3, 3)
        Visit pixels -> baseline pixels.
    image_shape : tuple of int
        ``(H, W)`` of the visit image.

    Returns
    -------
    FramingDifference

    Examples
    --------
    >>> import numpy as np
    >>> framing_difference(np.diag([1.5, 1.5, 1.0]), (100, 100)).issue.code
    'framing'
    """
    h = np.asarray(homography, float)
    h = h / h[2, 2]
    scale = float(np.sqrt(abs(np.linalg.det(h[:2, :2]))))
    rotation = float(np.degrees(np.arctan2(h[1, 0], h[0, 0])))
    height, width = image_shape
    centre = np.array([width / 2, height / 2, 1.0])
    mapped = h @ centre
    mapped = mapped[:2] / mapped[2]
    shift = float(np.linalg.norm(mapped - centre[:2]) / np.hypot(width, height))
    advice = []
    if scale > _MAX_FRAMING_SCALE:
        advice.append("come closer")
    elif scale < _MIN_FRAMING_SCALE:
        advice.append("step back a little")
    if abs(rotation) > _MAX_FRAMING_ROTATION_DEG:
        advice.append(f"hold the phone at the baseline's angle (now {abs(rotation):.0f}° off)")
    if shift > _MAX_FRAMING_SHIFT:
        advice.append("centre the patch as in the baseline photo")
    issue = None
    if advice:
        issue = QualityIssue("framing", "Framing differs from the baseline: " + ", ".join(advice) +
                             ". Line the photo up with the baseline ghost.")
    return FramingDifference(scale=scale, rotation_deg=rotation, shift=shift, issue=issue)
