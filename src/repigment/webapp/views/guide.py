"""Photo guide: the capture checklist, so every photo can be compared with the first.

A page script: ``st.navigation`` runs this file; importing it does nothing.
"""

from __future__ import annotations

import streamlit as st

from repigment.webapp import common, wording
from repigment.webapp.shell import page


def render() -> None:
    ctx = common.context()
    st.title(ctx.words.guide_page)
    st.markdown("The app compares every photo with the first one, so each photo must be taken the same way."
                if ctx.patient_mode else
                "Comparable serial photos are what make the measurement trustworthy. Give patients this checklist.")
    for number, (title, text) in enumerate(wording.CAPTURE_CHECKLIST, start=1):
        with st.container(border=True):
            st.markdown(f"**{number}. {title}**  \n{text}")
    if not ctx.patient_mode:
        st.caption(wording.CLINICIAN_PHOTO_NOTES)
    st.page_link(page("add", ctx.words), label=ctx.words.add_page, icon=":material/add_a_photo:")


if __name__ == "__main__":
    render()
