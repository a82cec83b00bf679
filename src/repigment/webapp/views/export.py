"""Export: the PDF report, the results as CSV and JSON in the CLI's schema, a ZIP with the masks, the marker sheet.

A page script: ``st.navigation`` runs this file; importing it does nothing.
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import pandas as pd
import streamlit as st

from repigment.store.analyses import PatchAnalysis
from repigment.webapp import common, downloads


def render() -> None:
    ctx = common.context()
    st.title(ctx.words.export_page)
    if ctx.patch is None:
        common.no_patch_notice(ctx)
        return
    with common.guard("preparing the export"):
        result = common.patch_analysis(ctx)
        if result is None:
            st.info("No photos yet: nothing to export.", icon=":material/info:")
        elif result.document is None:
            st.error("The series cannot be measured, so there are no results to export: " + (result.error or ""),
                     icon=":material/error:")
        else:
            _export(ctx, result)
    _marker_sheet(ctx)


def _marker_sheet(ctx: common.Context) -> None:
    marker_mm = ctx.patch.marker_mm
    st.subheader("Scale markers" if not ctx.patient_mode else "Scale marker to print")
    st.caption("Print at 100 % (“actual size”), check the 50 mm line with a ruler, and stick one marker beside the "
               "patch for every photo.")
    st.download_button(f"Download marker sheet ({marker_mm:g} mm)", lambda: downloads.marker_sheet(marker_mm),
                       file_name=downloads.marker_sheet_name(marker_mm), mime="application/pdf",
                       icon=":material/print:", key="download_markers", on_click="ignore")


def _stem(ctx: common.Context) -> str:
    raw = f"{ctx.patient.code}_{ctx.patch.label}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw).strip("-")[:80] or "repigment"


def _zip(ctx: common.Context, result: PatchAnalysis, document_text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("results.json", document_text)
        archive.writestr("results.csv", result.csv_text or "")
        for mask, sha256 in result.full_masks():
            archive.writestr(mask, ctx.store.derived_path(sha256, ".png").read_bytes())
    return buffer.getvalue()


def _export(ctx: common.Context, result: PatchAnalysis) -> None:
    document_text = json.dumps(result.document, indent=2, allow_nan=False)
    stem = _stem(ctx)
    st.subheader("Report" if not ctx.patient_mode else "Report to print or share")
    st.markdown("A PDF: the course with its week-24 and week-52 checks, the first and latest photos with the "
                "change map, every visit as a thumbnail, the patient's F-VASI and T-VASI across all patches (with a "
                "hand unit), and the table of visits." if not ctx.patient_mode else
                "A short PDF with your progress and all your photos, to show your doctor.")
    st.download_button("Download PDF report",
                       lambda: downloads.report_pdf_bytes(ctx.store, ctx.patient, ctx.patch, result),
                       file_name=downloads.report_name(ctx.patient), mime="application/pdf",
                       icon=":material/picture_as_pdf:", key="download_report", type="primary", on_click="ignore",
                       help="Shows the patient code only, never a name.")
    st.subheader("Results files" if not ctx.patient_mode else "Your figures")
    if ctx.patient_mode:
        st.markdown("Download your results to share them with your doctor. The files hold the figures of every "
                    "photo, not the photos themselves.")
    else:
        st.markdown("The same files as `repigment analyze` writes: `results.csv` (one row per visit) and "
                    f"`results.json` (schema version {result.document['schema_version']}, with every figure as a "
                    "measurement record: value, unit, method). The ZIP adds the full-resolution masks.")
    buttons = st.container(horizontal=True)
    buttons.download_button("Download CSV", result.csv_text or "", file_name=f"{stem}_results.csv",
                               mime="text/csv", icon=":material/table:", key="download_csv")
    buttons.download_button("Download JSON", document_text, file_name=f"{stem}_results.json",
                               mime="application/json", icon=":material/data_object:", key="download_json")
    if not ctx.patient_mode:
        # Built when clicked: it reads and packs every full-resolution mask.
        buttons.download_button("Download ZIP with masks", lambda: _zip(ctx, result, document_text),
                                   file_name=f"{stem}_results.zip", mime="application/zip",
                                   icon=":material/folder_zip:", key="download_zip", on_click="ignore")
        st.subheader("results.csv")
        st.dataframe(pd.read_csv(io.StringIO(result.csv_text or "")), hide_index=True, width="stretch")


if __name__ == "__main__":
    render()
