"""Turn a stored analysis into the rows of the course chart and the visits table.

No Streamlit here: pure functions from the results.json document (CLI schema)
and the store's records to chart points and a table.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

from ..series.results import VisitErrorCode
from ..store import Patch, Store, Visit
from ..store.analyses import PatchAnalysis, cached_analysis, request_for_patch
from .charts import CoursePoint, EventMark

__all__ = [
    "ClinicalOverview",
    "clinical_overview",
    "course_points",
    "event_marks",
    "plain_reason",
    "PatientVasi",
    "advice_lines",
    "patient_vasi",
    "display_table",
    "visit_status",
    "visits_table",
]

#: How each numeric column of the visits table is written; a missing figure is a dash.
_CELL_FORMATS: dict[str, str] = {
    "Week": "{:.1f}",
    "Repigmentation (%)": "{:.1f} %",
    "Colour regained (%)": "{:.0f} %",
    "Depigmented area (cm²)": "{:.2f}",
    "White area (cm²)": "{:.1f}",
    "VASI residual (%)": "{:g} %",
    "Patch VASI (level)": "{:.3f}",
    "New depigmentation (px)": "{:,.0f}",
    "Depigmented area (px)": "{:,.0f}",
    "Alignment score": "{:.2f}",
}
MISSING = "—"

#: Text columns a table cell cuts short; :func:`advice_lines` gives them in full.
_LONG_TEXT = ("Reason", "Photo check", "What to do")


def plain_reason(reason: str | None, code: str | None = None, coverage: float | None = None) -> str:
    """A failure reason in plain words for patients.

    ``code`` is the visit's ``error_code`` in the results document (see
    :class:`repigment.series.results.VisitErrorCode`) and ``coverage`` its
    ``footprint_coverage``; a series' own error has neither.

    Examples
    --------
    >>> plain_reason("not aligned to the baseline: only 3 skin features match the baseline; is this the same patch?",
    ...              "not_aligned")
    'This photo could not be lined up with your first photo. Take it again from the same distance and angle, with the whole patch in view.'
    >>> plain_reason("the photo shows only 80% of the baseline patch; frame the whole patch as at baseline",
    ...              "out_of_frame", 0.8)
    'The photo shows only 80% of the patch in your first photo. Take it again with the whole patch in view.'
    """
    if not reason:
        return ""
    if code == VisitErrorCode.NOT_ALIGNED:
        return ("This photo could not be lined up with your first photo. Take it again from the same distance "
                "and angle, with the whole patch in view.")
    if code == VisitErrorCode.OUT_OF_FRAME and coverage is not None:
        return (f"The photo shows only {coverage:.0%} of the patch in your first photo. "
                "Take it again with the whole patch in view.")
    text = (reason.replace("the baseline ghost", "the faint copy of your first photo")
            .replace("the baseline photo", "your first photo").replace("baseline", "first photo"))
    return text[:1].upper() + text[1:]


def plain_visit_reason(entry: dict[str, Any]) -> str:
    """Why a visit of the results document has no figure, in plain words for patients (see :func:`plain_reason`).

    Examples
    --------
    >>> plain_visit_reason({"error": "the photo shows only 80% of the baseline patch; frame the whole patch as at "
    ...                     "baseline", "error_code": "out_of_frame", "footprint_coverage": 0.8})
    'The photo shows only 80% of the patch in your first photo. Take it again with the whole patch in view.'
    """
    return plain_reason(entry.get("error"), entry.get("error_code"), entry.get("footprint_coverage"))


def visit_status(entry: dict[str, Any]) -> tuple[bool, str]:
    """``(measured, short status)`` of a visit of the results document."""
    if entry.get("repigmentation_pct") is not None and not entry.get("error"):
        return True, "Needs review" if entry.get("needs_review") else "Measured"
    if entry.get("error_code") == VisitErrorCode.NOT_ALIGNED or not (entry.get("registration") or {}).get("ok", True):
        return False, "Not aligned"
    return False, "Not measured"


def course_points(document: dict[str, Any]) -> list[CoursePoint]:
    points = []
    for entry in document["visits"]:
        measured, _ = visit_status(entry)
        points.append(CoursePoint(
            week=float(entry["weeks_since_start"]),
            date=entry["date"],
            pct=float(entry["repigmentation_pct"]) if measured else None,
            area_cm2=None if entry.get("depigmented_area_cm2") is None else float(entry["depigmented_area_cm2"]),
            reason="" if measured else (entry.get("error") or "not measured"),
            image=entry["image"],
            pct_interval=_interval(entry, "repigmentation_pct") if measured else None,
        ))
    return points


def _interval(entry: dict[str, Any], name: str) -> tuple[float, float] | None:
    bounds = (entry.get("intervals") or {}).get(name)
    if not bounds or len(bounds) != 2 or any(b is None for b in bounds):
        return None
    return float(bounds[0]), float(bounds[1])


#: A visit's pattern of repigmentation, in plain words for patients.
_PLAIN_PATTERN = {
    "none": "No colour has come back yet.",
    "perifollicular": "Colour is coming back as small dots inside the patch (around hair roots).",
    "marginal": "Colour is coming back from the edges of the patch inwards.",
    "diffuse": "The whole patch is slowly getting darker.",
    "combined": "Colour is coming back both as dots inside the patch and from its edges.",
    "indeterminate": "The way colour is coming back cannot be told from the photos.",
}


@dataclass(frozen=True)
class ClinicalOverview:
    """The clinical block of a results document, worded for one mode.

    ``vasi_value`` is ``None`` with ``vasi_reason`` saying why when VASI could
    not be scored; ``checkpoints`` holds ``(title, status, message)`` for
    week 24 and week 52 (status ``"pending"`` before a visit at that week).
    """

    vasi_name: str
    vasi_value: str | None
    vasi_reason: str | None
    latest_week: float | None
    pattern: str | None
    spreading: str | None
    latest_message: str | None
    checkpoints: tuple[tuple[str, str, str], ...]


def clinical_overview(document: dict[str, Any], *, patient_mode: bool) -> ClinicalOverview | None:
    """VASI, pattern, spreading and checkpoints of a results document, or ``None`` without a clinical block."""
    clinical = document.get("clinical")
    if not clinical:
        return None
    index = clinical.get("vasi_index") or "VASI"
    vasi_name = f"Patch {index}" if index == "F-VASI" else f"Patch {index} contribution"
    scored = [v for v in clinical.get("visits") or [] if v.get("improvement_pct") is not None]
    latest = scored[-1] if len(scored) > 1 else None  # the baseline alone says nothing about change
    vasi_value = None
    vasi = clinical.get("vasi") or {}
    reason = vasi.get("reason") if not vasi.get("available") else None
    if vasi.get("available"):
        last = next((v for v in reversed(clinical["visits"]) if v.get("patch_vasi") is not None), None)
        if last is None:
            reason = "no visit could be scored"
        else:
            vasi_value = f"{last['patch_vasi']:.3f}"
            if last.get("patch_vasi_interval"):
                low, high = last["patch_vasi_interval"]
                vasi_value += f" ({low:.3f}–{high:.3f})"
            vasi_value += f" at {week_label(last['weeks_since_start'])}"
            if vasi.get("baseline") is not None and last is not clinical["visits"][0]:
                vasi_value += f", from {vasi['baseline']:.3f} at baseline"
            if last.get("patch_vasi_level") is not None:
                vasi_value += f"; level-based {last['patch_vasi_level']:.3f}"
    pattern = spreading = None
    if latest is not None:
        found = (latest.get("pattern") or {})
        name = found.get("pattern")
        if name:
            pattern = (_PLAIN_PATTERN.get(name, name) if patient_mode
                       else f"{name}" + (f" ({found['reason']})" if found.get("reason") else ""))
        spread = latest.get("spreading") or {}
        if spread.get("flagged"):
            places = "; ".join(r["location"] for r in spread.get("regions") or [] if r.get("location"))
            spreading = (("New white skin has appeared outside the original patch"
                          + (f" ({places})" if places else "") + ". Please show this to your doctor.")
                         if patient_mode else spread.get("description") or "Spreading outside the baseline patch")
    message = (clinical.get("latest") or {}).get("patient_message" if patient_mode else "clinician_message")
    checkpoints = []
    for key, week in (("week24", 24), ("week52", 52)):
        found = (clinical.get("checkpoints") or {}).get(key)
        title = f"Week {week}"
        if not found:
            checkpoints.append((title, "pending", f"Not yet: the first photo at or after week {week} will be "
                                "checked here." if patient_mode else
                                f"No scored visit at or after week {week} yet."))
        else:
            checkpoints.append((title, str(found.get("status") or ""),
                                found.get("patient_message" if patient_mode else "clinician_message") or ""))
    return ClinicalOverview(
        vasi_name=vasi_name, vasi_value=vasi_value, vasi_reason=reason,
        latest_week=None if latest is None else float(latest["weeks_since_start"]),
        pattern=pattern, spreading=spreading, latest_message=message, checkpoints=tuple(checkpoints),
    )


def week_label(weeks: float) -> str:
    """``week 12``, or ``week 12.4`` when not a whole week."""
    return f"week {weeks:.0f}" if abs(weeks - round(weeks)) < 0.05 else f"week {weeks:.1f}"


def event_marks(patch: Patch, treatment_start: _dt.date) -> list[EventMark]:
    return [
        EventMark(
            week=round((e.date - treatment_start).days / 7.0, 2),
            date=e.date.isoformat(),
            label=e.kind_label + (f": {e.description}" if e.description else ""),
        )
        for e in patch.events
    ]


def _photo_check(visit: Visit | None, framing: dict[str, Any] | None, patient_mode: bool) -> str:
    notes = []
    if visit is not None and visit.primary is not None:
        for issue in visit.primary.quality:
            if issue.get("code") == "no_marker" and patient_mode:
                notes.append("No scale marker: size in cm² not available.")
            elif issue.get("code") == "no_marker":
                notes.append("No marker: areas in px only.")
            else:
                notes.append(issue.get("message", ""))
    if framing and framing.get("advice"):
        notes.append("Next time: " + plain_reason(framing["advice"]) if patient_mode else framing["advice"])
    return " ".join(n for n in notes if n)


def visits_table(
    visits: list[Visit],
    result: PatchAnalysis | None,
    *,
    patient_mode: bool,
) -> list[dict[str, Any]]:
    """One row per visit, with every figure (clinician) or the main ones (patient).

    Visits without figures (no analysis, or a failed one) keep their row with
    the reason.
    """
    document = None if result is None else result.document
    by_id = {v.id: v for v in visits}
    rows: list[dict[str, Any]] = []
    if document is None:
        why = "not analysed" if result is None else f"not analysed: {result.error}"
        for visit in visits:
            row = {"Date": visit.date, "Status": "✗ Not measured",
                   "Reason": plain_reason(why) if patient_mode else why}
            if not patient_mode:
                row["Photo"] = visit.primary.display_name if visit.primary else ""
                row["Photos"] = len(visit.photos)
                row["Notes"] = visit.notes
            rows.append(row)
        return rows
    clinical_visits = (document.get("clinical") or {}).get("visits") or []
    for position, entry in enumerate(document["visits"]):
        visit = by_id.get(result.visit_id(position))
        clinical = clinical_visits[position] if position < len(clinical_visits) else {}
        files = result.files(position)
        framing = None if files is None else files.extra.get("framing")
        measured, status = visit_status(entry)
        reason = entry.get("error") or "; ".join(entry.get("review_reasons") or [])
        check = _photo_check(visit, framing, patient_mode)
        if patient_mode:
            rows.append({
                "Date": _dt.date.fromisoformat(entry["date"]),
                "Week": entry["weeks_since_start"],
                "Colour regained (%)": entry["repigmentation_pct"] if measured else None,
                "White area (cm²)": entry["depigmented_area_cm2"] if measured else None,
                "Result": ("✗ Could not be measured" if not measured else
                           "⚠ Measured, to be checked by your clinician" if entry.get("needs_review") else "✓ Measured"),
                "What to do": (plain_visit_reason(entry) if entry.get("error") else
                               "Your clinician will look at this photo before its figure counts."
                               if entry.get("needs_review") else check),
            })
            continue
        registration = entry.get("registration") or {}
        rows.append({
            "Date": _dt.date.fromisoformat(entry["date"]),
            "Week": entry["weeks_since_start"],
            "Status": ("✗ " if not measured else "⚠ " if entry.get("needs_review") else "✓ ") + status
                      + (" (baseline)" if position == 0 else ""),
            "Repigmentation (%)": entry["repigmentation_pct"] if measured else None,
            "Depigmented area (cm²)": entry["depigmented_area_cm2"] if measured else None,
            "VASI residual (%)": entry["vasi_residual_depigmentation"] if measured else None,
            "Pattern": ((clinical.get("pattern") or {}).get("pattern") or "") if measured and position else "",
            "Patch VASI (level)": clinical.get("patch_vasi_level") if measured else None,
            "Reason": reason,
            "New depigmentation (px)": entry["new_depigmentation_px"] if measured else None,
            "Photo check": check,
            "Depigmented area (px)": entry["depigmented_area_px"] if measured else None,
            "Alignment score": registration.get("score"),
            "Notes": "; ".join([*(entry.get("notes") or []), *([visit.notes] if visit and visit.notes else [])]),
            "Photo": visit.primary.display_name if visit and visit.primary else entry["image"],
        })
    return rows


def display_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The visits table as shown: numbers written out, a dash where there is no figure.

    Columns with nothing in any row (no failures, no marker, no remarks) are
    left out, and no cell says ``None``.

    Examples
    --------
    >>> display_table([{"Week": 0.0, "Depigmented area (cm²)": None, "Repigmentation (%)": 0.0, "Reason": ""},
    ...                {"Week": 4.0, "Depigmented area (cm²)": None, "Repigmentation (%)": None, "Reason": "blur"}])
    [{'Week': '0.0', 'Repigmentation (%)': '0.0 %', 'Reason': ''}, {'Week': '4.0', 'Repigmentation (%)': '—', 'Reason': 'blur'}]
    """
    def cell(name: str, value: Any) -> Any:
        if value is None or (isinstance(value, float) and value != value):
            return MISSING if name in _CELL_FORMATS else ""
        if name in _CELL_FORMATS and isinstance(value, (int, float)):
            return _CELL_FORMATS[name].format(value)
        return value

    shown = [{name: cell(name, value) for name, value in row.items()} for row in rows]
    columns = [name for name in (rows[0] if rows else {})
               if any(row.get(name) not in (MISSING, "", None) for row in shown)]
    return [{name: row[name] for name in columns} for row in shown]


def advice_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Each visit's reason and advice in full, one line per visit that has any.

    Table cells cut long text; these lines go under the table.

    Examples
    --------
    >>> import datetime
    >>> advice_lines([{"Date": datetime.date(2026, 3, 2), "Reason": "", "What to do": ""},
    ...               {"Date": datetime.date(2026, 4, 6), "Reason": "too blurred", "What to do": "Hold still."}])
    ['**2026-04-06**: too blurred. Hold still.']
    """
    lines = []
    for row in rows:
        parts = [str(row[name]).strip().rstrip(".") + "." for name in _LONG_TEXT if row.get(name)]
        if parts:
            lines.append(f"**{row.get('Date')}**: " + " ".join(parts))
    return lines


@dataclass(frozen=True)
class PatientVasi:
    """The patient's F-VASI and T-VASI across every patch (the trials' endpoints).

    Attributes
    ----------
    totals : dict of str to VasiSeries
        ``"F-VASI"`` and/or ``"T-VASI"`` over weeks since treatment start
        (:func:`repigment.clinical.vasi.patient_totals`).
    contributions : tuple of dict
        Per scored patch: ``label``, ``index``, ``baseline`` and ``latest`` VASI
        and ``change`` (latest minus baseline; negative is improvement).
    left_out : tuple of str
        Patches not in the totals, with the reason.
    """

    totals: dict
    contributions: tuple[dict[str, Any], ...]
    left_out: tuple[str, ...]


def patient_vasi(store: Store, patient_id: int) -> PatientVasi:
    """F-VASI and T-VASI of a patient from the stored analyses of each of their patches.

    Only analyses already in the store are used (each patch's page computes
    its own); a patch without one, without a hand unit or without a marker is
    left out and named with the reason.
    """
    from ..clinical.summary import vasi_series_from_clinical
    from ..clinical.vasi import patient_totals

    scored, contributions, left_out = [], [], []
    for patch in store.patches(patient_id):
        request = request_for_patch(store, patch)
        found = None if request is None else cached_analysis(store, request)
        document = None if found is None else found.document
        if document is None:
            left_out.append(f"{patch.label}: " + ("no photos yet" if request is None else "not analysed yet "
                                                  "(open its course once)"))
            continue
        clinical = document.get("clinical") or {}
        series = vasi_series_from_clinical(clinical) if clinical else None
        if series is None:
            left_out.append(f"{patch.label}: no VASI (" + ((clinical.get("vasi") or {}).get("reason")
                                                          or "no hand unit or scale marker") + ")")
            continue
        scored.append((clinical.get("body_region"), series))
        measured = [score for score in series.scores if score is not None]
        contributions.append({
            "label": patch.label, "index": series.index,
            "baseline": measured[0] if measured else None, "latest": measured[-1] if measured else None,
            "change": (measured[-1] - measured[0]) if len(measured) > 1 else None,
        })
    totals = patient_totals(scored) if scored else {}
    return PatientVasi(totals=totals, contributions=tuple(contributions), left_out=tuple(left_out))
