"""The records the store hands out and takes in: plain frozen dataclasses.

:class:`Patient`, :class:`Patch` (with its :class:`TreatmentEvent` timeline),
:class:`Visit`, :class:`Photo`, :class:`StoredAnalysis` and
:class:`StoredAnalysisVisit` are what :class:`~repigment.store.Store` returns;
:class:`NewVisit` and :class:`NewPhoto` are what callers pass in to be stored.
The private converters (``_patient``, ``_patch``, ``_visit``...) copy a row of
:mod:`repigment.store.schema` into its record, so that no live ORM object ever
leaves the store.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .blobs import content_path
from .common import BODY_REGIONS, DEFAULT_REGIMEN, EVENT_KINDS
from .schema import AnalysisRow, PatchRow, PatientRow, PhotoRow, TreatmentEventRow, VisitRow

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


# ---------------------------------------------------------------------------
# Row -> record converters


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
