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
This package holds no analysis and no user interface; it returns plain frozen
records, never live ORM objects.

The code is split by concern, and everything below is importable from here:
:mod:`repigment.store.schema` (the ORM models and their migrations),
:mod:`repigment.store.records` (the frozen records),
:mod:`repigment.store.blobs` (files named by content),
:mod:`repigment.store.database` (:class:`Store` itself) and
:mod:`repigment.store.common` (what they share);
:mod:`repigment.store.accounts` adds clinic accounts on top.
"""

from __future__ import annotations

# Every public name of the store's former single module stays importable from
# here (__all__ is unchanged). Imported from here though not in __all__: Base
# and schema_version (tests/store) and the account rows (.accounts).
from .blobs import MAX_PHOTO_BYTES, content_path
from .common import BODY_REGIONS, DEFAULT_REGIMEN, EVENT_KINDS, StoreError
from .database import KEEP, Store, default_data_dir
from .records import (
    NewPhoto,
    NewVisit,
    Patch,
    Patient,
    Photo,
    StoredAnalysis,
    StoredAnalysisVisit,
    TreatmentEvent,
    Visit,
)
from .schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    AccessCodeRow,
    AnalysisRow,
    AnalysisVisitRow,
    AuditRow,
    Base,
    LoginAttemptRow,
    PatchRow,
    PatientRow,
    PhotoRow,
    SettingRow,
    TreatmentEventRow,
    TreatmentRow,
    UserRow,
    VisitRow,
    migrate,
    schema_version,
)

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
