"""The app with clinic accounts: sign-in, a patient kept to their own data, sessions that expire, the audit log."""

from __future__ import annotations

import datetime as dt

import pytest
from streamlit.testing.v1 import AppTest
from test_app import APP, app_env, assert_clean, button, demo_data  # noqa: F401 - fixtures

from repigment.store import Store, accounts

PASSWORD = "correct horse battery"


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at


def _with_accounts(data) -> tuple[int, str, int]:
    """A clinician account, a second patient, and an access code for the demo patient."""
    with Store(data) as store:
        accounts.add_clinician(store, "dr.lee", PASSWORD)
        [demo] = store.patients()
        other = store.create_patient("P-0099")
        return demo.id, accounts.issue_patient_code(store, demo.id), other.id


def _sign_in_patient(at: AppTest, code: str) -> None:
    [field] = [t for t in at.text_input if t.label == "Your access code"]
    field.set_value(code)
    button(at, "Open my photos").click().run(timeout=300)


def _sign_in_clinician(at: AppTest) -> None:
    [username] = [t for t in at.text_input if t.label == "Username"]
    [password] = [t for t in at.text_input if t.label == "Password"]
    username.set_value("dr.lee")
    password.set_value(PASSWORD)
    button(at, "Sign in").click().run(timeout=300)


def test_without_accounts_the_app_is_single_user_and_says_so(app_env):
    at = _app()
    assert_clean(at)
    assert any("Single-user mode" in c.value for c in at.sidebar.caption)


def test_with_accounts_nothing_shows_before_signing_in(app_env):
    _with_accounts(app_env)
    at = _app()
    assert not at.exception
    assert at.title[0].value == "repigment" and not at.dataframe and not at.metric
    assert not any("DEMO-001" in str(getattr(e, "value", "")) for e in at.main)
    [username] = [t for t in at.text_input if t.label == "Username"]
    [password] = [t for t in at.text_input if t.label == "Password"]
    username.set_value("dr.lee")
    password.set_value("wrong password!")
    button(at, "Sign in").click().run()
    assert any("wrong username or password" in e.value for e in at.error)
    [password] = [t for t in at.text_input if t.label == "Password"]
    password.set_value(PASSWORD)
    button(at, "Sign in").click().run(timeout=300)
    assert_clean(at)
    assert len(at.dataframe) == 1  # the course of the demo patient
    assert any("Signed in as clinician dr.lee" in c.value for c in at.sidebar.caption)


def test_a_patient_sees_only_their_own_data(app_env):
    demo_id, code, other_id = _with_accounts(app_env)
    at = _app()
    _sign_in_patient(at, code)
    assert_clean(at)
    assert at.title[0].value.startswith("My progress")  # patient mode, with no switch to clinician mode
    assert not [r for r in at.sidebar.radio if r.label == "View for"]
    assert not [s for s in at.sidebar.selectbox if s.label in ("Patient", "Your code")]
    assert any("Your code: DEMO-001" in c.value for c in at.sidebar.caption)
    everything = " ".join(str(getattr(e, "value", "")) for e in at.sidebar) + " ".join(
        str(getattr(e, "value", "")) for e in at.main)
    assert "P-0099" not in everything
    # Asking for another patient (as a URL parameter would) still shows only their own.
    at.session_state["patient"] = other_id
    at.run(timeout=300)
    assert_clean(at)
    assert any("Your code: DEMO-001" in c.value for c in at.sidebar.caption)
    with Store(app_env) as store:
        views = [e for e in accounts.audit_entries(store) if e.action == "view"]
    assert views and all(e.actor == "patient DEMO-001" and e.patient_id == demo_id for e in views)


def test_a_revoked_code_no_longer_opens_anything(app_env):
    demo_id, code, _ = _with_accounts(app_env)
    with Store(app_env) as store:
        accounts.revoke_patient_codes(store, demo_id)
    at = _app()
    _sign_in_patient(at, code)
    assert any("not valid" in e.value for e in at.error)
    assert not at.dataframe


@pytest.mark.parametrize("ending", ["idle", "revoked"])
def test_an_open_session_ends_when_idle_or_when_its_code_is_revoked(app_env, ending):
    demo_id, code, _ = _with_accounts(app_env)
    at = _app()
    _sign_in_patient(at, code)
    assert at.dataframe
    if ending == "idle":
        at.session_state["_auth"]["last"] -= accounts.SESSION_IDLE + dt.timedelta(minutes=1)
    else:
        with Store(app_env) as store:
            accounts.revoke_patient_codes(store, demo_id)
    at.run()
    expected = "signed out after a while" if ending == "idle" else "access was withdrawn"
    assert any(expected in i.value for i in at.info)
    assert not at.dataframe


def test_every_change_is_in_the_audit_log_with_who_made_it(app_env):
    demo_id, _, _ = _with_accounts(app_env)
    at = _app()
    _sign_in_clinician(at)
    at.switch_page("src/repigment/webapp/views/patients.py").run()
    at.text_input(key="new_patch_label").set_value("left cheek")
    at.selectbox(key="new_patch_region").set_value("face")
    button(at, "Create patch").click().run()
    assert_clean(at)
    with Store(app_env) as store:
        entries = accounts.audit_entries(store, patient_id=demo_id)
    created = [e for e in entries if e.action == "create_patch"]
    assert created and created[0].actor == "clinician dr.lee" and "left cheek" in created[0].detail
    assert any(e.action == "view" and "Patients" in e.detail for e in entries)


def test_a_patient_without_a_patch_is_told_the_clinic_sets_it_up(app_env):
    _, _, other_id = _with_accounts(app_env)
    with Store(app_env) as store:
        code = accounts.issue_patient_code(store, other_id)
    at = _app()
    _sign_in_patient(at, code)
    assert_clean(at)
    assert any("Your clinic has not set up a patch" in i.value for i in at.info)


def test_a_clinician_issues_and_revokes_a_code_on_the_patients_page(app_env):
    demo_id, _, _ = _with_accounts(app_env)
    at = _app()
    _sign_in_clinician(at)
    at.switch_page("src/repigment/webapp/views/patients.py").run()
    button(at, "Issue a new access code").click().run()
    assert_clean(at)
    [shown] = [m.value for m in at.success if "Access code for DEMO-001" in m.value]
    code = shown.split("**")[1]
    with Store(app_env) as store:
        assert accounts.sign_in_patient(store, code).patient_id == demo_id
        assert any(e.action == "access code issued" and e.actor == "clinician dr.lee"
                   for e in accounts.audit_entries(store, patient_id=demo_id))
    button(at, "Revoke all codes").click().run()
    assert any("Revoked 2 code(s)" in m.value for m in at.success)
