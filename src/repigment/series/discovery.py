"""Find the photos of a series and their visit dates.

A series folder holds the photos of one patch and, optionally, ``visits.csv``
with a header row and columns ``date,image`` (ISO date, file name relative to
the folder; extra columns are allowed). Without it, each photo's date comes
from its EXIF DateTimeOriginal, then from an ISO date in its file name.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io as _io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import MissingDateError, SeriesError

__all__ = [
    "IMAGE_SUFFIXES",
    "VisitPhoto",
    "discover_series",
    "read_visits_csv",
    "date_from_filename",
    "photo_date",
    "parse_iso_date",
    "resolve_inside",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".heif")
VISITS_FILE = "visits.csv"
MAX_VISITS_FILE_BYTES = 5 * 1024**2

_ISO_IN_NAME = re.compile(r"(?<!\d)(\d{4})[-_]?(\d{2})[-_]?(\d{2})(?!\d)")


@dataclass(frozen=True)
class VisitPhoto:
    """One photo of a series with its visit date.

    Attributes
    ----------
    path : Path
        The photo file.
    date : datetime.date
        Visit date.
    date_source : {"visits.csv", "exif", "filename", "given"}
        Where the date came from.
    """

    path: Path
    date: _dt.date
    date_source: Literal["visits.csv", "exif", "filename", "given"]

    @property
    def name(self) -> str:
        return self.path.name


def parse_iso_date(text: str, *, what: str = "date") -> _dt.date:
    """Parse ``YYYY-MM-DD`` strictly.

    Raises
    ------
    SeriesError
        With a one-line message naming ``what`` when the text is not a real date.

    Examples
    --------
    >>> parse_iso_date("2026-03-01")
    datetime.date(2026, 3, 1)
    """
    cleaned = text.strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", cleaned):
        raise SeriesError(f"{what} {cleaned!r} is not an ISO date like 2026-03-01")
    try:
        return _dt.date.fromisoformat(cleaned)
    except ValueError:
        raise SeriesError(f"{what} {cleaned!r} is not a real calendar date") from None


def photo_date(taken_at: _dt.datetime | None, name: str) -> tuple[_dt.date | None, Literal["exif", "filename"] | None]:
    """A photo's date and where it was found: its EXIF date, else a date in its file name.

    Parameters
    ----------
    taken_at : datetime or None
        When the camera says the photo was taken (``ImageInfo.taken_at``).
    name : str
        The photo's file name.

    Returns
    -------
    date : datetime.date or None
    source : {"exif", "filename"} or None

    Examples
    --------
    >>> photo_date(None, "visit_2026-03-01.jpg")
    (datetime.date(2026, 3, 1), 'filename')
    >>> photo_date(None, "IMG_1234.jpg")
    (None, None)
    """
    if taken_at is not None:
        return taken_at.date(), "exif"
    from_name = date_from_filename(name)
    return (from_name, "filename") if from_name is not None else (None, None)


def date_from_filename(name: str) -> _dt.date | None:
    """An ISO date (``2026-03-01``, ``2026_03_01`` or ``20260301``) in a file name.

    Examples
    --------
    >>> date_from_filename("visit_03_2026-03-01.jpg")
    datetime.date(2026, 3, 1)
    >>> date_from_filename("IMG_1234.jpg") is None
    True
    """
    for match in _ISO_IN_NAME.finditer(Path(name).stem):
        try:
            return _dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            continue
    return None


def resolve_inside(folder: Path, relative: str) -> Path:
    """Resolve a file name from a visits file, refusing anything outside ``folder``.

    The name may not leave the folder, and neither may the folders on its way
    (a linked sub-folder that leads out is refused). The file itself may be a
    symbolic link and is read through it: annexed datasets (git-annex,
    DataLad) store every file as a link into the repository's object store.

    Raises
    ------
    SeriesError
        For absolute paths, ``..`` escapes and folders that lead out of the folder.
    """
    if not relative or relative.strip() != relative or any(ord(c) < 0x20 or ord(c) == 0x7F for c in relative):
        raise SeriesError(f"image name {relative!r} is empty or has stray spaces or control characters")
    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise SeriesError(f"image {relative!r} must be a file name inside the series folder, not a path out of it")
    root = folder.resolve()
    parent = (root / candidate).parent.resolve()
    if parent != root and root not in parent.parents:
        raise SeriesError(f"image {relative!r} leads outside the series folder")
    return parent / candidate.name


def read_visits_csv(path: Path) -> list[VisitPhoto]:
    """Read a ``visits.csv`` (header row; columns ``date`` and ``image``).

    Raises
    ------
    SeriesError
        For unreadable or non-UTF-8 files, missing columns, bad dates, paths that
        leave the folder, and rows without an image.
    """
    path = Path(path)
    folder = path.parent
    try:
        too_large = path.stat().st_size > MAX_VISITS_FILE_BYTES  # checked before reading it into memory
        raw = b"" if too_large else path.read_bytes()
    except OSError as exc:
        raise SeriesError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    if too_large:
        raise SeriesError(f"{path.name} is larger than {MAX_VISITS_FILE_BYTES // 1024**2} MB; is it the right file?")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SeriesError(f"{path.name} is not UTF-8 text; save it as UTF-8 CSV") from None
    reader = csv.DictReader(_io.StringIO(text, newline=""))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    missing = [c for c in ("date", "image") if c not in fields]
    if missing:
        raise SeriesError(f"{path.name} needs a header row with columns date,image; missing: {', '.join(missing)}")
    reader.fieldnames = fields
    photos: list[VisitPhoto] = []
    for line, row in enumerate(reader, start=2):
        date_text = (row.get("date") or "").strip()
        image = (row.get("image") or "").strip()
        if not date_text and not image:
            continue  # blank line
        if not image:
            raise SeriesError(f"{path.name} line {line}: no image file name")
        date = parse_iso_date(date_text, what=f"{path.name} line {line}: date")
        photos.append(VisitPhoto(path=resolve_inside(folder, image), date=date, date_source="visits.csv"))
    if not photos:
        raise SeriesError(f"{path.name} lists no visits")
    return photos


def discover_series(series_dir: str | Path) -> list[VisitPhoto]:
    """Photos of a series folder with their dates, earliest first.

    Parameters
    ----------
    series_dir : str or Path
        Folder with the photos and optionally ``visits.csv``.

    Returns
    -------
    list of VisitPhoto
        Sorted by date, then by the order in ``visits.csv`` (or file name), so
        the first is the baseline.

    Raises
    ------
    SeriesError
        If the folder does not exist or holds no photos.
    MissingDateError
        If a photo has no date in ``visits.csv``, EXIF or its file name.
    """
    from ..errors import ImageLoadError
    from ..io import read_image_info

    folder = Path(series_dir)
    if not folder.is_dir():
        raise SeriesError(f"series folder {str(folder)!r} does not exist or is not a folder")
    visits_file = folder / VISITS_FILE
    if visits_file.is_file():
        photos = read_visits_csv(visits_file)
    else:
        # A photo may be a link (annexed datasets); it is read through it.
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SeriesError(
                f"no photos in {folder.name!r}; expected {', '.join(IMAGE_SUFFIXES)} files or a visits.csv"
            )
        photos = []
        for file in files:
            taken = None
            try:
                taken = read_image_info(file).taken_at
            except ImageLoadError:
                taken = None  # the visit will report the load error itself
            date, source = photo_date(taken, file.name)
            if date is None:
                raise MissingDateError(
                    f"{file.name} has no date in its EXIF data or file name; add a visits.csv with columns date,image"
                )
            photos.append(VisitPhoto(path=file, date=date, date_source=source))
    # Stable sort keeps visits.csv / name order within a date.
    return sorted(photos, key=lambda p: p.date)
