"""The frame around every page: sign-in, the page list, the mode switch and the sidebar pickers."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import streamlit as st

from ..errors import RepigmentError
from ..store import accounts
from . import caching, common
from .wording import Words

__all__ = ["mode_switch", "page", "pages", "run", "sidebar", "sign_in"]

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
    """The pages this session may open: a signed-in patient has no patients list."""
    hidden = {"patients"} if common.identity().role == "patient" else set()
    return [page(name, w) for name in _PAGES if name not in hidden]


def sign_in() -> accounts.Identity:
    """This session's identity; with accounts, the sign-in page until someone signs in.

    Without any clinician account the app is the single user's, on this
    computer only (Streamlit binds to localhost), and says so in the sidebar.
    A session idle for longer than :data:`repigment.store.accounts.SESSION_IDLE`
    signs in again.
    """
    try:
        store = caching.get_store()
    except RepigmentError as exc:
        # Never a way in: without the store there is no knowing whether accounts are required.
        st.error(f"The data folder cannot be opened: {exc}", icon=":material/error:")
        st.stop()
    if not accounts.accounts_enabled(store):
        st.sidebar.caption("Single-user mode: no accounts are set up, so the app is reachable from this computer "
                           "only. A clinic adds accounts with `repigment accounts add-clinician`.")
        return accounts.LOCAL
    now = _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)
    auth = st.session_state.get(common.AUTH)
    if auth is not None and not accounts.session_expired(auth["last"], now):
        if accounts.still_valid(store, auth["identity"]):
            auth["last"] = now
            _sign_out_button(auth["identity"])
            return auth["identity"]
        _forget_session()
        st.info("Your access was withdrawn (the account or access code no longer exists). Please sign in again.",
                icon=":material/lock:")
    elif auth is not None:
        _forget_session()
        st.info("You were signed out after a while without activity. Please sign in again.",
                icon=":material/schedule:")
    _sign_in_page(store, now)
    st.stop()


def _sign_out_button(who: accounts.Identity) -> None:
    st.sidebar.caption(f"Signed in as {who.actor}.")
    if st.sidebar.button("Sign out", key="sign_out"):
        accounts.record(caching.get_store(), who, "signed out", who.patient_id)
        _forget_session()
        st.rerun()


def _forget_session() -> None:
    """Nothing of a signed-out session (who, selections, drawings) is kept."""
    for key in list(st.session_state):
        del st.session_state[key]


def _sign_in_page(store, now: _dt.datetime) -> None:
    st.title("repigment")
    clinician, patient = st.tabs(["Clinician", "Patient"])
    with clinician, st.form("sign_in_clinician"):
        username = st.text_input("Username", max_chars=40)
        password = st.text_input("Password", type="password", max_chars=200)
        if st.form_submit_button("Sign in", type="primary"):
            _try(lambda: accounts.sign_in_clinician(store, username, password), now)
    with patient, st.form("sign_in_patient"):
        code = st.text_input("Your access code", max_chars=40, placeholder="XXXXX-XXXXX-XXXXX-XXXXX",
                             help="The personal code your clinic gave you.")
        if st.form_submit_button("Open my photos", type="primary"):
            _try(lambda: accounts.sign_in_patient(store, code), now)


def _try(attempt, now: _dt.datetime) -> None:
    try:
        who = attempt()
    except RepigmentError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    _forget_session()  # nothing of an earlier session carries over
    st.session_state[common.AUTH] = {"identity": who, "last": now}
    if who.role == "patient":
        st.session_state[common.PATIENT] = who.patient_id
    st.rerun()


def run(navigation) -> None:
    """Draw the chosen page (its title is named in the audit log)."""
    # Without a Streamlit runtime (a process-pool worker re-importing the app as
    # its main module) a page has no title yet: there is nothing to audit then.
    st.session_state[common.PAGE] = getattr(navigation, "_title", None) and navigation.title
    navigation.run()


def mode_switch() -> bool:
    """Clinician or patient mode, in the sidebar and in the URL (``?mode=Patient``).

    A signed-in patient is always in patient mode, with no switch.
    """
    if common.identity().role == "patient":
        return True
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
    who = common.identity()
    patients = store.patients()
    if who.role == "patient":
        # Only their own record: no other patient's code is ever listed.
        patients = [p for p in patients if p.id == who.patient_id]
        st.session_state[common.PATIENT] = who.patient_id
    ids = [p.id for p in patients]
    # A selection that no longer exists (deleted) falls back to the first entry.
    if st.session_state.get(common.PATIENT) not in ids:
        st.session_state.pop(common.PATIENT, None)
    if not patients:
        st.sidebar.caption("No patients yet.")
        return
    codes = {p.id: p.code for p in patients}
    # Bound to the URL (?patient=P-0001&patch=...), so a reload or bookmark keeps the selection.
    if who.role == "patient":
        patient_id = who.patient_id
        st.sidebar.caption(f"Your code: {codes[patient_id]}")
    else:
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
