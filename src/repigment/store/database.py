""":class:`Store`: a data folder and its database, opened (and migrated) as one.

A :class:`Store` reads and writes patients, patches, treatment events, visits,
photos, settings and cached analyses, each write in one transaction, and hands
out the frozen records of :mod:`repigment.store.records`. This module also
holds :func:`default_data_dir`, :data:`KEEP`, and the private checks applied to
what callers pass in (patient codes, patch labels, body regions, marker sizes,
strokes, hashes).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import InvalidParameterError
from ..vocabulary import DEFAULT_MARKER_MM, BodyRegion, EventKind
from .blobs import _DERIVED_EXTENSIONS, _display_name, _prepare_photo, _PreparedPhoto, content_path
from .common import DEFAULT_REGIMEN, StoreError, _utcnow
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
    _analysis,
    _event,
    _patch,
    _patient,
    _visit,
)
from .schema import (
    AnalysisRow,
    AnalysisVisitRow,
    PatchRow,
    PatientRow,
    PhotoRow,
    SettingRow,
    TreatmentEventRow,
    TreatmentRow,
    VisitRow,
    _sqlite_pragmas,
    migrate,
)

_DATE_SOURCES = ("exif", "filename", "given", "visits.csv")
_CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: Default of :meth:`Store.update_patch` arguments: leave the field as it is.
KEEP: Any = type("Keep", (), {"__repr__": lambda self: "KEEP"})()


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
        marker_mm: float = DEFAULT_MARKER_MM,
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
        body_region = _check_region(body_region)
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
        kind = EventKind.parse(kind).value
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
    # Either spelling in ("upper_limbs" from older callers), one out: the VASI spelling.
    return BodyRegion.parse(region).value


def _check_marker(marker_mm: float) -> float:
    try:
        value = float(marker_mm)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"marker size must be a number of mm, got {marker_mm!r}") from None
    if not 1.0 <= value <= 500.0:
        raise InvalidParameterError(f"marker size must be between 1 and 500 mm, got {value}")
    return value


def _check_labels_png(labels_png: bytes) -> None:
    if not labels_png.startswith(b"\x89PNG\r\n\x1a\n") or len(labels_png) > 16 * 1024 * 1024:
        raise InvalidParameterError("strokes are kept as a PNG of at most 16 MB")
