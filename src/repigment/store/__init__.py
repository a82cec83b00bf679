"""Patients, patches, treatment, visits, photos and cached results that persist.

The store is SQLAlchemy over SQLite by default, in a data folder, with photos
and derived images (masks, registered visits) on disk next to the database:

- ``REPIGMENT_DATA`` names the data folder (default: a per-user data folder,
  see :func:`default_data_dir`);
- ``REPIGMENT_DB_URL`` may name any SQLAlchemy database URL instead of
  ``sqlite:///<data>/repigment.sqlite3``; files stay in the data folder.

Photos are stored once, by the SHA-256 of their bytes after GPS location has
been removed (:func:`repigment.io.strip_location`), as
``<data>/photos/ab/abcdef....jpg``; the uploaded file name is kept only as a
display string and never becomes part of a path. Files are written to a
temporary name and renamed into place before the database row that refers to
them is committed, and every write to the database is one transaction, so an
interrupted save leaves no half-written visit.

The schema is versioned: ``schema_migrations`` records every applied step of
:data:`MIGRATIONS`, which :class:`Store` runs in order when it opens a database.
This module holds no analysis and no user interface; it returns plain frozen
records, never live ORM objects.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ForeignKey, UniqueConstraint, event
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from ..errors import InvalidParameterError, RepigmentError

__all__ = [
    "BODY_REGIONS",
    "DEFAULT_REGIMEN",
    "EVENT_KINDS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "NewPhoto",
    "NewVisit",
    "Patch",
    "Patient",
    "Photo",
    "Store",
    "StoreError",
    "StoredAnalysis",
    "StoredAnalysisVisit",
    "TreatmentEvent",
    "Visit",
    "content_path",
    "default_data_dir",
    "migrate",
]

#: Body regions of the VASI (Hamzavi et al. 2004), with the face scored apart.
BODY_REGIONS: dict[str, str] = {
    "face": "Face",
    "hands": "Hands",
    "upper_limbs": "Upper limbs",
    "trunk": "Trunk",
    "lower_limbs": "Lower limbs",
    "feet": "Feet",
}
DEFAULT_REGIMEN = "ruxolitinib 1.5% cream twice daily"
#: Dated events on a patch's treatment timeline.
EVENT_KINDS: dict[str, str] = {
    "phototherapy": "Phototherapy (NB-UVB)",
    "treatment_change": "Treatment change",
    "pause": "Treatment paused",
    "other": "Other",
}
#: File extension of each stored image format (from :data:`repigment.io.SUPPORTED_FORMATS`).
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp", "HEIF": ".heic", "GIF": ".gif"}
_DERIVED_EXTENSIONS = (".png", ".jpg")
_DATE_SOURCES = ("exif", "filename", "given", "visits.csv")
_CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_PHOTO_BYTES = 50 * 1024**2
#: Default of :meth:`Store.update_patch` arguments: leave the field as it is.
KEEP: Any = type("Keep", (), {"__repr__": lambda self: "KEEP"})()


class StoreError(RepigmentError):
    """The store cannot be opened, or a record is missing or would be a duplicate."""


def _utcnow() -> _dt.datetime:
    # Naive UTC: portable across SQLite and server databases.
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def default_data_dir() -> Path:
    """The per-user data folder used when ``REPIGMENT_DATA`` is not set.

    ``%LOCALAPPDATA%\\repigment`` on Windows, ``~/Library/Application
    Support/repigment`` on macOS, ``$XDG_DATA_HOME/repigment`` (default
    ``~/.local/share/repigment``) elsewhere.
    """
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "repigment"


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
    marker_mm: Mapped[float] = mapped_column(sa.Float, default=20.0)
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


#: Schema steps in order; step ``n`` (1-based) brings the schema to version ``n``.
MIGRATIONS: tuple[Callable[[sa.Connection], None], ...] = (
    _migration_1_initial, _migration_2_hand_unit, _migration_3_patch_labels, _migration_4_accounts,
    _migration_5_photo_labels)
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


# ---------------------------------------------------------------------------
# Records handed out by the store


@dataclass(frozen=True)
class Patient:
    """A patient, known only by a pseudonymous code.

    Attributes
    ----------
    hand_unit_cm2 : float or None
        The patient's VASI hand unit (palm and volar digits), cm²; ``None`` until set.
    hand_unit_source : {"photo", "height-weight", "entered"} or None
        How it was obtained (:data:`repigment.clinical.vasi.HAND_UNIT_SOURCES`).
    hand_unit_detail : str
        Its provenance in words.
    hand_unit_interval : tuple of float or None
        Plausible range, cm², when the method gives one (a photo).
    """

    id: int
    code: str
    notes: str
    created_at: _dt.datetime
    hand_unit_cm2: float | None = None
    hand_unit_source: str | None = None
    hand_unit_detail: str = ""
    hand_unit_interval: tuple[float, float] | None = None


@dataclass(frozen=True)
class TreatmentEvent:
    """A dated event on a patch's treatment timeline (phototherapy, a change...)."""

    id: int
    patch_id: int
    date: _dt.date
    kind: str
    description: str

    @property
    def kind_label(self) -> str:
        return EVENT_KINDS.get(self.kind, self.kind)


@dataclass(frozen=True)
class Patch:
    """A patch followed over time, with its treatment.

    Attributes
    ----------
    body_region : str
        One of :data:`BODY_REGIONS`.
    marker_mm : float
        Printed side of the scale marker used in its photos, mm.
    roi : tuple of float or None
        Region of interest ``(x0, y0, x1, y1)`` in baseline-photo pixels.
    treatment_start : datetime.date or None
        Week 0 of the course; ``None`` means the baseline photo's date.
    labels_png : bytes or None
        A clinician's strokes on the baseline photo: a PNG of labels 0-3 the
        photo's upright size (see :func:`repigment.core.segmentation.validate_labels`).
    labels_photo_sha256 : str or None
        The photo they were drawn on (strokes for another baseline do not apply).
    """

    id: int
    patient_id: int
    label: str
    body_region: str
    notes: str
    marker_mm: float
    roi: tuple[float, ...] | None
    regimen: str
    treatment_start: _dt.date | None
    treatment_notes: str
    events: tuple[TreatmentEvent, ...] = ()
    labels_png: bytes | None = None
    labels_photo_sha256: str | None = None

    @property
    def region_label(self) -> str:
        return BODY_REGIONS.get(self.body_region, self.body_region)


def content_path(data_dir: str | os.PathLike[str], kind: str, sha256: str, extension: str) -> Path:
    """Where the data folder keeps a file named by its content: ``<kind>/<ab>/<sha256><ext>``.

    ``kind`` is ``"photos"`` (uploads, location removed) or ``"derived"`` (masks
    and registered images of analyses).
    """
    return Path(data_dir) / kind / sha256[:2] / f"{sha256}{extension}"


@dataclass(frozen=True)
class Photo:
    """A stored photo of a visit. ``display_name`` is the uploaded name, for display only."""

    id: int
    visit_id: int
    position: int
    sha256: str
    extension: str
    display_name: str
    format: str
    width: int
    height: int
    size_bytes: int
    taken_at: _dt.datetime | None
    date_source: str
    location_removed: bool
    quality: tuple[dict[str, str], ...] = ()

    @property
    def relative_path(self) -> str:
        return content_path(Path(), "photos", self.sha256, self.extension).as_posix()


@dataclass(frozen=True)
class Visit:
    """A visit of a patch: a date, its photos (the first is the one analysed) and notes."""

    id: int
    patch_id: int
    date: _dt.date
    notes: str
    photos: tuple[Photo, ...]

    @property
    def primary(self) -> Photo | None:
        return self.photos[0] if self.photos else None


@dataclass(frozen=True)
class NewPhoto:
    """A photo to store: its file's bytes and the name it was uploaded under (display only)."""

    data: bytes
    display_name: str
    date_source: str = "given"
    quality: tuple[dict[str, str], ...] | None = None


@dataclass(frozen=True)
class NewVisit:
    """Photos taken on one date, to be stored as (or added to) that date's visit."""

    date: _dt.date
    photos: Sequence[NewPhoto]
    notes: str = ""


@dataclass(frozen=True)
class StoredAnalysisVisit:
    """Files kept for one visit of a cached analysis (SHA-256 of derived files)."""

    position: int
    image: str
    photo_sha256: str
    mask_sha256: str | None = None
    full_mask_sha256: str | None = None
    registered_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredAnalysis:
    """A cached series analysis: the results.json document, its CSV, per-visit files.

    ``document`` is ``None`` and ``error`` says why when the series could not be
    analysed at all (an unusable baseline); that outcome is cached too.
    """

    cache_key: str
    repigment_version: str
    created_at: _dt.datetime
    document: dict[str, Any] | None
    csv_text: str | None
    error: str | None
    visits: tuple[StoredAnalysisVisit, ...] = ()


@dataclass(frozen=True)
class _PreparedPhoto:
    data: bytes
    sha256: str
    extension: str
    format: str
    width: int
    height: int
    taken_at: _dt.datetime | None
    location_removed: bool


# ---------------------------------------------------------------------------
# The store


class Store:
    """Open (creating and migrating when needed) a repigment data folder.

    Parameters
    ----------
    data_dir : str or Path, optional
        Folder for the database and files; default ``REPIGMENT_DATA`` or
        :func:`default_data_dir`.
    url : str, optional
        SQLAlchemy database URL; default ``REPIGMENT_DB_URL`` or SQLite in
        ``data_dir``.

    Raises
    ------
    StoreError
        If the folder cannot be created or the database cannot be opened.

    Examples
    --------
    >>> import tempfile, datetime
    >>> with tempfile.TemporaryDirectory() as tmp, Store(tmp) as store:
    ...     patient = store.create_patient("P-0001")
    ...     patch = store.create_patch(patient.id, "left hand, back", "hands")
    ...     [p.code for p in store.patients()], patch.regimen
    (['P-0001'], 'ruxolitinib 1.5% cream twice daily')
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *, url: str | None = None):
        if data_dir is None:
            data_dir = os.environ.get("REPIGMENT_DATA") or default_data_dir()
        self.data_dir = Path(data_dir).expanduser().resolve()
        try:
            for sub in ("photos", "derived", "tmp"):
                (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the data folder {str(self.data_dir)!r}: {exc.strerror or exc}") from None
        if url is None:
            url = os.environ.get("REPIGMENT_DB_URL") or f"sqlite:///{self.data_dir / 'repigment.sqlite3'}"
        self.url = url
        try:
            self.engine = sa.create_engine(url)
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
            migrate(self.engine)
        except StoreError:
            raise
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot open the database {self.display_url}: {exc}".splitlines()[0]) from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    # -- life cycle -----------------------------------------------------

    @property
    def display_url(self) -> str:
        """The database URL without any password."""
        try:
            return sa.make_url(self.url).render_as_string(hide_password=True)
        except (SQLAlchemyError, ValueError):
            return "(unparseable URL)"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _read(self) -> Session:
        return self._sessions()

    def transaction(self) -> contextlib.AbstractContextManager[Session]:
        """A session in one transaction, committed on leaving (for :mod:`repigment.store.accounts`)."""
        return self._sessions.begin()

    # -- settings -------------------------------------------------------

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        with self._read() as session:
            row = session.get(SettingRow, key)
            return default if row is None else row.value

    def set_setting(self, key: str, value: str) -> None:
        with self._sessions.begin() as session:
            row = session.get(SettingRow, key)
            if row is None:
                session.add(SettingRow(key=key, value=value))
            else:
                row.value = value

    # -- patients -------------------------------------------------------

    def create_patient(self, code: str, notes: str = "") -> Patient:
        """Add a patient under a pseudonymous code (letters, digits, ``-_.``; no names).

        Raises
        ------
        InvalidParameterError
            If the code is empty or has other characters.
        StoreError
            If the code is taken.
        """
        code = (code or "").strip()
        if not _CODE_PATTERN.fullmatch(code):
            raise InvalidParameterError(
                "a patient code is 1-40 letters, digits, '-', '_' or '.', starting with a letter or digit "
                "(a pseudonym such as P-0001, not a name)"
            )
        try:
            with self._sessions.begin() as session:
                row = PatientRow(code=code, notes=notes.strip(), created_at=_utcnow())
                session.add(row)
                session.flush()
                return _patient(row)
        except IntegrityError:
            raise StoreError(f"there is already a patient with code {code!r}") from None

    def patients(self) -> list[Patient]:
        with self._read() as session:
            return [_patient(r) for r in session.scalars(sa.select(PatientRow).order_by(PatientRow.code))]

    def patient(self, patient_id: int) -> Patient:
        with self._read() as session:
            return _patient(_get(session, PatientRow, patient_id, "patient"))

    def patient_by_code(self, code: str) -> Patient | None:
        with self._read() as session:
            row = session.scalars(sa.select(PatientRow).where(PatientRow.code == code)).first()
            return None if row is None else _patient(row)

    def set_hand_unit(
        self,
        patient_id: int,
        cm2: float | None,
        *,
        source: str | None = None,
        detail: str = "",
        interval_cm2: Sequence[float] | None = None,
    ) -> Patient:
        """Record (or, with ``cm2=None``, forget) a patient's hand unit.

        Raises
        ------
        InvalidParameterError
            If ``cm2`` is not a positive finite number or ``source`` is missing.
        StoreError
            If the patient is missing.
        """
        if cm2 is not None:
            value = float(cm2)
            if not (value > 0 and value < float("inf")):
                raise InvalidParameterError(f"the hand unit must be a positive number of cm², got {cm2!r}")
            if not source:
                raise InvalidParameterError("say how the hand unit was obtained (source)")
            if interval_cm2 is not None and len(interval_cm2) != 2:
                raise InvalidParameterError("the hand unit's interval is (low, high) in cm²")
        with self._sessions.begin() as session:
            row = _get(session, PatientRow, patient_id, "patient")
            row.hand_unit_cm2 = None if cm2 is None else float(cm2)
            row.hand_unit_source = None if cm2 is None else str(source)[:20]
            row.hand_unit_detail = None if cm2 is None else (detail or "")
            row.hand_unit_interval = (None if cm2 is None or interval_cm2 is None
                                      else [float(v) for v in interval_cm2])
            session.flush()
            return _patient(row)

    def next_patient_code(self, prefix: str = "P-") -> str:
        """The first free code ``P-0001``, ``P-0002``, ..."""
        taken = {p.code for p in self.patients()}
        number = 1
        while f"{prefix}{number:04d}" in taken:
            number += 1
        return f"{prefix}{number:04d}"

    def delete_patient(self, patient_id: int) -> None:
        """Delete a patient with their patches and visits (photo files are kept; see :meth:`unused_files`)."""
        with self._sessions.begin() as session:
            session.delete(_get(session, PatientRow, patient_id, "patient"))

    # -- patches --------------------------------------------------------

    def create_patch(
        self,
        patient_id: int,
        label: str,
        body_region: str,
        *,
        notes: str = "",
        treatment_start: _dt.date | None = None,
        regimen: str = DEFAULT_REGIMEN,
        marker_mm: float = 20.0,
    ) -> Patch:
        """Add a patch (with its treatment) to a patient.

        Raises
        ------
        InvalidParameterError
            For an empty label, an unknown body region or an implausible marker size.
        StoreError
            If the patient is missing or already has a patch with this label.
        """
        label = _check_label(label)
        _check_region(body_region)
        _check_marker(marker_mm)
        try:
            with self._sessions.begin() as session:
                _get(session, PatientRow, patient_id, "patient")
                row = PatchRow(
                    patient_id=patient_id, label=label, body_region=body_region, notes=notes.strip(),
                    marker_mm=float(marker_mm), roi=None, created_at=_utcnow(),
                )
                row.treatment = TreatmentRow(
                    regimen=(regimen or DEFAULT_REGIMEN).strip(), start_date=treatment_start, notes=""
                )
                session.add(row)
                session.flush()
                return _patch(row)
        except IntegrityError:
            raise StoreError(f"this patient already has a patch called {label!r}") from None

    def patches(self, patient_id: int) -> list[Patch]:
        with self._read() as session:
            rows = session.scalars(sa.select(PatchRow).where(PatchRow.patient_id == patient_id).order_by(PatchRow.id))
            return [_patch(r) for r in rows]

    def patch(self, patch_id: int) -> Patch:
        with self._read() as session:
            return _patch(_get(session, PatchRow, patch_id, "patch"))

    def update_patch(
        self,
        patch_id: int,
        *,
        label: str | None = None,
        body_region: str | None = None,
        notes: str | None = None,
        marker_mm: float | None = None,
        treatment_start: Any = KEEP,
        regimen: str | None = None,
        treatment_notes: str | None = None,
    ) -> Patch:
        """Change a patch's details or treatment; arguments left out stay as they are.

        ``treatment_start=None`` resets week 0 to the baseline photo's date.
        """
        try:
            with self._sessions.begin() as session:
                row = _get(session, PatchRow, patch_id, "patch")
                if label is not None:
                    row.label = _check_label(label)
                if body_region is not None:
                    row.body_region = _check_region(body_region)
                if notes is not None:
                    row.notes = notes.strip()
                if marker_mm is not None:
                    row.marker_mm = _check_marker(marker_mm)
                if row.treatment is None:
                    row.treatment = TreatmentRow(regimen=DEFAULT_REGIMEN, start_date=None, notes="")
                if treatment_start is not KEEP:
                    if treatment_start is not None and (
                        not isinstance(treatment_start, _dt.date) or isinstance(treatment_start, _dt.datetime)
                    ):
                        raise InvalidParameterError("the treatment start must be a date")
                    row.treatment.start_date = treatment_start
                if regimen is not None:
                    row.treatment.regimen = regimen.strip() or DEFAULT_REGIMEN
                if treatment_notes is not None:
                    row.treatment.notes = treatment_notes.strip()
                session.flush()
                return _patch(row)
        except IntegrityError:
            raise StoreError(f"this patient already has a patch called {label!r}") from None

    def set_roi(self, patch_id: int, roi: Sequence[float] | None) -> Patch:
        """Set (or clear, with ``None``) the region of interest ``(x0, y0, x1, y1)`` in baseline pixels."""
        value = None
        if roi is not None:
            value = [float(v) for v in roi]
            if len(value) != 4 or not all(v == v and abs(v) < 1e6 for v in value):
                raise InvalidParameterError("a region of interest is four numbers x0, y0, x1, y1 in pixels")
            x0, y0, x1, y1 = value
            if x1 <= x0 or y1 <= y0:
                raise InvalidParameterError("the region of interest needs x1 > x0 and y1 > y0")
        with self._sessions.begin() as session:
            row = _get(session, PatchRow, patch_id, "patch")
            row.roi = value
            session.flush()
            return _patch(row)

    def set_labels(self, patch_id: int, labels_png: bytes | None, photo_sha256: str | None = None) -> Patch:
        """Keep (or clear, with ``None``) a clinician's strokes on the baseline photo ``photo_sha256``."""
        if labels_png is not None:
            _check_labels_png(labels_png)
            if not (isinstance(photo_sha256, str) and re.fullmatch(r"[0-9a-f]{64}", photo_sha256)):
                raise InvalidParameterError("strokes must name the photo they were drawn on (its SHA-256)")
        with self._sessions.begin() as session:
            row = _get(session, PatchRow, patch_id, "patch")
            row.labels_png = labels_png
            row.labels_photo_sha256 = None if labels_png is None else photo_sha256
            session.flush()
            return _patch(row)

    def set_photo_labels(self, photo_id: int, labels_png: bytes | None) -> None:
        """Keep (or clear, with ``None``) a clinician's strokes on a later visit's own photo."""
        if labels_png is not None:
            _check_labels_png(labels_png)
        with self._sessions.begin() as session:
            _get(session, PhotoRow, photo_id, "photo").labels_png = labels_png

    def photo_labels(self, photo_ids: Iterable[int]) -> dict[int, bytes]:
        """The strokes kept on each of these photos that has some, by photo id."""
        ids = list(photo_ids)
        if not ids:
            return {}
        with self._sessions() as session:
            query = sa.select(PhotoRow.id, PhotoRow.labels_png).where(
                PhotoRow.id.in_(ids), PhotoRow.labels_png.is_not(None))
            rows = session.execute(query).all()
        return {photo_id: bytes(png) for photo_id, png in rows}

    def delete_patch(self, patch_id: int) -> None:
        with self._sessions.begin() as session:
            session.delete(_get(session, PatchRow, patch_id, "patch"))

    # -- treatment events -------------------------------------------------

    def add_event(self, patch_id: int, date: _dt.date, kind: str, description: str = "") -> TreatmentEvent:
        if kind not in EVENT_KINDS:
            raise InvalidParameterError(f"event kind must be one of {', '.join(EVENT_KINDS)}, got {kind!r}")
        if not isinstance(date, _dt.date):
            raise InvalidParameterError("an event needs a date")
        with self._sessions.begin() as session:
            _get(session, PatchRow, patch_id, "patch")
            row = TreatmentEventRow(patch_id=patch_id, date=date, kind=kind, description=description.strip())
            session.add(row)
            session.flush()
            return _event(row)

    def delete_event(self, event_id: int) -> None:
        with self._sessions.begin() as session:
            session.delete(_get(session, TreatmentEventRow, event_id, "treatment event"))

    # -- visits and photos ------------------------------------------------

    def visits(self, patch_id: int) -> list[Visit]:
        """The patch's visits, earliest first."""
        with self._read() as session:
            rows = session.scalars(
                sa.select(VisitRow).where(VisitRow.patch_id == patch_id).order_by(VisitRow.date)
            )
            return [_visit(r) for r in rows]

    def add_visits(self, patch_id: int, visits: Sequence[NewVisit]) -> list[Visit]:
        """Store the photos of one or more visits, all or nothing.

        Each photo is checked, its GPS location removed and its file written
        (by content hash) first; then every visit and photo row is written in
        one transaction. Photos for a date that already has a visit are added
        to it (the visit's first photo stays the one analysed); a photo the
        patch already holds is skipped.

        Returns
        -------
        list of Visit
            The visits created or extended, as stored.

        Raises
        ------
        ImageLoadError
            If a photo is unusable (nothing is stored).
        InvalidParameterError
            For a visit without photos, a missing date or a date given twice.
        StoreError
            If the patch does not exist.
        """
        dates = [v.date for v in visits]
        if not visits:
            raise InvalidParameterError("there are no visits to save")
        if any(not isinstance(d, _dt.date) or isinstance(d, _dt.datetime) for d in dates):
            raise InvalidParameterError("every visit needs a date")
        if len(set(dates)) != len(dates):
            raise InvalidParameterError("two of the visits to save have the same date; merge their photos")
        prepared: list[list[tuple[NewPhoto, _PreparedPhoto]]] = []
        for visit in visits:
            if not visit.photos:
                raise InvalidParameterError(f"the visit of {visit.date.isoformat()} has no photo")
            prepared.append([(p, _prepare_photo(p)) for p in visit.photos])
        for entries in prepared:
            for _, photo in entries:
                self._write_file("photos", photo.sha256, photo.extension, photo.data)
        touched: list[int] = []
        with self._sessions.begin() as session:
            patch = _get(session, PatchRow, patch_id, "patch")
            held = set(
                session.scalars(
                    sa.select(PhotoRow.sha256).join(VisitRow).where(VisitRow.patch_id == patch.id)
                )
            )
            existing = {v.date: v for v in patch.visits}
            now = _utcnow()
            for visit, entries in zip(visits, prepared):
                fresh = [(new, p) for new, p in entries if p.sha256 not in held]
                for _, p in fresh:
                    held.add(p.sha256)
                if not fresh:
                    continue
                row = existing.get(visit.date)
                if row is None:
                    row = VisitRow(patch_id=patch.id, date=visit.date, notes=visit.notes.strip(), created_at=now)
                    patch.visits.append(row)
                elif visit.notes.strip():
                    row.notes = "\n".join(n for n in (row.notes, visit.notes.strip()) if n)
                start = len(row.photos)
                for offset, (new, p) in enumerate(fresh):
                    row.photos.append(PhotoRow(
                        position=start + offset, sha256=p.sha256, extension=p.extension,
                        display_name=_display_name(new.display_name), format=p.format, width=p.width,
                        height=p.height, size_bytes=len(p.data), taken_at=p.taken_at,
                        date_source=new.date_source if new.date_source in _DATE_SOURCES else "given",
                        location_removed=p.location_removed,
                        quality=None if new.quality is None else [dict(q) for q in new.quality],
                        created_at=now,
                    ))
                session.flush()
                touched.append(row.id)
        with self._read() as session:
            return [_visit(session.get(VisitRow, vid)) for vid in touched]

    def update_visit(self, visit_id: int, *, notes: str | None = None, primary_photo_id: int | None = None,
                     date: _dt.date | None = None) -> Visit:
        """Edit a visit's notes or date, or choose which of its photos is analysed.

        Raises
        ------
        InvalidParameterError
            ``date`` is not a calendar date.
        StoreError
            Another visit of the patch already has that date (add the photos to
            it instead), or the photo does not belong to the visit.
        """
        if date is not None and (not isinstance(date, _dt.date) or isinstance(date, _dt.datetime)):
            raise InvalidParameterError(f"a visit's date must be a calendar date, got {date!r}")
        with self._sessions.begin() as session:
            row = _get(session, VisitRow, visit_id, "visit")
            if notes is not None:
                row.notes = notes.strip()
            if date is not None and date != row.date:
                taken = session.scalars(sa.select(VisitRow.id).where(
                    VisitRow.patch_id == row.patch_id, VisitRow.date == date, VisitRow.id != row.id)).first()
                if taken is not None:
                    raise StoreError(f"this patch already has a visit on {date.isoformat()}; "
                                     "delete one of the two or choose another date")
                row.date = date
            if primary_photo_id is not None:
                ids = [p.id for p in row.photos]
                if primary_photo_id not in ids:
                    raise StoreError("that photo does not belong to this visit")
                order = [primary_photo_id] + [i for i in ids if i != primary_photo_id]
                by_id = {p.id: p for p in row.photos}
                # Positions are not unique-constrained, so they can be rewritten in place.
                for position, pid in enumerate(order):
                    by_id[pid].position = position
            session.flush()
            return _visit(row)

    def delete_visit(self, visit_id: int) -> None:
        with self._sessions.begin() as session:
            session.delete(_get(session, VisitRow, visit_id, "visit"))

    def photo_path(self, photo: Photo) -> Path:
        """Where a stored photo's file is."""
        return self.data_dir / photo.relative_path

    def patch_holds(self, patch_id: int, sha256: str) -> _dt.date | None:
        """The date of the visit of ``patch_id`` that holds a photo with this hash, if any."""
        with self._read() as session:
            return session.scalars(
                sa.select(VisitRow.date).join(PhotoRow).where(VisitRow.patch_id == patch_id, PhotoRow.sha256 == sha256)
            ).first()

    # -- derived files (masks, registered images) ------------------------

    def put_derived(self, data: bytes, extension: str) -> str:
        """Store a derived file (``.png`` or ``.jpg``) by content hash; returns the hash."""
        if extension not in _DERIVED_EXTENSIONS:
            raise InvalidParameterError(f"derived files are {' or '.join(_DERIVED_EXTENSIONS)}, got {extension!r}")
        digest = hashlib.sha256(data).hexdigest()
        self._write_file("derived", digest, extension, data)
        return digest

    def derived_path(self, sha256: str, extension: str) -> Path:
        if not _SHA256.fullmatch(sha256) or extension not in _DERIVED_EXTENSIONS:
            raise InvalidParameterError("not a derived file reference")
        return content_path(self.data_dir, "derived", sha256, extension)

    def _write_file(self, kind: str, digest: str, extension: str, data: bytes) -> Path:
        from ..series.results import atomic_write_bytes

        path = content_path(self.data_dir, kind, digest, extension)
        if path.is_file() and path.stat().st_size == len(data):
            return path  # same content, same name: already there
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise StoreError(f"cannot write to the data folder: {exc.strerror or exc}") from None
        return path

    def unused_files(self) -> list[Path]:
        """Photo files no visit refers to any more (after deletions), for clean-up."""
        with self._read() as session:
            used = {f"{s}{e}" for s, e in session.execute(sa.select(PhotoRow.sha256, PhotoRow.extension))}
        return sorted(p for p in (self.data_dir / "photos").glob("*/*") if p.is_file() and p.name not in used)

    # -- cached analyses --------------------------------------------------

    def get_analysis(self, cache_key: str) -> StoredAnalysis | None:
        with self._read() as session:
            row = session.scalars(sa.select(AnalysisRow).where(AnalysisRow.cache_key == cache_key)).first()
            return None if row is None else _analysis(row)

    def delete_analysis(self, cache_key: str) -> None:
        """Forget a cached analysis, so that the next request computes it again."""
        with self._sessions.begin() as session:
            row = session.scalars(sa.select(AnalysisRow).where(AnalysisRow.cache_key == cache_key)).first()
            if row is not None:
                session.delete(row)

    def save_analysis(
        self,
        cache_key: str,
        *,
        repigment_version: str,
        document: dict[str, Any] | None,
        csv_text: str | None,
        error: str | None = None,
        visits: Sequence[StoredAnalysisVisit] = (),
    ) -> StoredAnalysis:
        """Cache an analysis under its key (derived files must already be stored).

        When another session saved the same key first, that one is kept and returned.
        """
        if not _SHA256.fullmatch(cache_key):
            raise InvalidParameterError("a cache key is a SHA-256 hex digest")
        try:
            with self._sessions.begin() as session:
                row = AnalysisRow(
                    cache_key=cache_key, repigment_version=repigment_version, created_at=_utcnow(),
                    document=document, csv_text=csv_text, error=error,
                )
                row.visits = [
                    AnalysisVisitRow(
                        position=v.position, image=v.image, photo_sha256=v.photo_sha256, mask_sha256=v.mask_sha256,
                        full_mask_sha256=v.full_mask_sha256, registered_sha256=v.registered_sha256,
                        extra=dict(v.extra) or None,
                    )
                    for v in visits
                ]
                session.add(row)
                session.flush()
                return _analysis(row)
        except IntegrityError:
            existing = self.get_analysis(cache_key)
            if existing is None:
                raise StoreError("could not save the analysis") from None
            return existing


# ---------------------------------------------------------------------------
# Helpers


def _get(session: Session, model, key: int, what: str):
    row = session.get(model, key)
    if row is None:
        raise StoreError(f"there is no {what} with id {key}; it may have been deleted")
    return row


def _check_label(label: str) -> str:
    label = " ".join((label or "").split())
    if not label or len(label) > 80:
        raise InvalidParameterError("a patch needs a short description of where it is (1-80 characters)")
    return label


def _check_region(region: str) -> str:
    if region not in BODY_REGIONS:
        raise InvalidParameterError(f"body region must be one of {', '.join(BODY_REGIONS)}, got {region!r}")
    return region


def _check_marker(marker_mm: float) -> float:
    try:
        value = float(marker_mm)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"marker size must be a number of mm, got {marker_mm!r}") from None
    if not 1.0 <= value <= 500.0:
        raise InvalidParameterError(f"marker size must be between 1 and 500 mm, got {value}")
    return value


def _display_name(name: str) -> str:
    # Kept for display only: drop any folder part and control characters.
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return (base or "photo")[:255]


def _prepare_photo(photo: NewPhoto) -> _PreparedPhoto:
    """Check a photo, remove its location, and name it by content."""
    from ..io import load_image, strip_location

    data = bytes(photo.data)
    name = _display_name(photo.display_name)
    # Decoded (small), not only its header read: a file truncated inside its pixels passes a header check.
    info = load_image(_named(data, name), max_side=256, max_file_bytes=MAX_PHOTO_BYTES).info
    stripped = strip_location(data) if info.has_location else data
    return _PreparedPhoto(
        data=stripped,
        sha256=hashlib.sha256(stripped).hexdigest(),
        extension=_EXTENSIONS.get(info.format, ".img"),
        format=info.format,
        width=info.original_size[0],
        height=info.original_size[1],
        taken_at=info.taken_at,
        location_removed=info.has_location,
    )


def _named(data: bytes, name: str):
    """Bytes as a file object with a name, so that error messages name the upload."""
    import io

    buffer = io.BytesIO(data)
    buffer.name = name
    return buffer


def _patient(row: PatientRow) -> Patient:
    interval = row.hand_unit_interval
    return Patient(
        id=row.id, code=row.code, notes=row.notes, created_at=row.created_at,
        hand_unit_cm2=row.hand_unit_cm2, hand_unit_source=row.hand_unit_source,
        hand_unit_detail=row.hand_unit_detail or "",
        hand_unit_interval=None if not interval else (float(interval[0]), float(interval[1])),
    )


def _event(row: TreatmentEventRow) -> TreatmentEvent:
    return TreatmentEvent(id=row.id, patch_id=row.patch_id, date=row.date, kind=row.kind,
                          description=row.description)


def _patch(row: PatchRow) -> Patch:
    treatment = row.treatment
    return Patch(
        id=row.id,
        patient_id=row.patient_id,
        label=row.label,
        body_region=row.body_region,
        notes=row.notes,
        marker_mm=row.marker_mm,
        roi=None if row.roi is None else tuple(float(v) for v in row.roi),
        regimen=treatment.regimen if treatment else DEFAULT_REGIMEN,
        treatment_start=treatment.start_date if treatment else None,
        treatment_notes=treatment.notes if treatment else "",
        events=tuple(_event(e) for e in row.events),
        labels_png=row.labels_png,
        labels_photo_sha256=row.labels_photo_sha256,
    )


def _check_labels_png(labels_png: bytes) -> None:
    if not labels_png.startswith(b"\x89PNG\r\n\x1a\n") or len(labels_png) > 16 * 1024 * 1024:
        raise InvalidParameterError("strokes are kept as a PNG of at most 16 MB")


def _photo(row: PhotoRow) -> Photo:
    return Photo(
        id=row.id, visit_id=row.visit_id, position=row.position, sha256=row.sha256, extension=row.extension,
        display_name=row.display_name, format=row.format, width=row.width, height=row.height,
        size_bytes=row.size_bytes, taken_at=row.taken_at, date_source=row.date_source,
        location_removed=row.location_removed, quality=tuple(dict(q) for q in (row.quality or ())),
    )


def _visit(row: VisitRow) -> Visit:
    photos = sorted(row.photos, key=lambda p: (p.position, p.id))
    return Visit(id=row.id, patch_id=row.patch_id, date=row.date, notes=row.notes,
                 photos=tuple(_photo(p) for p in photos))


def _analysis(row: AnalysisRow) -> StoredAnalysis:
    return StoredAnalysis(
        cache_key=row.cache_key,
        repigment_version=row.repigment_version,
        created_at=row.created_at,
        document=row.document,
        csv_text=row.csv_text,
        error=row.error,
        visits=tuple(
            StoredAnalysisVisit(
                position=v.position, image=v.image, photo_sha256=v.photo_sha256, mask_sha256=v.mask_sha256,
                full_mask_sha256=v.full_mask_sha256, registered_sha256=v.registered_sha256, extra=dict(v.extra or {}),
            )
            for v in row.visits
        ),
    )
