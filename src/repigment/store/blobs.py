"""Files kept in the data folder, each named by the SHA-256 of its content.

:func:`content_path` says where such a file lives
(``<data>/<kind>/<ab>/<sha256><ext>``); the private helpers here check an
uploaded photo, remove its GPS location and name it by content
(``_prepare_photo``), and clean its uploaded name for display only (it never
becomes part of a path). :class:`~repigment.store.Store` writes and finds the
files with them (``_write_file``, ``photo_path``, ``put_derived``,
``derived_path``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .records import NewPhoto

#: File extension of each stored image format (from :data:`repigment.io.SUPPORTED_FORMATS`).
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp", "HEIF": ".heic", "GIF": ".gif"}
_DERIVED_EXTENSIONS = (".png", ".jpg")
MAX_PHOTO_BYTES = 50 * 1024**2


def content_path(data_dir: str | os.PathLike[str], kind: str, sha256: str, extension: str) -> Path:
    """Where the data folder keeps a file named by its content: ``<kind>/<ab>/<sha256><ext>``.

    ``kind`` is ``"photos"`` (uploads, location removed) or ``"derived"`` (masks
    and registered images of analyses).
    """
    return Path(data_dir) / kind / sha256[:2] / f"{sha256}{extension}"


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
