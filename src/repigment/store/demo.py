"""The demo patient: the bundled sample series, imported on first start.

On a store with no patients, every ``sample_images/<series>/`` folder becomes a
patch of patient ``DEMO-001`` with its visits, so the first screen already shows
a real course (the course page analyses it lazily, once). The import is
idempotent: it resumes where an interrupted import stopped, and is not repeated
once done or when the store already held real patients.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable
from pathlib import Path

from ..errors import InvalidParameterError, RepigmentError
from ..vocabulary import DEFAULT_MARKER_MM, BodyRegion
from . import NewPhoto, NewVisit, Patch, Patient, Store, StoreError

__all__ = ["DEMO_CODE", "ensure_demo", "import_series", "sample_series_dirs"]

DEMO_CODE = "DEMO-001"
_FLAG = "demo_patient"


def sample_series_dirs(root: str | Path) -> list[Path]:
    """Series folders (with a ``visits.csv``) under a samples folder, by name."""
    folder = Path(root)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "visits.csv").is_file())


def _series_label(folder: Path) -> str:
    """``series_a`` -> ``Sample series A``."""
    words = folder.name.replace("-", "_").split("_")
    name = " ".join(w.upper() if len(w) == 1 else w.lower() for w in words if w)
    return f"Sample {name}" if name else "Sample series"


def _truth(folder: Path) -> dict:
    try:
        return json.loads((folder / "truth.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def import_series(
    store: Store,
    patient_id: int,
    folder: str | Path,
    *,
    label: str | None = None,
    check: Callable[[bytes, str], tuple[dict[str, str], ...]] | None = None,
) -> Patch:
    """Import a series folder (``visits.csv`` + photos) as a patch of a patient.

    Safe to repeat: an existing patch of the same label is reused and photos it
    already holds are skipped.

    Parameters
    ----------
    check : callable, optional
        ``check(data, name) -> quality records`` stored with each photo.
    """
    from ..series.discovery import discover_series, parse_iso_date

    folder = Path(folder)
    label = label or _series_label(folder)
    truth = _truth(folder)
    spec = truth.get("spec", {}) if isinstance(truth.get("spec"), dict) else {}
    start = None
    if isinstance(truth.get("treatment_start"), str):
        try:
            start = parse_iso_date(truth["treatment_start"], what="treatment start")
        except RepigmentError:
            start = None
    try:
        region = BodyRegion.parse(truth.get("body_region"))
    except InvalidParameterError:
        region = BodyRegion.UPPER_LIMBS
    notes = "Synthetic sample photos bundled with repigment"
    if spec:
        notes += f" (Fitzpatrick type {spec.get('skin_type', '?')}, {spec.get('course', '?')} course)"
    patch = next((p for p in store.patches(patient_id) if p.label == label), None)
    if patch is None:
        patch = store.create_patch(
            patient_id, label, region, notes=notes + ".", treatment_start=start,
            marker_mm=float(spec.get("marker_mm", DEFAULT_MARKER_MM)),
        )
    photos = discover_series(folder)
    by_date: dict[_dt.date, list[NewPhoto]] = {}
    for photo in photos:
        data = photo.path.read_bytes()
        quality = None if check is None else check(data, photo.name)
        by_date.setdefault(photo.date, []).append(
            NewPhoto(data=data, display_name=photo.name, date_source=photo.date_source, quality=quality)
        )
    store.add_visits(patch.id, [NewVisit(date=d, photos=p) for d, p in by_date.items()])
    return patch


def ensure_demo(
    store: Store,
    samples_root: str | Path,
    *,
    check: Callable[[bytes, str], tuple[dict[str, str], ...]] | None = None,
) -> Patient | None:
    """Import the sample series as ``DEMO-001`` once, into a store that had no patients.

    Returns
    -------
    Patient or None
        The demo patient when it was imported (now or before), else ``None``.
    """
    if store.get_setting(_FLAG) == "skipped":
        return None
    patients = store.patients()
    demo = next((p for p in patients if p.code == DEMO_CODE), None)
    if store.get_setting(_FLAG) == "imported":
        return demo
    if demo is None and patients:
        store.set_setting(_FLAG, "skipped")  # a real store: never add a demo to it
        return None
    folders = sample_series_dirs(samples_root)
    if not folders:
        return None
    if demo is None:
        try:
            demo = store.create_patient(DEMO_CODE, notes="Demo patient: synthetic sample photos. Delete at will.")
        except StoreError:  # another session created it just now
            demo = store.patient_by_code(DEMO_CODE)
            if demo is None:
                raise
    for folder in folders:
        import_series(store, demo.id, folder, check=check)
    store.set_setting(_FLAG, "imported")
    return demo
