"""Export: the results as CSV and JSON in the CLI's schema, and a ZIP with the masks.

A page script: ``st.navigation`` runs this file; importing it does nothing.
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import pandas as pd
import streamlit as st

from repigment.webapp import common
from repigment.webapp.analysis import PatchAnalysis


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
            return
        if result.document is None:
            st.error("The series cannot be measured, so there are no results to export: " + (result.error or ""),
                     icon=":material/error:")
            return
        _export(ctx, result)


def _stem(ctx: common.Context) -> str:
    raw = f"{ctx.patient.code}_{ctx.patch.label}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw).strip("-")[:80] or "repigment"


def _zip(ctx: common.Context, result: PatchAnalysis, document_text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("results.json", document_text)
        archive.writestr("results.csv", result.csv_text or "")
        for entry, position in zip(result.document["visits"], range(len(result.document["visits"]))):
            files = result.files(position)
            if entry.get("mask") and files is not None and files.full_mask_sha256:
                path = ctx.store.derived_path(files.full_mask_sha256, ".png")
                archive.writestr(entry["mask"], path.read_bytes())
    return buffer.getvalue()


def _export(ctx: common.Context, result: PatchAnalysis) -> None:
    document_text = json.dumps(result.document, indent=2, allow_nan=False)
    stem = _stem(ctx)
    if ctx.patient_mode:
        st.markdown("Download your results to share them with your doctor. The files hold the figures of every "
                    "photo, not the photos themselves.")
    else:
        st.markdown("The same files as `repigment analyze` writes: `results.csv` (one row per visit) and "
                    f"`results.json` (schema version {result.document['schema_version']}, with every figure as a "
                    "measurement record: value, unit, method). The ZIP adds the full-resolution masks.")
    buttons = st.container(horizontal=True)
    buttons.download_button("Download CSV", result.csv_text or "", file_name=f"{stem}_results.csv",
                               mime="text/csv", icon=":material/table:", key="download_csv", type="primary")
    buttons.download_button("Download JSON", document_text, file_name=f"{stem}_results.json",
                               mime="application/json", icon=":material/data_object:", key="download_json")
    if not ctx.patient_mode:
        buttons.download_button("Download ZIP with masks", _zip(ctx, result, document_text),
                                   file_name=f"{stem}_results.zip", mime="application/zip",
                                   icon=":material/folder_zip:", key="download_zip")
        st.subheader("results.csv")
        st.dataframe(pd.read_csv(io.StringIO(result.csv_text or "")), hide_index=True, width="stretch")


if __name__ == "__main__":
    render()
