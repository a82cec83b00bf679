"""Accounts against known truth, on SQLite and PostgreSQL: hashed passwords, rate limits, codes, the audit log."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from repigment.errors import InvalidParameterError
from repigment.store import Store, accounts


@pytest.fixture
def store(tmp_path, db_url):
    with Store(tmp_path / "data", url=db_url) as opened:
        yield opened


def test_no_accounts_until_a_clinician_is_added(store):
    assert not accounts.accounts_enabled(store)
    accounts.add_clinician(store, "dr.lee", "correct horse battery")
    assert accounts.accounts_enabled(store)
    with pytest.raises(accounts.AccountError, match="taken"):
        accounts.add_clinician(store, "dr.lee", "another long password")
    with pytest.raises(InvalidParameterError, match="at least 10"):
        accounts.add_clinician(store, "dr.kim", "short")
    with pytest.raises(InvalidParameterError, match="username"):
        accounts.add_clinician(store, "dr kim; drop", "a long enough password")


def test_passwords_are_stored_as_argon2_hashes_only(store):
    accounts.add_clinician(store, "dr.lee", "correct horse battery")
    with store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM users")).scalar()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    who = accounts.sign_in_clinician(store, "dr.lee", "correct horse battery")
    assert (who.role, who.actor, who.patient_id) == ("clinician", "clinician dr.lee", None)
    with pytest.raises(accounts.AccountError, match="wrong username or password"):
        accounts.sign_in_clinician(store, "dr.lee", "Correct horse battery")
    with pytest.raises(accounts.AccountError, match="wrong username or password"):  # same words: no username oracle
        accounts.sign_in_clinician(store, "nobody", "correct horse battery")


def test_sign_in_is_refused_after_five_failures_until_the_window_passes(store):
    accounts.add_clinician(store, "dr.lee", "correct horse battery")
    start = dt.datetime(2026, 11, 30, 9, 0)
    for minute in range(accounts.MAX_FAILURES):
        with pytest.raises(accounts.AccountError, match="wrong"):
            accounts.sign_in_clinician(store, "dr.lee", "guess", now=start + dt.timedelta(minutes=minute))
    later = start + dt.timedelta(minutes=6)
    with pytest.raises(accounts.AccountError, match="too many failed sign-ins: try again in 10 minutes"):
        accounts.sign_in_clinician(store, "dr.lee", "correct horse battery", now=later)  # even the right one
    after = start + accounts.FAILURE_WINDOW + dt.timedelta(minutes=1)
    assert accounts.sign_in_clinician(store, "dr.lee", "correct horse battery", now=after).role == "clinician"


def test_failures_older_than_the_window_are_not_kept(store):
    accounts.add_clinician(store, "dr.lee", "correct horse battery")
    start = dt.datetime(2026, 11, 30, 9, 0)
    for minute in range(3):
        with pytest.raises(accounts.AccountError, match="wrong"):
            accounts.sign_in_clinician(store, "dr.lee", "guess", now=start + dt.timedelta(minutes=minute))
    with pytest.raises(accounts.AccountError, match="not valid"):
        accounts.sign_in_patient(store, "AAAA-BBBB-CCCC-DDDD-EEEE", now=start)

    def kept() -> int:
        with store.engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM login_failures")).scalar()

    assert kept() == 4
    after = start + accounts.FAILURE_WINDOW + dt.timedelta(minutes=5)
    with pytest.raises(accounts.AccountError, match="wrong"):
        accounts.sign_in_clinician(store, "dr.lee", "guess", now=after)
    assert kept() == 1  # only the attempt just made


def test_a_patient_code_is_random_stored_hashed_and_revocable(store):
    first, second = store.create_patient("P-0001"), store.create_patient("P-0002")
    code = accounts.issue_patient_code(store, first.id, actor="clinician dr.lee")
    other = accounts.issue_patient_code(store, second.id)
    assert code != other and len(code.replace("-", "")) == 20
    with store.engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT code_sha256 FROM access_codes")).scalars().all()
    assert code not in kept and code.replace("-", "") not in kept
    who = accounts.sign_in_patient(store, code.lower().replace("-", " "))  # typed loosely still works
    assert (who.role, who.patient_id, who.actor) == ("patient", first.id, "patient P-0001")
    assert accounts.revoke_patient_codes(store, first.id) == 1
    with pytest.raises(accounts.AccountError, match="not valid"):
        accounts.sign_in_patient(store, code)
    assert accounts.sign_in_patient(store, other).patient_id == second.id  # another patient's code unaffected


def test_guessing_codes_is_rate_limited_for_everyone(store):
    patient = store.create_patient("P-0001")
    code = accounts.issue_patient_code(store, patient.id)
    start = dt.datetime(2026, 11, 30, 9, 0)
    for k in range(accounts.MAX_CODE_FAILURES):
        with pytest.raises(accounts.AccountError, match="not valid"):
            accounts.sign_in_patient(store, f"AAAAA-AAAAA-AAAAA-AA{k:03d}", now=start)
    with pytest.raises(accounts.AccountError, match="too many"):
        accounts.sign_in_patient(store, code, now=start + dt.timedelta(minutes=1))


def test_the_audit_log_says_who_did_what_to_whom_and_when(store):
    patient = store.create_patient("P-0001")
    accounts.add_clinician(store, "dr.lee", "correct horse battery")
    who = accounts.sign_in_clinician(store, "dr.lee", "correct horse battery")
    accounts.record(store, who, "view", patient.id, "course page")
    accounts.record(store, who, "update_visit", patient.id, "visit 3: date")
    entries = accounts.audit_entries(store, patient_id=patient.id)
    assert [(e.actor, e.action, e.detail) for e in entries[:2]] == [
        ("clinician dr.lee", "update_visit", "visit 3: date"), ("clinician dr.lee", "view", "course page")]
    assert all(isinstance(e.at, dt.datetime) for e in entries)
    everyone = [e.action for e in accounts.audit_entries(store)]
    assert "signed in" in everyone and "account created" in everyone


def test_sessions_expire_after_idle_time():
    last = dt.datetime(2026, 11, 30, 9, 0)
    assert not accounts.session_expired(last, last + dt.timedelta(minutes=29))
    assert accounts.session_expired(last, last + accounts.SESSION_IDLE + dt.timedelta(seconds=1))


def test_the_cli_manages_accounts_and_prints_the_audit_log(tmp_path):
    import subprocess
    import sys

    from conftest import assert_one_line_error, cli_env, run_cli

    env = {"REPIGMENT_DATA": str(tmp_path / "data")}
    with Store(tmp_path / "data") as store:
        store.create_patient("P-0001")
    added = subprocess.run([sys.executable, "-m", "repigment.cli", "accounts", "add-clinician", "dr.lee",
                            "--password-stdin"], input="correct horse battery\n", capture_output=True, text=True,
                           env=cli_env(env), timeout=120)
    assert added.returncode == 0, added.stderr
    code = run_cli("accounts", "patient-code", "P-0001", env=env)
    assert code.returncode == 0 and len(code.stdout.strip().replace("-", "")) == 20
    with Store(tmp_path / "data") as store:
        assert accounts.sign_in_patient(store, code.stdout.strip()).actor == "patient P-0001"
    assert_one_line_error(run_cli("accounts", "patient-code", "P-9999", env=env), "no patient", "P-9999")
    revoked = run_cli("accounts", "revoke-codes", "P-0001", env=env)
    assert revoked.returncode == 0 and "revoked 1" in revoked.stderr
    log = run_cli("accounts", "audit", "--patient", "P-0001", env=env)
    actions = [line.split("\t")[2] for line in log.stdout.strip().splitlines()]
    assert actions[:3] == ["access codes revoked", "signed in", "access code issued"]
    assert_one_line_error(run_cli("accounts", "remove-clinician", "dr.lee", env=env), "last clinician account")
    assert_one_line_error(run_cli("accounts", "remove-clinician", "dr.who", env=env), "no clinician account")


def test_a_removed_clinician_is_signed_out_and_the_last_one_stays(store):
    accounts.add_clinician(store, "dr.kim", "another long password")
    accounts.add_clinician(store, "dr.lee", "correct horse battery")
    who = accounts.sign_in_clinician(store, "dr.lee", "correct horse battery")
    assert accounts.still_valid(store, who)
    accounts.remove_clinician(store, "dr.lee")
    assert not accounts.still_valid(store, who)
    # The database may give the removed account's id to the next one.
    accounts.add_clinician(store, "dr.new", "a third long password")
    assert not accounts.still_valid(store, who)
    newcomer = accounts.sign_in_clinician(store, "dr.new", "a third long password")
    assert accounts.still_valid(store, newcomer)
    accounts.remove_clinician(store, "dr.new")
    assert not accounts.still_valid(store, newcomer)
    # Nor for a new account of the same name: its holder set a new password.
    accounts.add_clinician(store, "dr.new", "a fourth long password")
    assert not accounts.still_valid(store, newcomer)
    accounts.remove_clinician(store, "dr.new")
    with pytest.raises(accounts.AccountError, match="wrong username or password"):
        accounts.sign_in_clinician(store, "dr.lee", "correct horse battery")
    with pytest.raises(accounts.AccountError, match="no clinician account 'dr.lee'"):
        accounts.remove_clinician(store, "dr.lee")
    with pytest.raises(accounts.AccountError, match="last clinician account"):
        accounts.remove_clinician(store, "dr.kim")
    assert accounts.accounts_enabled(store)
    assert "account removed" in [entry.action for entry in accounts.audit_entries(store)]


def test_a_failed_sign_in_never_stores_what_was_typed(store):
    accounts.add_clinician(store, "dr.lee", "correct horse battery")
    with pytest.raises(accounts.AccountError):
        accounts.sign_in_clinician(store, "correct horse battery", "x")  # a password typed as the username
    with store.engine.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(sa.text("SELECT * FROM login_failures")) for v in row)
        stored += " ".join(str(v) for row in conn.execute(sa.text("SELECT * FROM audit_log")) for v in row)
    assert "correct horse" not in stored and "unknown username" in stored


def test_a_revoked_code_or_removed_patient_ends_the_session(store):
    patient = store.create_patient("P-0001")
    who = accounts.sign_in_patient(store, accounts.issue_patient_code(store, patient.id))
    assert accounts.still_valid(store, who)
    accounts.revoke_patient_codes(store, patient.id)
    assert not accounts.still_valid(store, who)
    again = accounts.sign_in_patient(store, accounts.issue_patient_code(store, patient.id))
    store.delete_patient(patient.id)
    assert not accounts.still_valid(store, again)
    # The next patient may be given the deleted one's ids and code: the old session sees nothing of theirs.
    newcomer = store.create_patient("P-0001")
    for _ in range(2):  # the second takes the deleted code's id on SQLite
        accounts.issue_patient_code(store, newcomer.id)
    assert not accounts.still_valid(store, again)
    assert accounts.still_valid(store, accounts.LOCAL)
