"""The database schema: its SQLAlchemy models and the migrations that build it.

:class:`Base` and the ``*Row`` classes describe the current shape of every
table; :data:`MIGRATIONS` is its history, one frozen step per schema version,
which :func:`migrate` applies in order (recording each in
``schema_migrations``, read by :func:`schema_version`), and ``_sqlite_pragmas``
sets up every SQLite connection. Rows are live ORM objects that never leave the
store: :mod:`repigment.store.records` copies them into frozen records.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ..vocabulary import DEFAULT_MARKER_MM
from .common import DEFAULT_REGIMEN, StoreError, _utcnow

# ---------------------------------------------------------------------------
# Schema: ORM models (the current shape) ...


class Base(DeclarativeBase):
    pass


class PatientRow(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[_dt.datetime] = mapped_column(sa.DateTime)
    hand_unit_cm2: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    hand_unit_source: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    hand_unit_detail: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    hand_unit_interval: Mapped[list[float] | None] = mapped_column(sa.JSON, nullable=True)
    patches: Mapped[list[PatchRow]] = relationship(
        back_populates="patient", cascade="all, delete-orphan", passive_deletes=True, order_by="PatchRow.id"
    )


class PatchRow(Base):
    __tablename__ = "patches"
    __table_args__ = (UniqueConstraint("patient_id", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(sa.String(80))
    body_region: Mapped[str] = mapped_column(sa.String(20))
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    marker_mm: Mapped[float] = mapped_column(sa.Float, default=DEFAULT_MARKER_MM)
    roi: Mapped[list[float] | None] = mapped_column(sa.JSON, nullable=True)
    labels_png: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    labels_photo_sha256: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    created_at: Mapped[_dt.datetime] = mapped_column(sa.DateTime)
    patient: Mapped[PatientRow] = relationship(back_populates="patches")
    treatment: Mapped[TreatmentRow | None] = relationship(
        back_populates="patch", cascade="all, delete-orphan", passive_deletes=True, uselist=False
    )
    events: Mapped[list[TreatmentEventRow]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="TreatmentEventRow.date"
    )
    visits: Mapped[list[VisitRow]] = relationship(
        back_populates="patch", cascade="all, delete-orphan", passive_deletes=True, order_by="VisitRow.date"
    )


class TreatmentRow(Base):
    __tablename__ = "treatments"

    id: Mapped[int] = mapped_column(primary_key=True)
    patch_id: Mapped[int] = mapped_column(ForeignKey("patches.id", ondelete="CASCADE"), unique=True)
    regimen: Mapped[str] = mapped_column(sa.String(200), default=DEFAULT_REGIMEN)
    start_date: Mapped[_dt.date | None] = mapped_column(sa.Date, nullable=True)
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    patch: Mapped[PatchRow] = relationship(back_populates="treatment")


class TreatmentEventRow(Base):
    __tablename__ = "treatment_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    patch_id: Mapped[int] = mapped_column(ForeignKey("patches.id", ondelete="CASCADE"), index=True)
    date: Mapped[_dt.date] = mapped_column(sa.Date)
    kind: Mapped[str] = mapped_column(sa.String(20))
    description: Mapped[str] = mapped_column(sa.Text, default="")


class VisitRow(Base):
    __tablename__ = "visits"
    __table_args__ = (UniqueConstraint("patch_id", "date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patch_id: Mapped[int] = mapped_column(ForeignKey("patches.id", ondelete="CASCADE"), index=True)
    date: Mapped[_dt.date] = mapped_column(sa.Date)
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[_dt.datetime] = mapped_column(sa.DateTime)
    patch: Mapped[PatchRow] = relationship(back_populates="visits")
    photos: Mapped[list[PhotoRow]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="PhotoRow.position"
    )


class PhotoRow(Base):
    __tablename__ = "photos"
    __table_args__ = (UniqueConstraint("visit_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(sa.Integer)
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    extension: Mapped[str] = mapped_column(sa.String(8))
    display_name: Mapped[str] = mapped_column(sa.String(255))
    format: Mapped[str] = mapped_column(sa.String(8))
    width: Mapped[int] = mapped_column(sa.Integer)
    height: Mapped[int] = mapped_column(sa.Integer)
    size_bytes: Mapped[int] = mapped_column(sa.Integer)
    taken_at: Mapped[_dt.datetime | None] = mapped_column(sa.DateTime, nullable=True)
    date_source: Mapped[str] = mapped_column(sa.String(12))
    location_removed: Mapped[bool] = mapped_column(sa.Boolean)
    quality: Mapped[list[dict[str, str]] | None] = mapped_column(sa.JSON, nullable=True)
    created_at: Mapped[_dt.datetime] = mapped_column(sa.DateTime)
    # A clinician's strokes on this (later visit's) photo; loaded only when asked for.
    labels_png: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True, deferred=True)


class AnalysisRow(Base):
    __tablename__ = "analyses"

    id: Mapped[int] = mapped_column(primary_key=True)
    cache_key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    repigment_version: Mapped[str] = mapped_column(sa.String(40))
    created_at: Mapped[_dt.datetime] = mapped_column(sa.DateTime)
    document: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)
    csv_text: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    visits: Mapped[list[AnalysisVisitRow]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="AnalysisVisitRow.position"
    )


class AnalysisVisitRow(Base):
    __tablename__ = "analysis_visits"
    __table_args__ = (UniqueConstraint("analysis_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(sa.Integer)
    image: Mapped[str] = mapped_column(sa.String(255))
    photo_sha256: Mapped[str] = mapped_column(sa.String(64))
    mask_sha256: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    full_mask_sha256: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    registered_sha256: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    extra: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)


class SettingRow(Base):
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)


class UserRow(Base):
    """A clinician's account (see :mod:`repigment.store.accounts`)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(40), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.Text)
    role: Mapped[str] = mapped_column(sa.String(20))
    created_at: Mapped[_dt.datetime] = mapped_column(sa.DateTime)


class AccessCodeRow(Base):
    """A patient's personal access code, stored as its SHA-256 only."""

    __tablename__ = "access_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    code_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[_dt.datetime] = mapped_column(sa.DateTime)
    revoked_at: Mapped[_dt.datetime | None] = mapped_column(sa.DateTime, nullable=True)


class LoginAttemptRow(Base):
    """A failed sign-in, for rate limiting (subject: a username, or ``"access code"``)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(60), index=True)
    at: Mapped[_dt.datetime] = mapped_column(sa.DateTime)


class AuditRow(Base):
    """Who viewed or changed which patient's data, and when (kept when the patient is deleted)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[_dt.datetime] = mapped_column(sa.DateTime, index=True)
    actor: Mapped[str] = mapped_column(sa.String(80))
    action: Mapped[str] = mapped_column(sa.String(40))
    patient_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True, index=True)
    detail: Mapped[str] = mapped_column(sa.Text)


# ---------------------------------------------------------------------------
# ... and migrations (the history). Each step is frozen once released: it
# spells out its tables rather than reusing the models above, which describe
# only the latest shape. Add a step to change the schema; never edit one.

_MIGRATIONS_TABLE = sa.Table(
    "schema_migrations",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.DateTime, nullable=False),
)


def _migration_1_initial(conn: sa.Connection) -> None:
    """Patients, patches, treatment, events, visits, photos, results cache, settings."""
    md = sa.MetaData()
    now = sa.DateTime
    sa.Table(
        "patients", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(40), nullable=False, unique=True),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("created_at", now, nullable=False),
    )
    sa.Table(
        "patches", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("label", sa.String(80), nullable=False),
        sa.Column("body_region", sa.String(20), nullable=False),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("marker_mm", sa.Float, nullable=False),
        sa.Column("roi", sa.JSON, nullable=True),
        sa.Column("created_at", now, nullable=False),
        sa.UniqueConstraint("patient_id", "label"),
    )
    sa.Table(
        "treatments", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patch_id", sa.Integer, sa.ForeignKey("patches.id", ondelete="CASCADE"), nullable=False,
                  unique=True),
        sa.Column("regimen", sa.String(200), nullable=False),
        sa.Column("start_date", sa.Date, nullable=True),
        sa.Column("notes", sa.Text, nullable=False),
    )
    sa.Table(
        "treatment_events", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patch_id", sa.Integer, sa.ForeignKey("patches.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
    )
    sa.Table(
        "visits", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patch_id", sa.Integer, sa.ForeignKey("patches.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("created_at", now, nullable=False),
        sa.UniqueConstraint("patch_id", "date"),
    )
    sa.Table(
        "photos", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("visit_id", sa.Integer, sa.ForeignKey("visits.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, index=True),
        sa.Column("extension", sa.String(8), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("taken_at", sa.DateTime, nullable=True),
        sa.Column("date_source", sa.String(12), nullable=False),
        sa.Column("location_removed", sa.Boolean, nullable=False),
        sa.Column("quality", sa.JSON, nullable=True),
        sa.Column("created_at", now, nullable=False),
        sa.UniqueConstraint("visit_id", "sha256"),
    )
    sa.Table(
        "analyses", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("cache_key", sa.String(64), nullable=False, unique=True),
        sa.Column("repigment_version", sa.String(40), nullable=False),
        sa.Column("created_at", now, nullable=False),
        sa.Column("document", sa.JSON, nullable=True),
        sa.Column("csv_text", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    sa.Table(
        "analysis_visits", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("analysis_id", sa.Integer, sa.ForeignKey("analyses.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("image", sa.String(255), nullable=False),
        sa.Column("photo_sha256", sa.String(64), nullable=False),
        sa.Column("mask_sha256", sa.String(64), nullable=True),
        sa.Column("full_mask_sha256", sa.String(64), nullable=True),
        sa.Column("registered_sha256", sa.String(64), nullable=True),
        sa.Column("extra", sa.JSON, nullable=True),
        sa.UniqueConstraint("analysis_id", "position"),
    )
    sa.Table(
        "settings", md,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    md.create_all(conn)


def _migration_2_hand_unit(conn: sa.Connection) -> None:
    """The patient's VASI hand unit (cm², how it was obtained, its range): nullable columns of ``patients``."""
    columns = (
        sa.Column("hand_unit_cm2", sa.Float, nullable=True),
        sa.Column("hand_unit_source", sa.String(20), nullable=True),
        sa.Column("hand_unit_detail", sa.Text, nullable=True),
        sa.Column("hand_unit_interval", sa.JSON, nullable=True),
    )
    preparer = conn.dialect.identifier_preparer
    for column in columns:
        kind = column.type.compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE patients ADD COLUMN {preparer.quote(column.name)} {kind}"))


def _migration_3_patch_labels(conn: sa.Connection) -> None:
    """A clinician's strokes on a patch's baseline photo (PNG of labels 0-3) and that photo's hash."""
    columns = (
        sa.Column("labels_png", sa.LargeBinary, nullable=True),
        sa.Column("labels_photo_sha256", sa.String(64), nullable=True),
    )
    preparer = conn.dialect.identifier_preparer
    for column in columns:
        kind = column.type.compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE patches ADD COLUMN {preparer.quote(column.name)} {kind}"))


def _migration_4_accounts(conn: sa.Connection) -> None:
    """Clinicians' accounts, patients' access codes, failed sign-ins and the audit log."""
    md = sa.MetaData()
    sa.Table("patients", md, sa.Column("id", sa.Integer, primary_key=True))  # exists: only for the foreign key
    new = [sa.Table(
        "users", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(40), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    ), sa.Table(
        "access_codes", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("code_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("revoked_at", sa.DateTime, nullable=True),
    ), sa.Table(
        "login_failures", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subject", sa.String(60), nullable=False, index=True),
        sa.Column("at", sa.DateTime, nullable=False),
    ), sa.Table(
        "audit_log", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False, index=True),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("patient_id", sa.Integer, nullable=True, index=True),
        sa.Column("detail", sa.Text, nullable=False),
    )]
    md.create_all(conn, tables=new)


def _migration_5_photo_labels(conn: sa.Connection) -> None:
    """A clinician's strokes on a later visit's own photo (PNG of labels 0-3)."""
    kind = sa.LargeBinary().compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE photos ADD COLUMN labels_png {kind}"))


def _migration_6_region_spelling(conn: sa.Connection) -> None:
    """Patches' body regions in the one spelling results.json and the CLI use: ``upper-limbs``, not ``upper_limbs``."""
    update = sa.text("UPDATE patches SET body_region = :new WHERE body_region = :old")
    for old, new in (("upper_limbs", "upper-limbs"), ("lower_limbs", "lower-limbs")):
        conn.execute(update, {"old": old, "new": new})


#: Schema steps in order; step ``n`` (1-based) brings the schema to version ``n``.
MIGRATIONS: tuple[Callable[[sa.Connection], None], ...] = (
    _migration_1_initial, _migration_2_hand_unit, _migration_3_patch_labels, _migration_4_accounts,
    _migration_5_photo_labels, _migration_6_region_spelling)
#: The schema version this code reads and writes.
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(engine: sa.Engine) -> int:
    """The version of an open database's schema (0 for an empty database)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(_MIGRATIONS_TABLE.name):
            return 0
        return int(conn.execute(sa.select(sa.func.max(_MIGRATIONS_TABLE.c.version))).scalar() or 0)


def migrate(engine: sa.Engine, migrations: Sequence[Callable[[sa.Connection], None]] = MIGRATIONS) -> int:
    """Bring a database's schema up to date, one transaction per step.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    migrations : sequence of callables, optional
        ``step(connection)``; step ``n`` brings the schema to version ``n``.

    Returns
    -------
    int
        The schema version after migrating.

    Raises
    ------
    StoreError
        If the database was written by a newer repigment (a higher version).
    """
    with engine.begin() as conn:
        _MIGRATIONS_TABLE.create(conn, checkfirst=True)
    current = schema_version(engine)
    if current > len(migrations):
        raise StoreError(
            f"the database has schema version {current} but this repigment reads up to {len(migrations)}; "
            "update repigment, or point REPIGMENT_DATA at another folder"
        )
    for version in range(current + 1, len(migrations) + 1):
        with engine.begin() as conn:
            migrations[version - 1](conn)
            conn.execute(sa.insert(_MIGRATIONS_TABLE).values(version=version, applied_at=_utcnow()))
    return len(migrations)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
    finally:
        cursor.close()
