"""Scores of repigmentation: area, percent change, VASI residual level, milestones.

All areas are measured in the baseline photo's pixel frame, after each visit's
mask has been registered onto it, so visits are directly comparable.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import InvalidParameterError

__all__ = [
    "SCORE_METHOD",
    "REPIGMENTATION_METHOD",
    "VASI_LEVEL_METHOD",
    "WEEKS_METHOD",
    "VASI_LEVELS",
    "VisitScore",
    "Milestones",
    "repigmentation_pct",
    "residual_fraction",
    "vasi_residual_level",
    "weeks_since",
    "score_visit",
    "find_milestones",
]

#: The method ids saved with each figure these functions measure (the names of the methods, kept
#: as first saved so records stay comparable; see :class:`repigment.series.results.Measurement`).
SCORE_METHOD = "repigment.scoring.score_visit"
REPIGMENTATION_METHOD = "repigment.scoring.repigmentation_pct"
VASI_LEVEL_METHOD = "repigment.scoring.vasi_residual_level"
WEEKS_METHOD = "repigment.scoring.weeks_since"

#: Residual depigmentation levels of the VASI (Hamzavi et al. 2004), percent.
VASI_LEVELS = (0, 10, 25, 50, 75, 90, 100)


@dataclass(frozen=True)
class VisitScore:
    """Scores of one visit against the baseline.

    Attributes
    ----------
    area_px : int
        Depigmented area, baseline-frame pixels.
    area_cm2 : float or None
        The same in cm² (``None`` without a scale marker).
    repigmentation_pct : float
        ``(A0 - At) / A0 x 100``; negative when the depigmentation spread.
    residual_fraction : float
        Share of the baseline footprint still depigmented, in [0, 1].
    vasi_residual_depigmentation : int
        The nearest VASI level (0, 10, 25, 50, 75, 90 or 100) to the residual.
    new_depigmentation_px : int
        Depigmented pixels outside the baseline footprint (spreading).
    """

    area_px: int
    area_cm2: float | None
    repigmentation_pct: float
    residual_fraction: float
    vasi_residual_depigmentation: int
    new_depigmentation_px: int


@dataclass(frozen=True)
class Milestones:
    """First week since treatment start at which an improvement level is reached."""

    vasi50_week: float | None
    vasi75_week: float | None
    vasi90_week: float | None


def repigmentation_pct(baseline_area: float, visit_area: float) -> float:
    """Percent repigmentation against baseline, ``(A0 - At) / A0 x 100``.

    Parameters
    ----------
    baseline_area, visit_area : float
        Depigmented areas (any one unit), non-negative.

    Returns
    -------
    float
        100 when fully repigmented, 0 when unchanged, negative when spreading.

    Raises
    ------
    InvalidParameterError
        If the baseline area is not positive or an area is negative.

    Examples
    --------
    >>> repigmentation_pct(200, 50)
    75.0
    >>> repigmentation_pct(200, 260)
    -30.0
    """
    if not baseline_area > 0:
        raise InvalidParameterError("the baseline has no depigmented area, so percent repigmentation is undefined")
    if visit_area < 0:
        raise InvalidParameterError(f"areas cannot be negative, got {visit_area}")
    return float((baseline_area - visit_area) / baseline_area * 100.0)


def residual_fraction(baseline_mask: np.ndarray, visit_mask: np.ndarray) -> float:
    """Share of the baseline footprint that is still depigmented.

    Examples
    --------
    >>> import numpy as np
    >>> base = np.zeros((4, 4), bool); base[:2] = True
    >>> later = np.zeros((4, 4), bool); later[0] = True; later[3] = True
    >>> residual_fraction(base, later)
    0.5
    """
    if baseline_mask.shape != visit_mask.shape:
        raise InvalidParameterError(
            f"masks must share the baseline frame, got {baseline_mask.shape} and {visit_mask.shape}"
        )
    footprint = int(np.count_nonzero(baseline_mask))
    if footprint == 0:
        raise InvalidParameterError("the baseline mask is empty")
    return float(np.count_nonzero(baseline_mask & visit_mask) / footprint)


def vasi_residual_level(fraction: float) -> int:
    """Nearest VASI residual-depigmentation level to a residual fraction.

    Parameters
    ----------
    fraction : float
        Share of the baseline footprint still depigmented, in [0, 1].

    Returns
    -------
    int
        One of 0, 10, 25, 50, 75, 90, 100 (percent). The level boundaries are
        the midpoints between levels, so the mapping is monotone.

    Examples
    --------
    >>> [vasi_residual_level(f) for f in (0.0, 0.08, 0.3, 0.5, 0.7, 0.9, 0.97)]
    [0, 10, 25, 50, 75, 90, 100]
    """
    if not (np.isfinite(fraction) and -1e-9 <= fraction <= 1 + 1e-9):
        raise InvalidParameterError(f"residual fraction must be within [0, 1], got {fraction}")
    percent = float(fraction) * 100.0
    return int(min(VASI_LEVELS, key=lambda level: (abs(level - percent), -level)))


def weeks_since(start: _dt.date, visit: _dt.date) -> float:
    """Weeks from treatment start to a visit (negative before the start).

    Examples
    --------
    >>> import datetime
    >>> weeks_since(datetime.date(2026, 1, 5), datetime.date(2026, 6, 22))
    24.0
    """
    return round((visit - start).days / 7.0, 4)


def score_visit(
    baseline_mask: np.ndarray,
    visit_mask: np.ndarray,
    *,
    mm_per_px: float | None = None,
    area_cm2: float | None = None,
) -> VisitScore:
    """Score a visit's registered mask against the baseline mask.

    Parameters
    ----------
    baseline_mask, visit_mask : ndarray of bool, shape (H0, W0)
        Depigmented skin at baseline and at the visit, both in the baseline frame.
    mm_per_px : float, optional
        Millimetres per baseline-frame pixel, for the area in cm² (uniform scale).
    area_cm2 : float, optional
        The visit's area already measured in cm² (for example corrected for
        perspective with :func:`repigment.core.calibration.plane_area_mm2`); takes
        precedence over ``mm_per_px``.

    Returns
    -------
    VisitScore
    """
    area = int(np.count_nonzero(visit_mask))
    if area_cm2 is None and mm_per_px is not None:
        area_cm2 = float(area * mm_per_px**2 / 100.0)
    baseline_area = int(np.count_nonzero(baseline_mask))
    residual = residual_fraction(baseline_mask, visit_mask)
    return VisitScore(
        area_px=area,
        area_cm2=area_cm2,
        repigmentation_pct=repigmentation_pct(baseline_area, area),
        residual_fraction=residual,
        vasi_residual_depigmentation=vasi_residual_level(residual),
        new_depigmentation_px=int(np.count_nonzero(visit_mask & ~baseline_mask)),
    )


def find_milestones(weeks: Sequence[float], improvement_pct: Sequence[float | None]) -> Milestones:
    """First week at which 50 %, 75 % and 90 % improvement is reached.

    Parameters
    ----------
    weeks : sequence of float
        Weeks since treatment start of each visit, in date order.
    improvement_pct : sequence of float or None
        Improvement from baseline at each visit; ``None`` for a visit that could
        not be scored (it is skipped, never counted as reached).

    Returns
    -------
    Milestones

    Examples
    --------
    >>> find_milestones([0, 12, 24, 52], [0.0, 40.0, 78.0, 91.0])
    Milestones(vasi50_week=24, vasi75_week=24, vasi90_week=52)
    """
    if len(weeks) != len(improvement_pct):
        raise InvalidParameterError("weeks and improvement_pct must have the same length")

    def first(level: float) -> float | None:
        for week, value in zip(weeks, improvement_pct):
            if value is not None and value >= level:
                return week
        return None

    return Milestones(vasi50_week=first(50), vasi75_week=first(75), vasi90_week=first(90))
