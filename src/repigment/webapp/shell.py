"""The frame around every page: the page list, the mode switch and the sidebar pickers."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from . import caching, common
from .wording import Words

__all__ = ["mode_switch", "page", "pages", "sidebar"]

VIEWS = Path(__file__).parent / "views"
# name -> (script, url path, icon, title attribute of Words)
_PAGES = {
    "course": ("course.py", "course", ":material/show_chart:", "course_page"),
    "add": ("add_visit.py", "add-visit", ":material/add_a_photo:", "add_page"),
    "review": ("review.py", "review", ":material/compare:", "review_page"),
    "export": ("export.py", "export", ":material/download:", "export_page"),
    "patients": ("patients.py", "patients", ":material/group:", "patients_page"),
    "guide": ("guide.py", "photo-guide", ":material/photo_camera:", "guide_page"),
}


def page(name: str, w: Words) -> st.Page:
    """The ``st.Page`` of a page by name (for navigation, links and switching)."""
    script, url_path, icon, title = _PAGES[name]
    return st.Page(VIEWS / script, title=getattr(w, title), icon=icon, url_path=url_path, default=name == "course")


def pages(w: Words) -> list[st.Page]:
    return [page(name, w) for name in _PAGES]


def mode_switch() -> bool:
    """Clinician or patient mode, in the sidebar and in the URL (``?mode=Patient``)."""
    default = 1 if os.environ.get("REPIGMENT_MODE", "").strip().lower() == "patient" else 0
    st.sidebar.radio(
        "View for",
        [common.CLINICIAN, common.PATIENT_MODE],
        index=default,
        key=common.MODE,
        horizontal=True,
        bind="query-params",
        help="Patient mode uses plain words and shows the main figures only; clinician mode shows every figure.",
    )
    return common.is_patient_mode()


def sidebar(samples: Path) -> None:
    """Patient and patch pickers (after importing the demo patient into an empty store).

    ``REPIGMENT_SAMPLES`` may point the demo at another samples folder.
    """
    with common.guard("opening the data folder"):
        caching.ensure_demo(os.environ.get("REPIGMENT_SAMPLES") or samples)
        _pickers()


def _pickers() -> None:
    store = caching.get_store()
    patient_mode = common.is_patient_mode()
    common.apply_pending_selection()
    patients = store.patients()
    ids = [p.id for p in patients]
    # A selection that no longer exists (deleted) falls back to the first entry.
    if st.session_state.get(common.PATIENT) not in ids:
        st.session_state.pop(common.PATIENT, None)
    if not patients:
        st.sidebar.caption("No patients yet.")
        return
    codes = {p.id: p.code for p in patients}
    # Bound to the URL (?patient=P-0001&patch=...), so a reload or bookmark keeps the selection.
    patient_id = st.sidebar.selectbox("Your code" if patient_mode else "Patient", ids, format_func=codes.get,
                                      key=common.PATIENT, bind="query-params")
    patches = store.patches(patient_id)
    labels = {p.id: p.label for p in patches}
    if st.session_state.get(common.PATCH) not in labels:
        st.session_state.pop(common.PATCH, None)
    if patches:
        st.sidebar.selectbox("Patch", list(labels), format_func=labels.get, key=common.PATCH,
                             bind="query-params")
    else:
        st.sidebar.caption("No patch yet.")
    if not patient_mode:
        st.sidebar.caption(f"Data folder: `{store.data_dir}`")
    st.sidebar.caption(
        "Your photos stay on this computer. Location data is removed before they are saved." if patient_mode else
        "Photos and results stay on this computer. GPS location is removed from photos before they are saved."
    )
