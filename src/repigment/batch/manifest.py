"""Read and validate a batch manifest: one row per visit, grouped into (patient, patch) series.

:func:`read_manifest` checks the CSV (header, ids, ISO dates, marker sizes,
image paths that stay inside the manifest's folder) without opening any photo
and returns a :class:`Manifest` of :class:`ManifestSeries`, each with its
output folder name from :func:`series_folder_name`; an unusable manifest is a
one-line :class:`~repigment.errors.SeriesError` naming the line. Nothing here
imports NumPy or OpenCV.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io as _io
import json
import math
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..errors import SeriesError
from ..series.discovery import parse_iso_date, resolve_inside
from ..vocabulary import DEFAULT_MARKER_MM

#: Required manifest columns; ``treatment_start`` and ``marker_mm`` are optional.
MANIFEST_COLUMNS = ("patient", "patch", "date", "image")
OPTIONAL_COLUMNS = ("treatment_start", "marker_mm")
MAX_MANIFEST_BYTES = 64 * 1024**2


# ---------------------------------------------------------------------------------------------
# The manifest


@dataclass(frozen=True)
class ManifestVisit:
    """One manifest row.

    Attributes
    ----------
    image : str
        The path as written in the manifest (relative to its folder).
    path : Path
        The photo, resolved inside the manifest's folder.
    date : datetime.date
    line : int
        Line of the manifest it came from.
    """

    image: str
    path: Path
    date: _dt.date
    line: int


@dataclass(frozen=True)
class ManifestSeries:
    """The photos of one (patient, patch) pair.

    Attributes
    ----------
    patient, patch : str
        The ids as written in the manifest (surrounding spaces removed).
    folder : str
        Output folder name, see :func:`series_folder_name`.
    visits : tuple of ManifestVisit
        In manifest order.
    treatment_start : datetime.date or None
        ``None``: the baseline (earliest) visit date.
    marker_mm : float
        Printed side of the scale marker, mm.
    """

    patient: str
    patch: str
    folder: str
    visits: tuple[ManifestVisit, ...]
    treatment_start: _dt.date | None
    marker_mm: float


@dataclass(frozen=True)
class Manifest:
    """A validated manifest.

    Attributes
    ----------
    path : Path
    series : tuple of ManifestSeries
        In order of first appearance.
    """

    path: Path
    series: tuple[ManifestSeries, ...]

    @property
    def n_visits(self) -> int:
        return sum(len(s.visits) for s in self.series)


def _slug(text: str, limit: int = 40) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_text).strip("-")[:limit].strip("-")
    return slug or "x"


def series_folder_name(patient: str, patch: str) -> str:
    """A safe, unique output folder name for a (patient, patch) pair.

    Readable slugs of both ids (ASCII letters, digits and ``-`` only, so the
    name cannot leave ``OUT_DIR`` or hide as a dot file) and a hash of the exact
    ids, so ids that slug alike (``"A/B"``, ``"A-B"``, ``"a-b"``) still differ.

    Examples
    --------
    >>> series_folder_name("P-001", "left forearm")
    'P-001__left-forearm__16c77cdc8d'
    >>> series_folder_name("../../etc", "x").startswith("etc__x__")
    True
    """
    digest = hashlib.sha256(json.dumps([patient, patch]).encode("utf-8")).hexdigest()[:10]
    return f"{_slug(patient)}__{_slug(patch)}__{digest}"


def _decode_manifest(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise SeriesError(
                f"manifest {path.name} is larger than {MAX_MANIFEST_BYTES // 1024**2} MB; is it the right file?"
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SeriesError(f"manifest {str(path)!r} was not found; check the path") from None
    except IsADirectoryError:
        raise SeriesError(f"manifest {str(path)!r} is a folder; give the CSV file") from None
    except OSError as exc:
        raise SeriesError(f"cannot read manifest {path.name}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SeriesError(f"manifest {path.name} is not UTF-8 text; save it as UTF-8 CSV") from None


def _parse_marker_mm(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SeriesError(f"{where}: marker_mm {text!r} is not a number of millimetres") from None
    if not (math.isfinite(value) and 1.0 <= value <= 500.0):
        raise SeriesError(f"{where}: marker_mm must be between 1 and 500 mm, got {text}")
    return value


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read and validate a batch manifest.

    Parameters
    ----------
    path : str or os.PathLike
        UTF-8 CSV with a header row and columns ``patient,patch,date,image``
        and optionally ``treatment_start`` (ISO date) and ``marker_mm``; other
        columns are ignored. ``image`` is relative to the manifest's folder.
        Blank ``treatment_start``/``marker_mm`` cells take the series' value
        from its other rows (default: the baseline date, 20 mm).

    Returns
    -------
    Manifest

    Raises
    ------
    SeriesError
        With a one-line message naming the line, for an unreadable or non-UTF-8
        file, missing columns, empty ids, bad dates or marker sizes, image paths
        that are absolute or leave the manifest's folder, an image listed twice
        in a series (or two whose masks would share a name), and
        ``treatment_start``/``marker_mm`` values that disagree within a series.

    Notes
    -----
    Photos are not opened here: a missing or damaged photo is a failed visit
    of the run, not an unusable manifest.
    """
    path = Path(path)
    name = path.name
    text = _decode_manifest(path)
    folder = path.parent
    reader = csv.DictReader(_io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise SeriesError(f"manifest {name} line 1: {exc}") from None
    fields = [f.strip().lower() for f in header]
    missing = [c for c in MANIFEST_COLUMNS if c not in fields]
    if missing:
        raise SeriesError(
            f"manifest {name} needs a header row with columns {','.join(MANIFEST_COLUMNS)}; missing: {', '.join(missing)}"
        )
    duplicated = sorted({f for f in fields if f and fields.count(f) > 1})
    if duplicated:
        raise SeriesError(f"manifest {name} has the column(s) {', '.join(duplicated)} more than once")
    reader.fieldnames = fields

    rows: dict[tuple[str, str], list[tuple[int, dict[str, str]]]] = {}
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                raise SeriesError(f"manifest {name} line {line}: more fields than the header has columns")
            cells = {k: (v or "").strip() for k, v in row.items()}
            if not any(cells.get(c) for c in MANIFEST_COLUMNS + OPTIONAL_COLUMNS):
                continue  # blank line
            for column in MANIFEST_COLUMNS:
                if not cells.get(column):
                    raise SeriesError(f"manifest {name} line {line}: no {column}")
            rows.setdefault((cells["patient"], cells["patch"]), []).append((line, cells))
    except csv.Error as exc:
        raise SeriesError(f"manifest {name} line {reader.line_num}: {exc}") from None
    if not rows:
        raise SeriesError(f"manifest {name} lists no visits")

    series: list[ManifestSeries] = []
    folders: dict[str, tuple[str, str]] = {}
    for (patient, patch), entries in rows.items():
        visits: list[ManifestVisit] = []
        stems: dict[str, int] = {}
        option_seen: dict[str, tuple[str, int]] = {}
        for line, cells in entries:
            where = f"manifest {name} line {line}"
            date = parse_iso_date(cells["date"], what=f"{where}: date")
            try:
                resolved = resolve_inside(folder, cells["image"])
            except SeriesError as exc:
                message = str(exc).replace("the series folder", "the manifest's folder")
                raise SeriesError(f"{where}: {message}") from None
            # Masks are written as masks/<stem>.png, so stems must differ within a series.
            stem = resolved.stem.casefold()
            if stem in stems:
                raise SeriesError(
                    f"{where}: image {cells['image']!r} has the same file name as line {stems[stem]} of the same "
                    "series; rename one of them"
                )
            stems[stem] = line
            for column in OPTIONAL_COLUMNS:
                value = cells.get(column, "")
                if not value:
                    continue
                if column == "treatment_start":
                    parse_iso_date(value, what=f"{where}: treatment_start")
                else:
                    _parse_marker_mm(value, where)
                if column in option_seen and option_seen[column][0] != value:
                    first, first_line = option_seen[column]
                    raise SeriesError(
                        f"{where}: {column} {value} differs from {first} on line {first_line} for patient "
                        f"{patient!r} patch {patch!r}; give one value per series"
                    )
                option_seen.setdefault(column, (value, line))
            visits.append(ManifestVisit(image=cells["image"], path=resolved, date=date, line=line))
        start = option_seen.get("treatment_start")
        marker = option_seen.get("marker_mm")
        folder_name = series_folder_name(patient, patch)
        if folder_name in folders:  # a 40-bit hash collision together with equal slugs: refuse, never merge
            raise SeriesError(
                f"manifest {name}: patient {patient!r} patch {patch!r} and {folders[folder_name]!r} map to the same "
                "output folder; rename one of them"
            )
        folders[folder_name] = (patient, patch)
        series.append(
            ManifestSeries(
                patient=patient,
                patch=patch,
                folder=folder_name,
                visits=tuple(visits),
                treatment_start=None if start is None else parse_iso_date(start[0]),
                marker_mm=DEFAULT_MARKER_MM if marker is None else _parse_marker_mm(marker[0], "marker_mm"),
            )
        )
    return Manifest(path=path, series=tuple(series))
