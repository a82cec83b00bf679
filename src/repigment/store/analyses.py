"""Analyse a stored patch's series once and keep the result in the store.

An analysis is identified by a hash of everything its figures depend on: the
photos analysed (content hash, visit date and the name they are reported
under, in order), the treatment start, the marker size, the region of
interest, the working size, the repigment version with its method names, and
what the clinical block depends on (the patch's body region and the patient's
hand unit: changing either gives a new analysis with its VASI, patterns,
spreading and week-24/52 checkpoints).
The store keeps, under that key, the ``results.json`` document and CSV (the
CLI's schema), the full-resolution masks (for export) and, per visit, the
working-frame mask and the registered visit image (for review), so reopening
the app shows results without computing anything again.

The app analyses its patches through these functions
(:func:`repigment.webapp.common.patch_analysis`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..clinical.vasi import HandUnit
from ..errors import RepigmentError
from ..io import encode_png
from ..series.photos import DEFAULT_WORKING_SIZE
from ..vocabulary import BodyRegion
from .blobs import content_path
from .database import Store
from .records import Patch, Patient, StoredAnalysis, StoredAnalysisVisit, Visit

__all__ = [
    "AnalysisRequest",
    "PatchAnalysis",
    "SeriesPhoto",
    "analyse",
    "cached_analysis",
    "decode_image",
    "encode_jpeg",
    "get_or_analyse",
    "link_photos",
    "patient_hand_unit",
    "request_for_patch",
    "vasi_region",
]

Progress = Callable[[int, int, str], None]
# Bump when what the app keeps per analysis changes (forces recomputation).
_APP_CACHE_LAYOUT = 3
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class SeriesPhoto:
    """The photo analysed for one visit (its first photo)."""

    visit_id: int
    date: _dt.date
    sha256: str
    extension: str
    image: str  # the file name results report it under: unique, safe, from the upload's name


@dataclass(frozen=True)
class AnalysisRequest:
    """What a patch's analysis depends on; :attr:`key` names its cache entry."""

    patch_id: int
    photos: tuple[SeriesPhoto, ...]
    treatment_start: _dt.date | None
    marker_mm: float
    roi: tuple[float, ...] | None
    working_size: int = DEFAULT_WORKING_SIZE  # the library's, so the app and the CLI give the same figures
    body_region: str | None = None  # a BodyRegion value, as the store keeps it ("upper-limbs")
    hand_unit: HandUnit | None = None
    labels_png: bytes | None = None  # a clinician's strokes on the baseline photo (PNG of labels 0-3)
    # Strokes on later visits' own photos: (image name, PNG of labels 0-3), in visit order.
    visit_labels: tuple[tuple[str, bytes], ...] = ()

    @property
    def key(self) -> str:
        from ..core.registration import REGISTRATION_METHOD
        from ..core.segmentation import SEGMENTATION_METHOD

        payload = {
            "photos": [[p.sha256, p.date.isoformat(), p.image] for p in self.photos],
            "treatment_start": None if self.treatment_start is None else self.treatment_start.isoformat(),
            "marker_mm": round(float(self.marker_mm), 6),
            "roi": None if self.roi is None else [round(float(v), 3) for v in self.roi],
            "working_size": int(self.working_size),
            "repigment_version": __version__,
            "methods": [SEGMENTATION_METHOD, REGISTRATION_METHOD],
            "layout": _APP_CACHE_LAYOUT,
            "body_region": self.body_region,
            "hand_unit": None if self.hand_unit is None else self.hand_unit.to_dict(),
            "labels": None if self.labels_png is None else hashlib.sha256(self.labels_png).hexdigest(),
        }
        if self.visit_labels:
            payload["visit_labels"] = [[image, hashlib.sha256(png).hexdigest()] for image, png in self.visit_labels]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PatchAnalysis:
    """A patch's analysis as stored, with the request it answers.

    ``document`` is the results.json document (CLI schema) or ``None`` with
    ``error`` set when the series could not be analysed at all.
    """

    request: AnalysisRequest
    stored: StoredAnalysis
    cache_hit: bool

    @property
    def document(self) -> dict[str, Any] | None:
        return self.stored.document

    @property
    def error(self) -> str | None:
        return self.stored.error

    @property
    def csv_text(self) -> str | None:
        return self.stored.csv_text

    def files(self, position: int) -> StoredAnalysisVisit | None:
        for visit in self.stored.visits:
            if visit.position == position:
                return visit
        return None

    def visit_id(self, position: int) -> int:
        return self.request.photos[position].visit_id

    def full_masks(self) -> Iterator[tuple[str, str]]:
        """``(mask path as in results.json, sha256 of the stored PNG)`` of every visit with a mask."""
        for position, entry in enumerate(self.document["visits"]):
            files = self.files(position)
            if entry.get("mask") and files is not None and files.full_mask_sha256:
                yield entry["mask"], files.full_mask_sha256


def link_photos(store: Store, photos: Sequence[SeriesPhoto], folder: Path, *, missing_ok: bool = False) -> None:
    """Put the stored photos in ``folder`` under their upload names (hard links when possible).

    The results name each photo by its upload, not by its hash, so a series is
    analysed or reported from such a folder.
    """
    for photo in photos:
        source = content_path(store.data_dir, "photos", photo.sha256, photo.extension)
        if missing_ok and not source.is_file():
            continue
        link_or_copy(source, folder / photo.image)


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (no copy of the bytes), or copy it across file systems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _image_names(visits: list[Visit]) -> list[str]:
    """Unique, file-system-safe names for the analysed photos, from their upload names."""
    names: list[str] = []
    seen: set[str] = set()
    for visit in visits:
        photo = visit.primary
        assert photo is not None
        stem = _UNSAFE.sub("_", Path(photo.display_name).stem).strip("._-")[:80] or "photo"
        name = f"{stem}{photo.extension}"
        if name.lower() in seen:
            name = f"{stem}_{visit.date.isoformat()}{photo.extension}"
        counter = 2
        while name.lower() in seen:
            name = f"{stem}_{visit.date.isoformat()}_{counter}{photo.extension}"
            counter += 1
        seen.add(name.lower())
        names.append(name)
    return names


def vasi_region(body_region: str) -> str:
    """A body region in its one spelling (the store now keeps it so; ``upper_limbs`` -> ``upper-limbs``).

    Examples
    --------
    >>> vasi_region("upper_limbs"), vasi_region("face")
    ('upper-limbs', 'face')
    """
    return BodyRegion.parse(body_region).value


def patient_hand_unit(patient: Patient) -> HandUnit | None:
    """The hand unit recorded for a patient, or ``None`` when none is."""
    if patient.hand_unit_cm2 is None:
        return None
    return HandUnit(cm2=patient.hand_unit_cm2, source=patient.hand_unit_source or "entered",
                    detail=patient.hand_unit_detail, interval_cm2=patient.hand_unit_interval)


def request_for_patch(
    store: Store, patch: Patch, *, working_size: int = DEFAULT_WORKING_SIZE
) -> AnalysisRequest | None:
    """The analysis a patch needs now, or ``None`` when it has no photo yet."""
    visits = [v for v in store.visits(patch.id) if v.primary is not None]
    if not visits:
        return None
    photos = tuple(
        SeriesPhoto(visit_id=v.id, date=v.date, sha256=v.primary.sha256, extension=v.primary.extension, image=name)
        for v, name in zip(visits, _image_names(visits))
    )
    # The store keeps the region as corners; the library takes x, y, width, height.
    roi = None if patch.roi is None else (
        patch.roi[0], patch.roi[1], patch.roi[2] - patch.roi[0], patch.roi[3] - patch.roi[1])
    # Strokes drawn on another photo than today's baseline do not apply to it.
    labels = patch.labels_png if patch.labels_photo_sha256 == photos[0].sha256 else None
    kept = store.photo_labels(v.primary.id for v in visits[1:])
    visit_labels = tuple((photo.image, kept[v.primary.id]) for v, photo in zip(visits[1:], photos[1:])
                         if v.primary.id in kept)
    return AnalysisRequest(
        patch_id=patch.id,
        photos=photos,
        treatment_start=patch.treatment_start,
        marker_mm=patch.marker_mm,
        roi=roi,
        labels_png=labels,
        visit_labels=visit_labels,
        working_size=working_size,
        body_region=patch.body_region,
        hand_unit=patient_hand_unit(store.patient(patch.patient_id)),
    )


def cached_analysis(store: Store, request: AnalysisRequest) -> PatchAnalysis | None:
    """The stored analysis for ``request``, or ``None`` (never computes)."""
    stored = store.get_analysis(request.key)
    return None if stored is None else PatchAnalysis(request=request, stored=stored, cache_hit=True)


def get_or_analyse(
    store: Store,
    request: AnalysisRequest,
    *,
    progress: Progress | None = None,
    analyze: Callable[..., Any] | None = None,
) -> PatchAnalysis:
    """The stored analysis for ``request``, computing and storing it on a miss.

    Concurrent requests for the same key in one process wait for a single computation.
    """
    found = cached_analysis(store, request)
    if found is not None:
        return found
    with _locks_guard:
        lock = _locks.setdefault(request.key, threading.Lock())
    with lock:
        found = cached_analysis(store, request)
        if found is not None:
            return found
        return analyse(store, request, progress=progress, analyze=analyze)


class _MaskStore:
    """``mask_writer`` for the pipeline: full-resolution masks into the store, by hash."""

    def __init__(self, store: Store):
        self.store = store
        self.by_image: dict[str, str] = {}

    def __call__(self, visit, mask: np.ndarray) -> str:
        self.by_image[visit.image] = self.store.put_derived(encode_png(mask), ".png")
        return f"masks/{Path(visit.image).stem}.png"


def analyse(
    store: Store,
    request: AnalysisRequest,
    *,
    progress: Progress | None = None,
    analyze: Callable[..., Any] | None = None,
) -> PatchAnalysis:
    """Run the series pipeline on a patch's stored photos and cache the outcome.

    Parameters
    ----------
    store : Store
    request : AnalysisRequest
    progress : callable, optional
        ``progress(done, total, image_name)`` after each photo.
    analyze : callable, optional
        Stand-in for :func:`repigment.series.pipeline.analyze_photos` (tests).

    Returns
    -------
    PatchAnalysis
        With ``error`` set (and cached) when the series cannot be analysed at all.
    """
    from ..clinical.summary import clinical_summary
    from ..core.quality import framing_difference
    from ..io import LabelsByImage, read_labels
    from ..series.discovery import VisitPhoto
    from ..series.pipeline import analyze_photos
    from ..series.results import result_to_dict, results_csv_text

    analyze = analyze or analyze_photos
    masks = _MaskStore(store)
    with tempfile.TemporaryDirectory(prefix="series-", dir=store.data_dir / "tmp") as tmp:
        link_photos(store, request.photos, Path(tmp))
        photos = [VisitPhoto(path=Path(tmp) / p.image, date=p.date, date_source="given") for p in request.photos]
        try:
            result = analyze(
                photos,
                treatment_start=request.treatment_start,
                marker_mm=request.marker_mm,
                roi=request.roi,
                labels=None if request.labels_png is None else read_labels(request.labels_png),
                visit_labels=LabelsByImage(request.visit_labels),
                working_size=request.working_size,
                mask_writer=masks,
                progress=progress,
                keep_images=True,
            )
        except RepigmentError as exc:
            stored = store.save_analysis(
                request.key, repigment_version=__version__, document=None, csv_text=None, error=str(exc)
            )
            return PatchAnalysis(request=request, stored=stored, cache_hit=False)

    position_of = {p.image: i for i, p in enumerate(request.photos)}
    visits = []
    for visit in result.visits:
        position = position_of[visit.image]
        extra: dict[str, Any] = {}
        registration = visit.registration
        if position > 0 and registration is not None and registration.homography is not None:
            # The visit's working image has the baseline's aspect in practice; its exact
            # shape is not kept by the pipeline (see the report to the lead).
            shape = result.baseline_working_rgb.shape[:2]
            framing = framing_difference(registration.homography, shape)
            extra["framing"] = {
                "scale": round(framing.scale, 4),
                "rotation_deg": round(framing.rotation_deg, 2),
                "shift": round(framing.shift, 4),
                "advice": None if framing.issue is None else framing.issue.message,
            }
        visits.append(StoredAnalysisVisit(
            position=position,
            image=visit.image,
            photo_sha256=request.photos[position].sha256,
            mask_sha256=None if visit.mask_baseline is None else store.put_derived(encode_png(visit.mask_baseline), ".png"),
            full_mask_sha256=masks.by_image.get(visit.image),
            registered_sha256=None if visit.registered_rgb is None else store.put_derived(
                encode_jpeg(visit.registered_rgb), ".jpg"
            ),
            extra=extra,
        ))
    try:
        clinical = clinical_summary(result, body_region=request.body_region, hand_unit=request.hand_unit)
    except RepigmentError:
        clinical = None  # the figures stand without it; the course page says it is missing
    stored = store.save_analysis(
        request.key,
        repigment_version=result.repigment_version,
        document=result_to_dict(result, clinical=clinical),
        csv_text=results_csv_text(result),
        visits=visits,
    )
    return PatchAnalysis(request=request, stored=stored, cache_hit=False)


# ---------------------------------------------------------------------------
# Image files of derived results


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """An RGB image as JPEG bytes."""
    import cv2

    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RepigmentError("could not encode an image as JPEG")
    return encoded.tobytes()


def decode_image(data: bytes, *, mask: bool = False) -> np.ndarray:
    """Decode a derived PNG/JPEG: a bool mask, or an RGB image."""
    import cv2

    flag = cv2.IMREAD_GRAYSCALE if mask else cv2.IMREAD_COLOR
    array = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if array is None:
        raise RepigmentError("a stored result image is damaged; re-analyse the patch")
    return array > 127 if mask else cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
