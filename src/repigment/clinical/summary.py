"""Clinical summary of a scored series: VASI, patterns, spreading and checkpoints.

:func:`clinical_summary` turns a :class:`repigment.series.pipeline.SeriesResult` into
the ``"clinical"`` block of ``results.json``; :func:`clinical_summary_from_results`
does the same from a saved ``results.json`` and its masks (for a report of an
earlier run). Both give the same keys:

``body_region``, ``vasi_index``, ``hand_unit``
    The patch's region (F-VASI for the face, T-VASI otherwise) and the hand unit
    with its source.
``vasi``
    Whether VASI could be scored (it needs a hand unit and a scale marker) and
    why not, its definition, and the VASI50/75/90 milestones.
``visits``
    Per visit: pattern of repigmentation, spreading, patch VASI (continuous and
    level-based) with its interval, improvement % with its interval.
``checkpoints``
    ``week24`` and ``week52``: null until a scored visit at or after that week
    exists; then whether the improvement reached the level that matters, with a
    plain-language ``patient_message`` and a terse ``clinician_message``.
``latest``
    The latest scored visit in one sentence each for patient and clinician.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.scoring import find_milestones
from ..errors import InvalidParameterError, SeriesError
from ..vocabulary import DEFAULT_MARKER_MM, BodyRegion
from .vasi import (
    HandUnit,
    VasiSeries,
    entered_hand_unit,
    hand_unit_from_height_weight,
    patch_vasi_level,
    vasi_improvement_pct,
    vasi_index_name,
    vasi_series,
)

__all__ = [
    "CLINICAL_METHOD",
    "CHECKPOINT_WEEKS",
    "CHECKPOINT_TOLERANCE_WEEKS",
    "MEANINGFUL_IMPROVEMENT_PCT",
    "resolve_hand_unit",
    "clinical_summary",
    "clinical_summary_from_results",
    "clinical_from_document",
    "checkpoint",
    "vasi_series_from_clinical",
    "status_words",
    "total_milestone_words",
    "TOTAL_IN_REVIEW_NOTE",
    "TOTAL_IN_REVIEW_NOTE_PATIENT",
]

#: Identifies the method in saved records; bump when the summary would change.
CLINICAL_METHOD = "repigment.clinical/v1"
#: The assessment points of the ruxolitinib cream label and trials.
CHECKPOINT_WEEKS = (24, 52)
#: A visit this many weeks before a checkpoint still counts for it (visits
#: booked "at week 24" often fall a few days early).
CHECKPOINT_TOLERANCE_WEEKS = 0.5
#: Improvement patients rate as meaningful (TRuE-V): face and body.
MEANINGFUL_IMPROVEMENT_PCT = {"face": 50.0, "body": 25.0}
#: Trial endpoint at week 52: F-VASI75 for the face, T-VASI50 for the body.
WEEK52_ENDPOINT_PCT = {"face": 75.0, "body": 50.0}
#: Longest side at which saved masks are judged.
_MASK_SIZE = 1024

LABEL_ADVICE = ("the cream's label advises: if there is no improvement after 24 weeks of treatment, "
                "contact your healthcare provider")


#: Said after a patient total (F-VASI, T-VASI) that draws on a patch visit needing review.
TOTAL_IN_REVIEW_NOTE = (" (needs review: a patch visit in it is contradicted by its own photo, so it counts for "
                        "no milestone)")
#: The same, as a patient reads it.
TOTAL_IN_REVIEW_NOTE_PATIENT = " (one of the photos behind this figure is waiting for your clinician to check it)"


def total_milestone_words(index: str, milestones) -> str:
    """The milestones a patient total has reached, in words: the trials' levels of ``index``.

    T-VASI is judged at 50 % (the body endpoint), F-VASI at 50, 75 and 90 %.

    Examples
    --------
    >>> from repigment.core.scoring import Milestones
    >>> total_milestone_words("F-VASI", Milestones(vasi50_week=24, vasi75_week=52, vasi90_week=None))
    'F-VASI50 at week 24, F-VASI75 at week 52 reached'
    >>> total_milestone_words("T-VASI", Milestones(vasi50_week=None, vasi75_week=None, vasi90_week=None))
    'T-VASI50 not reached yet'
    """
    levels = (50,) if index == "T-VASI" else (50, 75, 90)
    reached = [f"{index}{level} at week {getattr(milestones, f'vasi{level}_week'):g}" for level in levels
               if getattr(milestones, f"vasi{level}_week") is not None]
    return ", ".join(reached) + " reached" if reached else f"{index}{levels[0]} not reached yet"


def resolve_hand_unit(
    *,
    hand_unit_cm2: float | None = None,
    height_cm: float | None = None,
    weight_kg: float | None = None,
    hand_photo=None,
    marker_mm: float = DEFAULT_MARKER_MM,
) -> HandUnit | None:
    """The hand unit from whichever one source was given.

    Parameters
    ----------
    hand_unit_cm2 : float, optional
        Typed in, cm².
    height_cm, weight_kg : float, optional
        Both together: 1 % of the Mosteller body surface area.
    hand_photo : path, bytes or file-like, optional
        A photo of the palm and fingers with the marker beside it
        (:func:`repigment.clinical.hand_units.measure_hand_unit`).
    marker_mm : float, optional
        Printed side of the marker in the hand photo.

    Returns
    -------
    HandUnit or None
        ``None`` when nothing was given.

    Raises
    ------
    InvalidParameterError
        If more than one source, or only one of height and weight, is given,
        or a value is implausible.
    HandPhotoError
        If the hand photo cannot be measured.

    Examples
    --------
    >>> resolve_hand_unit(height_cm=180, weight_kg=80).cm2
    200.0
    >>> resolve_hand_unit() is None
    True
    """
    if (height_cm is None) != (weight_kg is None):
        raise InvalidParameterError("give both height (cm) and weight (kg) to estimate the hand unit")
    sources = [hand_unit_cm2 is not None, height_cm is not None, hand_photo is not None]
    if sum(sources) > 1:
        raise InvalidParameterError("give the hand unit one way only: a hand photo, height and weight, or the value")
    if hand_unit_cm2 is not None:
        return entered_hand_unit(hand_unit_cm2)
    if height_cm is not None:
        return hand_unit_from_height_weight(height_cm, weight_kg)
    if hand_photo is not None:
        from .hand_units import measure_hand_unit

        return measure_hand_unit(hand_photo, marker_mm=marker_mm).hand_unit
    return None


def _check_region(body_region: str | None) -> str | None:
    """The region as ``results.json`` spells it (either spelling in); raises for an unknown one."""
    return None if body_region is None else BodyRegion.parse(body_region).value


def _as_hand_unit(hand_unit: HandUnit | float | None) -> HandUnit | None:
    if hand_unit is None or isinstance(hand_unit, HandUnit):
        return hand_unit
    return entered_hand_unit(hand_unit)


def _round(value, digits: int):
    return None if value is None else round(float(value), digits)


def _pct(value: float) -> str:
    return f"{value:.0f}%"


def checkpoint(
    target_week: int,
    *,
    body_region: str | None,
    weeks: Sequence[float],
    improvement_pct: Sequence[float | None],
    improvement_intervals: Sequence[Sequence[float] | None],
    images: Sequence[str] | None = None,
    spreading: Sequence[dict | None] | None = None,
) -> dict | None:
    """Judge the week-24 or week-52 checkpoint of one patch.

    Parameters
    ----------
    target_week : {24, 52}
    body_region : str or None
        ``"face"`` is judged against the face levels, anything else (or
        nothing) against the body levels.
    weeks, improvement_pct, improvement_intervals : sequences, one per visit
        Weeks since treatment start, improvement from baseline (``None`` for a
        visit without figures) and its plausible range.
    images : sequence of str, optional
        Photo names, for the record.
    spreading : sequence of dict or None, optional
        Spreading record per visit (``{"flagged": bool, "description": str}``).

    Returns
    -------
    dict or None
        ``None`` until a scored visit at or after ``target_week`` (less
        :data:`CHECKPOINT_TOLERANCE_WEEKS`) exists. Otherwise the first such
        visit judged: ``status`` is ``"reached"`` (the figure is at or above
        the level), ``"not reached"`` or ``"no improvement"`` (at most 0, or 0
        within the range); the range only qualifies the words
        (``status_words``, see :func:`status_words`; ``certain`` is false when
        the range crosses the level). With ``patient_message`` and
        ``clinician_message``.

    Notes
    -----
    Week 24: the level patients rate as meaningful, >= 50 % on the face and
    >= 25 % on the body. Week 52: the trial endpoints, F-VASI75 on the face
    (about half of patients reach it by week 52) and T-VASI50 on the body; the
    50/75/90 % milestones are all reported. With no improvement, both say that
    the label advises contacting the healthcare provider.

    Examples
    --------
    >>> result = checkpoint(24, body_region="face", weeks=[0, 12, 24],
    ...                     improvement_pct=[0, 20, 62], improvement_intervals=[None, None, (55, 70)])
    >>> result["status"], result["meaningful_level_pct"]
    ('reached', 50.0)
    >>> checkpoint(52, body_region="face", weeks=[0, 24], improvement_pct=[0, 62],
    ...            improvement_intervals=[None, None]) is None
    True
    """
    if target_week not in CHECKPOINT_WEEKS:
        raise InvalidParameterError(f"checkpoints are at weeks {CHECKPOINT_WEEKS}, got {target_week!r}")
    body_region = _check_region(body_region)
    candidates = [
        k for k, (w, value) in enumerate(zip(weeks, improvement_pct))
        if value is not None and w >= target_week - CHECKPOINT_TOLERANCE_WEEKS and k > 0
    ]
    if not candidates:
        return None
    k = candidates[0]
    value = float(improvement_pct[k])
    interval = improvement_intervals[k]
    low, high = (float(interval[0]), float(interval[1])) if interval is not None else (value, value)
    site = "face" if body_region == "face" else "body"
    index = vasi_index_name(body_region)
    if target_week == 24:
        level = MEANINGFUL_IMPROVEMENT_PCT[site]
        endpoint_name = f"level meaningful to patients on the {site} (>= {level:.0f}%)"
    else:
        level = WEEK52_ENDPOINT_PCT[site]
        endpoint_name = f"{index}{level:.0f} (>= {level:.0f}%)"
    no_improvement = value <= 0 or low <= 0
    status = "no improvement" if no_improvement else ("reached" if value >= level else "not reached")
    spread = None if spreading is None else spreading[k]
    spread_flag = bool(spread and spread.get("flagged"))
    record: dict[str, Any] = {
        "target_week": target_week,
        "visit": None if images is None else images[k],
        "weeks_since_start": float(weeks[k]),
        "improvement_pct": round(value, 3),
        "improvement_interval": [round(low, 3), round(high, 3)],
        "site": site,
        "region_given": body_region is not None,
        "meaningful_level_pct" if target_week == 24 else "endpoint_level_pct": level,
        "endpoint": endpoint_name,
        "status": status,
        "status_words": status_words(status, low, high, level),
        "certain": no_improvement or not low < level <= high,
        "reached": status == "reached",
        "no_improvement": no_improvement,
        "milestones": {f"VASI{m}": bool(value >= m) for m in (50, 75, 90)},
        "spreading": spread_flag,
    }
    record["patient_message"] = _patient_message(record, spread)
    record["clinician_message"] = _clinician_message(record, spread)
    return record


def status_words(status: str, low: float, high: float, level: float) -> str:
    """The one wording of a checkpoint or milestone status, qualified by its range.

    The figure decides the status (reached at or above ``level``); the range
    ``[low, high]`` only says how sure that is. The headline, the clinical
    box, the tables, the patient view and the PDF all use these words.

    Examples
    --------
    >>> status_words("reached", 45.3, 67.0, 50)
    'reached, but the range reaches below 50 %'
    >>> status_words("not reached", 40.0, 52.0, 50)
    'not reached, but the range reaches 50 %'
    >>> status_words("reached", 55.0, 70.0, 50), status_words("no improvement", -2.0, 3.0, 50)
    ('reached', 'no improvement')
    """
    if status == "reached" and low < level:
        return f"reached, but the range reaches below {level:g} %"
    if status == "not reached" and high >= level:
        return f"not reached, but the range reaches {level:g} %"
    return status


def _patient_message(c: dict, spread: dict | None) -> str:
    week = c["target_week"]
    low, high = c["improvement_interval"]
    site_words = "on the face" if c["site"] == "face" else "on the body"
    level = c.get("meaningful_level_pct", c.get("endpoint_level_pct"))
    parts = [f"At week {c['weeks_since_start']:.0f},"]
    if c["no_improvement"]:
        parts.append(_no_improvement_words(c["improvement_pct"], high))
        parts.append(LABEL_ADVICE[0].upper() + LABEL_ADVICE[1:] + ".")
    else:
        parts.append(
            f"this patch has regained colour over about {_pct(c['improvement_pct'])} of its area "
            f"(likely between {_pct(low)} and {_pct(high)})."
        )
        if week == 24:
            goal = f"People usually find {_pct(level)} or more a worthwhile improvement {site_words}"
        else:
            goal = (f"The treatment studies counted {_pct(level)} or more at one year as a strong response "
                    f"{site_words}")
        if c["status"] == "reached":
            parts.append(goal + ", and this patch has reached that"
                         + (f" (though the likely range dips below {_pct(level)})." if low < level else "."))
        else:
            parts.append(goal + "; this patch has not reached that yet"
                         + (f" (though the likely range reaches {_pct(level)})." if high >= level else "."))
            if week == 24:
                parts.append("Colour often keeps returning after week 24"
                             + (", and on the face about half of people in the studies reached 75% by one year."
                                if c["site"] == "face" else "; the body usually responds more slowly than the face."))
        if not c["region_given"]:
            parts.append("(The body part was not given; if this patch is on the face, the usual goal is "
                         f"{_pct(MEANINGFUL_IMPROVEMENT_PCT['face'] if week == 24 else WEEK52_ENDPOINT_PCT['face'])}.)")
    if spread and spread.get("flagged"):
        parts.append("New white skin has also appeared outside the original patch; show this to your healthcare "
                     "provider.")
    return " ".join(parts)


def _no_improvement_words(value: float, high: float) -> str:
    if high < 0:
        return f"the white area of this patch has grown, by about {_pct(-value)}."
    return "the photos show no clear return of colour in this patch yet."


def _clinician_message(c: dict, spread: dict | None) -> str:
    low, high = c["improvement_interval"]
    text = (f"Week {c['target_week']} (visit at week {c['weeks_since_start']:.1f}): improvement "
            f"{c['improvement_pct']:.1f}% [{low:.1f}, {high:.1f}]; {c['endpoint']}: {c['status_words']}.")
    if c["target_week"] == 52:
        reached = [name for name, ok in c["milestones"].items() if ok]
        text += f" Milestones reached at this visit: {', '.join(reached) if reached else 'none'}."
    if not c["region_given"]:
        text += " Body region not given; body levels applied."
    if c["no_improvement"]:
        text += " No measurable improvement: per label, advise contacting the prescriber."
    if spread and spread.get("flagged"):
        size = (f"{spread['area_cm2']:.2f} cm²" if spread.get("area_cm2") is not None
                else f"{spread.get('area_px', 0):.0f} px")
        text += f" Spreading: {size} of new depigmentation outside the baseline patch."
    return text


def _visit_pattern_records(
    masks: Sequence[np.ndarray | None],
    rgbs: Sequence[np.ndarray | None],
    *,
    px_scale: float,
    cm2_per_px: Sequence[float | None],
) -> tuple[list[dict | None], list[dict | None]]:
    from .patterns import classify_pattern, detect_spreading, footprint_ring, remaining_contrast

    patterns: list[dict | None] = [None] * len(masks)
    spreads: list[dict | None] = [None] * len(masks)
    footprint = masks[0]
    if footprint is None or not footprint.any():
        return patterns, spreads
    base_contrast = None
    ring = footprint_ring(footprint)  # the same for every visit
    if rgbs[0] is not None and rgbs[0].shape[:2] == footprint.shape:
        base_contrast = remaining_contrast(rgbs[0], footprint, footprint, ring=ring)
    for k in range(1, len(masks)):
        mask = masks[k]
        if mask is None or mask.shape != footprint.shape:
            continue
        ratio = None
        if base_contrast is not None and base_contrast > 0 and rgbs[k] is not None and rgbs[k].shape[:2] == mask.shape:
            contrast = remaining_contrast(rgbs[k], footprint, mask, ring=ring)
            ratio = None if contrast is None else contrast / base_contrast
        patterns[k] = classify_pattern(footprint, mask, contrast_ratio=ratio).to_dict()
        spreads[k] = detect_spreading(footprint, mask, px_scale=px_scale, cm2_per_px=cm2_per_px[k]).to_dict()
    return patterns, spreads


def _summarise(
    document: dict,
    masks: Sequence[np.ndarray | None],
    rgbs: Sequence[np.ndarray | None],
    *,
    body_region: str | None,
    hand_unit: HandUnit | None,
    pattern_basis: str,
) -> dict:
    visits = document["visits"]
    width = float(document["baseline"]["width"])
    footprint = masks[0] if masks else None
    px_scale = width / footprint.shape[1] if footprint is not None else 1.0
    cm2_per_px = []
    for v in visits:
        area_px, area_cm2 = v.get("depigmented_area_px"), v.get("depigmented_area_cm2")
        cm2_per_px.append(area_cm2 / area_px if area_px and area_cm2 is not None else None)
    if cm2_per_px and cm2_per_px[0] is not None:
        # The baseline's scale is the series' scale (every mask is in its frame).
        cm2_per_px = [c if c is not None else cm2_per_px[0] for c in cm2_per_px]
    patterns, spreads = _visit_pattern_records(masks, rgbs, px_scale=px_scale, cm2_per_px=cm2_per_px)

    weeks = [float(v["weeks_since_start"]) for v in visits]
    improvement = [v.get("repigmentation_pct") for v in visits]
    improvement_intervals = [
        (v.get("intervals") or {}).get("repigmentation_pct") if v.get("repigmentation_pct") is not None else None
        for v in visits
    ]
    areas_cm2 = [v.get("depigmented_area_cm2") for v in visits]
    reason = None
    if hand_unit is None:
        reason = "no hand unit given (photo of the palm with the marker, height and weight, or the value in cm²)"
    elif areas_cm2[0] is None:
        reason = "no scale marker in the baseline photo, so areas are in pixels only and VASI needs cm²"
    elif not areas_cm2[0] > 0:
        reason = "the baseline shows no depigmented area"
    index = vasi_index_name(body_region) if body_region is not None else None
    series: VasiSeries | None = None
    level_scores: list[float | None] = [None] * len(visits)
    if reason is None:
        series = vasi_series(
            body_region, weeks, areas_cm2, hand_unit,
            area_intervals_cm2=[
                (v.get("intervals") or {}).get("depigmented_area_cm2") if v.get("depigmented_area_cm2") is not None
                else None for v in visits
            ],
        )
        for k, v in enumerate(visits):
            level = v.get("vasi_residual_depigmentation")
            if level is None or v.get("depigmented_area_cm2") is None:
                continue
            new_cm2 = 0.0
            if spreads[k] is not None and spreads[k]["flagged"] and spreads[k]["area_cm2"] is not None:
                new_cm2 = spreads[k]["area_cm2"]
            level_scores[k] = patch_vasi_level(areas_cm2[0], int(level), hand_unit.cm2, new_area_cm2=new_cm2)
    level_improvement = [
        None if s is None or level_scores[0] is None else vasi_improvement_pct(level_scores[0], s)
        for s in level_scores
    ]
    # A visit whose figure the self-checks contradict counts for no milestone
    # or checkpoint until a clinician has reviewed it.
    in_review = [bool(v.get("needs_review")) for v in visits]
    trusted = [None if review else value for value, review in zip(improvement, in_review)]
    continuous_milestones = find_milestones(weeks, trusted)
    level_milestones = find_milestones(
        weeks, [None if review else value for value, review in zip(level_improvement, in_review)])

    visit_records = []
    for k, v in enumerate(visits):
        score = None if series is None else series.scores[k]
        interval = None if series is None else series.intervals[k]
        visit_records.append({
            "image": v["image"],
            "date": v.get("date"),
            "weeks_since_start": v["weeks_since_start"],
            "pattern": patterns[k],
            "spreading": spreads[k],
            "patch_vasi": _round(score, 5),
            "patch_vasi_interval": None if interval is None else [round(interval[0], 5), round(interval[1], 5)],
            "patch_vasi_level": _round(level_scores[k], 5),
            "vasi_residual_level": v.get("vasi_residual_depigmentation"),
            "improvement_pct": _round(improvement[k], 3),
            "improvement_interval": None if improvement_intervals[k] is None else [
                round(float(x), 3) for x in improvement_intervals[k]
            ],
            "improvement_pct_level": _round(level_improvement[k], 3),
            "needs_review": in_review[k],
        })

    checkpoints = {
        f"week{week}": checkpoint(
            week, body_region=body_region, weeks=weeks, improvement_pct=trusted,
            improvement_intervals=improvement_intervals, images=[v["image"] for v in visits], spreading=spreads,
        )
        for week in CHECKPOINT_WEEKS
    }

    def milestones_dict(m) -> dict:
        return {"vasi50_week": m.vasi50_week, "vasi75_week": m.vasi75_week, "vasi90_week": m.vasi90_week}

    return {
        "method": CLINICAL_METHOD,
        "body_region": body_region,
        "vasi_index": index,
        "hand_unit": None if hand_unit is None else hand_unit.to_dict(),
        "vasi": {
            "available": reason is None,
            "reason": reason,
            "definition": (
                "patch VASI = depigmented area (cm²) / hand unit (cm²), every depigmented pixel at 100 % residual "
                "depigmentation, so its improvement equals the area repigmentation %; patch_vasi_level = baseline "
                "footprint in hand units x VASI residual level / 100, plus new depigmentation outside the footprint "
                "at 100 %. F-VASI for the face, T-VASI contribution for other regions."
            ),
            "baseline": _round(series.scores[0], 5) if series is not None else None,
            "milestones": milestones_dict(continuous_milestones),
            "milestones_level": milestones_dict(level_milestones) if reason is None else None,
        },
        "pattern_basis": pattern_basis,
        "visits": visit_records,
        "checkpoints": checkpoints,
        "latest": _latest(visit_records, body_region),
    }


def _latest(records: list[dict], body_region: str | None) -> dict | None:
    scored = [r for r in records[1:] if r["improvement_pct"] is not None]
    if not scored:
        return None
    r = scored[-1]
    value = r["improvement_pct"]
    low, high = r["improvement_interval"] or (value, value)
    pattern = (r["pattern"] or {}).get("pattern")
    spread = r["spreading"] or {}
    patient = (f"At week {r['weeks_since_start']:.0f}, this patch has regained colour over about {_pct(max(value, 0))} "
               f"of its area (likely between {_pct(max(low, 0))} and {_pct(max(high, 0))}).")
    if value <= 0 or low <= 0:
        patient = f"At week {r['weeks_since_start']:.0f}, {_no_improvement_words(value, high)}"
    if pattern in ("perifollicular", "marginal", "diffuse", "combined"):
        patient += " " + {
            "perifollicular": "Colour is coming back as dots inside the patch (around hair roots) that grow and "
                              "join up.",
            "marginal": "Colour is coming back from the edges of the patch inwards.",
            "diffuse": "The whole patch is slowly getting darker.",
            "combined": "Colour is coming back both as dots inside the patch and from its edges.",
        }[pattern]
    if spread.get("flagged"):
        patient += " New white skin has appeared outside the original patch; show this to your healthcare provider."
    vasi = ""
    if r["patch_vasi"] is not None:
        name = vasi_index_name(body_region) if body_region is not None else "VASI"
        vasi = f"; patch {name} {r['patch_vasi']:.3f}"
        if r["patch_vasi_interval"] is not None:
            vasi += f" [{r['patch_vasi_interval'][0]:.3f}, {r['patch_vasi_interval'][1]:.3f}]"
    clinician = (f"Week {r['weeks_since_start']:.1f}: repigmentation {value:.1f}% [{low:.1f}, {high:.1f}]{vasi}; "
                 f"pattern {pattern or 'not assessed'}. "
                 + (spread.get("description", "") if spread else "Spreading not assessed") + ".")
    if r.get("needs_review"):
        # The latest photo's own evidence contradicts its figure: say so before the figure.
        patient = (f"The week {r['weeks_since_start']:.0f} photo needs your healthcare provider's review before its "
                   "figures count: something in it (the light, the framing or the phone's processing) disagrees "
                   "with the measurement. As measured: " + patient[0].lower() + patient[1:])
        clinician = ("Needs review (the photo contradicts its figure; no milestone counts it until reviewed). "
                     + clinician)
    return {"image": r["image"], "weeks_since_start": r["weeks_since_start"], "patient_message": patient,
            "clinician_message": clinician}


def clinical_summary(
    result,
    *,
    body_region: str | None = None,
    hand_unit: HandUnit | float | None = None,
) -> dict:
    """The ``"clinical"`` block of ``results.json`` for a scored series.

    Parameters
    ----------
    result : SeriesResult
        From :func:`repigment.series.pipeline.analyze_series`. With
        ``keep_images=True`` the registered photos are used to see a diffuse
        darkening that has not crossed the segmentation threshold yet.
    body_region : str, optional
        One of :data:`repigment.clinical.vasi.BODY_REGIONS` (``upper_limbs`` is read as ``upper-limbs``);
        the block records it in that one spelling.
    hand_unit : HandUnit or float, optional
        The patient's hand unit (cm² when a number). Without it, or without a
        scale marker, VASI is null with the reason.

    Returns
    -------
    dict
        JSON-ready; see the module notes for its keys.

    Raises
    ------
    InvalidParameterError
        If the region or hand unit is not usable.
    """
    from ..series.results import result_to_dict

    body_region = _check_region(body_region)
    unit = _as_hand_unit(hand_unit)
    document = result_to_dict(result)
    masks = [v.mask_baseline if v.ok else None for v in result.visits]
    rgbs = [v.registered_rgb if v.ok else None for v in result.visits]
    has_images = rgbs[0] is not None
    return _summarise(
        document, masks, rgbs, body_region=body_region, hand_unit=unit,
        pattern_basis="working-frame masks" + (" and registered photos (contrast)" if has_images else ""),
    )


def load_masks(document: dict, out_dir: str | Path) -> list[np.ndarray | None]:
    """The saved baseline-frame masks of a run, reduced to at most 1024 px.

    ``None`` for a visit without a mask (or an unreadable one).
    """
    from ..io import read_mask

    out = Path(out_dir)
    masks: list[np.ndarray | None] = []
    shape = None  # the first mask's reduced shape, then every mask in it
    for visit in document.get("visits", []):
        relative = visit.get("mask")
        mask = None if not relative else read_mask(out / relative, shape, max_side=_MASK_SIZE)
        if mask is not None and shape is None:
            shape = mask.shape
        masks.append(mask)
    return masks


def clinical_summary_from_results(
    document: dict,
    out_dir: str | Path,
    *,
    body_region: str | None = None,
    hand_unit: HandUnit | float | None = None,
) -> dict:
    """The clinical block for a saved run (``results.json`` and ``masks/``).

    Parameters
    ----------
    document : dict
        The parsed ``results.json``.
    out_dir : str or Path
        Its folder (the masks are read from ``masks/``).
    body_region, hand_unit
        As for :func:`clinical_summary`.

    Returns
    -------
    dict

    Raises
    ------
    SeriesError
        If the document has no visits or the baseline mask cannot be read.

    Notes
    -----
    Without the registered photos, a diffuse darkening is seen only once it
    has crossed the segmentation threshold somewhere.
    """
    body_region = _check_region(body_region)
    unit = _as_hand_unit(hand_unit)
    if not document.get("visits"):
        raise SeriesError("results.json has no visits; rerun `repigment analyze`")
    masks = load_masks(document, out_dir)
    if masks[0] is None:
        raise SeriesError(f"the baseline mask {document['visits'][0].get('mask')!r} is missing from {out_dir}; "
                          "rerun `repigment analyze`")
    return _summarise(document, masks, [None] * len(masks), body_region=body_region, hand_unit=unit,
                      pattern_basis="saved masks")


def clinical_from_document(
    document: dict,
    masks: Sequence[np.ndarray | None],
    *,
    registered: Sequence[np.ndarray | None] | None = None,
    body_region: str | None = None,
    hand_unit: HandUnit | float | None = None,
) -> dict:
    """The clinical block from a ``results.json`` document and masks held elsewhere (an app's store).

    Parameters
    ----------
    document : dict
        A ``results.json`` document (:func:`repigment.series.results.result_to_dict`).
    masks : sequence of ndarray of bool or None
        One per visit of the document, in the baseline photo's frame at any one
        resolution (the working-frame ``VisitResult.mask_baseline`` or the
        saved full-resolution masks); ``None`` for a visit without a mask.
    registered : sequence of ndarray of uint8 or None, optional
        The registered visit photos in the same frame and size as the masks
        (``VisitResult.registered_rgb``), to see a diffuse darkening.
    body_region, hand_unit
        As for :func:`clinical_summary`.

    Returns
    -------
    dict

    Raises
    ------
    InvalidParameterError
        If the masks do not match the visits, or the region or hand unit is not usable.
    """
    body_region = _check_region(body_region)
    unit = _as_hand_unit(hand_unit)
    visits = document.get("visits") or []
    if len(masks) != len(visits) or not visits:
        raise InvalidParameterError(f"give one mask per visit: {len(visits)} visits, {len(masks)} masks")
    if masks[0] is None:
        raise InvalidParameterError("the baseline mask is needed to judge patterns and spreading")
    rgbs = list(registered) if registered is not None else [None] * len(masks)
    if len(rgbs) != len(masks):
        raise InvalidParameterError("give one registered photo (or None) per visit")
    basis = "masks" + (" and registered photos (contrast)" if any(r is not None for r in rgbs) else "")
    return _summarise(document, list(masks), rgbs, body_region=body_region, hand_unit=unit, pattern_basis=basis)


def vasi_series_from_clinical(clinical: dict) -> VasiSeries | None:
    """The patch's VASI series from a clinical block, for :func:`repigment.clinical.vasi.patient_totals`.

    Returns ``None`` when the block has no VASI (no hand unit or no marker).
    """
    if not clinical.get("vasi", {}).get("available"):
        return None
    visits = clinical["visits"]
    scores = tuple(v["patch_vasi"] for v in visits)
    baseline = scores[0]
    improvement = tuple(None if s is None or baseline is None else vasi_improvement_pct(baseline, s) for s in scores)
    weeks = tuple(float(v["weeks_since_start"]) for v in visits)
    review = tuple(bool(v.get("needs_review")) for v in visits)
    trusted = [None if flagged else value for flagged, value in zip(review, improvement)]
    return VasiSeries(
        index=vasi_index_name(clinical.get("body_region")),
        weeks=weeks,
        scores=scores,
        intervals=tuple(None if v["patch_vasi_interval"] is None else tuple(v["patch_vasi_interval"]) for v in visits),
        improvement_pct=improvement,
        milestones=find_milestones(list(weeks), trusted),
        needs_review=review if any(review) else (),
    )

