"""Files the app offers for download: the printable marker sheet and the PDF report.

No Streamlit here: these build bytes from the store and a cached analysis, for
the pages' download buttons (and for tests).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..errors import RepigmentError
from ..store import Patch, Patient, Store
from ..store.analyses import PatchAnalysis, link_or_copy, link_photos
from ..vocabulary import DEFAULT_MARKER_MM
from .course_data import patient_vasi

__all__ = ["marker_sheet", "marker_sheet_name", "report_name", "report_pdf_bytes"]


def marker_sheet_name(marker_mm: float | None = None) -> str:
    """``repigment-markers-20mm.pdf`` (the side as printed, mm)."""
    return f"repigment-markers-{float(marker_mm or DEFAULT_MARKER_MM):g}mm.pdf"


def marker_sheet(marker_mm: float | None = None) -> bytes:
    """A printable PDF sheet of ArUco scale markers of the given side (default 20 mm)."""
    from ..report.marker_sheet import marker_sheet_pdf

    return marker_sheet_pdf(marker_mm=float(marker_mm or DEFAULT_MARKER_MM))


def report_name(patient: Patient) -> str:
    """``report-<patient code>.pdf``: the pseudonymous code only, never a name."""
    return f"report-{patient.code}.pdf"


def report_pdf_bytes(store: Store, patient: Patient, patch: Patch, result: PatchAnalysis) -> bytes:
    """The PDF report of a patch's stored analysis (:func:`repigment.report.pdf.report_pdf`).

    With a hand unit, a page on the whole patient (F-VASI and T-VASI across
    every analysed patch) comes after the photos.

    Writes ``results.json`` (with its clinical block) and ``masks/`` from the
    store into a temporary analysis folder, and the analysed photos under the
    names the results use into a temporary series folder; both are removed
    afterwards.

    Raises
    ------
    RepigmentError
        If the patch has no results (the series could not be analysed).
    """
    from ..report.pdf import report_pdf

    document = result.document
    if document is None:
        raise RepigmentError("the series has no results to report: " + (result.error or "not analysed"))
    # The report states the start date itself (from results.json).
    treatment = patch.regimen
    events = [(e.date, e.kind_label + (f": {e.description}" if e.description else "")) for e in patch.events]
    with tempfile.TemporaryDirectory(prefix="report-", dir=store.data_dir / "tmp") as tmp:
        out = Path(tmp) / "analysis"
        photos = Path(tmp) / "photos"
        (out / "masks").mkdir(parents=True)
        photos.mkdir()
        (out / "results.json").write_text(json.dumps(document, allow_nan=False), encoding="utf-8")
        for mask, sha256 in result.full_masks():
            # visits[*].mask is "masks/<stem>.png", relative to the analysis folder.
            link_or_copy(store.derived_path(sha256, ".png"), out / "masks" / Path(mask).name)
        link_photos(store, result.request.photos, photos, missing_ok=True)
        whole = patient_vasi(store, patient.id)
        return report_pdf(out, patient_code=patient.code, patch_label=patch.label, treatment=treatment,
                          events=events, series_dir=photos, patient_totals=whole.totals or None,
                          patient_patches=whole.contributions, left_out=whole.left_out)
