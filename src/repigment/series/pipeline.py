"""Score a series of visit photos against its baseline.

This is the layer above the core stages: it loads each photo at working
resolution, calibrates it, segments it, registers it to the baseline, maps the
mask into the baseline frame and scores it. Only the baseline's working image
and footprint are kept at full detail between visits, so memory barely grows
with the series.
A visit that cannot be scored (unreadable, not aligned, patch out of frame) is
reported with its reason and the series goes on. Each visit keeps only its
small working-resolution mask in memory (and, on request, its registered
working image); full-resolution masks go to the caller's mask writer and are
dropped. Nothing is written here: callers write the results (see
:mod:`repigment.series.results`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..core.calibration import DEFAULT_MARKER_MM, MarkerDetection, plane_area_mm2
from ..core.registration import (
    REGISTRATION_METHOD,
    ImageFeatures,
    Registration,
    compose_scaling,
    image_features,
    visible_in_baseline,
)
from ..core.scoring import find_milestones, weeks_since
from ..core.segmentation import SEGMENTATION_METHOD, Segmentation, depigmented_mask, resize_labels, roi_mask
from ..errors import InvalidParameterError, RepigmentError, SeriesError
from ..limits import Deadline, Limits
from .discovery import VisitPhoto, discover_series
from .footprint import (
    _EARLY_WEEKS,
    _SPOT_EVIDENCE_VISITS,
    _baseline_footprint,
    _dilate_disk,
    _Footprint,
    _full_resolution_mask,
    _in_first_weeks,
    _spots_early_visits_do_not_show,
    _spots_note,
)
from .intervals import _boundary_length, _score_with_intervals, _threshold_cases, figure_intervals
from .photos import DEFAULT_WORKING_SIZE, PreparedPhoto, prepare_photo
from .results import SeriesResult, VisitErrorCode, VisitResult
from .selfcheck import neighbour_course, temporal_outliers
from .visit import _check_against_evidence, _register_visit, _surrounding_skin

__all__ = [
    "DEFAULT_WORKING_SIZE",
    "REGISTRATION_METHOD",
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

# Below this many noise levels of contrast at baseline, every visit carries a warning.
_LOW_CONTRAST_SIGMAS = 5.0
# A third of the patch repigmented within the first 8 weeks (_EARLY_WEEKS) more
# likely means the baseline mask holds something that is not vitiligo (glare,
# sheen, pale normal skin): treatment is not that fast.
_EARLY_IMPLAUSIBLE_PCT = 30.0


def _validate_options(marker_mm: float, working_size: int) -> None:
    if not (isinstance(working_size, (int, np.integer)) and 256 <= working_size <= 4096):
        raise InvalidParameterError(f"working_size must be an integer from 256 to 4096, got {working_size!r}")
    if not (np.isfinite(marker_mm) and 1.0 <= marker_mm <= 500.0):
        raise InvalidParameterError(f"marker size must be between 1 and 500 mm, got {marker_mm}")


def cv2_error() -> type[Exception]:
    """OpenCV's exception class (imported lazily)."""
    import cv2

    return cv2.error


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
    series_dir: str | None = None,
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
    series_dir : str, optional
        The folder the photos came from, kept in the result.

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
    ordered = _checked_photos(photos, limits)
    baseline_photo = ordered[0]
    # Kept as given: a mapping may decode each visit's strokes only when that
    # visit is prepared, so a series never holds every visit's strokes at once.
    own_labels = visit_labels if visit_labels is not None else {}
    with_strokes = frozenset(own_labels)  # the names only: membership must not decode anything
    unknown = sorted(with_strokes - {photo.name for photo in ordered[1:]})
    if unknown:
        raise InvalidParameterError(
            f"strokes were given for {', '.join(unknown)}, which is not a later visit of this series")
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")

    if progress is not None:
        progress(0, len(ordered), baseline_photo.name)
    ctx, footprint = _baseline_context(
        baseline_photo, treatment_start=treatment_start or baseline_photo.date, marker_mm=marker_mm, roi=roi,
        labels=labels, own_labels=own_labels, with_strokes=with_strokes, working_size=working_size, limits=limits,
        keep_images=keep_images, mask_writer=mask_writer)
    series_notes = list(ctx.notes)  # the settled footprint may add one

    visits: list[VisitResult] = []
    weeks_list: list[float] = []
    improvement: list[float | None] = []
    implausible: dict[int, float] = {}  # visit index -> its week, for implausibly fast responses

    def score(staged: _StagedVisit) -> None:
        if _score_visit(ctx, footprint, staged):
            implausible[staged.index] = staged.visit.weeks_since_start
        visit = staged.visit
        visits.append(visit)
        weeks_list.append(visit.weeks_since_start)
        improvement.append(visit.score.repigmentation_pct if visit.ok and visit.score else None)
        if progress is not None:
            progress(staged.index + 1, len(ordered), ordered[staged.index].name)

    # The baseline footprint is settled, and visits scored against it, once
    # the visits of the first weeks have been registered: a spot of the
    # baseline mask none of them shows is left out of it (see
    # repigment.series.selfcheck.unconfirmed_spots). Until then those few visits wait.
    waiting: list[_StagedVisit] = []
    settled = labels is not None  # the clinician's strokes set the baseline mask: their call
    with (_Prefetcher(functools.partial(_prepare_visit, ctx), ordered[1:], enabled=prefetch) as prefetched,
          _one_blas_thread(prefetch)):
        upcoming = iter(prefetched)
        for index, photo in enumerate(ordered):
            staged = _register(ctx, footprint, index, photo, series_notes, None if index == 0 else next(upcoming))
            if settled:
                score(staged)
                continue
            waiting.append(staged)
            # Evidence: registered visits of the first weeks, both of treatment and since the
            # baseline photo (a visit under a strong light is evidence too when its mask still
            # shows the patch, see unconfirmed_spots).
            early = [s for s in waiting[1:] if s.segmentation is not None and s.visit.error is None
                     and _in_first_weeks(s.visit, baseline_photo.date)]
            beyond = index > 0 and not _in_first_weeks(staged.visit, baseline_photo.date)
            if len(early) >= _SPOT_EVIDENCE_VISITS or beyond or index == len(ordered) - 1:
                settled = True
                footprint, note = _settled_footprint(ctx, footprint, early)
                if note is not None:
                    series_notes.append(note)
                    for entry in waiting:
                        entry.visit.notes.append(note)
                for entry in waiting:
                    score(entry)
                waiting.clear()

    _review_course(visits, weeks_list, improvement, implausible)
    for visit in visits:
        visit._finish()
    base_seg = ctx.base.segmentation
    # Milestones count only figures no evidence contradicts.
    reviewed = [None if visit.needs_review else value for visit, value in zip(visits, improvement)]
    return SeriesResult(
        treatment_start=ctx.start,
        baseline=baseline_photo.name,
        baseline_size=ctx.base.original_size,
        mm_per_px=None if ctx.marker_full is None else ctx.marker_full.mm_per_px,
        marker_mm=marker_mm,
        marker_id=None if ctx.base.marker is None else ctx.base.marker.marker_id,
        threshold=base_seg.threshold,
        contrast=base_seg.contrast,
        milestones=find_milestones(weeks_list, reviewed),
        visits=visits,
        roi=None if roi is None else tuple(np.asarray(roi).ravel().tolist()),
        working_size=working_size,
        created_utc=created,
        baseline_working_rgb=ctx.base.rgb,
        segmentation_model=base_seg.method,
        segmentation_confidence=base_seg.confidence,
        segmentation_reason=base_seg.reason,
        labels_used=labels is not None,
        series_dir=series_dir,
    )


def _checked_photos(photos: Sequence[VisitPhoto], limits: Limits) -> list[VisitPhoto]:
    """The photos in date order (stable), once each and within the visit limit."""
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
    return ordered


@dataclass(frozen=True, eq=False)
class _SeriesContext:
    """What every visit of a series is judged with: the run's options and the baseline.

    Built once, from the baseline photo, by :func:`_baseline_context`; the
    baseline footprint the visits are scored against is settled apart from it
    (see :func:`analyze_photos`).
    """

    # The run
    marker_mm: float
    working_size: int
    limits: Limits
    keep_images: bool
    mask_writer: Callable[[VisitResult, np.ndarray], str] | None
    start: _dt.date
    own_labels: Mapping[str, np.ndarray]  # a visit's own strokes, by photo name (may decode lazily)
    with_strokes: frozenset[str]  # the photo names own_labels holds
    # The baseline
    base: PreparedPhoto
    labels_work: np.ndarray | None  # the clinician's strokes in its working frame
    region_work: np.ndarray | None  # the region of interest in its working frame
    region_full: np.ndarray | None  # and at its full size
    set_aside: np.ndarray | None  # lighter skin set aside as not the patch (Segmentation.set_aside)
    marker_full: MarkerDetection | None  # the scale marker at full size
    features: ImageFeatures  # registration features on its skin outside the patch
    shared_skin: np.ndarray  # normal skin away from the patch, that visits are colour-matched on
    context: np.ndarray  # all but the patch: background, hair and marker show a haze
    notes: tuple[str, ...]  # what every visit's notes start with

    @functools.cached_property
    def features_wide(self) -> ImageFeatures:
        """Registration features of the whole frame outside the patch, found when a visit first needs them."""
        return image_features(self.base.rgb, self.base.registration_mask(skin_only=False))

    def segment_matched(self, rgb: np.ndarray, exclude: np.ndarray | None,
                        skin_as_taken: np.ndarray) -> Segmentation:
        """A colour-matched visit photo segmented as the baseline asks (see :func:`_register_visit`)."""
        seg = self.base.segmentation
        # Every visit keeps only the kind of regions the baseline kept (a core of full depigmentation).
        return depigmented_mask(rgb, exclude=exclude, threshold=seg.threshold, method=seg.threshold_method,
                                reference_level=seg.depigmented_level, core_factor=seg.core_factor,
                                skin_split=seg.skin_split,
                                extra_skin=skin_as_taken if seg.threshold_method == "od-field" else None)


def _baseline_context(
    baseline_photo: VisitPhoto,
    *,
    treatment_start: _dt.date,
    marker_mm: float,
    roi,
    labels: np.ndarray | None,
    own_labels: Mapping[str, np.ndarray],
    with_strokes: frozenset[str],
    working_size: int,
    limits: Limits,
    keep_images: bool,
    mask_writer: Callable[[VisitResult, np.ndarray], str] | None,
) -> tuple[_SeriesContext, _Footprint]:
    """Prepare the baseline photo, and find its footprint and what every visit is judged with.

    Raises
    ------
    SeriesError
        If the baseline photo is unusable or shows no depigmented skin (in
        the region of interest).
    """
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
    # Normal skin of the baseline that later visits are colour-matched on: away from the patch.
    near_patch = _dilate_disk(base_seg.mask | ~not_set_aside, 0.03 * max(work_shape))
    context = _SeriesContext(
        marker_mm=marker_mm, working_size=working_size, limits=limits, keep_images=keep_images,
        mask_writer=mask_writer, start=treatment_start, own_labels=own_labels, with_strokes=with_strokes,
        base=base,
        labels_work=None if labels is None else resize_labels(labels, work_shape),
        region_work=region_work, region_full=region_full, set_aside=base_set_aside,
        marker_full=None if base.marker is None else base.marker.scaled(1.0 / base.scale),
        features=image_features(base.rgb, base.registration_mask()),
        shared_skin=_surrounding_skin(base) & ~near_patch,
        context=~near_patch,
        notes=_baseline_notes(base_seg, region_work),
    )
    return context, footprint


def _baseline_notes(base_seg: Segmentation, region_work: np.ndarray | None) -> tuple[str, ...]:
    """What the baseline's segmentation asks every visit's reader to keep in mind."""
    notes = []
    if base_seg.method == "colour-contrast" and base_seg.reason:
        notes.append(
            f"baseline mask: {base_seg.reason} (confidence {base_seg.confidence:.2f}); check its outline, and "
            "where it misses draw strokes on the baseline (labels) so every visit is judged by them"
        )
    if base_seg.skin_split is not None:
        notes.append(
            "baseline photo: a skin-coloured background or cloth was set aside (darker than the patient's skin, it "
            "was not taken for normal skin; paler, not for the patch), and so is its colour at every visit: check "
            "the baseline outline"
        )
    base_set_aside = base_seg.set_aside
    if base_set_aside is not None and region_work is None:
        # Under a region of interest, what stays aside lies outside it: no concern of the series.
        aside_share = np.count_nonzero(base_set_aside) / (np.count_nonzero(base_seg.mask)
                                                          + np.count_nonzero(base_set_aside))
        notes.append(
            f"baseline photo: skin above the threshold but barely lighter than the skin around it ({aside_share:.0%} "
            "of the area above it; uneven light or the edge of a limb) was left out of the patch, here and at "
            "every visit judged at the baseline's threshold: check the baseline outline"
        )
    contrast_sigmas = base_seg.contrast / max(base_seg.normal_sigma, 1e-6)
    if contrast_sigmas < _LOW_CONTRAST_SIGMAS:
        notes.append(
            f"depigmented skin is only faintly lighter than normal skin here ({contrast_sigmas:.1f} noise levels): "
            "figures are uncertain; a Wood's lamp (UV) photo shows such patches better"
        )
    return tuple(notes)


def _prepare_visit(ctx: _SeriesContext, photo: VisitPhoto) -> tuple[PreparedPhoto, ImageFeatures, Deadline]:
    """Everything about a visit that does not need the baseline's registration (run ahead, in a thread)."""
    seg = ctx.base.segmentation
    deadline = Deadline(ctx.limits.max_seconds_per_photo)
    prepared = prepare_photo(
        photo.path, marker_mm=ctx.marker_mm, threshold=seg.threshold, working_size=ctx.working_size,
        limits=ctx.limits, deadline=deadline, reference_level=seg.depigmented_level, method=seg.threshold_method,
        labels=ctx.own_labels[photo.name] if photo.name in ctx.with_strokes else None, core_factor=seg.core_factor,
        skin_split=seg.skin_split,
    )
    features = image_features(prepared.rgb, prepared.registration_mask())
    deadline.pause()  # waiting for its turn is not time spent on this photo
    return prepared, features, deadline


def _register(
    ctx: _SeriesContext,
    footprint: _Footprint,
    index: int,
    photo: VisitPhoto,
    notes: Sequence[str],
    prepared_visit: Callable[[], tuple[PreparedPhoto, ImageFeatures, Deadline]] | None,
) -> _StagedVisit:
    """One visit registered to the baseline and segmented, waiting to be scored.

    ``prepared_visit`` returns what :func:`_prepare_visit` made of the photo
    (or raises what it raised); the baseline (``index`` 0) has none. A visit
    that cannot be registered carries its error and the series goes on.
    """
    visit = VisitResult(image=photo.name, date=photo.date, weeks_since_start=weeks_since(ctx.start, photo.date),
                        notes=list(notes))
    staged = _StagedVisit(index=index, visit=visit)
    try:
        if prepared_visit is None:
            visit.registration = Registration(ok=True, homography=np.eye(3), score=1.0, reason=None, residual_px=0.0)
            staged.segmentation, staged.h_work = ctx.base.segmentation, np.eye(3)
            staged.scale, visit.footprint_coverage = ctx.base.scale, 1.0
            if ctx.keep_images:
                visit.registered_rgb = ctx.base.rgb
        else:
            prepared, features, deadline = prepared_visit()
            deadline.resume()
            own_strokes = photo.name in ctx.with_strokes
            aligned = _register_visit(
                visit, prepared, features, deadline, ctx.base, ctx.features, lambda: ctx.features_wide,
                footprint.work, ctx.region_work, keep_images=ctx.keep_images,
                base_labels_work=ctx.labels_work, own_strokes=own_strokes,
                match_colour=(ctx.shared_skin, ctx.context, ctx.segment_matched),
                base_set_aside=ctx.set_aside,
            )
            visit.own_strokes = own_strokes and aligned is not None
            if visit.own_strokes:
                visit.notes.append("judged by the clinician's strokes on this photo rather than the "
                                   "baseline's threshold")
            if aligned is not None:
                staged.segmentation, staged.h_work, staged.scale = aligned
                staged.prepared = prepared
    except RepigmentError as exc:
        visit.fail(VisitErrorCode.of(exc), str(exc))
    except (MemoryError, OSError, ValueError, np.linalg.LinAlgError, cv2_error()) as exc:
        visit.fail(VisitErrorCode.FAILED, _one_line_error(exc))
    return staged


def _settled_footprint(
    ctx: _SeriesContext, footprint: _Footprint, early: Sequence[_StagedVisit]
) -> tuple[_Footprint, str | None]:
    """The footprint without the spots the ``early`` visits do not show, and the note that says so."""
    try:
        spots = _spots_early_visits_do_not_show(footprint.work, early, ctx.base.segmentation.mask.shape)
        if spots.any():
            footprint = _baseline_footprint(ctx.base, ctx.region_work, ctx.region_full, usable=footprint.usable,
                                            left_out=spots)
            return footprint, _spots_note(spots, footprint.work, [s.visit.weeks_since_start for s in early])
    except (MemoryError, ValueError, cv2_error()):
        pass  # the footprint as found: the check is a refinement, not a condition
    return footprint, None


def _score_visit(ctx: _SeriesContext, footprint: _Footprint, staged: _StagedVisit) -> bool:
    """Score, check and write one registered visit against the settled baseline footprint.

    Returns whether its response is implausibly fast for the first weeks of
    treatment (a note says so; :func:`_review_course` decides whom to doubt).
    """
    visit, index, segmentation, h_work = staged.visit, staged.index, staged.segmentation, staged.h_work
    base = ctx.base
    work_shape = base.segmentation.mask.shape
    implausibly_fast = False
    try:
        if visit.error is None and segmentation is not None:
            if index == 0:
                visit.mask_baseline = footprint.work
            visit.threshold = segmentation.threshold
            h_full = compose_scaling(h_work, moving_scale=1.0, baseline_scale=base.scale)
            visit.homography_full = compose_scaling(h_work, moving_scale=staged.scale, baseline_scale=base.scale)
            full_mask = footprint.full if index == 0 else _full_resolution_mask(
                segmentation.mask, h_work, work_shape, base.original_size)
            if ctx.region_full is not None and index > 0:
                full_mask &= ctx.region_full
            area_cm2 = None if ctx.marker_full is None else plane_area_mm2(full_mask, ctx.marker_full) / 100.0
            # Any unseen part of the baseline footprint is extrapolated (with a wider range).
            visible = None if visit.footprint_coverage >= 0.999 else visible_in_baseline(
                segmentation.mask.shape, h_full, full_mask.shape)
            visit.score, visit.intervals = _score_with_intervals(
                footprint.full, full_mask, area_cm2, visible,
                # Traced in the working frame (far fewer pixels) and scaled to full resolution.
                boundary_px=_boundary_length(visit.mask_baseline) / base.scale,
                baseline_cases=footprint.cases,
                visit_cases=footprint.cases if index == 0 else _threshold_cases(
                    segmentation, h_work, work_shape, ctx.region_work),
                residual_px=visit.registration.residual_px / base.scale,
                work_to_full_px=1.0 / base.scale**2,
            )
            if index > 0:
                _check_against_evidence(visit, staged.prepared, h_work, footprint.work, footprint.evidence,
                                        footprint.area_full)
            if ctx.mask_writer is not None:
                visit.mask_path = ctx.mask_writer(visit, full_mask)
            if visit.score.new_depigmentation_px > 0.05 * footprint.area_full and index > 0:
                visit.notes.append(
                    f"new depigmentation outside the baseline footprint: {visit.score.new_depigmentation_px} px"
                )
            if (visit.weeks_since_start <= _EARLY_WEEKS
                    and visit.score.repigmentation_pct >= _EARLY_IMPLAUSIBLE_PCT):
                implausibly_fast = True
                visit.notes.append(
                    f"{visit.score.repigmentation_pct:.0f}% repigmentation by week "
                    f"{visit.weeks_since_start:.0f} is faster than treatment repigments skin (faint "
                    "signs in weeks 4-8): check that the baseline photo shows no glare, sheen or light "
                    "normal skin taken for depigmentation before trusting these figures"
                )
            del full_mask
    except RepigmentError as exc:
        visit.fail(VisitErrorCode.of(exc), str(exc))
    except (MemoryError, OSError, ValueError, np.linalg.LinAlgError, cv2_error()) as exc:
        visit.fail(VisitErrorCode.FAILED, _one_line_error(exc))
    staged.prepared = None  # the photo is not needed any more
    return implausibly_fast


def _review_course(
    visits: list[VisitResult], weeks: list[float], improvement: list[float | None], implausible: dict[int, float]
) -> None:
    """Check each visit against its neighbours in time, and say whom an implausibly fast response puts in doubt.

    ``implausible`` maps the index of each visit whose response was
    implausibly fast for the first weeks (see :func:`_score_visit`) to its week.
    """
    _check_course(visits, weeks, improvement)
    # When every scored follow-up visit is contradicted, what they share, the
    # baseline photo, is what is in doubt; otherwise an implausibly fast early
    # response that is contradicted is that visit's own problem.
    followups = [visit for visit in visits[1:] if visit.ok]
    all_contradicted = len(followups) >= 3 and all(visit.needs_review for visit in followups)
    isolated = set() if all_contradicted else {index for index in implausible if visits[index].needs_review}
    for index in isolated:
        visits[index].notes[:] = [n for n in visits[index].notes if "faster than treatment" not in n]
        visits[index].flag_for_review(
            f"{improvement[index]:.0f}% repigmentation by week {weeks[index]:.0f} is faster than treatment "
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
    prepared: PreparedPhoto | None = None  # for the evidence checks; None for the baseline


def _one_line_error(exc: BaseException) -> str:
    """One strange photo must not stop the series; say what happened in one line."""
    message = " ".join(str(exc).split())[:200]
    return f"could not process this photo ({type(exc).__name__}: {message})"


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


def analyze_series(
    series_dir: str | Path,
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
    mask_writer: Callable[[VisitResult, np.ndarray], str] | None = None,
) -> SeriesResult:
    """Score every visit of a series folder against its baseline photo.

    Nothing is written here: the caller writes what it wants, such as
    :func:`repigment.series.results.write_results` for ``results.json`` and
    ``results.csv`` (with the clinical block it computed from the result),
    and passes a ``mask_writer`` such as
    :class:`repigment.series.results.MaskWriter` for the full-resolution masks,
    which are written as each visit is scored and never kept.

    Parameters
    ----------
    series_dir : str or Path
        Folder with the photos and optionally ``visits.csv`` (columns
        ``date,image``). Without it dates come from EXIF, then file names.
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
    mask_writer : callable, optional
        ``mask_writer(visit, full_resolution_mask) -> relative_path`` (see
        :func:`analyze_photos`).

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

    if isinstance(treatment_start, str):
        treatment_start = parse_iso_date(treatment_start, what="treatment start")
    return analyze_photos(
        discover_series(series_dir),
        treatment_start=treatment_start,
        marker_mm=marker_mm,
        roi=roi,
        labels=labels,
        visit_labels=visit_labels,
        working_size=working_size,
        mask_writer=mask_writer,
        progress=progress,
        keep_images=keep_images,
        limits=limits,
        series_dir=str(series_dir),
    )


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
