"""What every page shares: the mode, the selected patient and patch, error guards.

Selections live in ``st.session_state``, bound to URL parameters: ``mode``
(``"Clinician"`` or ``"Patient"``; ``REPIGMENT_MODE=patient`` makes patient
mode the default, for a patient's own computer), ``patient`` and ``patch``
(ids; the URL shows the patient code and patch label). Pages change the
selection through :func:`select`, which takes effect on the next run, before
the sidebar's widgets are drawn.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import streamlit as st

from ..errors import RepigmentError
from ..store import Patch, Patient, Store, accounts
from ..store import analyses as analysis
from . import caching
from .course_data import week_label  # noqa: F401  (the views format weeks through common)
from .wording import Words, words

__all__ = ["AuditedStore", "Context", "context", "flash", "guard", "identity", "is_patient_mode", "patch_analysis",
           "select", "show_flash"]

log = logging.getLogger("repigment.webapp")
_PENDING = "_pending_selection"
#: Session-state keys (and URL parameters) of the selected patient and patch ids.
PATIENT = "patient"
PATCH = "patch"
#: Session-state key (and URL parameter) of the mode, and its two values.
MODE = "mode"
CLINICIAN = "Clinician"
PATIENT_MODE = "Patient"
_FLASH = "_flash"
#: Session-state keys: who is signed in ({"identity", "last"}), and the page being drawn.
AUTH = "_auth"
PAGE = "_page"
_VIEWED = "_audited_view"
#: Store methods that change a patient's data: each call is written to the audit log.
_AUDITED = frozenset({
    "create_patient", "set_hand_unit", "delete_patient", "create_patch", "update_patch", "set_roi", "set_labels",
    "set_photo_labels",
    "delete_patch", "add_event", "delete_event", "add_visits", "update_visit", "delete_visit",
})


_FREE_TEXT = frozenset({"notes", "description", "detail"})


def _audit_value(value) -> str:
    """A value as the audit log shows it: long text is not copied."""
    if isinstance(value, str) and len(value) > 60:
        return "(text)"
    return repr(value)


def identity() -> accounts.Identity:
    """Who uses this session: the signed-in clinician or patient, or the single local user."""
    auth = st.session_state.get(AUTH)
    return auth["identity"] if auth else accounts.LOCAL


def is_patient_mode() -> bool:
    return identity().role == "patient" or st.session_state.get(MODE, CLINICIAN) == PATIENT_MODE


class AuditedStore:
    """The store as a session sees it: every change of a patient's data is written to the audit log.

    Reads pass straight through; each call of a method in ``_AUDITED`` that
    succeeds adds an entry naming this session's identity, the method, the
    patient and the call's arguments (ids, dates, labels; never photo bytes).
    """

    def __init__(self, store: Store, who: accounts.Identity, patient_id: int | None):
        self._store, self._who, self._patient_id = store, who, patient_id

    def __getattr__(self, name: str):
        attribute = getattr(self._store, name)
        if name not in _AUDITED or not callable(attribute):
            return attribute

        def audited(*args, **kwargs):
            result = attribute(*args, **kwargs)
            # Ids, dates, numbers and short labels; free text (notes, descriptions) only as "changed",
            # since the log outlives a deleted patient.
            shown = [_audit_value(a) for a in args if isinstance(a, (int, float, str, _dt.date))]
            shown += [f"{k}=" + ("(changed)" if k in _FREE_TEXT else _audit_value(v)) for k, v in kwargs.items()
                      if isinstance(v, (int, float, str, _dt.date, type(None)))]
            patient_id = getattr(result, "patient_id", None) or (result.id if name == "create_patient" else None)
            accounts.record(self._store, self._who, name, patient_id or self._patient_id, ", ".join(shown)[:500])
            return result

        return audited


@dataclass(frozen=True)
class Context:
    """The store (as an :class:`AuditedStore`: changes are audited) and what the user has selected."""

    store: Store | AuditedStore
    patient: Patient | None
    patch: Patch | None
    patient_mode: bool

    @property
    def words(self) -> Words:
        return words(self.patient_mode)


def context() -> Context:
    """The store and the current selection; stops the page with a message if the store cannot open."""
    try:
        store = caching.get_store()
    except RepigmentError as exc:
        st.error(f"The data folder cannot be opened: {exc}", icon=":material/error:")
        st.stop()
    patient = patch = None
    patient_id = st.session_state.get(PATIENT)
    patch_id = st.session_state.get(PATCH)
    who = identity()
    if who.role == "patient":
        patient_id = who.patient_id  # a signed-in patient sees their own data, whatever the URL says
    with contextlib.suppress(RepigmentError):
        if patient_id is not None:
            patient = store.patient(patient_id)
        if patch_id is not None and patient is not None:
            patch = store.patch(patch_id)
            if patch.patient_id != patient.id:
                patch = None
    if patient is not None:
        # One entry per page and patient a session looks at (not one per rerun).
        viewed = (st.session_state.get(PAGE), patient.id, None if patch is None else patch.id)
        if st.session_state.get(_VIEWED) != viewed:
            st.session_state[_VIEWED] = viewed
            accounts.record(store, who, "view", patient.id,
                            f"{viewed[0] or 'page'}" + ("" if patch is None else f", patch {patch.label}"))
    audited = AuditedStore(store, who, None if patient is None else patient.id)
    return Context(store=audited, patient=patient, patch=patch, patient_mode=is_patient_mode())


def select(patient_id: int | None = None, patch_id: int | None = None) -> None:
    """Select a patient (and patch) from the next run on."""
    st.session_state[_PENDING] = (patient_id, patch_id)


def apply_pending_selection() -> None:
    """Called by the sidebar before it draws its pickers."""
    pending = st.session_state.pop(_PENDING, None)
    if pending is not None:
        patient_id, patch_id = pending
        for key, value in ((PATIENT, patient_id), (PATCH, patch_id)):
            if value is None:
                st.session_state.pop(key, None)
            else:
                st.session_state[key] = value


def flash(message: str) -> None:
    """A success message shown once, on the next page drawn."""
    st.session_state[_FLASH] = message


def show_flash() -> None:
    message = st.session_state.pop(_FLASH, None)
    if message:
        st.success(message, icon=":material/check_circle:")


@contextlib.contextmanager
def guard(what: str) -> Iterator[None]:
    """Show failures as one line on the page, never as a traceback.

    Streamlit's own control flow (reruns, page switches) passes through: it
    raises ``BaseException`` subclasses.
    """
    try:
        yield
    except RepigmentError as exc:
        st.error(str(exc), icon=":material/error:")
    except Exception as exc:  # noqa: BLE001 - the page must survive; the log keeps the traceback
        log.exception("unexpected error while %s", what)
        st.error(f"Something went wrong while {what} ({type(exc).__name__}: {exc}). "
                 "The details are in the app's log.", icon=":material/error:")


def patch_analysis(ctx: Context, *, compute: bool = True) -> analysis.PatchAnalysis | None:
    """The selected patch's analysis: from the store, or computed now with a progress bar.

    Returns ``None`` when the patch has no photos (or when ``compute`` is off and
    nothing is cached).
    """
    if ctx.patch is None:
        return None
    request = analysis.request_for_patch(ctx.store, ctx.patch)
    if request is None:
        return None
    found = analysis.cached_analysis(ctx.store, request)
    if found is not None or not compute:
        return found
    total = len(request.photos)
    text = "Measuring your photos…" if ctx.patient_mode else "Analysing the series…"
    bar = st.progress(0.0, text=f"{text} preparing the first photo of {total} (the results are kept, so this "
                                "happens once)")

    def progress(done: int, count: int, name: str) -> None:
        bar.progress(done / max(count, 1), text=f"{text} {done} of {count} photos ({name})")

    result = analysis.get_or_analyse(ctx.store, request, progress=progress)
    bar.empty()
    return result


def no_patch_notice(ctx: Context) -> None:
    """What to do when nothing is selected yet."""
    if identity().role == "patient":
        # A signed-in patient's patches are set up by the clinic (there is no patients page for them).
        st.info("Your clinic has not set up a patch to follow for you yet.", icon=":material/info:")
        return
    if ctx.patient is None:
        st.info("No patient yet. Create one to start." if not ctx.patient_mode
                else "Nothing here yet. Set up your patch first.", icon=":material/info:")
    else:
        st.info(f"{ctx.patient.code} has no patch yet. Add one to start.", icon=":material/info:")
    from .shell import page

    st.page_link(page("patients", ctx.words), label=ctx.words.patients_page, icon=":material/group:")
