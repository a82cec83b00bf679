"""Turn a stored analysis into the rows of the course chart and the visits table.

No Streamlit here: pure functions from the results.json document (CLI schema)
and the store's records to chart points and a table.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from ..store import Patch, Visit
from .analysis import PatchAnalysis
from .charts import CoursePoint, EventMark

__all__ = ["course_points", "event_marks", "plain_reason", "visit_status", "visits_table"]


def plain_reason(reason: str | None) -> str:
    """A failure reason in plain words for patients.

    Examples
    --------
    >>> plain_reason("not aligned to the baseline: only 3 skin features match the baseline; is this the same patch?")
    'This photo could not be lined up with your first photo. Take it again from the same distance and angle, with the whole patch in view.'
    >>> plain_reason("the photo shows only 80% of the baseline patch; frame the whole patch as at baseline")
    'The photo shows only 80% of the patch in your first photo. Take it again with the whole patch in view.'
    """
    if not reason:
        return ""
    if reason.startswith("not aligned"):
        return ("This photo could not be lined up with your first photo. Take it again from the same distance "
                "and angle, with the whole patch in view.")
    match = re.match(r"the photo shows only (\d+%) of the baseline patch", reason)
    if match:
        return (f"The photo shows only {match.group(1)} of the patch in your first photo. "
                "Take it again with the whole patch in view.")
    text = (reason.replace("the baseline ghost", "the faint copy of your first photo")
            .replace("the baseline photo", "your first photo").replace("baseline", "first photo"))
    return text[:1].upper() + text[1:]


def visit_status(entry: dict[str, Any]) -> tuple[bool, str]:
    """``(measured, short status)`` of a visit of the results document."""
    if entry.get("repigmentation_pct") is not None and not entry.get("error"):
        return True, "Measured"
    error = entry.get("error") or ""
    if error.startswith("not aligned") or not (entry.get("registration") or {}).get("ok", True):
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
        ))
    return points


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
    for position, entry in enumerate(document["visits"]):
        visit = by_id.get(result.visit_id(position))
        files = result.files(position)
        framing = None if files is None else files.extra.get("framing")
        measured, status = visit_status(entry)
        reason = entry.get("error") or ""
        check = _photo_check(visit, framing, patient_mode)
        if patient_mode:
            rows.append({
                "Date": _dt.date.fromisoformat(entry["date"]),
                "Week": entry["weeks_since_start"],
                "Colour regained (%)": entry["repigmentation_pct"] if measured else None,
                "White area (cm²)": entry["depigmented_area_cm2"] if measured else None,
                "Result": ("✓ " if measured else "✗ ") + ("Measured" if measured else "Could not be measured"),
                "What to do": plain_reason(reason) if reason else check,
            })
            continue
        registration = entry.get("registration") or {}
        rows.append({
            "Date": _dt.date.fromisoformat(entry["date"]),
            "Week": entry["weeks_since_start"],
            "Status": ("✓ " if measured else "✗ ") + status + (" (baseline)" if position == 0 else ""),
            "Repigmentation (%)": entry["repigmentation_pct"] if measured else None,
            "Depigmented area (cm²)": entry["depigmented_area_cm2"] if measured else None,
            "VASI residual (%)": entry["vasi_residual_depigmentation"] if measured else None,
            "Reason": reason,
            "New depigmentation (px)": entry["new_depigmentation_px"] if measured else None,
            "Photo check": check,
            "Depigmented area (px)": entry["depigmented_area_px"] if measured else None,
            "Alignment score": registration.get("score"),
            "Notes": "; ".join([*(entry.get("notes") or []), *([visit.notes] if visit and visit.notes else [])]),
            "Photo": visit.primary.display_name if visit and visit.primary else entry["image"],
        })
    return rows
