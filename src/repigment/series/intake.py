"""Check photos as they are uploaded: usable? dated? lined up with the baseline?

Two levels, so that a whole series can be checked at once:

- :func:`check_photo` (about 0.1 s a photo): decodes the file, reads its date,
  finds the scale marker and judges focus, exposure and glare
  (:func:`repigment.core.quality.assess_photo`);
- :func:`check_alignment` (about 1.5 s a photo): registers the photo onto the
  patch's stored baseline and says how its framing differs
  (:func:`repigment.core.quality.framing_difference`).

Both read the photo as the analysis does (:func:`repigment.series.photos.calibrate_photo`
and :func:`~repigment.series.photos.prepare_photo`, at the library's working size) and
date it by the rule a series folder follows (:func:`repigment.series.discovery.photo_date`).
The app caches both by content hash (:mod:`repigment.webapp.caching`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..core.calibration import DEFAULT_MARKER_MM
from ..core.quality import FramingDifference, QualityIssue
from ..core.segmentation import SkinSplit
from ..errors import RepigmentError
from ..limits import Limits
from .photos import DEFAULT_WORKING_SIZE

__all__ = ["AlignmentCheck", "BaselineReference", "UploadCheck", "baseline_reference", "check_alignment",
           "check_photo"]

#: Longest side of the preview kept for display.
PREVIEW_SIDE = 640


@dataclass(frozen=True)
class UploadCheck:
    """What an uploaded file is and whether it is fit for comparison.

    Attributes
    ----------
    name : str
        The uploaded file name (display only).
    sha256 : str or None
        Hash of the file as it would be stored (location removed).
    error : str or None
        Why the file cannot be used at all (one line, for the page).
    date, date_source
        The visit date found in the photo (EXIF, then the file name), or None.
    issues : tuple of QualityIssue
        Problems with advice (blurred, over/under-exposed, glare, no marker).
    preview : ndarray or None
        The upright photo, at most :data:`PREVIEW_SIDE` px, for display.
    """

    name: str
    sha256: str | None = None
    error: str | None = None
    format: str | None = None
    size: tuple[int, int] | None = None
    date: _dt.date | None = None
    date_source: str | None = None
    has_location: bool = False
    marker_found: bool = False
    issues: tuple[QualityIssue, ...] = ()
    preview: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def usable(self) -> bool:
        return self.error is None

    @property
    def quality_records(self) -> tuple[dict[str, str], ...]:
        """The issues as plain records, for the store."""
        return tuple({"code": i.code, "message": i.message} for i in self.issues)


def _preview(rgb: np.ndarray) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    factor = PREVIEW_SIDE / max(height, width)
    if factor >= 1:
        return rgb
    return cv2.resize(rgb, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA)


def check_photo(data: bytes, name: str, *, working_size: int = DEFAULT_WORKING_SIZE,
                max_file_bytes: int = 50 * 1024**2) -> UploadCheck:
    """Decode an uploaded photo and judge whether it can be compared.

    Never raises for a bad file: the reason is in ``error``.
    """
    import io

    from ..core.quality import assess_photo
    from ..core.segmentation import skin_mask
    from ..io import strip_location
    from .discovery import photo_date
    from .photos import calibrate_photo

    buffer = io.BytesIO(data)
    buffer.name = name
    try:
        calibrated = calibrate_photo(buffer, working_size=working_size,
                                     limits=Limits(max_file_bytes=max_file_bytes))
        stored = strip_location(data) if calibrated.loaded.info.has_location else data
    except RepigmentError as exc:
        return UploadCheck(name=name, error=str(exc))
    loaded, marker = calibrated.loaded, calibrated.marker
    info = loaded.info
    date, source = photo_date(info.taken_at, name)
    skin = skin_mask(calibrated.normalized.rgb, exclude=calibrated.exclude)
    quality = assess_photo(loaded.rgb, marker=marker, skin=skin)
    return UploadCheck(
        name=name,
        sha256=hashlib.sha256(stored).hexdigest(),
        format=info.format,
        size=info.original_size,
        date=date,
        date_source=source,
        has_location=info.has_location,
        marker_found=marker is not None,
        issues=quality.issues,
        preview=_preview(loaded.rgb),
    )


@dataclass(frozen=True)
class BaselineReference:
    """A patch's baseline photo prepared for lining new photos up against it."""

    rgb: np.ndarray = field(repr=False)
    registration_mask: np.ndarray = field(repr=False)
    threshold: float
    marker_mm: float
    depigmented_level: float | None = None
    #: The model ``threshold`` belongs to, the baseline's core factor and skin split, as a series
    #: passes them to its visits.
    method: str = "od-field"
    core_factor: float | None = None
    skin_split: SkinSplit | None = None


def baseline_reference(source, *, marker_mm: float = DEFAULT_MARKER_MM,
                       working_size: int = DEFAULT_WORKING_SIZE) -> BaselineReference:
    """Prepare the baseline photo (path or bytes) once for :func:`check_alignment`."""
    from .photos import prepare_photo

    prepared = prepare_photo(source, marker_mm=marker_mm, working_size=working_size, learn_own_classes=False)
    segmentation = prepared.segmentation
    return BaselineReference(
        rgb=prepared.rgb,
        registration_mask=prepared.registration_mask(),
        threshold=segmentation.threshold,
        marker_mm=marker_mm,
        depigmented_level=segmentation.depigmented_level,
        method=segmentation.threshold_method,
        core_factor=segmentation.core_factor,
        skin_split=segmentation.skin_split,
    )


@dataclass(frozen=True)
class AlignmentCheck:
    """Whether a new photo lines up with the baseline, and how its framing differs."""

    ok: bool
    reason: str | None
    framing: FramingDifference | None
    ghost: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def advice(self) -> str | None:
        """What to change, or ``None`` when the photo lines up well."""
        if not self.ok:
            return self.reason
        if self.framing is not None and self.framing.issue is not None:
            return self.framing.issue.message
        return None


def check_alignment(reference: BaselineReference, data: bytes, name: str = "photo",
                    *, working_size: int = DEFAULT_WORKING_SIZE) -> AlignmentCheck:
    """Register an uploaded photo onto the baseline (never raises for a bad photo)."""
    import io

    from ..core.quality import framing_difference
    from ..core.registration import register_to_baseline
    from ..core.visualize import ghost_overlay
    from .photos import prepare_photo

    buffer = io.BytesIO(data)
    buffer.name = name
    try:
        # The patch is judged as a series judges its visits, so that features are taken off it alike.
        prepared = prepare_photo(buffer, marker_mm=reference.marker_mm, threshold=reference.threshold,
                                 working_size=working_size, reference_level=reference.depigmented_level,
                                 method=reference.method, core_factor=reference.core_factor,
                                 skin_split=reference.skin_split)
    except RepigmentError as exc:
        return AlignmentCheck(ok=False, reason=str(exc), framing=None)
    ghost = _preview(ghost_overlay(reference.rgb, prepared.rgb))
    registration = register_to_baseline(
        reference.rgb, prepared.rgb, baseline_mask=reference.registration_mask,
        moving_mask=prepared.registration_mask(),
    )
    framing = None
    if registration.homography is not None:
        framing = framing_difference(registration.homography, prepared.rgb.shape[:2])
    return AlignmentCheck(ok=bool(registration.ok), reason=registration.reason, framing=framing, ghost=ghost)
