"""Every Streamlit cache of the app, in one place.

- the :class:`~repigment.store.Store` (one per data folder and database URL);
- photo checks, keyed by the SHA-256 of the uploaded bytes (the bytes
  themselves are passed unhashed, as ``_data``);
- the patch baseline prepared for alignment checks, keyed by its content hash;
- derived images read back from the store, keyed by content hash (immutable).

Analyses are not cached here: the store is their cache (see
:mod:`repigment.store.analyses`), so they survive restarts.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import streamlit as st

from ..series import intake
from ..store import Store, content_path, demo
from ..store import analyses as analysis

__all__ = [
    "alignment_check",
    "baseline_reference",
    "derived_image",
    "digest",
    "ensure_demo",
    "get_store",
    "photo_check",
    "saved_strokes",
    "strokes_outline",
]


def digest(data: bytes) -> str:
    """SHA-256 of uploaded bytes: the cache key of everything computed from them."""
    return hashlib.sha256(data).hexdigest()


@st.cache_resource(show_spinner=False)
def _open_store(data_dir: str, url: str | None) -> Store:
    return Store(data_dir or None, url=url)


def get_store() -> Store:
    """The store named by ``REPIGMENT_DATA`` / ``REPIGMENT_DB_URL`` (read on every call)."""
    return _open_store(os.environ.get("REPIGMENT_DATA", ""), os.environ.get("REPIGMENT_DB_URL") or None)


def _quality_records(data: bytes, name: str) -> tuple[dict[str, str], ...]:
    check = intake.check_photo(data, name)
    return check.quality_records


@st.cache_resource(show_spinner="Preparing the demo patient (first start only)…")
def _demo_once(data_dir: str, db_url: str, samples: str) -> bool:
    demo.ensure_demo(get_store(), samples, check=_quality_records)
    return True


def ensure_demo(samples: str | Path) -> None:
    """Import the sample series as the demo patient, once per store (``REPIGMENT_DEMO=0`` turns it off)."""
    if os.environ.get("REPIGMENT_DEMO", "1").strip().lower() in ("0", "false", "no", "off"):
        return
    store = get_store()
    _demo_once(str(store.data_dir), store.display_url, str(samples))


@st.cache_data(show_spinner=False, max_entries=64)
def photo_check(sha256: str, _data: bytes, name: str) -> intake.UploadCheck:
    """:func:`repigment.series.intake.check_photo`, once per uploaded content."""
    return intake.check_photo(_data, name)


@st.cache_resource(show_spinner=False, max_entries=4)
def baseline_reference(data_dir: str, sha256: str, extension: str, marker_mm: float) -> intake.BaselineReference:
    """A patch's baseline photo prepared for alignment checks (shared, read-only arrays)."""
    return intake.baseline_reference(content_path(data_dir, "photos", sha256, extension), marker_mm=marker_mm)


@st.cache_data(show_spinner=False, max_entries=64)
def alignment_check(baseline_sha256: str, sha256: str, _reference: intake.BaselineReference, _data: bytes,
                    name: str) -> intake.AlignmentCheck:
    """:func:`repigment.series.intake.check_alignment`, once per (baseline, upload) pair."""
    return intake.check_alignment(_reference, _data, name)


@st.cache_data(show_spinner=False, max_entries=128)
def derived_image(data_dir: str, sha256: str, extension: str, mask: bool = False) -> np.ndarray:
    """A mask or registered image the store keeps for an analysis."""
    return analysis.decode_image(content_path(data_dir, "derived", sha256, extension).read_bytes(), mask=mask)


@st.cache_data(show_spinner=False, max_entries=32)
def stored_photo(data_dir: str, sha256: str, extension: str, max_side: int = 1024) -> np.ndarray:
    """A stored photo, upright, at most ``max_side`` pixels (for display)."""
    from ..io import load_image

    return load_image(content_path(data_dir, "photos", sha256, extension), max_side=max_side).rgb


@st.cache_data(show_spinner="Finding the outline from your strokes…", max_entries=32)
def _strokes_outline(data_dir: str, sha256: str, extension: str, labels_digest: str, _labels: bytes,
                     working_shape: tuple[int, int]) -> tuple[np.ndarray | None, str]:
    from ..errors import RepigmentError
    from ..io import read_labels
    from ..series.pipeline import segment_image

    try:
        result = segment_image(content_path(data_dir, "photos", sha256, extension), labels=read_labels(_labels))
    except RepigmentError as exc:
        return None, str(exc)
    import cv2

    small = cv2.resize(result.mask.astype(np.uint8), (working_shape[1], working_shape[0]), interpolation=cv2.INTER_AREA)
    return small > 0, f"confidence {result.confidence:.2f}" + (f": {result.reason}" if result.reason else "")


@st.cache_data(show_spinner=False, max_entries=8)
def _saved_strokes(labels_digest: str, _labels_png: bytes,
                   canvas_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    from ..io import read_labels
    from .strokes import labels_at_size

    labels = read_labels(_labels_png)
    return labels, labels_at_size(labels, canvas_shape)


def saved_strokes(labels_png: bytes, canvas_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Saved strokes at the photo's size and at ``canvas_shape`` (decoded once, not on every stroke drawn)."""
    return _saved_strokes(digest(labels_png), labels_png, tuple(canvas_shape))


def strokes_outline(data_dir: str, sha256: str, extension: str, labels_png: bytes,
                    working_shape: tuple[int, int]) -> tuple[np.ndarray | None, str]:
    """The baseline photo's mask learned from strokes, at ``working_shape``, and its confidence (or the error)."""
    return _strokes_outline(data_dir, sha256, extension, digest(labels_png), labels_png, tuple(working_shape))
