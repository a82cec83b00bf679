"""VASI in hand units: body surface area, hand units, patch scores, totals, milestones.

The Vitiligo Area Scoring Index (Hamzavi et al., Arch Dermatol 2004) is, over
body regions, the sum of (area in hand units) x (residual depigmentation). One
hand unit (HU) is the patient's palm plus the volar surface of all five digits,
about 1 % of body surface area. F-VASI scores the face (0-3), T-VASI the rest
of the body (0-100).

Two variants of a patch's VASI are computed here, and both are reported:

continuous (the headline figure)
    ``VASI_t = A_t / HU``, with ``A_t`` the depigmented area of the visit in
    cm² and ``HU`` the hand unit in cm². Every pixel of the mask has lost at
    least half its melanin (the segmentation's threshold sits at 55 %, just past the
    50 % point, see :data:`repigment.core.segmentation.DEPIGMENTED_FRACTION`), so it is counted at
    100 % residual depigmentation and everything else at 0 %. The improvement
    ``(VASI_0 - VASI_t) / VASI_0`` then equals the area-based repigmentation
    percent of :mod:`repigment.core.scoring`, and the hand unit cancels out of it.
level
    ``VASI_t = (A_0 / HU) x level_t / 100 + A_new / HU``: the baseline
    footprint in hand units times the VASI residual level (0, 10, 25, 50, 75,
    90 or 100 %) a clinician would pick for the share of the footprint still
    depigmented, plus any new depigmentation outside the footprint (spreading)
    counted at 100 %. This is how a human scorer would fill in the form; it is
    coarser and moves in steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..core.scoring import VASI_LEVELS, Milestones, find_milestones
from ..errors import InvalidParameterError
from ..vocabulary import BodyRegion

__all__ = [
    "BODY_REGIONS",
    "HAND_UNIT_BSA_FRACTION",
    "HAND_UNIT_SOURCES",
    "HandUnit",
    "VasiSeries",
    "mosteller_bsa_m2",
    "hand_unit_cm2_from_bsa",
    "hand_unit_from_height_weight",
    "entered_hand_unit",
    "vasi_index_name",
    "patch_vasi",
    "patch_vasi_level",
    "vasi_improvement_pct",
    "vasi_series",
    "patient_totals",
]

#: Body regions a patch can belong to (VASI regions, with the face for F-VASI): the values of
#: :class:`repigment.vocabulary.BodyRegion`.
BODY_REGIONS: tuple[str, ...] = tuple(region.value for region in BodyRegion)
#: Share of body surface area taken as one hand unit (palm with the five digits).
HAND_UNIT_BSA_FRACTION = 0.01
#: How a hand unit was obtained.
HAND_UNIT_SOURCES = ("photo", "height-weight", "entered")
#: Plausible range of one hand unit, cm² (a small child to a very large adult).
HAND_UNIT_RANGE_CM2 = (20.0, 400.0)


@dataclass(frozen=True)
class HandUnit:
    """The area of one of the patient's hand units.

    Attributes
    ----------
    cm2 : float
        Palm plus the volar surface of the five digits, cm².
    source : {"photo", "height-weight", "entered"}
        How it was obtained.
    detail : str
        Provenance in words (for example the height and weight used).
    interval_cm2 : tuple of float or None
        Plausible range of ``cm2`` when the method gives one (photo).
    """

    cm2: float
    source: str
    detail: str = ""
    interval_cm2: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        _check_hand_unit(self.cm2)
        if self.source not in HAND_UNIT_SOURCES:
            raise InvalidParameterError(
                f"hand unit source must be one of {', '.join(HAND_UNIT_SOURCES)}, got {self.source!r}"
            )

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "cm2": round(float(self.cm2), 3),
            "source": self.source,
            "detail": self.detail,
            "interval_cm2": None if self.interval_cm2 is None else [round(float(v), 3) for v in self.interval_cm2],
        }


@dataclass(frozen=True)
class VasiSeries:
    """A VASI score at each visit, with its improvement and milestones.

    Attributes
    ----------
    index : {"F-VASI", "T-VASI"}
        The index the scores contribute to.
    weeks : tuple of float
        Weeks since treatment start of each visit.
    scores : tuple of float or None
        VASI at each visit; ``None`` where the visit has no figure.
    intervals : tuple of (float, float) or None
        Plausible range of each score (``None`` where unknown).
    improvement_pct : tuple of float or None
        ``(VASI_0 - VASI_t) / VASI_0 x 100`` (negative when worse).
    milestones : Milestones
        First week at which 50, 75 and 90 % improvement was reached, counting
        no visit that needs review.
    needs_review : tuple of bool
        Whether each visit's figure is contradicted by the self-checks (or,
        for a patient total, draws on a patch visit that is); empty when no
        visit is.
    """

    index: str
    weeks: tuple[float, ...]
    scores: tuple[float | None, ...]
    intervals: tuple[tuple[float, float] | None, ...]
    improvement_pct: tuple[float | None, ...]
    milestones: Milestones
    needs_review: tuple[bool, ...] = ()

    def in_review(self, visit: int) -> bool:
        """Whether visit ``visit``'s figure needs review."""
        return bool(self.needs_review) and self.needs_review[visit]

    def latest_improvement(self) -> tuple[float, float, bool] | None:
        """``(week, improvement %, needs review)`` of the last visit with a figure, or None."""
        for visit in reversed(range(len(self.weeks))):
            if self.improvement_pct[visit] is not None:
                return self.weeks[visit], self.improvement_pct[visit], self.in_review(visit)
        return None


def _finite(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InvalidParameterError(f"{name} must be a finite number, got {value!r}")
    return number


def _check_hand_unit(hand_unit_cm2) -> float:
    value = _finite(hand_unit_cm2, "hand unit")
    low, high = HAND_UNIT_RANGE_CM2
    if not low <= value <= high:
        raise InvalidParameterError(
            f"a hand unit must be {low:g}-{high:g} cm² (palm with fingers; about 1 % of body surface), got {value:g}"
        )
    return value


def mosteller_bsa_m2(height_cm: float, weight_kg: float) -> float:
    """Body surface area by the Mosteller formula, ``sqrt(height x weight / 3600)``.

    Parameters
    ----------
    height_cm : float
        Height in centimetres, 30-250.
    weight_kg : float
        Weight in kilograms, 1-350.

    Returns
    -------
    float
        Body surface area in m².

    Raises
    ------
    InvalidParameterError
        If height or weight is not a number in its plausible range.

    References
    ----------
    Mosteller RD. Simplified calculation of body-surface area. N Engl J Med
    1987;317:1098.

    Examples
    --------
    >>> mosteller_bsa_m2(180, 80)
    2.0
    >>> round(mosteller_bsa_m2(170, 70), 3)
    1.818
    """
    height = _finite(height_cm, "height")
    weight = _finite(weight_kg, "weight")
    if not 30.0 <= height <= 250.0:
        raise InvalidParameterError(f"height must be 30-250 cm, got {height:g} (give it in centimetres)")
    if not 1.0 <= weight <= 350.0:
        raise InvalidParameterError(f"weight must be 1-350 kg, got {weight:g} (give it in kilograms)")
    return math.sqrt(height * weight / 3600.0)


def hand_unit_cm2_from_bsa(bsa_m2: float) -> float:
    """One hand unit from body surface area: 1 % of it, in cm².

    Parameters
    ----------
    bsa_m2 : float
        Body surface area, m² (0.1-4).

    Returns
    -------
    float
        Hand unit, cm².

    Examples
    --------
    >>> hand_unit_cm2_from_bsa(1.8)
    180.0
    """
    bsa = _finite(bsa_m2, "body surface area")
    if not 0.1 <= bsa <= 4.0:
        raise InvalidParameterError(f"body surface area must be 0.1-4 m², got {bsa:g}")
    return round(bsa * 10_000.0 * HAND_UNIT_BSA_FRACTION, 9)


def hand_unit_from_height_weight(height_cm: float, weight_kg: float) -> HandUnit:
    """The hand unit estimated from height and weight (Mosteller, 1 % of BSA).

    Examples
    --------
    >>> unit = hand_unit_from_height_weight(180, 80)
    >>> unit.cm2, unit.source
    (200.0, 'height-weight')
    """
    bsa = mosteller_bsa_m2(height_cm, weight_kg)
    return HandUnit(
        cm2=hand_unit_cm2_from_bsa(bsa),
        source="height-weight",
        detail=f"1 % of body surface area {bsa:.2f} m², Mosteller, from height {float(height_cm):g} cm and "
        f"weight {float(weight_kg):g} kg",
    )


def entered_hand_unit(hand_unit_cm2: float) -> HandUnit:
    """A hand unit typed in by the user, checked for plausibility.

    Examples
    --------
    >>> entered_hand_unit(165).cm2
    165.0
    """
    value = _check_hand_unit(hand_unit_cm2)
    return HandUnit(cm2=value, source="entered", detail="entered by the user")


def vasi_index_name(body_region: str | None) -> str:
    """The VASI index a patch of this region contributes to.

    Parameters
    ----------
    body_region : str or None
        One of :data:`BODY_REGIONS` (either spelling, see
        :meth:`repigment.vocabulary.BodyRegion.parse`); ``None`` when not given.

    Raises
    ------
    InvalidParameterError
        For an unknown region.

    Examples
    --------
    >>> vasi_index_name("face"), vasi_index_name("hands"), vasi_index_name("upper_limbs")
    ('F-VASI', 'T-VASI', 'T-VASI')
    """
    if body_region is None:
        return "T-VASI"
    return "F-VASI" if BodyRegion.parse(body_region) is BodyRegion.FACE else "T-VASI"


def patch_vasi(area_cm2: float, hand_unit_cm2: float) -> float:
    """Continuous patch VASI: depigmented area in hand units (residual 100 %).

    Parameters
    ----------
    area_cm2 : float
        Depigmented area of the patch at a visit, cm² (all of it, including any
        spread beyond the baseline footprint).
    hand_unit_cm2 : float
        The patient's hand unit, cm².

    Returns
    -------
    float
        ``area_cm2 / hand_unit_cm2``.

    Examples
    --------
    >>> patch_vasi(9.0, 180.0)
    0.05
    """
    area = _finite(area_cm2, "area")
    if area < 0:
        raise InvalidParameterError(f"area cannot be negative, got {area:g} cm²")
    return area / _check_hand_unit(hand_unit_cm2)


def patch_vasi_level(
    baseline_area_cm2: float, level_pct: int, hand_unit_cm2: float, *, new_area_cm2: float = 0.0
) -> float:
    """Level-based patch VASI, as a human scorer would fill in the form.

    Parameters
    ----------
    baseline_area_cm2 : float
        Baseline footprint of the patch, cm².
    level_pct : int
        VASI residual depigmentation level of the footprint (0, 10, 25, 50, 75,
        90 or 100).
    hand_unit_cm2 : float
        The patient's hand unit, cm².
    new_area_cm2 : float, optional
        New depigmentation outside the baseline footprint, counted at 100 %.

    Returns
    -------
    float
        ``baseline_area_cm2 / HU x level / 100 + new_area_cm2 / HU``.

    Examples
    --------
    >>> patch_vasi_level(18.0, 50, 180.0)
    0.05
    >>> patch_vasi_level(18.0, 100, 180.0, new_area_cm2=1.8)
    0.11
    """
    if level_pct not in VASI_LEVELS:
        raise InvalidParameterError(f"VASI level must be one of {VASI_LEVELS}, got {level_pct!r}")
    base = _finite(baseline_area_cm2, "baseline area")
    new = _finite(new_area_cm2, "new area")
    if base < 0 or new < 0:
        raise InvalidParameterError("areas cannot be negative")
    unit = _check_hand_unit(hand_unit_cm2)
    return round(base / unit * level_pct / 100.0 + new / unit, 12)


def vasi_improvement_pct(baseline: float, current: float) -> float | None:
    """Improvement from baseline, ``(baseline - current) / baseline x 100``.

    Returns ``None`` when the baseline score is 0 (nothing to improve).

    Examples
    --------
    >>> vasi_improvement_pct(0.4, 0.1)
    75.0
    >>> vasi_improvement_pct(0.4, 0.5)
    -25.0
    """
    if not baseline > 0:
        return None
    return round((baseline - current) / baseline * 100.0, 9)


def vasi_series(
    body_region: str | None,
    weeks: Sequence[float],
    areas_cm2: Sequence[float | None],
    hand_unit: HandUnit | float,
    *,
    area_intervals_cm2: Sequence[tuple[float, float] | None] | None = None,
) -> VasiSeries:
    """Continuous patch VASI at every visit of one patch.

    Parameters
    ----------
    body_region : str or None
        One of :data:`BODY_REGIONS`; decides F-VASI (face) or T-VASI (others).
    weeks : sequence of float
        Weeks since treatment start, baseline first.
    areas_cm2 : sequence of float or None
        Depigmented area at each visit (``None`` for a visit without figures).
    hand_unit : HandUnit or float
        The patient's hand unit (cm² when a number).
    area_intervals_cm2 : sequence of (float, float) or None, optional
        Plausible range of each area; with a photo-measured hand unit, its own
        range widens the score's range too.

    Returns
    -------
    VasiSeries

    Raises
    ------
    InvalidParameterError
        If the lengths differ or the baseline has no area.

    Examples
    --------
    >>> s = vasi_series("face", [0, 24], [9.0, 4.5], 180.0)
    >>> s.index, s.scores, s.improvement_pct, s.milestones.vasi50_week
    ('F-VASI', (0.05, 0.025), (0.0, 50.0), 24)
    """
    index = vasi_index_name(body_region)
    unit = hand_unit if isinstance(hand_unit, HandUnit) else entered_hand_unit(hand_unit)
    if len(weeks) != len(areas_cm2):
        raise InvalidParameterError("weeks and areas must have the same length")
    intervals_in = list(area_intervals_cm2) if area_intervals_cm2 is not None else [None] * len(weeks)
    if len(intervals_in) != len(weeks):
        raise InvalidParameterError("area intervals must have one entry per visit")
    if not weeks or areas_cm2[0] is None or not areas_cm2[0] > 0:
        raise InvalidParameterError("the baseline visit needs a depigmented area in cm² to score VASI")
    unit_low, unit_high = unit.interval_cm2 if unit.interval_cm2 is not None else (unit.cm2, unit.cm2)
    scores, intervals, improvement = [], [], []
    for area, interval in zip(areas_cm2, intervals_in):
        score = None if area is None else round(patch_vasi(area, unit.cm2), 9)
        scores.append(score)
        if score is None or interval is None:
            intervals.append(None)
        else:
            intervals.append((round(max(interval[0], 0.0) / unit_high, 9), round(interval[1] / unit_low, 9)))
        improvement.append(None if score is None else vasi_improvement_pct(scores[0], score))
    return VasiSeries(
        index=index,
        weeks=tuple(float(w) for w in weeks),
        scores=tuple(scores),
        intervals=tuple(intervals),
        improvement_pct=tuple(improvement),
        milestones=find_milestones(list(weeks), improvement),
    )


def patient_totals(
    patches: Sequence[tuple[str | None, VasiSeries]],
    *,
    tolerance_weeks: float = 1.0,
    face_in_total: bool = False,
) -> dict[str, VasiSeries]:
    """Add patch scores up to the patient's F-VASI and T-VASI.

    Parameters
    ----------
    patches : sequence of (body_region, VasiSeries)
        Every scored patch of one patient.
    tolerance_weeks : float, optional
        Visits of different patches within this many weeks of each other count
        as the same visit (patches are photographed on the same day but their
        series may differ by a few days).
    face_in_total : bool, optional
        Also add face patches into T-VASI (as the ruxolitinib trials did); by
        default the face is scored only in F-VASI (Hamzavi 2004).

    Returns
    -------
    dict of str to VasiSeries
        ``"F-VASI"`` and/or ``"T-VASI"``. A total exists at a time point only
        when every patch of that index has a scored visit there (a missing
        patch would make the total look better than it is). A total that
        draws on a patch visit needing review needs review too, and counts
        for no milestone.

    Examples
    --------
    >>> cheek = vasi_series("face", [0, 24], [9.0, 3.0], 180.0)
    >>> chin = vasi_series("face", [0, 24.1], [9.0, 6.0], 180.0)
    >>> total = patient_totals([("face", cheek), ("face", chin)])["F-VASI"]
    >>> total.scores, round(total.improvement_pct[1], 1)
    ((0.1, 0.05), 50.0)
    """
    groups: dict[str, list[VasiSeries]] = {}
    for region, series in patches:
        groups.setdefault(series.index, []).append(series)
        if face_in_total and region == "face":
            groups.setdefault("T-VASI", []).append(series)
    totals: dict[str, VasiSeries] = {}
    for index, members in groups.items():
        anchor = members[0]
        weeks, scores, intervals, review = [], [], [], []
        for week in anchor.weeks:
            total, low, high, complete, in_review = 0.0, 0.0, 0.0, True, False
            for member in members:
                picks = [
                    k for k, w in enumerate(member.weeks)
                    if abs(w - week) <= tolerance_weeks and member.scores[k] is not None
                ]
                if not picks:
                    complete = False
                    break
                k = min(picks, key=lambda j: abs(member.weeks[j] - week))
                total += member.scores[k]
                in_review = in_review or member.in_review(k)
                interval = member.intervals[k] or (member.scores[k], member.scores[k])
                low += interval[0]
                high += interval[1]
            weeks.append(week)
            scores.append(round(total, 9) if complete else None)
            intervals.append((round(low, 9), round(high, 9)) if complete else None)
            review.append(complete and in_review)
        if scores and scores[0] is not None:
            improvement = [None if s is None else vasi_improvement_pct(scores[0], s) for s in scores]
        else:
            improvement = [None] * len(scores)
        trusted = [None if flagged else value for value, flagged in zip(improvement, review)]
        totals[index] = VasiSeries(
            index=index,
            weeks=tuple(weeks),
            scores=tuple(scores),
            intervals=tuple(intervals),
            improvement_pct=tuple(improvement),
            milestones=find_milestones(weeks, trusted),
            needs_review=tuple(review) if any(review) else (),
        )
    return totals
