"""Patients and patches: create them, set the treatment and its events.

A page script: ``st.navigation`` runs this file; importing it does nothing.
"""

from __future__ import annotations

import datetime as _dt

import pandas as pd
import streamlit as st

from repigment.store import DEFAULT_REGIMEN, accounts, hand_units
from repigment.vocabulary import DEFAULT_MARKER_MM, BodyRegion, EventKind
from repigment.webapp import common, downloads

_REGIONS = [region.value for region in BodyRegion]
_EVENT_KINDS = [kind.value for kind in EventKind]


def render() -> None:
    ctx = common.context()
    st.title(ctx.words.patients_page)
    common.show_flash()
    with common.guard("saving"):
        _page(ctx)


def _page(ctx: common.Context) -> None:
    if ctx.patient is not None:
        if ctx.patch is not None:
            _edit_patch(ctx)
        _hand_unit(ctx)
        _new_patch(ctx)
    if not ctx.patient_mode or ctx.patient is None:
        _new_patient(ctx)
    if not ctx.patient_mode and ctx.patient is not None:
        _access_codes(ctx)
        _delete(ctx)


def _access_codes(ctx: common.Context) -> None:
    """A personal access code for the patient, shown once; or every code revoked."""
    who = common.identity()
    if not accounts.accounts_enabled(ctx.store):
        return
    with st.expander(f"Access code for {ctx.patient.code}", icon=":material/key:"):
        st.caption("With the code, the patient signs in and sees only their own photos and figures. It is shown "
                   "once (only a hash is kept); a new code does not cancel earlier ones, revoking does.")
        columns = st.columns(2)
        if columns[0].button("Issue a new access code", key="issue_code"):
            code = accounts.issue_patient_code(ctx.store, ctx.patient.id, actor=who.actor)
            st.success(f"Access code for {ctx.patient.code}: **{code}**. Give it to the patient now; it is not "
                       "shown again.", icon=":material/key:")
        if columns[1].button("Revoke all codes", key="revoke_codes"):
            count = accounts.revoke_patient_codes(ctx.store, ctx.patient.id, actor=who.actor)
            st.success(f"Revoked {count} code(s): signed-in sessions with them end at their next page.")


def _region_label(ctx: common.Context) -> str:
    return "Part of the body" if ctx.patient_mode else "Body region (VASI)"


def _region_name(region: str) -> str:
    # Either spelling ("upper_limbs" as older databases kept it) shows as the same option.
    return BodyRegion.parse(region).label


def _new_patient(ctx: common.Context) -> None:
    st.subheader("New patient" if not ctx.patient_mode else "Set up")
    with st.form("new_patient", clear_on_submit=True, border=True):
        code = st.text_input("Patient code", value=ctx.store.next_patient_code(), max_chars=40,
                             help="A pseudonym such as P-0001: letters, digits, '-', '_' or '.'. "
                                  "Do not enter the patient's name.")
        notes = st.text_area("Notes (optional)", placeholder="No names or other identifying details")
        if st.form_submit_button("Create patient", type="primary"):
            patient = ctx.store.create_patient(code, notes)
            common.select(patient.id, None)
            common.flash(f"Created patient {patient.code}. Now add a patch.")
            st.rerun()


def _new_patch(ctx: common.Context) -> None:
    st.subheader(f"New patch for {ctx.patient.code}" if not ctx.patient_mode else "Add a patch to follow")
    # Not cleared on submit: a patch refused for a missing body region keeps what was typed.
    with st.form("new_patch", border=True):
        columns = st.columns(2)
        label = columns[0].text_input("Where is the patch?", placeholder="e.g. back of left hand", max_chars=80,
                                      key="new_patch_label")
        # No default: a wrong body region silently changes the VASI weights and the week-24 level.
        region = columns[1].selectbox(_region_label(ctx), _REGIONS, format_func=_region_name,
                                      index=None, placeholder="Choose…", key="new_patch_region")
        columns = st.columns(3)
        start = columns[0].date_input("Treatment start", value=None, format="YYYY-MM-DD",
                                      help="Week 0 of the chart. Leave empty to count from the first photo.")
        regimen = columns[1].text_input("Treatment", value=DEFAULT_REGIMEN, max_chars=200)
        marker = columns[2].number_input("Scale marker side (mm)", min_value=1.0, max_value=500.0,
                                         value=DEFAULT_MARKER_MM, step=1.0,
                                         help="Printed side of the ArUco marker, black edge to black edge.")
        notes = st.text_area("Notes (optional)")
        if st.form_submit_button("Create patch", type="primary"):
            if region is None:
                st.error(f"Choose the {_region_label(ctx).lower().removesuffix(' (vasi)')} of the patch: "
                         "it sets the VASI weights and the level that counts as a worthwhile response.",
                         icon=":material/error:")
                return
            patch = ctx.store.create_patch(ctx.patient.id, label, region, notes=notes, treatment_start=start,
                                           regimen=regimen, marker_mm=marker)
            for key in ("new_patch_label", "new_patch_region"):
                st.session_state.pop(key, None)  # an empty form for the next patch
            common.select(ctx.patient.id, patch.id)
            common.flash(f"Created patch “{patch.label}”. Add its first visit next.")
            st.rerun()


def _edit_patch(ctx: common.Context) -> None:
    patch = ctx.patch
    st.subheader(f"Patch: {patch.label}")
    with st.form(f"edit_patch_{patch.id}", border=True):
        columns = st.columns(2)
        label = columns[0].text_input("Where is the patch?", value=patch.label, max_chars=80)
        region = columns[1].selectbox(_region_label(ctx), _REGIONS,
                                      index=_REGIONS.index(BodyRegion.parse(patch.body_region)),
                                      format_func=_region_name)
        columns = st.columns(3)
        start = columns[0].date_input("Treatment start", value=patch.treatment_start, format="YYYY-MM-DD",
                                      help="Week 0 of the chart. Empty: the first photo's date.")
        regimen = columns[1].text_input("Treatment", value=patch.regimen, max_chars=200)
        marker = columns[2].number_input("Scale marker side (mm)", min_value=1.0, max_value=500.0,
                                         value=float(patch.marker_mm), step=1.0)
        notes = st.text_area("Notes", value=patch.notes)
        if st.form_submit_button("Save changes"):
            ctx.store.update_patch(patch.id, label=label, body_region=region, notes=notes, marker_mm=marker,
                                   treatment_start=start, regimen=regimen)
            common.flash("Saved. The course is re-measured with the new settings when you open it.")
            st.rerun()
    st.download_button(f"Print the scale markers ({patch.marker_mm:g} mm)",
                       lambda: downloads.marker_sheet(patch.marker_mm),
                       file_name=downloads.marker_sheet_name(patch.marker_mm), mime="application/pdf",
                       icon=":material/print:", key="download_markers_patch", on_click="ignore",
                       help="A PDF sheet of ArUco markers at exact size: print at 100 % (actual size) and check "
                            "the 50 mm line with a ruler.")
    _events(ctx)


def _hand_unit(ctx: common.Context) -> None:
    """The patient's VASI hand unit: from a palm photo, from height and weight, or typed in."""
    with st.container(border=True, key="hand_unit_section"):
        _hand_unit_form(ctx)


def _hand_unit_form(ctx: common.Context) -> None:
    patient = ctx.patient
    marker_mm = ctx.patch.marker_mm if ctx.patch is not None else DEFAULT_MARKER_MM
    if ctx.patient_mode:
        st.subheader("Size of your hand")
        st.caption("Your doctor's score (VASI) counts the white area in hand-sized units: your palm with your "
                   "fingers. Measure it once.")
    else:
        st.subheader(f"Hand unit of {patient.code}")
        st.caption("One VASI hand unit = palm plus the volar surface of all five digits (≈ 1 % of body surface "
                   "area). It turns areas in cm² into VASI; the repigmentation % does not depend on it.")
    columns = st.columns([4, 1], vertical_alignment="center")
    columns[0].markdown(hand_units.describe(patient))
    if patient.hand_unit_cm2 is not None and not ctx.patient_mode:
        if columns[1].button("Forget it", key="forget_hand_unit", help="Remove the hand unit (VASI is not scored)"):
            ctx.store.set_hand_unit(patient.id, None)
            st.rerun()
    photo_tab, size_tab, typed_tab = st.tabs(["Palm photo", "Height and weight", "Type it in"])
    with photo_tab:
        st.caption("A photo of the open hand, palm up, fingers together, on a dark plain cloth, with the printed "
                   f"{marker_mm:g} mm scale marker flat beside it and the phone straight above.")
        with st.form(f"hand_photo_{patient.id}", clear_on_submit=True, border=False):
            upload = st.file_uploader("Palm photo", type=None, key="hand_photo")
            if st.form_submit_button("Measure hand unit"):
                if upload is None:
                    st.error("Choose a photo of the palm first.", icon=":material/error:")
                else:
                    notes = hand_units.measure_and_save(ctx.store, patient, upload.getvalue(), marker_mm=marker_mm)
                    common.flash("Hand unit measured and saved." + "".join(f" {n}" for n in notes))
                    st.rerun()
    with size_tab:
        with st.form(f"hand_size_{patient.id}", border=False):
            columns = st.columns(2)
            height = columns[0].number_input("Height (cm)", min_value=0.0, max_value=260.0, value=None,
                                             step=1.0, key="hand_height")
            weight = columns[1].number_input("Weight (kg)", min_value=0.0, max_value=400.0, value=None,
                                             step=1.0, key="hand_weight")
            if st.form_submit_button("Estimate hand unit"):
                hand_units.estimate_and_save(ctx.store, patient, height, weight)
                common.flash("Hand unit estimated from height and weight (1 % of body surface area) and saved.")
                st.rerun()
    with typed_tab:
        with st.form(f"hand_typed_{patient.id}", border=False):
            value = st.number_input("Hand unit (cm²)", min_value=0.0, max_value=2000.0, value=patient.hand_unit_cm2,
                                    step=1.0, key="hand_unit_cm2", help="Adults: usually 120-250 cm².")
            if st.form_submit_button("Save hand unit"):
                hand_units.enter_and_save(ctx.store, patient, value)
                common.flash("Hand unit saved.")
                st.rerun()


def _events(ctx: common.Context) -> None:
    patch = ctx.patch
    st.markdown("**Treatment events** (phototherapy, changes, pauses), shown as ticks on the chart")
    if patch.events:
        frame = pd.DataFrame([{"Date": e.date, "Event": e.kind_label, "Details": e.description}
                              for e in patch.events])
        st.dataframe(frame, hide_index=True, width="stretch",
                     column_config={"Date": st.column_config.DateColumn(format="YYYY-MM-DD")})
    with st.form(f"new_event_{patch.id}", clear_on_submit=True, border=False):
        columns = st.columns([1, 1, 2])
        date = columns[0].date_input("Date", value=_dt.date.today(), format="YYYY-MM-DD")
        kind = columns[1].selectbox("Event", _EVENT_KINDS, format_func=lambda k: EventKind.parse(k).label)
        description = columns[2].text_input("Details", placeholder="e.g. NB-UVB twice weekly")
        if st.form_submit_button("Add event"):
            ctx.store.add_event(patch.id, date, kind, description)
            common.flash("Event added.")
            st.rerun()
    if patch.events:
        events = {e.id: e for e in patch.events}
        columns = st.columns([3, 1], vertical_alignment="bottom")
        chosen = columns[0].selectbox("Remove an event", list(events), key="remove_event",
                                      format_func=lambda i: f"{events[i].date.isoformat()} · {events[i].kind_label}")
        if columns[1].button("Remove", key="remove_event_button"):
            ctx.store.delete_event(chosen)
            st.rerun()


def _delete(ctx: common.Context) -> None:
    with st.expander("Delete", icon=":material/delete:"):
        if ctx.patch is not None:
            sure = st.checkbox(f"Delete patch “{ctx.patch.label}” with all its visits", key="confirm_delete_patch")
            if st.button("Delete patch", disabled=not sure, key="delete_patch"):
                ctx.store.delete_patch(ctx.patch.id)
                common.select(ctx.patient.id, None)
                st.rerun()
        sure = st.checkbox(f"Delete patient {ctx.patient.code} with all patches and visits",
                           key="confirm_delete_patient")
        if st.button("Delete patient", disabled=not sure, key="delete_patient"):
            ctx.store.delete_patient(ctx.patient.id)
            common.select(None, None)
            st.rerun()


if __name__ == "__main__":
    render()
