"""Accounts for a clinic: clinicians sign in, each patient has a personal access code, and every view and change of a patient's data is written to an audit log.

No Streamlit here: the app and the CLI call these functions with a
:class:`repigment.store.Store`. Without any clinician account the app stays a
single-user program on this computer (``accounts_enabled`` is false).

- Passwords are hashed with Argon2id (``argon2-cffi``); the hash carries its
  own salt and cost, so it can be verified and upgraded later.
- A patient's access code is 20 random characters from :mod:`secrets`; only
  its SHA-256 is stored (a random code of 100 bits needs no slow hash), and it
  is shown once when issued. Codes are revocable.
- Sign-in is rate-limited: after ``MAX_FAILURES`` failed attempts for a
  username within ``FAILURE_WINDOW`` (or ``MAX_CODE_FAILURES`` for access
  codes, from anyone), further attempts are refused until the window has
  passed. An attempt is counted before its password is checked, in the same
  transaction as the check, so parallel attempts cannot exceed the limit.
- A signed-in session expires after ``SESSION_IDLE`` without activity, and
  ends at once when its account or access code is removed or revoked
  (:func:`still_valid`, checked on every page).
- The audit log and the failure counts never hold a typed password or code;
  a username that does not exist is recorded as "unknown username".
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from ..errors import AccountError, InvalidParameterError
from . import AccessCodeRow, AuditRow, LoginAttemptRow, PatientRow, Store, UserRow

__all__ = [
    "LOCAL",
    "AccountError",
    "AuditEntry",
    "Identity",
    "accounts_enabled",
    "add_clinician",
    "audit_entries",
    "issue_patient_code",
    "record",
    "remove_clinician",
    "revoke_patient_codes",
    "session_expired",
    "sign_in_clinician",
    "sign_in_patient",
    "still_valid",
]

#: Failed attempts allowed within the window before sign-in is refused for a while:
#: per username, and for access codes from anyone (a code has 100 random bits;
#: the limit bounds the work an attacker can cause, and one patient's typos do
#: not lock the others out).
MAX_FAILURES = 5
MAX_CODE_FAILURES = 50
FAILURE_WINDOW = _dt.timedelta(minutes=15)
#: A session without activity for this long must sign in again.
SESSION_IDLE = _dt.timedelta(minutes=30)
MIN_PASSWORD_LENGTH = 10
_USERNAME = re.compile(r"[A-Za-z0-9._-]{2,40}")
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread
_CODE_SUBJECT = "access code"


@dataclass(frozen=True)
class Identity:
    """Who is using the app: a clinician, one patient, or the single local user (no accounts)."""

    actor: str
    role: Literal["clinician", "patient", "local"]
    patient_id: int | None = None
    #: The users row of a clinician or the access_codes row of a patient (re-checked on every page).
    credential_id: int | None = None
    #: When that row was created: a database may give a deleted row's id to the
    #: next one, so the id alone does not say it is still the same account or code.
    credential_created: _dt.datetime | None = None


#: The one user of a computer without accounts.
LOCAL = Identity("local user", "local")


@dataclass(frozen=True)
class AuditEntry:
    at: _dt.datetime
    actor: str
    action: str
    patient_id: int | None
    detail: str


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


def accounts_enabled(store: Store) -> bool:
    """Whether any clinician account exists (then the app asks everyone to sign in)."""
    with store.transaction() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(UserRow)) > 0


def add_clinician(store: Store, username: str, password: str) -> None:
    """Create a clinician's account.

    Raises
    ------
    InvalidParameterError
        A username outside ``[A-Za-z0-9._-]{2,40}`` or a password under
        ``MIN_PASSWORD_LENGTH`` characters.
    AccountError
        The username is taken.
    """
    if not isinstance(username, str) or not _USERNAME.fullmatch(username):
        raise InvalidParameterError("a username is 2-40 letters, digits, '.', '_' or '-'")
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidParameterError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    digest = _hasher().hash(password)
    with store.transaction() as session:
        if session.scalar(sa.select(UserRow.id).where(UserRow.username == username)) is not None:
            raise AccountError(f"the username {username!r} is taken")
        session.add(UserRow(username=username, password_hash=digest, role="clinician", created_at=_now()))
        session.add(AuditRow(at=_now(), actor="administrator", action="account created", patient_id=None,
                             detail=f"clinician {username}"))


def remove_clinician(store: Store, username: str, *, actor: str = "administrator") -> None:
    """Delete a clinician's account; their open sessions end at their next page (:func:`still_valid`).

    Parameters
    ----------
    store : Store
        The clinic's store.
    username : str
        The account to remove.
    actor : str, optional
        Who removes it, for the audit log.

    Raises
    ------
    AccountError
        No such username, or it is the last clinician account: without any
        account the app is single-user and open to whoever reaches it, so
        another clinician is added first.
    """
    with store.transaction() as session:
        # Every account row locked (PostgreSQL): two removals at once must not
        # both see the other's account and leave none.
        users = session.scalars(sa.select(UserRow).with_for_update()).all()
        user = next((row for row in users if row.username == username), None)
        if user is None:
            raise AccountError(f"no clinician account {username!r}")
        if len(users) <= 1:
            raise AccountError(
                f"{username!r} is the last clinician account: without one the app asks nobody to sign in; "
                "add another clinician first")
        session.delete(user)
        session.add(AuditRow(at=_now(), actor=actor[:80], action="account removed", patient_id=None,
                             detail=f"clinician {username}"))


def _subject(username: str) -> str:
    """The rate-limit key of a username: its hash, so a password typed as a username is never stored."""
    return "user " + hashlib.sha256(str(username).encode("utf-8", "replace")).hexdigest()[:32]


def _begin_attempt(store: Store, subject: str, limit: int, now: _dt.datetime) -> int:
    """Refuse when ``subject`` has ``limit`` failures in the window; else count this attempt as one.

    The check and the count are one transaction, so parallel attempts cannot
    pass the limit together; a successful attempt takes its count back
    (:func:`_end_attempt`). Returns the count's row id.
    """
    with store.transaction() as session:
        # Failures older than the window no longer count: drop them, so the
        # table holds at most a window's worth of attempts.
        session.execute(sa.delete(LoginAttemptRow).where(LoginAttemptRow.at <= now - FAILURE_WINDOW))
        failures = session.scalars(sa.select(LoginAttemptRow.at).where(
            LoginAttemptRow.subject == subject, LoginAttemptRow.at > now - FAILURE_WINDOW)
            .order_by(LoginAttemptRow.at)).all()
        if len(failures) >= limit:
            wait = failures[-limit] + FAILURE_WINDOW - now
            minutes = max(1, int(wait.total_seconds() // 60) + 1)
            raise AccountError(f"too many failed sign-ins: try again in {minutes} minute{'s' if minutes > 1 else ''}")
        row = LoginAttemptRow(subject=subject, at=now)
        session.add(row)
        session.flush()
        return row.id


def _end_attempt(store: Store, attempt_id: int) -> None:
    with store.transaction() as session:
        session.execute(sa.delete(LoginAttemptRow).where(LoginAttemptRow.id == attempt_id))


def sign_in_clinician(store: Store, username: str, password: str, *, now: _dt.datetime | None = None) -> Identity:
    """A clinician's identity for a correct username and password.

    Raises
    ------
    AccountError
        Wrong username or password (one message for both), or too many failed
        attempts for this username within ``FAILURE_WINDOW``.
    """
    from argon2.exceptions import InvalidHashError, VerificationError

    now = now or _now()
    attempt = _begin_attempt(store, _subject(username), MAX_FAILURES, now)
    with store.transaction() as session:
        user = session.scalar(sa.select(UserRow).where(UserRow.username == username))
        digest, user_id, created = (
            (None, None, None) if user is None else (user.password_hash, user.id, user.created_at))
    try:
        if digest is None:
            _hasher().hash(password)  # the same work either way: timing does not tell which usernames exist
            raise VerificationError
        _hasher().verify(digest, password)
    except (VerificationError, InvalidHashError):
        record(store, Identity("unknown username" if user_id is None else f"clinician {username}", "clinician"),
               "sign-in failed")
        raise AccountError("wrong username or password") from None
    _end_attempt(store, attempt)
    who = Identity(f"clinician {username}", "clinician", None, user_id, created)
    record(store, who, "signed in")
    return who


def _code_digest(code: str) -> str:
    normal = re.sub(r"[\s-]", "", str(code)).upper()
    return hashlib.sha256(normal.encode("ascii", "ignore")).hexdigest()


def issue_patient_code(store: Store, patient_id: int, *, actor: str = "administrator") -> str:
    """A new personal access code for a patient (shown once; only its hash is kept).

    Earlier codes stay valid until revoked (:func:`revoke_patient_codes`).
    """
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(20))
    code = "-".join(raw[i:i + 5] for i in range(0, 20, 5))
    with store.transaction() as session:
        if session.get(PatientRow, patient_id) is None:
            raise AccountError(f"no patient with id {patient_id}")
        session.add(AccessCodeRow(patient_id=patient_id, code_sha256=_code_digest(code), created_at=_now()))
        session.add(AuditRow(at=_now(), actor=actor, action="access code issued", patient_id=patient_id, detail=""))
    return code


def revoke_patient_codes(store: Store, patient_id: int, *, actor: str = "administrator") -> int:
    """Revoke every access code of a patient; returns how many were valid."""
    now = _now()
    with store.transaction() as session:
        rows = session.scalars(sa.select(AccessCodeRow).where(
            AccessCodeRow.patient_id == patient_id, AccessCodeRow.revoked_at.is_(None))).all()
        for row in rows:
            row.revoked_at = now
        session.add(AuditRow(at=now, actor=actor, action="access codes revoked", patient_id=patient_id,
                             detail=f"{len(rows)} code(s)"))
        return len(rows)


def sign_in_patient(store: Store, code: str, *, now: _dt.datetime | None = None) -> Identity:
    """The identity of the patient whose valid access code this is.

    Raises
    ------
    AccountError
        An unknown or revoked code, or too many failed code attempts (from
        anyone) within ``FAILURE_WINDOW``.
    """
    now = now or _now()
    attempt = _begin_attempt(store, _CODE_SUBJECT, MAX_CODE_FAILURES, now)
    with store.transaction() as session:
        row = session.scalar(sa.select(AccessCodeRow).where(AccessCodeRow.code_sha256 == _code_digest(code)))
        patient = None if row is None or row.revoked_at is not None else session.get(PatientRow, row.patient_id)
        who = None if patient is None else Identity(
            f"patient {patient.code}", "patient", patient.id, row.id, row.created_at)
    if who is None:
        record(store, Identity(_CODE_SUBJECT, "patient"), "sign-in failed")
        raise AccountError("this access code is not valid (ask your clinician for a new one)")
    _end_attempt(store, attempt)
    record(store, who, "signed in", who.patient_id)
    return who


def still_valid(store: Store, who: Identity) -> bool:
    """Whether a signed-in identity's account or access code (and patient) still exist and are not revoked."""
    if who.role == "local":
        return True
    if who.credential_id is None or who.credential_created is None:
        return False
    with store.transaction() as session:
        if who.role == "clinician":
            user = session.get(UserRow, who.credential_id)
            # A removed account's id may be given to the next account created.
            return user is not None and user.created_at == who.credential_created and (
                who.actor == f"clinician {user.username}")
        row = session.get(AccessCodeRow, who.credential_id)
        # A deleted patient's ids (and code) may be given to the next patient.
        return (row is not None and row.created_at == who.credential_created and row.revoked_at is None
                and row.patient_id == who.patient_id)


def record(store: Store, identity: Identity, action: str, patient_id: int | None = None, detail: str = "") -> None:
    """Write one audit entry: who (``identity``), what (``action``, ``detail``), about whom, now."""
    with store.transaction() as session:
        session.add(AuditRow(at=_now(), actor=identity.actor[:80], action=action[:40], patient_id=patient_id,
                             detail=detail[:2000]))


def audit_entries(store: Store, *, patient_id: int | None = None, limit: int = 200) -> list[AuditEntry]:
    """The latest audit entries, newest first (of one patient, when given)."""
    query = sa.select(AuditRow).order_by(AuditRow.at.desc(), AuditRow.id.desc()).limit(limit)
    if patient_id is not None:
        query = query.where(AuditRow.patient_id == patient_id)
    with store.transaction() as session:
        return [AuditEntry(r.at, r.actor, r.action, r.patient_id, r.detail) for r in session.scalars(query)]


def session_expired(last_active: _dt.datetime, now: _dt.datetime | None = None) -> bool:
    """Whether a session last active at ``last_active`` (UTC, naive) must sign in again."""
    return (now or _now()) - last_active > SESSION_IDLE
