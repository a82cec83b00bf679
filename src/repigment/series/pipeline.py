"""Score a series of visit photos against its baseline.

This is the layer above the core stages: it loads each photo at working
resolution, calibrates it, segments it, registers it to the baseline, maps the
mask into the baseline frame and scores it. Only the baseline's working image
and footprint are kept at full detail between visits, so memory barely grows
with the series.
A visit that cannot be scored (unreadable, not aligned, patch out of frame) is
reported with its reason and the series goes on. Each visit keeps only its
small working-resolution mask in memory (and, on request, its registered
working image); full-resolution masks are written out and dropped.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .._version import __version__
from ..core.calibration import (
    DEFAULT_MARKER_MM,
    MarkerDetection,
    detect_marker,
    marker_exclusion_mask,
    plane_area_mm2,
)
from ..core.color import ColorNormalization, apply_gains, match_to_reference, normalize_color
from ..core.registration import (
    ImageFeatures,
    Registration,
    compose_scaling,
    image_features,
    register_to_baseline,
    visible_in_baseline,
    warp_to_baseline,
)
from ..core.scoring import Milestones, VisitScore, find_milestones, score_visit, weeks_since
from ..core.segmentation import (
    CLIPPED_SRGB,
    DEPIGMENTED_FRACTION,
    LABEL_NOT_SKIN,
    Segmentation,
    SkinSplit,
    depigmented_mask,
    remove_small_regions,
    resize_labels,
    roi_mask,
    validate_labels,
)
from ..errors import InvalidParameterError, RepigmentError, SeriesError
from ..limits import Deadline, Limits
from .discovery import VisitPhoto, discover_series
from .selfcheck import (
    evidence_residual_fraction,
    footprint_contrast,
    looks_like_skin,
    neighbour_course,
    temporal_outliers,
    unconfirmed_spots,
)

__all__ = [
    "DEFAULT_WORKING_SIZE",
    "SEGMENTATION_METHOD",
    "PreparedPhoto",
    "VisitResult",
    "SeriesResult",
    "ImageSegmentation",
    "prepare_photo",
    "analyze_photos",
    "figure_intervals",
    "analyze_series",
    "segment_image",
]

#: Longest side, in pixels, at which photos are analysed. A 12 MP JPEG is
#: decoded straight to a quarter (1000 px) and reduced to this; 900 px scored
#: as well as 1000 px on the accuracy benchmark (stable series better) at a
#: fifth fewer pixels to process.
DEFAULT_WORKING_SIZE = 900
#: Identifies the method in every saved record; bump when results would change.
SEGMENTATION_METHOD = "repigment.segmentation.depigmented_mask/od-field-colour-contrast-v11"
REGISTRATION_METHOD = "repigment.registration.register_to_baseline/sift-magsac-v2"
# Share of the baseline footprint a visit photo must show to be scored at all,
# and above which it counts as showing all of it.
_MIN_FOOTPRINT_COVERAGE = 0.85
_FULL_FOOTPRINT_COVERAGE = 0.98
# Below this many noise levels of contrast at baseline, every visit carries a warning.
_LOW_CONTRAST_SIGMAS = 5.0
# Ruxolitinib cream repigments slowly: faint signs in weeks 4-8, visible
# response in weeks 12-24 (Opzelura label; TRuE-V1/V2 trials). A third of the patch
# repigmented within the first 8 weeks more likely means the baseline mask
# holds something that is not vitiligo (glare, sheen, pale normal skin).
_EARLY_WEEKS = 8.0
_EARLY_IMPLAUSIBLE_PCT = 30.0


@dataclass
class PreparedPhoto:
    """A photo loaded, calibrated and segmented at working resolution.

    Attributes
    ----------
    name : str
        File name.
    rgb : ndarray of uint8, shape (h, w, 3)
        Colour-normalised working image.
    original_size : tuple of int
        ``(width, height)`` of the upright full-resolution photo.
    scale : float
        Working width / original width.
    marker : MarkerDetection or None
        The scale marker in working-image pixels.
    segmentation : Segmentation
        Depigmented skin at working resolution.
    color_method : str
        How the colour was normalised (:attr:`repigment.core.color.ColorNormalization.method`).
    color_gains : ndarray of float, shape (3,), or None
        The per-channel gains (linear light) of that normalisation: with a
        reference photo's, they tell how far apart the two photos' lights were.
    blown_out : ndarray of bool, shape (h, w), or None
        Pixels the camera clipped to white in every channel (kept white by
        every colour correction); None when there are none.
    """

    name: str
    rgb: np.ndarray
    original_size: tuple[int, int]
    scale: float
    marker: MarkerDetection | None
    segmentation: Segmentation
    color_method: str
    color_gains: np.ndarray | None = None
    blown_out: np.ndarray | None = None

    def registration_mask(self, *, skin_only: bool = True) -> np.ndarray:
        """Where registration may take features: outside the patch (with a
        margin) and off the marker's paper; on skin only unless ``skin_only``
        is false (then clothing and background count too)."""
        import cv2

        seg = self.segmentation
        height, width = seg.mask.shape
        size = max(5, int(0.03 * max(height, width)) | 1)
        # Partly depigmented skin is left out too (it may change by the next
        # visit), but only in regions of some size: on low-contrast skin the
        # half threshold is crossed by noise speckle all over the photo.
        partial = remove_small_regions(seg.skin & (seg.score > 0.5 * seg.threshold), int(5e-4 * seg.mask.size))
        changing = seg.mask | partial
        patch = cv2.dilate(
            changing.astype(np.uint8),
            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)),
        ).astype(bool)
        usable = ~patch & (seg.skin if skin_only else True)
        if self.marker is not None:
            # The marker is re-stuck at every visit: its paper must not steer the alignment.
            usable &= ~marker_exclusion_mask((height, width), self.marker, margin=0.5)
        return usable


def prepare_photo(
    source,
    *,
    marker_mm: float = DEFAULT_MARKER_MM,
    threshold: float | None = None,
    working_size: int = DEFAULT_WORKING_SIZE,
    limits: Limits | None = None,
    deadline: Deadline | None = None,
    reference_level: float | None = None,
    method: str | None = None,
    roi=None,
    labels: np.ndarray | None = None,
    core_factor: float | None = None,
    learn_own_classes: bool = True,
    skin_split: SkinSplit | None = None,
) -> PreparedPhoto:
    """Load, calibrate, colour-normalise and segment one photo.

    Parameters
    ----------
    source : path, bytes or file-like
        The photo.
    marker_mm : float, optional
        Printed side of the scale marker, mm.
    threshold : float, optional
        Depigmentation threshold to apply (a series' baseline threshold).
    reference_level : float, optional
        The baseline's level of full depigmentation, so the threshold follows
        this photo's own (see :func:`repigment.core.segmentation.depigmented_mask`).
    method : {"od-field", "colour-contrast"}, optional
        The model ``threshold`` belongs to (the baseline's segmentation method).
    core_factor : float, optional
        With ``threshold``: the baseline's core score over its threshold (see
        :func:`repigment.core.segmentation.depigmented_mask`).
    roi : tuple of 4 numbers or ndarray of shape (N, 2), optional
        Region of interest in the upright photo's full-size pixels; guides and
        restricts the segmentation.
    labels : ndarray of int, shape (H, W), optional
        A clinician's strokes on the upright photo at full size (see
        :func:`repigment.core.segmentation.validate_labels`).
    working_size : int, optional
        Longest side of the working image.
    limits : Limits, optional
        Pixel and file-size limits (defaults of :class:`repigment.limits.Limits`).
    deadline : Deadline, optional
        Time budget, checked between stages.
    learn_own_classes : bool, optional
        See :func:`repigment.core.segmentation.depigmented_mask`; a series' baseline
        turns it off.
    skin_split : SkinSplit, optional
        With ``threshold``: the baseline's
        :attr:`repigment.core.segmentation.Segmentation.skin_split` (see
        :func:`repigment.core.segmentation.depigmented_mask`).

    Returns
    -------
    PreparedPhoto

    Raises
    ------
    ImageLoadError
        If the photo cannot be read.
    ProcessingTimeLimitError
        If the deadline passes.
    """
    from ..io import load_image

    limits = limits or Limits()
    loaded = load_image(
        source, max_side=working_size, max_pixels=limits.max_pixels, max_file_bytes=limits.max_file_bytes
    )
    if deadline is not None:
        deadline.check("loading")
    marker = detect_marker(loaded.rgb, marker_mm=marker_mm)
    exclude = None
    if marker is not None:
        exclude = marker_exclusion_mask(loaded.rgb.shape[:2], marker)
    # The marker's white balances colour only when it is plausible paper white
    # (a marker in deep shadow or under coloured light would blow the photo up).
    gains = None if marker is None else 0.85 / np.maximum(marker.white_rgb, 1e-6)
    if gains is not None and np.all(marker.white_rgb > 0.02) and np.all((gains > 0.25) & (gains < 4.0)):
        normalized = normalize_color(loaded.rgb, white_rgb=marker.white_rgb)
    else:
        normalized = normalize_color(loaded.rgb)
    # Blown out to white in every channel: at least that light, of unknown
    # colour. A colour correction that scales it down with the rest would make
    # an overexposed patch pass for normal skin, so it stays white.
    blown_out = loaded.rgb.min(axis=2) >= CLIPPED_SRGB
    if blown_out.any():
        normalized = replace(normalized, rgb=np.where(blown_out[..., None], np.uint8(255), normalized.rgb))
    else:
        blown_out = None
    work_roi = None if roi is None else np.asarray(roi, dtype=np.float64) * loaded.scale
    work_labels = None
    if labels is not None:
        width0, height0 = loaded.info.original_size
        work_labels = resize_labels(validate_labels(labels, (height0, width0)), normalized.rgb.shape[:2])
    segmentation = depigmented_mask(
        normalized.rgb, roi=work_roi, labels=work_labels, exclude=exclude, threshold=threshold,
        method=method, reference_level=reference_level, core_factor=core_factor,
        learn_own_classes=learn_own_classes, skin_split=skin_split)
    if deadline is not None:
        deadline.check("segmentation")
    return PreparedPhoto(
        name=loaded.name,
        rgb=normalized.rgb,
        original_size=loaded.info.original_size,
        scale=loaded.scale,
        marker=marker,
        segmentation=segmentation,
        color_method=normalized.method,
        color_gains=np.asarray(normalized.gains, np.float64),
        blown_out=blown_out,
    )


@dataclass
class VisitResult:
    """The scores of one visit photo.

    Attributes
    ----------
    image : str
        Photo file name.
    date : datetime.date
    weeks_since_start : float
    registration : Registration or None
        ``None`` when the photo could not even be loaded.
    score : VisitScore or None
        ``None`` when the visit could not be scored (see ``error``).
    error : str or None
        Why the visit has no figures.
    notes : list of str
        Remarks that do not prevent scoring.
    mask_baseline : ndarray of bool or None
        The visit's depigmented mask in the baseline's *working* frame (for
        display); the full-resolution mask is written to disk when an output
        folder is given.
    mask_path : str or None
        Mask file, relative to the output folder.
    registered_rgb : ndarray of uint8 or None
        With ``keep_images``: the visit photo (colour-normalised, working
        resolution) warped onto the baseline's working frame.
    intervals : dict of str to (float, float)
        Plausible range of ``depigmented_area_px``, ``depigmented_area_cm2``
        and ``repigmentation_pct`` (see :func:`figure_intervals`).
    homography_full : ndarray, shape (3, 3), or None
        Maps this photo's full-resolution upright pixels to the baseline
        photo's full-resolution pixels (when aligned).
    threshold : float or None
        Depigmentation score threshold applied to this photo (the baseline's,
        scaled by this photo's level of full depigmentation).
    evidence_residual : float or None
        Share of the baseline patch still depigmented judged by the footprint's
        contrast with the skin around it alone, without the mask
        (:func:`repigment.series.selfcheck.evidence_residual_fraction`).
    review_reasons : list of str
        Why this visit's figure is contradicted by evidence its mask did not
        use (see :mod:`repigment.series.selfcheck`); empty when it is not. A visit
        with reasons *needs review*: its range covers what the evidence
        allows, and it is left out of the milestones until reviewed.
    light_change : str or None
        How far this photo's light was from the baseline's when that is more
        than the colour matching can undo without loss (a visit taken under
        it needs review, unless its own strokes judge it); ``None`` otherwise.
    own_strokes : bool
        Whether this visit was judged by strokes on its own photo (see
        ``visit_labels`` of :func:`analyze_photos`) rather than the baseline's
        threshold.
    lighter_skin_share : float
        Lighter skin beyond the baseline footprint that was left out as not
        depigmented, as a share of the footprint's area (0 when none, and
        where the baseline's model has no level of full depigmentation).
    """

    image: str
    date: _dt.date
    weeks_since_start: float
    registration: Registration | None = None
    score: VisitScore | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    mask_baseline: np.ndarray | None = None
    mask_path: str | None = None
    registered_rgb: np.ndarray | None = None
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    homography_full: np.ndarray | None = None
    threshold: float | None = None
    evidence_residual: float | None = None
    review_reasons: list[str] = field(default_factory=list)
    light_change: str | None = None
    own_strokes: bool = False
    lighter_skin_share: float = 0.0

    @property
    def needs_review(self) -> bool:
        """Whether evidence contradicts this visit's figure (see ``review_reasons``)."""
        return bool(self.review_reasons)

    def flag_for_review(self, reason: str, *, plausible_pct: float | tuple[float, ...] | None = None) -> None:
        """Mark the figure as contradicted, and widen its range to cover ``plausible_pct``."""
        self.review_reasons.append(reason)
        self.notes.append(f"needs review: {reason}")
        if plausible_pct is not None:
            self.widen_range(plausible_pct)

    def widen_range(self, plausible_pct: float | tuple[float, ...]) -> None:
        """Widen the repigmentation range to cover ``plausible_pct``."""
        if "repigmentation_pct" in self.intervals:
            values = np.atleast_1d(np.asarray(plausible_pct, float))
            low, high = self.intervals["repigmentation_pct"]
            self.intervals["repigmentation_pct"] = (min(low, float(values.min())), max(high, float(values.max())))

    @property
    def ok(self) -> bool:
        return self.error is None and self.score is not None


@dataclass
class SeriesResult:
    """Result of :func:`analyze_series`.

    Attributes
    ----------
    treatment_start : datetime.date
    baseline : str
        File name of the baseline photo.
    baseline_size : tuple of int
        ``(width, height)`` of the baseline photo (the frame of every mask).
    mm_per_px : float or None
        Millimetres per baseline-frame pixel, from the marker.
    marker_mm : float
    marker_id : int or None
    threshold : float
        Depigmentation threshold of the baseline; each visit applies it scaled
        by its own level of full depigmentation (``VisitResult.threshold``).
    contrast : float or None
        Depigmentation contrast measured at baseline.
    milestones : Milestones
    visits : list of VisitResult
        In date order; the first is the baseline.
    roi : tuple or None
        Region of interest in baseline pixels.
    working_size : int
    segmentation_model : str
        The baseline's segmentation model (:attr:`Segmentation.method`).
    segmentation_confidence : float
        0-1, how clearly the baseline's depigmented skin stands out.
    segmentation_reason : str or None
        Why that confidence is below 1.
    labels_used : bool
        Whether a clinician's strokes guided the segmentation.
    repigment_version : str
    created_utc : str
        ISO 8601 time of the run, UTC.
    """

    treatment_start: _dt.date
    baseline: str
    baseline_size: tuple[int, int]
    mm_per_px: float | None
    marker_mm: float
    marker_id: int | None
    threshold: float
    contrast: float | None
    milestones: Milestones
    visits: list[VisitResult]
    roi: tuple | None
    working_size: int
    repigment_version: str = __version__
    created_utc: str = ""
    baseline_working_rgb: np.ndarray | None = None
    segmentation_model: str = "od-field"
    segmentation_confidence: float = 1.0
    segmentation_reason: str | None = None
    labels_used: bool = False
    series_dir: str | None = None

    @property
    def failed_visits(self) -> list[VisitResult]:
        return [v for v in self.visits if not v.ok]


def _validate_options(marker_mm: float, working_size: int) -> None:
    if not (isinstance(working_size, (int, np.integer)) and 256 <= working_size <= 4096):
        raise InvalidParameterError(f"working_size must be an integer from 256 to 4096, got {working_size!r}")
    if not (np.isfinite(marker_mm) and 1.0 <= marker_mm <= 500.0):
        raise InvalidParameterError(f"marker size must be between 1 and 500 mm, got {marker_mm}")


def cv2_error() -> type[Exception]:
    """OpenCV's exception class (imported lazily)."""
    import cv2

    return cv2.error


def _full_resolution_mask(
    working_mask: np.ndarray, homography_work: np.ndarray | None, work_shape: tuple[int, int],
    baseline_size: tuple[int, int],
) -> np.ndarray:
    """A working-resolution mask in the baseline's frame at the baseline photo's full size.

    The mask is warped into the baseline's working frame (``homography_work``,
    or as it is when None), then enlarged, both with linear interpolation and
    cut at one half once, so its borders are smooth rather than blocky. The
    working resolution sets the border's detail either way; warping straight
    to 12 megapixels costs about four times as much as this separable
    enlargement, which also keeps pixel centres where the working photo's
    resampling put them.
    """
    import cv2

    width, height = baseline_size
    levels = np.where(working_mask, np.uint8(255), np.uint8(0))
    if homography_work is not None:
        levels = cv2.warpPerspective(levels, homography_work, (work_shape[1], work_shape[0]),
                                     flags=cv2.INTER_LINEAR, borderValue=0)
    enlarged = cv2.resize(levels, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.threshold(enlarged, 127, 1, cv2.THRESH_BINARY)[1].view(bool)


def analyze_photos(
    photos: Sequence[VisitPhoto],
    *,
    treatment_start: _dt.date | None = None,
    marker_mm: float = DEFAULT_MARKER_MM,
    roi=None,
    labels: np.ndarray | None = None,
    visit_labels: Mapping[str, np.ndarray] | None = None,
    working_size: int = DEFAULT_WORKING_SIZE,
    mask_writer: Callable[[VisitResult, np.ndarray], str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    keep_images: bool = False,
    limits: Limits | None = None,
    prefetch: bool = True,
) -> SeriesResult:
    """Score visit photos against the earliest one.

    Parameters
    ----------
    photos : sequence of VisitPhoto
        The photos with their dates; sorted here by date (stable).
    treatment_start : datetime.date, optional
        Start of treatment; defaults to the baseline date.
    marker_mm : float, optional
        Printed side of the scale marker, mm.
    roi : tuple of 4 numbers or ndarray of shape (N, 2), optional
        Region of interest in baseline-photo pixels; only depigmentation inside
        it is counted, at every visit, and it guides the baseline's
        segmentation (a box around the patch finds it where the automatic
        mode does not engage).
    labels : ndarray of int, shape (H, W), optional
        A clinician's strokes on the upright baseline photo (0 unlabelled, 1
        depigmented, 2 normal skin, 3 not skin). The baseline is segmented by
        a colour model learned from them, and the strokes set the contrast
        threshold every later visit is judged at; not-skin strokes are carried
        through each visit's registration and kept out of its mask.
    visit_labels : mapping of str to ndarray, optional
        Strokes on a later visit's own upright photo, by its file name (as
        ``VisitPhoto.name``), where that visit's outline needs them: the
        visit is segmented by a colour model learned from its own strokes
        instead of the baseline's threshold, and is not colour-matched again
        (the strokes already hold this photo's colours, so a light far from
        the baseline's is noted, not flagged). Strokes that do not fit the
        photo fail that visit alone, with the reason. A visit's strokes are
        looked up only when that visit is prepared (a lazy mapping may read
        them from a file then).
    working_size : int, optional
        Longest side, in pixels, at which photos are analysed.
    mask_writer : callable, optional
        ``mask_writer(visit, full_resolution_mask) -> relative_path``, called
        for every scored visit with its mask in the baseline photo's full
        pixel frame; the mask is not kept in memory afterwards.
    progress : callable, optional
        ``progress(done, total, image_name)`` after each photo is scored. The
        baseline and the visits of its first weeks are scored together, once
        two of those visits have settled the baseline footprint (see
        :func:`repigment.series.selfcheck.unconfirmed_spots`).
    keep_images : bool, optional
        Keep each visit's photo registered onto the baseline's working frame
        (``VisitResult.registered_rgb``) for display. Costs about 2.4 MB per
        visit at the default working size.
    limits : Limits, optional
        Pixel, file-size, visit-count and time limits.
    prefetch : bool, optional
        Load and segment the next two photos in background threads while the
        current one is registered, scored and written (about two cores' worth
        of work). Up to two more photos are then in memory at once: at working
        resolution for JPEGs, which are decoded straight to it, briefly at full
        size for other formats. Turn off where every process should use one
        core (batch workers with a core each do).

    Returns
    -------
    SeriesResult

    Raises
    ------
    SeriesError
        If there are no photos, or the baseline photo is unusable or shows no
        depigmented skin (nothing can be measured against it).
    InvalidParameterError
        If an option is out of range, or ``visit_labels`` names a photo that
        is not a later visit of the series.
    """
    _validate_options(marker_mm, working_size)
    limits = limits or Limits()
    ordered = sorted(photos, key=lambda p: p.date)
    if not ordered:
        raise SeriesError("the series has no photos")
    if len(ordered) > limits.max_visits:
        raise SeriesError(
            f"the series has {len(ordered)} photos, more than the limit of {limits.max_visits}; "
            "split it or raise REPIGMENT_MAX_VISITS"
        )
    seen: dict[str, str] = {}
    for photo in ordered:
        # Masks and result rows are named by the file name's stem.
        stem = Path(photo.name).stem.lower()
        if stem in seen:
            raise SeriesError(
                f"two photos of the series share the name {Path(photo.name).stem!r} ({seen[stem]}, {photo.name}); "
                "list each photo once and rename photos that differ only in extension"
            )
        seen[stem] = photo.name
    baseline_photo = ordered[0]
    # Kept as given: a mapping may decode each visit's strokes only when that
    # visit is prepared, so a series never holds every visit's strokes at once.
    own_labels = visit_labels if visit_labels is not None else {}
    with_strokes = set(own_labels)  # the names only: membership must not decode anything
    unknown = sorted(with_strokes - {photo.name for photo in ordered[1:]})
    if unknown:
        raise InvalidParameterError(
            f"strokes were given for {', '.join(unknown)}, which is not a later visit of this series")
    start = treatment_start or baseline_photo.date
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")

    if progress is not None:
        progress(0, len(ordered), baseline_photo.name)
    try:
        base = prepare_photo(
            baseline_photo.path, marker_mm=marker_mm, working_size=working_size, limits=limits,
            deadline=Deadline(limits.max_seconds_per_photo), roi=roi, labels=labels,
            # Every visit is judged at this photo's contrast threshold; a border placed by
            # classes learned from this photo alone would not follow it.
            learn_own_classes=False,
        )
    except RepigmentError as exc:
        raise SeriesError(f"baseline photo {baseline_photo.name}: {exc}") from None
    base_seg = base.segmentation
    base_labels_work = None if labels is None else resize_labels(labels, base_seg.mask.shape)
    # Visits are judged at the baseline's threshold, in the units of its model
    # (strokes learn a colour model on top of the colour-contrast score).
    visit_method = base_seg.threshold_method
    if base_seg.contrast is None or not base_seg.mask.any():
        raise SeriesError(
            f"baseline photo {baseline_photo.name}: no depigmented skin was found, so there is nothing to "
            "measure repigmentation against; check the photo shows the patch"
        )
    width0, height0 = base.original_size
    work_shape = base_seg.mask.shape
    region_work = None
    region_full = None
    if roi is not None:
        region_full = roi_mask((height0, width0), roi)
        scaled_roi = np.asarray(roi, dtype=np.float64) * base.scale
        # prepare_photo's segmentation has already put back the skin set aside under the region.
        region_work = roi_mask(work_shape, scaled_roi)
    # Skin set aside as lighter than the rest though not a patch is neither the patch nor the
    # normal skin around it (see Segmentation.set_aside), and stays aside at every visit.
    base_set_aside = base_seg.set_aside
    not_set_aside = np.ones(work_shape, bool) if base_set_aside is None else ~base_set_aside
    footprint = _baseline_footprint(base, region_work, region_full, usable=_surrounding_skin(base) & not_set_aside)
    if not footprint.work.any():
        raise SeriesError("the region of interest holds no depigmented skin in the baseline photo")
    if not footprint.area_full:
        raise SeriesError("the baseline's depigmented area is empty at full resolution")
    marker_full = None if base.marker is None else base.marker.scaled(1.0 / base.scale)
    mm_per_px = None if marker_full is None else marker_full.mm_per_px
    base_features = image_features(base.rgb, base.registration_mask())
    wide_cache: list[ImageFeatures] = []

    def base_features_wide() -> ImageFeatures:
        if not wide_cache:  # computed only when a visit needs it, then kept
            wide_cache.append(image_features(base.rgb, base.registration_mask(skin_only=False)))
        return wide_cache[0]

    # Normal skin of the baseline that later visits are colour-matched on: away from the patch.
    near_patch = _dilate_disk(base_seg.mask | ~not_set_aside, 0.03 * max(work_shape))
    base_shared = _surrounding_skin(base) & ~near_patch
    base_context = ~near_patch  # background, hair and marker too: their dark end shows a haze

    # Every visit keeps only the kind of regions the baseline kept (a core of full depigmentation).
    base_core = base_seg.core_factor

    def segment_matched(rgb: np.ndarray, exclude: np.ndarray | None, skin_as_taken: np.ndarray) -> Segmentation:
        return depigmented_mask(rgb, exclude=exclude, threshold=base_seg.threshold, method=visit_method,
                                reference_level=base_seg.depigmented_level, core_factor=base_core,
                                skin_split=base_seg.skin_split,
                                extra_skin=skin_as_taken if visit_method == "od-field" else None)

    series_notes = []
    if base_seg.method == "colour-contrast" and base_seg.reason:
        series_notes.append(
            f"baseline mask: {base_seg.reason} (confidence {base_seg.confidence:.2f}); check its outline, and "
            "where it misses draw strokes on the baseline (labels) so every visit is judged by them"
        )
    if base_seg.skin_split is not None:
        series_notes.append(
            "baseline photo: a skin-coloured background or cloth was set aside (darker than the patient's skin, it "
            "was not taken for normal skin; paler, not for the patch), and so is its colour at every visit: check "
            "the baseline outline"
        )
    if base_set_aside is not None and region_work is None:
        # Under a region of interest, what stays aside lies outside it: no concern of the series.
        aside_share = np.count_nonzero(base_set_aside) / (np.count_nonzero(base_seg.mask)
                                                          + np.count_nonzero(base_set_aside))
        series_notes.append(
            f"baseline photo: skin above the threshold but barely lighter than the skin around it ({aside_share:.0%} "
            "of the area above it; uneven light or the edge of a limb) was left out of the patch, here and at "
            "every visit judged at the baseline's threshold: check the baseline outline"
        )
    contrast_sigmas = base_seg.contrast / max(base_seg.normal_sigma, 1e-6)
    if contrast_sigmas < _LOW_CONTRAST_SIGMAS:
        series_notes.append(
            f"depigmented skin is only faintly lighter than normal skin here ({contrast_sigmas:.1f} noise levels): "
            "figures are uncertain; a Wood's lamp (UV) photo shows such patches better"
        )

    def prepare(photo: VisitPhoto) -> tuple[PreparedPhoto, ImageFeatures, Deadline]:
        """Everything about a visit that does not need the baseline's registration."""
        deadline = Deadline(limits.max_seconds_per_photo)
        prepared = prepare_photo(
            photo.path, marker_mm=marker_mm, threshold=base_seg.threshold, working_size=working_size,
            limits=limits, deadline=deadline, reference_level=base_seg.depigmented_level, method=visit_method,
            labels=own_labels[photo.name] if photo.name in with_strokes else None, core_factor=base_core,
            skin_split=base_seg.skin_split,
        )
        features = image_features(prepared.rgb, prepared.registration_mask())
        deadline.pause()  # waiting for its turn is not time spent on this photo
        return prepared, features, deadline

    visits: list[VisitResult] = []
    weeks_list: list[float] = []
    improvement: list[float | None] = []
    implausible: dict[int, float] = {}  # visit index -> its week, for implausibly fast responses
    total = len(ordered)

    def score(staged: _StagedVisit) -> None:
        """Score, check and write one registered visit against the settled baseline footprint."""
        visit, index, segmentation, h_work = staged.visit, staged.index, staged.segmentation, staged.h_work
        try:
            if visit.error is None and segmentation is not None:
                if index == 0:
                    visit.mask_baseline = footprint.work
                visit.threshold = segmentation.threshold
                h_full = compose_scaling(h_work, moving_scale=1.0, baseline_scale=base.scale)
                visit.homography_full = compose_scaling(h_work, moving_scale=staged.scale, baseline_scale=base.scale)
                full_mask = footprint.full if index == 0 else _full_resolution_mask(
                    segmentation.mask, h_work, work_shape, base.original_size)
                if region_full is not None and index > 0:
                    full_mask &= region_full
                area_cm2 = None if marker_full is None else plane_area_mm2(full_mask, marker_full) / 100.0
                # Any unseen part of the baseline footprint is extrapolated (with a wider range).
                visible = None if staged.coverage >= 0.999 else visible_in_baseline(
                    segmentation.mask.shape, h_full, full_mask.shape)
                visit.score, visit.intervals = _score_with_intervals(
                    footprint.full, full_mask, area_cm2, visible,
                    # Traced in the working frame (far fewer pixels) and scaled to full resolution.
                    boundary_px=_boundary_length(visit.mask_baseline) / base.scale,
                    baseline_cases=footprint.cases,
                    visit_cases=footprint.cases if index == 0 else _threshold_cases(
                        segmentation, h_work, work_shape, region_work),
                    residual_px=visit.registration.residual_px / base.scale,
                    work_to_full_px=1.0 / base.scale**2,
                )
                if index > 0:
                    _check_against_evidence(visit, staged.prepared, h_work, footprint.work, footprint.evidence,
                                            footprint.area_full)
                if mask_writer is not None:
                    visit.mask_path = mask_writer(visit, full_mask)
                if visit.score.new_depigmentation_px > 0.05 * footprint.area_full and index > 0:
                    visit.notes.append(
                        f"new depigmentation outside the baseline footprint: {visit.score.new_depigmentation_px} px"
                    )
                if (visit.weeks_since_start <= _EARLY_WEEKS
                        and visit.score.repigmentation_pct >= _EARLY_IMPLAUSIBLE_PCT):
                    implausible[index] = visit.weeks_since_start
                    visit.notes.append(
                        f"{visit.score.repigmentation_pct:.0f}% repigmentation by week "
                        f"{visit.weeks_since_start:.0f} is faster than treatment repigments skin (faint "
                        "signs in weeks 4-8): check that the baseline photo shows no glare, sheen or light "
                        "normal skin taken for depigmentation before trusting these figures"
                    )
                del full_mask
        except RepigmentError as exc:
            visit.error = str(exc)
        except (MemoryError, OSError, ValueError, np.linalg.LinAlgError, cv2_error()) as exc:
            visit.error = _one_line_error(exc)
        staged.prepared = None  # the photo is not needed any more
        visits.append(visit)
        weeks_list.append(visit.weeks_since_start)
        improvement.append(visit.score.repigmentation_pct if visit.ok and visit.score else None)
        if progress is not None:
            progress(index + 1, total, ordered[index].name)

    # The baseline footprint is settled, and visits scored against it, once
    # the visits of the first weeks have been registered: a spot of the
    # baseline mask none of them shows is left out of it (see
    # repigment.series.selfcheck.unconfirmed_spots). Until then those few visits wait.
    waiting: list[_StagedVisit] = []
    settled = labels is not None  # the clinician's strokes set the baseline mask: their call
    with _Prefetcher(prepare, ordered[1:], enabled=prefetch) as prefetched, _one_blas_thread(prefetch):
        upcoming = iter(prefetched)
        for index, photo in enumerate(ordered):
            visit = VisitResult(image=photo.name, date=photo.date, weeks_since_start=weeks_since(start, photo.date),
                                notes=list(series_notes))
            staged = _StagedVisit(index=index, visit=visit)
            try:
                if index == 0:
                    visit.registration = Registration(ok=True, homography=np.eye(3), score=1.0, reason=None,
                                                      residual_px=0.0)
                    staged.segmentation, staged.h_work = base_seg, np.eye(3)
                    staged.scale, staged.coverage = base.scale, 1.0
                    if keep_images:
                        visit.registered_rgb = base.rgb
                else:
                    prepared, features, deadline = next(upcoming)()
                    deadline.resume()
                    own_strokes = photo.name in with_strokes
                    aligned = _register_visit(
                        visit, prepared, features, deadline, base, base_features, base_features_wide,
                        footprint.work, region_work, keep_images=keep_images,
                        base_labels_work=base_labels_work, own_strokes=own_strokes,
                        match_colour=(base_shared, base_context, segment_matched),
                        base_set_aside=base_set_aside,
                    )
                    visit.own_strokes = own_strokes and aligned is not None
                    if visit.own_strokes:
                        visit.notes.append("judged by the clinician's strokes on this photo rather than the "
                                           "baseline's threshold")
                    if aligned is not None:
                        staged.segmentation, staged.h_work, staged.scale, staged.coverage = aligned
                        staged.prepared = prepared
            except RepigmentError as exc:
                visit.error = str(exc)
            except (MemoryError, OSError, ValueError, np.linalg.LinAlgError, cv2_error()) as exc:
                visit.error = _one_line_error(exc)
            if settled:
                score(staged)
                continue
            waiting.append(staged)
            # Evidence: registered visits of the first weeks, both of treatment and since the
            # baseline photo (a visit under a strong light is evidence too when its mask still
            # shows the patch, see unconfirmed_spots).
            early = [s for s in waiting[1:] if s.segmentation is not None and s.visit.error is None
                     and _in_first_weeks(s.visit, baseline_photo.date)]
            beyond = index > 0 and not _in_first_weeks(visit, baseline_photo.date)
            if len(early) >= _SPOT_EVIDENCE_VISITS or beyond or index == len(ordered) - 1:
                settled = True
                try:
                    spots = _spots_early_visits_do_not_show(footprint.work, early, work_shape)
                    if spots.any():
                        footprint = _baseline_footprint(base, region_work, region_full, usable=footprint.usable,
                                                        left_out=spots)
                        note = _spots_note(spots, footprint.work, [s.visit.weeks_since_start for s in early])
                        series_notes.append(note)
                        for entry in waiting:
                            entry.visit.notes.append(note)
                except (MemoryError, ValueError, cv2_error()):
                    pass  # the footprint as found: the check is a refinement, not a condition
                for entry in waiting:
                    score(entry)
                waiting.clear()

    _check_course(visits, weeks_list, improvement)
    # When every scored follow-up visit is contradicted, what they share, the
    # baseline photo, is what is in doubt; otherwise an implausibly fast early
    # response that is contradicted is that visit's own problem.
    followups = [visit for visit in visits[1:] if visit.ok]
    all_contradicted = len(followups) >= 3 and all(visit.needs_review for visit in followups)
    isolated = set() if all_contradicted else {index for index in implausible if visits[index].needs_review}
    for index in isolated:
        visits[index].notes[:] = [n for n in visits[index].notes if "faster than treatment" not in n]
        visits[index].flag_for_review(
            f"{improvement[index]:.0f}% repigmentation by week {weeks_list[index]:.0f} is faster than treatment "
            "repigments skin, and the other visits do not share it: check this photo")
    implausible = {index: week for index, week in implausible.items() if index not in isolated}
    if all_contradicted:
        for visit in followups:
            visit.notes.append(
                "every visit disagrees with the evidence of its own photo, so the baseline photo is in doubt "
                "(sheen, glare or pale normal skin taken for depigmentation, or part of the patch missed?): check it "
                "before trusting these figures"
            )
    elif implausible:
        # The baseline is what is in doubt, so every figure measured against it is.
        first_week = next(iter(implausible.values()))
        for index, visit in enumerate(visits[1:], start=1):
            if visit.ok and index not in implausible:
                visit.notes.append(
                    f"the response by week {first_week:.0f} was implausibly fast, so the baseline photo "
                    "is in doubt: check it before trusting these figures"
                )
    # Milestones count only figures no evidence contradicts.
    reviewed = [None if visit.needs_review else value for visit, value in zip(visits, improvement)]
    return SeriesResult(
        treatment_start=start,
        baseline=baseline_photo.name,
        baseline_size=base.original_size,
        mm_per_px=mm_per_px,
        marker_mm=marker_mm,
        marker_id=None if base.marker is None else base.marker.marker_id,
        threshold=base_seg.threshold,
        contrast=base_seg.contrast,
        milestones=find_milestones(weeks_list, reviewed),
        visits=visits,
        roi=None if roi is None else tuple(np.asarray(roi).ravel().tolist()),
        working_size=working_size,
        created_utc=created,
        baseline_working_rgb=base.rgb,
        segmentation_model=base_seg.method,
        segmentation_confidence=base_seg.confidence,
        segmentation_reason=base_seg.reason,
        labels_used=labels is not None,
    )


@contextlib.contextmanager
def _one_blas_thread(enabled: bool):
    """Keep BLAS (numpy's OpenBLAS) to one thread while the prefetcher runs its own threads.

    Between two small BLAS calls OpenBLAS's idle threads spin, taking the CPU the
    prefetch threads need: on a 12-visit 12 MP series on two cores, one BLAS thread
    cut the CPU time by 11 % and the wall time by 8 % (medians of six paired runs),
    with the same figures and masks. (One OpenCV thread as well gained nothing.)
    The limit is process-wide: two series analysed at once in one process (the
    app) may leave BLAS at one thread a little longer than either runs, which
    costs speed, never a figure.
    """
    if not enabled:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


class _Prefetcher:
    """Runs ``prepare`` on each item in worker threads, ``ahead`` items ahead of the consumer.

    Iterating yields a zero-argument callable per item that returns the
    prepared value or raises what ``prepare`` raised, so one failing photo is
    handled in its own turn. Without ``enabled`` everything runs in the
    calling thread, in order.
    """

    def __init__(self, prepare, items, *, enabled: bool, ahead: int = 2):
        from collections import deque

        self._prepare = prepare
        self._items = list(items)
        self._ahead = ahead
        self._executor = None
        self._queued: deque = deque()
        if enabled and len(self._items) > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="repigment-prefetch")

    def __enter__(self):
        if self._executor is not None:  # start now, while the caller finishes the baseline
            self._queued.extend(self._executor.submit(self._prepare, item) for item in self._items[: self._ahead])
        return self

    def __exit__(self, exc_type, *exc_info):
        if self._executor is not None:
            # On an error or Ctrl-C, do not wait for photos still being prepared.
            self._executor.shutdown(wait=exc_type is None, cancel_futures=True)

    def __iter__(self):
        if self._executor is None:
            for item in self._items:
                yield lambda item=item: self._prepare(item)
            return
        for index in range(len(self._items)):
            current = self._queued.popleft()
            if index + self._ahead < len(self._items):  # taken up as soon as a worker is free
                self._queued.append(self._executor.submit(self._prepare, self._items[index + self._ahead]))
            yield current.result


@dataclass
class _StagedVisit:
    """A visit registered and segmented, waiting to be scored (see :func:`analyze_photos`)."""

    index: int
    visit: VisitResult
    segmentation: Segmentation | None = None
    h_work: np.ndarray | None = None  # its working frame to the baseline's
    scale: float = 1.0  # its working scale
    coverage: float = 1.0  # the share of the baseline footprint it shows
    prepared: PreparedPhoto | None = None  # for the evidence checks; None for the baseline


@dataclass(frozen=True)
class _Footprint:
    """The baseline's depigmented skin and what every visit is measured against."""

    work: np.ndarray  # in the working frame, within the region of interest
    full: np.ndarray  # at the baseline photo's full size
    area_full: int
    cases: tuple[int, int, int]  # working px at the low, nominal and high threshold
    evidence: float | None  # its contrast with the skin around it (see footprint_contrast)
    usable: np.ndarray  # the skin that contrast is measured against


def _baseline_footprint(
    base: PreparedPhoto,
    region_work: np.ndarray | None,
    region_full: np.ndarray | None,
    *,
    usable: np.ndarray,
    left_out: np.ndarray | None = None,
) -> _Footprint:
    """The baseline footprint, with the working-frame spots ``left_out`` taken out of it."""
    seg = base.segmentation
    mask = seg.mask if left_out is None else seg.mask & ~left_out
    work = mask if region_work is None else mask & region_work
    full = _full_resolution_mask(mask, None, seg.mask.shape, base.original_size)
    if region_full is not None:
        full &= region_full
    region = region_work
    if left_out is not None:
        # Spots are a little larger at the threshold's low end: keep them out there too, but
        # not the patch beside them.
        keep = ~(_dilate_disk(left_out, _SPOT_MARGIN * max(seg.mask.shape)) & ~work)
        region = keep if region_work is None else region_work & keep
    return _Footprint(
        work=work, full=full, area_full=int(np.count_nonzero(full)),
        cases=_threshold_cases(seg, np.eye(3), seg.mask.shape, region),
        evidence=footprint_contrast(base.rgb, work, usable=usable), usable=usable,
    )


#: The baseline footprint is settled on this many visits of the first
#: _EARLY_WEEKS (see repigment.series.selfcheck.unconfirmed_spots).
_SPOT_EVIDENCE_VISITS = 2
#: Spots left out of the footprint are kept out of its low-threshold case
#: within this share of the longest side (they grow a little there).
_SPOT_MARGIN = 0.005


def _in_first_weeks(visit: VisitResult, baseline_date: _dt.date) -> bool:
    """Whether a visit was taken within _EARLY_WEEKS of both treatment start and the baseline photo."""
    return visit.weeks_since_start <= _EARLY_WEEKS and (visit.date - baseline_date).days <= 7 * _EARLY_WEEKS


def _spots_early_visits_do_not_show(
    base_mask_work: np.ndarray, early: Sequence[_StagedVisit], work_shape: tuple[int, int]
) -> np.ndarray:
    """Spots of the baseline footprint that the registered visits of the first weeks do not show.

    The early visits were registered against the footprint with its spots (its
    coverage, the faint new regions left out near it, and the skin judged at
    the fine scale on it); the spots are a few hundred pixels beside the
    patch, too little to change any of them.
    """
    import math

    if len(early) < _SPOT_EVIDENCE_VISITS:
        return np.zeros(work_shape, bool)
    views = [visible_in_baseline(s.segmentation.mask.shape, s.h_work, work_shape) for s in early]
    residuals = [s.visit.registration.residual_px for s in early if np.isfinite(s.visit.registration.residual_px)]
    tolerance = max(2, math.ceil(max(residuals, default=0.0)))
    return unconfirmed_spots(base_mask_work, [s.visit.mask_baseline for s in early], views,
                             min_visits=_SPOT_EVIDENCE_VISITS, tolerance_px=tolerance)


def _spots_note(spots: np.ndarray, footprint: np.ndarray, weeks: Sequence[float]) -> str:
    import cv2

    count = cv2.connectedComponents(spots.view(np.uint8), connectivity=8)[0] - 1
    share = np.count_nonzero(spots) / (np.count_nonzero(footprint) + np.count_nonzero(spots))
    when = " and ".join(f"{week:.0f}" for week in weeks)
    return (
        f"baseline photo: {count} small light spot{'s' if count > 1 else ''} ({share:.1%} of the baseline area) "
        f"left out of the patch: the visits at weeks {when} show the patch but not "
        f"{'them' if count > 1 else 'it'}, and treatment does not clear skin that fast (glare or sheen on the "
        "baseline photo?); check the baseline outline"
    )


def _one_line_error(exc: BaseException) -> str:
    """One strange photo must not stop the series; say what happened in one line."""
    message = " ".join(str(exc).split())[:200]
    return f"could not process this photo ({type(exc).__name__}: {message})"


def _register_visit(
    visit: VisitResult,
    prepared: PreparedPhoto,
    features: ImageFeatures,
    deadline: Deadline,
    base: PreparedPhoto,
    base_features: ImageFeatures,
    base_features_wide: Callable[[], ImageFeatures],
    base_mask_work: np.ndarray,
    region_work: np.ndarray | None,
    *,
    keep_images: bool = False,
    base_labels_work: np.ndarray | None = None,
    match_colour: tuple[np.ndarray, np.ndarray, Callable[[np.ndarray, np.ndarray | None, np.ndarray], Segmentation]]
    | None = None,
    own_strokes: bool = False,
    base_set_aside: np.ndarray | None = None,
) -> tuple[Segmentation, np.ndarray, float, float] | None:
    """Register one prepared visit photo.

    Fills ``visit`` (registration, notes, working-frame mask, or the error),
    matches the photo's colour to the baseline's on shared normal skin when
    ``match_colour`` (the baseline's shared-skin and context masks and a
    function that segments a corrected photo) is given, unless the visit is
    judged by its ``own_strokes`` (then the baseline's strokes do not carry
    either, nor the skin the baseline set aside, ``base_set_aside``), and
    returns the visit's segmentation, the homography from its working frame
    to the baseline's working frame, its working scale and the share of the
    baseline footprint it shows, or ``None`` when it cannot be scored.
    """
    visit.notes.extend(prepared.segmentation.notes)
    moving_skin = features.mask
    registration = register_to_baseline(
        None, prepared.rgb, baseline_features=base_features, moving_features=features
    )
    if not registration.ok and registration.code in ("no_texture", "few_matches", "few_inliers", "narrow"):
        # Too little normal skin in view: take features from the whole frame
        # outside the patch, but still require the skin itself to agree.
        wide_features = base_features_wide()
        registration = register_to_baseline(
            None, prepared.rgb, moving_mask=prepared.registration_mask(skin_only=False),
            baseline_features=wide_features, verify_masks=(base_features.mask, moving_skin),
        )
    visit.registration = registration
    deadline.check("registration")
    if keep_images and registration.homography is not None:
        import cv2

        height, width = base_mask_work.shape
        visit.registered_rgb = cv2.warpPerspective(prepared.rgb, registration.homography, (width, height))
    if not registration.ok:
        visit.error = f"not aligned to the baseline: {registration.reason}"
        return None
    visible = visible_in_baseline(prepared.segmentation.mask.shape, registration.homography, base_mask_work.shape)
    coverage = float(np.count_nonzero(visible & base_mask_work) / max(np.count_nonzero(base_mask_work), 1))
    if coverage < _MIN_FOOTPRINT_COVERAGE:
        visit.error = (
            f"the photo shows only {coverage:.0%} of the baseline patch; frame the whole patch as at baseline"
        )
        return None
    if coverage < _FULL_FOOTPRINT_COVERAGE:
        visit.notes.append(
            f"only {coverage:.0%} of the baseline patch is in this photo: figures are estimated from that part "
            "and the range covers any change in the rest; frame the whole patch next time"
        )
    if match_colour is not None:
        _match_colour_to_baseline(visit, prepared, registration.homography, base, match_colour, visible,
                                  resegment=not own_strokes)
    if base_labels_work is not None and not own_strokes:
        prepared.segmentation = _segment_with_carried_labels(prepared, base_labels_work, registration.homography)
    od_field = not own_strokes and prepared.segmentation.method == "od-field"
    if od_field:
        # The footprint in this photo's frame and the distance from it, once for both rules below.
        shape = prepared.segmentation.mask.shape
        footprint = _baseline_to_visit(base_mask_work, registration.homography, shape)
        distance = _distance_from(footprint)
        prepared.segmentation = _without_faint_new_regions(visit, prepared.segmentation, footprint, distance)
    if not own_strokes and base_set_aside is not None:
        prepared.segmentation = _without_set_aside_skin(prepared.segmentation, base_set_aside, registration.homography)
    if od_field and prepared.segmentation.fine_score is not None:
        # Pigment islands are judged at the fine scale within the patch, as at baseline;
        # new depigmentation beyond it is judged smoothed, as it was found.
        near_patch = distance <= _NEW_REGION_MARGIN * max(shape)
        prepared.segmentation = prepared.segmentation.with_fine_scale_within(near_patch, patch=footprint)
    visit.mask_baseline = warp_to_baseline(prepared.segmentation.mask, registration.homography, base_mask_work.shape)
    if region_work is not None:
        visit.mask_baseline &= region_work
    return prepared.segmentation, registration.homography, prepared.scale, coverage


#: A visit is segmented again, colour-matched to the baseline, when the light's
#: colour changed (a channel's gain differs from the mean gain by more than
#: this share), exposure changed by more than this factor, or a haze was found.
#: Smaller changes cancel in the segmentation's normal-skin field and are not
#: worth a second segmentation.
_COLOUR_MATCH_MIN_CAST = 0.04
_COLOUR_MATCH_MIN_EXPOSURE = 1.5
#: Lights the colour matching cannot fully undo: a channel's gain this far
#: from the mean gain (tungsten against daylight), exposure changed by more
#: than this factor, or more than this share of the normal skin clipped. On
#: generated series such visits are off by 3-14 points on average (others:
#: 1.2), so they are flagged for review with their range widened by
#: ``_STRONG_LIGHT_UNCERTAINTY_PCT`` each way.
_STRONG_LIGHT_CAST = 0.25
_STRONG_LIGHT_EXPOSURE = 1.8
_STRONG_LIGHT_CLIPPED = 0.05
_STRONG_LIGHT_UNCERTAINTY_PCT = 10.0


def _match_colour_to_baseline(
    visit: VisitResult,
    prepared: PreparedPhoto,
    homography: np.ndarray,
    base: PreparedPhoto,
    match_colour: tuple[np.ndarray, np.ndarray, Callable[[np.ndarray, np.ndarray | None, np.ndarray], Segmentation]],
    visible: np.ndarray,
    *,
    resegment: bool = True,
) -> None:
    """Bring a registered visit's colour and exposure to the baseline's, and segment it again.

    The gains come from normal skin both photos show (outside the baseline
    footprint and its margin, off the marker and background), on top of the
    marker's white balance where there is one. Without ``resegment`` (a visit
    judged by its own strokes) only a strong change of light is noted.
    """
    import cv2

    base_shared, base_context, segment = match_colour
    height, width = base_shared.shape
    in_base = cv2.warpPerspective(prepared.rgb, homography, (width, height))
    skin = cv2.warpPerspective(_surrounding_skin(prepared).view(np.uint8), homography, (width, height),
                               flags=cv2.INTER_NEAREST).astype(bool)
    shared = base_shared & skin
    matched = match_to_reference(in_base, base.rgb, shared, context=visible & base_context)
    # Blown-out skin is judged on all of the baseline's normal skin in view: the visit's own
    # skin test leaves out the whitest pixels, which is what overexposure makes of skin.
    visit.light_change = _strong_light_change(in_base, base_shared & visible, prepared, base, matched)
    if matched is None or not resegment:
        return
    exposure, cast = _exposure_and_cast(matched.gains)
    if (cast <= _COLOUR_MATCH_MIN_CAST and not np.any(matched.veil)
            and 1.0 / _COLOUR_MATCH_MIN_EXPOSURE <= exposure <= _COLOUR_MATCH_MIN_EXPOSURE):
        return
    rgb = apply_gains(prepared.rgb, matched.gains, matched.veil)
    if prepared.blown_out is not None:
        rgb[prepared.blown_out] = 255  # see prepare_photo
    exclude = None
    if prepared.marker is not None:
        exclude = marker_exclusion_mask(rgb.shape[:2], prepared.marker)
    # Skin of the photo as taken counts too: see ``extra_skin`` of depigmented_mask.
    prepared.rgb, prepared.segmentation = rgb, segment(rgb, exclude, prepared.segmentation.skin)
    gains = ", ".join(f"{channel} x{gain:.2f}" for channel, gain in zip("RGB", matched.gains))
    haze = f", a haze of {np.mean(matched.veil):.1%} taken off" if np.any(matched.veil) else ""
    visit.notes.append(f"colour and exposure matched to the baseline on shared normal skin ({gains}{haze})")


def _exposure_and_cast(gains: np.ndarray) -> tuple[float, float]:
    """Per-channel gains as an exposure factor (their mean) and a colour cast (largest share off it)."""
    exposure = float(np.mean(gains))
    return exposure, float(np.max(np.abs(np.asarray(gains) / exposure - 1.0)))


def _strong_light_change(
    registered: np.ndarray,
    shared: np.ndarray,
    prepared: PreparedPhoto,
    base: PreparedPhoto,
    matched: ColorNormalization | None,
) -> str | None:
    """How far a visit's light was from the baseline's, when too far to undo without loss.

    The light of the raw photos differs by the baseline's normalisation gains
    over the visit's and its match to the baseline; ``None`` when that is
    within ``_STRONG_LIGHT_CAST`` and ``_STRONG_LIGHT_EXPOSURE`` and the normal
    skin is not blown out.
    """
    # A regular subsample of about 20,000 shared pixels is plenty for a share.
    step = max(1, int(np.sqrt(np.count_nonzero(shared) / 20_000)))
    sample = registered[::step, ::step][shared[::step, ::step]]
    if len(sample):
        clipped = float(np.mean(sample.max(axis=1) >= CLIPPED_SRGB))
        if clipped > _STRONG_LIGHT_CLIPPED:
            return f"overexposed: {clipped:.0%} of the normal skin is blown out to white"
    if prepared.color_gains is None or base.color_gains is None:
        return None
    light = base.color_gains / np.maximum(prepared.color_gains, 1e-6)
    if matched is not None:
        light = light / np.maximum(matched.gains, 1e-6)
    exposure, cast = _exposure_and_cast(light)
    if cast <= _STRONG_LIGHT_CAST and 1.0 / _STRONG_LIGHT_EXPOSURE <= exposure <= _STRONG_LIGHT_EXPOSURE:
        return None
    return f"taken under a light far from the baseline's (colour cast {cast:.0%}, exposure x{exposure:.2f})"


def _segment_with_carried_labels(
    prepared: PreparedPhoto, base_labels_work: np.ndarray, homography: np.ndarray
) -> Segmentation:
    """A registered visit's segmentation with the baseline's strokes carried onto it.

    The visit is judged at the threshold the strokes set at baseline (its
    preliminary segmentation already is); what the strokes marked as not skin
    stays out of its mask. Depigmented and normal-skin strokes do not carry as
    such: skin marked depigmented at baseline may have repigmented since, and
    skin marked normal may have lost pigment, which is what the series measures.
    """
    preliminary = prepared.segmentation
    carried = _baseline_to_visit(base_labels_work, homography, preliminary.mask.shape)
    not_skin = carried == LABEL_NOT_SKIN
    if not not_skin.any():
        return preliminary
    return replace(preliminary, mask=preliminary.mask & ~not_skin, skin=preliminary.skin & ~not_skin)


#: A visit is contradicted when its mask finds less of the baseline patch
#: still depigmented than the footprint's contrast shows, by more than this.
#: (The contrast agrees with the mask within about 0.1 on generated series
#: under ordinary light; a hazy, washed-out light lowers the contrast, so the
#: other direction is judged only at its extreme.)
_EVIDENCE_TOLERANCE = 0.15
#: A visit whose depigmented area is more than this multiple of the
#: baseline's is in doubt: more likely a baseline mask that missed part of
#: the patch than a patch that spread that far during treatment (the
#: generator's fastest spreading course triples the area in a year).
_IMPLAUSIBLE_GROWTH = 3.0
#: New depigmentation whose contrast with the skin around it is under this
#: share of the baseline patch's is lighter normal skin, not lost pigment.
_NEW_DEPIGMENTATION_MIN_CONTRAST = 0.5
#: New depigmentation is checked for skin hue once it exceeds this share of the baseline area.
_NEW_DEPIGMENTATION_CHECKED = 0.05
#: New depigmentation is in doubt when lighter skin left out beyond the patch
#: (see _without_faint_new_regions) reaches this share of the baseline area:
#: the photo renders the skin around the patch lighter (a phone's local tone
#: mapping: 70-150 %, with the patch's border grown by 9-10 % of its area on a
#: stable series), and the border's growth may be that, not spreading.
#: Generated series without such processing: at most 27 %.
_LIGHTER_SKIN_CONTRADICTS = 0.4


def _without_set_aside_skin(
    segmentation: Segmentation, base_set_aside: np.ndarray, homography: np.ndarray
) -> Segmentation:
    """A visit's segmentation without the skin its baseline set aside as not a patch.

    That skin (see :attr:`repigment.core.segmentation.Segmentation.set_aside`) lies
    where the photo's normal-skin field misfits, at the edge of a limb or in
    uneven light, and a visit photographed the same way passes it again: kept
    at a visit, it would count against a baseline area that left it out.
    Depigmentation spreading into it is not seen either, which the baseline's
    note asks the clinician to check.
    """
    aside = _baseline_to_visit(base_set_aside, homography, segmentation.mask.shape)
    if not aside.any():
        return segmentation
    if segmentation.set_aside is not None:
        aside |= segmentation.set_aside
    return replace(segmentation, mask=segmentation.mask & ~aside, set_aside=aside)


def _without_faint_new_regions(
    visit: VisitResult, segmentation: Segmentation, footprint: np.ndarray, distance: np.ndarray | None = None
) -> Segmentation:
    """Leave out new depigmentation that is only lighter skin, noting how much when it matters.

    A new vitiligo macule, like the patch, is milk-white: most of it has lost
    near full depigmentation. A region apart from the baseline footprint and
    its margin whose median score stays under ``_NEW_REGION_LEVEL_SHARE`` of
    this photo's level of full depigmentation is lighter normal skin
    (mottling, light) that grazed the threshold. A region joined to the patch
    is judged by its part outside the margin, once that part reaches twice as
    far: a spreading edge is thin where it leaves the margin, but one that
    reaches that far is a band of milk-white skin, while lighter skin along
    the edge of a body part or a phone's tone-mapping halo beside a dark
    background stays faint; only the part outside the margin is left out.
    Only the optical-density model has such a level. ``footprint`` is the
    baseline footprint in this photo's frame, ``distance`` each pixel's
    distance from it (:func:`_distance_from`; computed here when None).
    """
    import cv2

    level = segmentation.depigmented_level
    if level is None or not segmentation.mask.any():
        return segmentation
    mask = segmentation.mask
    count, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
    height, width = mask.shape
    if not footprint.any():
        return segmentation  # nothing to be new against (such a visit is refused for its framing)
    if distance is None:
        distance = _distance_from(footprint)
    near = distance <= _NEW_REGION_MARGIN * max(height, width)
    far = distance > 2.0 * _NEW_REGION_MARGIN * max(height, width)
    # Each part of the mask outside the margin: a region apart from the patch whole, or what a
    # region joined to it has beyond the margin. The latter is judged only once it reaches
    # well beyond, by all its pixels outside the margin (a milk-white band's blurred rim is
    # what reaches farthest). Median under the share of the level <=> more than half under it.
    outside = mask & ~near
    parts, part_labels = cv2.connectedComponents(outside.view(np.uint8), connectivity=8)
    apart = np.bincount(labels[near & mask], minlength=count) == 0
    joined = np.zeros(parts, bool)
    joined[part_labels[outside]] = ~apart[labels[outside]]  # a part lies within one region
    reaches = np.bincount(part_labels[far & mask], minlength=parts) > 0
    lighter_only = outside & (segmentation.score < _NEW_REGION_LEVEL_SHARE * level)
    faint = ((~joined | reaches)
             & (np.bincount(part_labels[lighter_only], minlength=parts)
                > 0.5 * np.bincount(part_labels[outside], minlength=parts)))
    faint[0] = False
    if not faint.any():
        return segmentation
    left_out = np.take(faint, part_labels)
    share = np.count_nonzero(left_out) / np.count_nonzero(footprint)
    visit.lighter_skin_share = share
    if share >= _NEW_REGION_NOTED_SHARE:  # specks are not worth a clinician's attention
        visit.notes.append(
            f"lighter skin beyond the baseline patch ({share:.1%} of its area), under "
            f"{_NEW_REGION_LEVEL_SHARE:.0%} of full depigmentation, is not counted as new depigmentation")
    return replace(segmentation, mask=mask & ~left_out)


def _distance_from(footprint: np.ndarray) -> np.ndarray:
    """Each pixel's distance (px) from ``footprint``: a margin costs a fraction of a wide dilation."""
    import cv2

    return cv2.distanceTransform((~footprint).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_3)


#: The baseline footprint's margin, as a share of the photo's longest side:
#: new depigmentation within it is judged with the patch (see _without_faint_new_regions).
_NEW_REGION_MARGIN = 0.02
#: New depigmentation counts only where its median score reaches this share of
#: the photo's level of full depigmentation (see _without_faint_new_regions).
_NEW_REGION_LEVEL_SHARE = 0.75
#: Lighter skin left out is noted from this share of the baseline area on.
_NEW_REGION_NOTED_SHARE = 0.01


def _baseline_to_visit(image: np.ndarray, homography: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A baseline-frame mask or label image in a visit's frame (nearest neighbour, 0 outside).

    ``homography`` maps the visit's working pixels to the baseline's, as
    registration gives it; a bool mask comes back bool.
    """
    import cv2

    height, width = shape
    warped = cv2.warpPerspective(np.asarray(image).view(np.uint8) if image.dtype == bool else image,
                                 np.linalg.inv(homography), (width, height), flags=cv2.INTER_NEAREST,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped.astype(bool) if image.dtype == bool else warped


def _dilate_disk(mask: np.ndarray, radius: float) -> np.ndarray:
    """``mask`` grown by a disk of ``radius`` pixels."""
    import cv2

    r = max(1, int(round(radius)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask.view(np.uint8), kernel).astype(bool)


def _surrounding_skin(prepared: PreparedPhoto) -> np.ndarray:
    """Skin of a prepared photo that may serve as surrounding normal skin (off the marker)."""
    usable = prepared.segmentation.skin.copy()
    if prepared.marker is not None:
        usable &= ~marker_exclusion_mask(usable.shape, prepared.marker, margin=0.5)
    return usable


def _check_course(visits: list[VisitResult], weeks: list[float], improvement: list[float | None]) -> None:
    """Flag visits that break away from the course of the others, and widen flagged visits' ranges.

    Visits no evidence contradicts draw the course, so a visit already
    contradicted by its own photo does not make its neighbours look like
    outliers; every scored visit is judged against that course. The range of
    each flagged visit then also covers the figures of the trusted visits
    around it.
    """
    trusted = [None if visit.needs_review else value for visit, value in zip(visits, improvement)]
    for index, value in enumerate(improvement):
        judged = list(trusted)
        judged[index] = value
        reason = None if value is None else temporal_outliers(weeks, judged).get(index)
        if reason is not None:
            visits[index].flag_for_review(reason)
    for index, visit in enumerate(visits):
        course = neighbour_course(weeks, trusted, index) if visit.needs_review else None
        if course is not None:
            visit.widen_range(course)


def _check_against_evidence(
    visit: VisitResult,
    prepared: PreparedPhoto,
    homography: np.ndarray,
    base_mask_work: np.ndarray,
    base_evidence: float | None,
    base_area_full: int,
) -> None:
    """Flag a scored visit whose figure the photo's own evidence contradicts.

    The baseline footprint still standing out from the skin around it while
    the mask is (nearly) empty, or the reverse; new depigmentation that does
    not have the hue of skin, barely stands out, or comes with much lighter
    skin beyond the patch (a photo that renders the skin lighter); an area
    more than ``_IMPLAUSIBLE_GROWTH`` times the baseline's; and a light too
    far from the baseline's to be undone (``visit.light_change``; when such a
    light also grows the patch, the range reaches the figure without the
    growth). The
    lighter skin beyond the patch is known only for a series whose baseline
    the optical-density model segmented (see :func:`_without_faint_new_regions`).
    """
    if visit.light_change is not None and visit.own_strokes:
        # The strokes taught a model of this photo's own colours: the light is no reason to doubt it.
        visit.notes.append(f"{visit.light_change}; judged by the strokes drawn on this photo")
    elif visit.light_change is not None:
        pct = visit.score.repigmentation_pct
        # Repigmentation cannot pass 100 %; it can go below 0 (spreading).
        plausible = [pct - _STRONG_LIGHT_UNCERTAINTY_PCT, min(100.0, pct + _STRONG_LIGHT_UNCERTAINTY_PCT)]
        if visit.score.new_depigmentation_px > _NEW_DEPIGMENTATION_CHECKED * base_area_full:
            # Normal skin such a light renders pale can pass for new depigmentation: the
            # figure without it (what the mask kept of the baseline patch) is as plausible.
            plausible.append(100.0 * (1.0 - visit.score.residual_fraction))
        visit.flag_for_review(
            f"{visit.light_change}: the colour matching cannot fully undo it, so the figure may be well off; "
            "compare the photos",
            plausible_pct=tuple(plausible))
    seg = prepared.segmentation
    surrounding = _surrounding_skin(prepared)
    height, width = seg.mask.shape
    footprint = _baseline_to_visit(base_mask_work, homography, (height, width))
    score = visit.score
    evidence = evidence_residual_fraction(
        footprint_contrast(prepared.rgb, footprint, usable=surrounding), base_evidence)
    visit.evidence_residual = evidence
    if evidence is not None:
        measured = score.residual_fraction
        if measured < evidence - _EVIDENCE_TOLERANCE or (evidence < 0.15 and measured > 0.6):  # see above
            visit.flag_for_review(
                f"the mask finds {measured:.0%} of the baseline patch still depigmented, but the patch stands out "
                f"from the skin around it with {evidence:.0%} of its baseline contrast in this photo (light, "
                "exposure or focus may have changed the photo): check the outline",
                plausible_pct=(1.0 - evidence) * 100.0,
            )
    if score.area_px > _IMPLAUSIBLE_GROWTH * base_area_full:
        visit.flag_for_review(
            f"the depigmented area is {score.area_px / base_area_full:.1f} times the baseline's: vitiligo rarely "
            "spreads that far under treatment, so the baseline mask may have missed part of the patch; check it")
    if score.new_depigmentation_px > _NEW_DEPIGMENTATION_CHECKED * base_area_full:
        new = seg.mask & ~_dilate_disk(footprint, _NEW_REGION_MARGIN * max(height, width))
        # The figure without it: what the mask kept of the baseline patch (of its part in view,
        # when the photo cuts some of it off, as the figure itself).
        without_new = 100.0 * (1.0 - score.residual_fraction)
        share = looks_like_skin(prepared.rgb, new, seg.normal_lab)
        new_contrast = footprint_contrast(prepared.rgb, new, usable=surrounding & ~seg.mask)
        if share < 0.5:
            visit.flag_for_review(
                f"the new depigmentation outside the baseline patch is mostly not skin-coloured ({share:.0%} "
                "has the hue of this patient's skin): cloth or background may have been counted",
                plausible_pct=without_new,
            )
        elif (new_contrast is not None and base_evidence is not None
              and new_contrast < _NEW_DEPIGMENTATION_MIN_CONTRAST * base_evidence):
            visit.flag_for_review(
                f"the new depigmentation outside the baseline patch is only {new_contrast / base_evidence:.0%} as "
                "distinct from the skin around it as the baseline patch: light may have made normal skin pass",
                plausible_pct=without_new,
            )
        elif visit.lighter_skin_share >= _LIGHTER_SKIN_CONTRADICTS:
            visit.flag_for_review(
                f"the skin beyond the baseline patch looks lighter than at baseline ({visit.lighter_skin_share:.0%} "
                "of the patch's area, left out as not depigmented), so the patch's growth of "
                f"{without_new - score.repigmentation_pct:.0f}% may be the same effect of light or of the "
                "phone's processing rather than spreading: compare the photos",
                plausible_pct=without_new,
            )


#: The plausible decision range of the segmentation: the threshold from 0.8 to
#: 1.2 times its nominal value (44 % to 66 % of full depigmentation instead of
#: the nominal 55 %, see repigment.core.segmentation.DEPIGMENTED_FRACTION).
DECISION_RANGE = (0.8, 1.2)
#: DECISION_RANGE in melanin loss, as results and the app write it.
DECISION_RANGE_WORDS = (f"{round(100 * DECISION_RANGE[0] * DEPIGMENTED_FRACTION)}-"
                        f"{round(100 * DECISION_RANGE[1] * DEPIGMENTED_FRACTION)} %")


def _threshold_cases(
    segmentation: Segmentation, homography: np.ndarray, work_shape: tuple[int, int], region: np.ndarray | None
) -> tuple[int, int, int]:
    """Areas (baseline working px) at the low, nominal and high threshold.

    ``segmentation`` is a whole-photo one (no region of interest), as
    :func:`prepare_photo` makes; ``region`` restricts it here.
    """
    areas = []
    for factor in (DECISION_RANGE[0], 1.0, DECISION_RANGE[1]):
        # The nominal case is the segmentation's own mask (before any region of interest).
        mask = segmentation.mask if factor == 1.0 else segmentation.mask_at(segmentation.threshold * factor)
        warped = warp_to_baseline(mask, homography, work_shape)
        if region is not None:
            warped &= region
        areas.append(int(np.count_nonzero(warped)))
    return areas[0], areas[1], areas[2]


def _score_with_intervals(
    base_mask_full: np.ndarray,
    full_mask: np.ndarray,
    area_cm2: float | None,
    visible: np.ndarray | None,
    *,
    boundary_px: float,
    baseline_cases: tuple[int, int, int],
    visit_cases: tuple[int, int, int],
    residual_px: float,
    work_to_full_px: float,
) -> tuple[VisitScore, dict[str, tuple[float, float]]]:
    """Score a visit; when part of the baseline footprint is outside the photo
    (``visible`` given), estimate from the visible part and widen the ranges to
    cover any change in the unseen part."""
    import dataclasses

    base_area = int(np.count_nonzero(base_mask_full))
    if visible is None:
        score = score_visit(base_mask_full, full_mask, area_cm2=area_cm2)
        intervals = figure_intervals(
            score, baseline_area_px=base_area, baseline_cases=baseline_cases, visit_cases=visit_cases,
            boundary_px=boundary_px, residual_px=residual_px, work_to_full_px=work_to_full_px,
        )
        return score, intervals
    seen_base = base_mask_full & visible
    seen_area = int(np.count_nonzero(seen_base))
    unseen = base_area - seen_area
    partial = score_visit(seen_base, full_mask, area_cm2=area_cm2)
    factor = base_area / seen_area
    score = dataclasses.replace(
        partial,
        area_px=int(round(partial.area_px * factor)),
        area_cm2=None if partial.area_cm2 is None else partial.area_cm2 * factor,
    )
    intervals = figure_intervals(
        score, baseline_area_px=base_area, baseline_cases=baseline_cases, visit_cases=visit_cases,
        boundary_px=boundary_px * factor, residual_px=residual_px,
        work_to_full_px=work_to_full_px,
    )
    # Extremes for the unseen part: fully repigmented, or not at all.
    low_area = min(intervals["depigmented_area_px"][0], float(partial.area_px))
    high_area = max(intervals["depigmented_area_px"][1], float(partial.area_px + unseen))
    intervals["depigmented_area_px"] = (low_area, high_area)
    intervals["repigmentation_pct"] = (
        min(intervals["repigmentation_pct"][0], (base_area - high_area) / base_area * 100.0),
        max(intervals["repigmentation_pct"][1], (base_area - low_area) / base_area * 100.0),
    )
    if score.area_cm2 is not None and score.area_px > 0:
        cm2_per_px = score.area_cm2 / score.area_px
        intervals["depigmented_area_cm2"] = (low_area * cm2_per_px, high_area * cm2_per_px)
    return score, intervals


def _boundary_length(mask: np.ndarray) -> float:
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    return float(sum(cv2.arcLength(c, True) for c in contours))


def figure_intervals(
    score: VisitScore,
    *,
    baseline_area_px: int,
    baseline_cases: tuple[int, int, int],
    visit_cases: tuple[int, int, int],
    boundary_px: float,
    residual_px: float,
    work_to_full_px: float = 1.0,
) -> dict[str, tuple[float, float]]:
    """Plausible ranges of a visit's area and percent figures.

    Parameters
    ----------
    score : VisitScore
        The nominal figures.
    baseline_area_px : int
        Nominal baseline area, full-resolution px.
    baseline_cases, visit_cases : tuple of int
        Areas at the low, nominal and high threshold of the decision range
        (:data:`DECISION_RANGE`), in working pixels of the baseline frame.
    boundary_px : float
        Length of the visit mask's boundary, full-resolution px.
    residual_px : float
        Registration residual (median reprojection error), full-resolution px.
    work_to_full_px : float, optional
        Full-resolution pixels per working pixel of the baseline frame, used
        when a case has no area at the nominal threshold.

    Returns
    -------
    dict
        ``depigmented_area_px``, ``depigmented_area_cm2`` (when calibrated)
        and ``repigmentation_pct``, each ``(low, high)``.

    Notes
    -----
    The threshold is shared by the baseline and the visit, so its two ends are
    evaluated as paired cases; the registration error moves only the visit's
    boundary, by ``boundary_px x residual_px`` pixels of area either way.
    """
    def to_full(cases: tuple[int, int, int], nominal_full: int) -> list[float]:
        # Scale by the nominal full/working ratio; with nothing at the nominal
        # threshold, by the plain pixel-area factor (the range must not collapse).
        nominal_work = cases[1]
        ratio = nominal_full / nominal_work if nominal_work else work_to_full_px
        return [c * ratio for c in cases]

    visit_full = to_full(visit_cases, score.area_px)
    base_full = to_full(baseline_cases, baseline_area_px)
    shift = boundary_px * residual_px
    areas, percents = [], []
    for base_area, visit_area in zip(base_full, visit_full):
        for delta in (-shift, 0.0, shift):
            area = max(visit_area + delta, 0.0)
            areas.append(area)
            if base_area > 0:
                percents.append((base_area - area) / base_area * 100.0)
    low_area, high_area = min(areas + [score.area_px]), max(areas + [score.area_px])
    low_pct = min(percents + [score.repigmentation_pct])
    high_pct = max(percents + [score.repigmentation_pct])
    intervals = {
        "depigmented_area_px": (float(low_area), float(high_area)),
        "repigmentation_pct": (float(low_pct), float(high_pct)),
    }
    if score.area_cm2 is not None and score.area_px > 0:
        cm2_per_px = score.area_cm2 / score.area_px
        intervals["depigmented_area_cm2"] = (low_area * cm2_per_px, high_area * cm2_per_px)
    return intervals


def analyze_series(
    series_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    treatment_start: _dt.date | str | None = None,
    marker_mm: float = DEFAULT_MARKER_MM,
    roi=None,
    labels: np.ndarray | None = None,
    visit_labels: Mapping[str, np.ndarray] | None = None,
    working_size: int = DEFAULT_WORKING_SIZE,
    progress: Callable[[int, int, str], None] | None = None,
    keep_images: bool = False,
    limits: Limits | None = None,
    clinical: Callable[[SeriesResult], dict] | None = None,
) -> SeriesResult:
    """Score every visit of a series folder against its baseline photo.

    Parameters
    ----------
    series_dir : str or Path
        Folder with the photos and optionally ``visits.csv`` (columns
        ``date,image``). Without it dates come from EXIF, then file names.
    out_dir : str or Path, optional
        When given, ``results.json``, ``results.csv`` and ``masks/<stem>.png``
        are written there (see :mod:`repigment.series.results`).
    treatment_start : datetime.date or str, optional
        Start of treatment (ISO date string accepted); default the baseline date.
    marker_mm : float, optional
        Printed side of the ArUco scale marker, mm (default 20).
    roi : tuple of 4 numbers or ndarray of shape (N, 2), optional
        Region of interest in baseline-photo pixels.
    labels : ndarray of int, shape (H, W), optional
        Strokes on the upright baseline photo, carried to every visit (see
        :func:`analyze_photos`).
    visit_labels : mapping of str to ndarray, optional
        Strokes on later visits' own upright photos, by file name (see
        :func:`analyze_photos`).
    working_size : int, optional
        Longest side at which photos are analysed (default :data:`DEFAULT_WORKING_SIZE`, 900).
    progress : callable, optional
        ``progress(done, total, image_name)`` after each photo is scored. The
        baseline and the visits of its first weeks are scored together, once
        two of those visits have settled the baseline footprint (see
        :func:`repigment.series.selfcheck.unconfirmed_spots`).
    keep_images : bool, optional
        Keep registered visit images for display (see :func:`analyze_photos`).
    limits : Limits, optional
        Processing limits (see :class:`repigment.limits.Limits`).
    clinical : callable, optional
        ``clinical(result) -> dict``, for example a
        :func:`repigment.clinical.summary.clinical_summary` with the patch's region
        and hand unit; its block is written into ``results.json`` (with
        ``out_dir``), which is then written once, complete.

    Returns
    -------
    SeriesResult

    Raises
    ------
    SeriesError, MissingDateError
        If the folder, its visits file or its baseline photo is unusable.
    InvalidParameterError
        If an option is out of range, or ``visit_labels`` names a photo that
        is not a later visit of the series.
    """
    from .discovery import parse_iso_date
    from .results import MaskWriter, write_results

    if isinstance(treatment_start, str):
        treatment_start = parse_iso_date(treatment_start, what="treatment start")
    photos = discover_series(series_dir)
    writer = MaskWriter(Path(out_dir)) if out_dir is not None else None
    result = analyze_photos(
        photos,
        treatment_start=treatment_start,
        marker_mm=marker_mm,
        roi=roi,
        labels=labels,
        visit_labels=visit_labels,
        working_size=working_size,
        mask_writer=writer,
        progress=progress,
        keep_images=keep_images,
        limits=limits,
    )
    result.series_dir = str(series_dir)
    if out_dir is not None:
        write_results(result, Path(out_dir), clinical=None if clinical is None else clinical(result))
    return result


@dataclass(frozen=True)
class ImageSegmentation:
    """Result of :func:`segment_image`.

    Attributes
    ----------
    mask : ndarray of bool, shape (H, W)
        Depigmented skin at the upright photo's full size.
    area_px : int
    area_cm2 : float or None
        With a scale marker in the photo.
    mm_per_px : float or None
    notes : tuple of str
    method : str
        The segmentation model used (:attr:`repigment.core.segmentation.Segmentation.method`).
    confidence : float
        0-1, how clearly the depigmented skin stands out.
    reason : str or None
        Why the confidence is below 1, in words.
    """

    mask: np.ndarray
    area_px: int
    area_cm2: float | None
    mm_per_px: float | None
    notes: tuple[str, ...]
    method: str = "od-field"
    confidence: float = 1.0
    reason: str | None = None


def segment_image(
    source,
    *,
    roi=None,
    labels: np.ndarray | None = None,
    marker_mm: float = DEFAULT_MARKER_MM,
    working_size: int = DEFAULT_WORKING_SIZE,
    limits: Limits | None = None,
) -> ImageSegmentation:
    """Segment the depigmented skin of one photo.

    Parameters
    ----------
    source : path, bytes or file-like
        The photo.
    roi : tuple of 4 numbers or ndarray of shape (N, 2), optional
        Region of interest in the upright photo's pixels: only depigmentation
        inside it counts, and it guides the segmentation (a box drawn around
        the patch finds it where the automatic mode does not engage).
    labels : ndarray of int, shape (H, W), optional
        Strokes on the upright photo: 0 unlabelled, 1 depigmented skin, 2
        normal skin, 3 not skin; a colour model is learned from them.
    marker_mm : float, optional
        Printed side of the scale marker, mm.
    working_size : int, optional
        Longest side at which the photo is analysed.
    limits : Limits, optional
        Processing limits (see :class:`repigment.limits.Limits`).

    Returns
    -------
    ImageSegmentation
        The mask at the photo's full upright size, and its area.
    """
    _validate_options(marker_mm, working_size)
    limits = limits or Limits()
    prepared = prepare_photo(
        source, marker_mm=marker_mm, working_size=working_size, limits=limits,
        deadline=Deadline(limits.max_seconds_per_photo), roi=roi, labels=labels,
    )
    width, height = prepared.original_size
    mask = _full_resolution_mask(prepared.segmentation.mask, None, prepared.rgb.shape[:2], prepared.original_size)
    if roi is not None:
        mask &= roi_mask((height, width), roi)
    marker_full = None if prepared.marker is None else prepared.marker.scaled(1.0 / prepared.scale)
    mm_per_px = None if marker_full is None else marker_full.mm_per_px
    area = int(mask.sum())
    return ImageSegmentation(
        mask=mask,
        area_px=area,
        area_cm2=None if marker_full is None else plane_area_mm2(mask, marker_full) / 100.0,
        mm_per_px=mm_per_px,
        notes=prepared.segmentation.notes,
        method=prepared.segmentation.method,
        confidence=prepared.segmentation.confidence,
        reason=prepared.segmentation.reason,
    )
