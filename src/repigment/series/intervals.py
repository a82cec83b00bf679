"""The plausible range of each visit's figures.

A figure's range covers what the segmentation's decision allows (the
threshold moved within :data:`DECISION_RANGE`), the registration's residual
error along the patch's border, and any part of the baseline footprint a
visit does not show (extrapolated).
"""

from __future__ import annotations

import numpy as np

from ..core.registration import warp_to_baseline
from ..core.scoring import VisitScore, score_visit
from ..core.segmentation import DEPIGMENTED_FRACTION, Segmentation

__all__ = ["DECISION_RANGE", "DECISION_RANGE_WORDS", "figure_intervals"]


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
