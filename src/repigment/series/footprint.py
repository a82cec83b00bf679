"""The baseline footprint: the baseline's depigmented skin that every visit is measured against.

It is settled once the visits of the first weeks are registered: small light
spots of the baseline mask that none of them shows (glare, sheen) are left out
of it (see :func:`repigment.series.selfcheck.unconfirmed_spots`).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..core.registration import visible_in_baseline
from .intervals import _threshold_cases
from .photos import PreparedPhoto
from .results import VisitResult
from .selfcheck import footprint_contrast, unconfirmed_spots

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import _StagedVisit

# Ruxolitinib cream repigments slowly: faint signs in weeks 4-8, visible
# response in weeks 12-24 (Opzelura label; TRuE-V1/V2 trials). The baseline
# footprint is settled on the visits of these first weeks.
_EARLY_WEEKS = 8.0


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


def _dilate_disk(mask: np.ndarray, radius: float) -> np.ndarray:
    """``mask`` grown by a disk of ``radius`` pixels."""
    import cv2

    r = max(1, int(round(radius)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask.view(np.uint8), kernel).astype(bool)
