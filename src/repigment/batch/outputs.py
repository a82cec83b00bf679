"""What a complete series output is, and the records and CSV rows a batch run reports.

Each series folder carries ``batch.json``: the manifest rows, photo sizes and
modification times, options and repigment version it was scored from, and the
hash of its ``results.json``; :func:`_check_series_output` says why a folder is
not a complete, valid output for this run (``None`` if it is, and the series is
skipped). The run's result is a :class:`BatchResult` of :class:`SeriesStatus`
and :class:`VisitFailure`, and ``summary.csv``/``failures.csv`` are built from
each series' ``results.json`` with :func:`_series_rows` and :func:`_csv_bytes`.
The pipeline and results modules are imported inside the functions only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .manifest import ManifestSeries

SUMMARY_COLUMNS = ("patient", "patch", "image", "date", "variable", "value", "unit", "method")
FAILURE_COLUMNS = ("series", "image", "reason")
#: Layout version of each series' ``batch.json``.
BATCH_RECORD_VERSION = 1
BATCH_RECORD = "batch.json"
SUMMARY_FILE = "summary.csv"
FAILURES_FILE = "failures.csv"


# ---------------------------------------------------------------------------------------------
# What a complete series output looks like


def _working_size() -> int:
    from ..series.photos import DEFAULT_WORKING_SIZE

    return DEFAULT_WORKING_SIZE


def _expected_record(series: ManifestSeries, working_size: int) -> dict[str, Any]:
    """The ``batch.json`` a complete output of ``series`` must carry (minus the results hash).

    The photos' size and modification time are part of it, so replacing a photo
    (say, re-copying a damaged one) re-scores its series on the next run.
    """
    from .._version import __version__
    from ..core.registration import REGISTRATION_METHOD
    from ..core.segmentation import SEGMENTATION_METHOD

    inputs = []
    for visit in series.visits:
        try:
            st = visit.path.stat()
            size, mtime_ns = st.st_size, st.st_mtime_ns
        except OSError:
            size = mtime_ns = None
        inputs.append({"image": visit.image, "date": visit.date.isoformat(), "size": size, "mtime_ns": mtime_ns})
    return {
        "batch_record_version": BATCH_RECORD_VERSION,
        "repigment_version": __version__,
        "patient": series.patient,
        "patch": series.patch,
        "options": {
            "treatment_start": None if series.treatment_start is None else series.treatment_start.isoformat(),
            "marker_mm": series.marker_mm,
            "working_size": working_size,
            "segmentation": SEGMENTATION_METHOD,
            "registration": REGISTRATION_METHOD,
        },
        "inputs": inputs,
    }


def _read_json(path: Path) -> Any:
    return json.loads(path.read_bytes().decode("utf-8"))


def _check_series_output(folder: Path, record: dict[str, Any]) -> str | None:
    """Why ``folder`` is not a complete, valid output for ``record``; ``None`` if it is."""
    from .._version import __version__
    from ..series.results import SCHEMA_VERSION

    if not folder.is_dir():
        return "no output yet"
    try:
        stored = _read_json(folder / BATCH_RECORD)
        results_bytes = (folder / "results.json").read_bytes()
        doc = json.loads(results_bytes.decode("utf-8"))
    except FileNotFoundError as exc:
        return f"{Path(exc.filename or '?').name} is missing"
    except (OSError, ValueError) as exc:
        return f"unreadable output ({type(exc).__name__})"
    if not isinstance(stored, dict) or not isinstance(doc, dict):
        return "unexpected JSON layout"
    if {k: v for k, v in stored.items() if k != "results_sha256"} != record:
        return "the manifest, the photos, the options or the version changed since it was scored"
    if stored.get("results_sha256") != hashlib.sha256(results_bytes).hexdigest():
        return "results.json was modified after it was written"
    options = record["options"]
    try:
        visits = doc["visits"]
        expected_visits = sorted((Path(v["image"]).name, v["date"]) for v in record["inputs"])
        expected_start = options["treatment_start"] or min(v["date"] for v in record["inputs"])
        checks = (
            (doc["schema_version"] == SCHEMA_VERSION, "schema_version"),
            (doc["repigment_version"] == __version__, "repigment_version"),
            (doc["method"]["segmentation"] == options["segmentation"], "segmentation method"),
            (doc["method"]["registration"] == options["registration"], "registration method"),
            (doc["method"]["working_size"] == options["working_size"], "working size"),
            (doc["scale"]["marker_mm"] == options["marker_mm"], "marker size"),
            (doc["treatment_start"] == expected_start, "treatment start"),
            (doc["roi"] is None, "region of interest"),
            (sorted((v["image"], v["date"]) for v in visits) == expected_visits, "visit list"),
        )
    except (KeyError, TypeError, AttributeError):
        return "results.json lacks expected fields"
    for ok, what in checks:
        if not ok:
            return f"{what} in results.json does not match"
    if not (folder / "results.csv").is_file():
        return "results.csv is missing"
    root = folder.resolve()
    for visit in visits:
        mask = visit.get("mask")
        if mask is None:
            continue
        mask_path = (root / str(mask)).resolve()
        if root not in mask_path.parents or not mask_path.is_file():
            return f"mask {mask!r} is missing"
    return None


# ---------------------------------------------------------------------------------------------
# What a run reports: series statuses, failed visits, the rows of summary.csv


@dataclass(frozen=True)
class VisitFailure:
    """A visit without figures.

    Attributes
    ----------
    series : str
        Series output folder name.
    image : str
        The image as written in the manifest.
    reason : str
    """

    series: str
    image: str
    reason: str


@dataclass(frozen=True)
class SeriesStatus:
    """What happened to one series.

    Attributes
    ----------
    folder : str
        Output folder name, under ``BatchResult.out_dir``.
    patient, patch : str
    status : {"scored", "skipped", "failed"}
        ``skipped``: complete and valid results were already there.
        ``failed``: no results (the baseline photo is unusable, or the worker died).
    reason : str or None
        Why it failed.
    results_json : Path or None
        The series' ``results.json`` unless it failed.
    """

    folder: str
    patient: str
    patch: str
    status: Literal["scored", "skipped", "failed"]
    reason: str | None
    results_json: Path | None


@dataclass(frozen=True)
class BatchResult:
    """Result of :func:`score_manifest`.

    Attributes
    ----------
    out_dir : Path
    series : tuple of SeriesStatus
        In manifest order.
    failures : tuple of VisitFailure
        Every visit without figures, including those of series skipped as
        already scored (as listed in ``failures.csv``).
    summary_csv, failures_csv : Path
    seconds : float
        Wall time of the run.
    """

    out_dir: Path
    series: tuple[SeriesStatus, ...]
    failures: tuple[VisitFailure, ...]
    summary_csv: Path
    failures_csv: Path
    seconds: float

    def _count(self, status: str) -> int:
        return sum(1 for s in self.series if s.status == status)

    @property
    def scored(self) -> int:
        return self._count("scored")

    @property
    def skipped(self) -> int:
        return self._count("skipped")

    @property
    def failed(self) -> int:
        return self._count("failed")

    @property
    def ok(self) -> bool:
        """Every visit of every series has figures."""
        return not self.failures


def _csv_bytes(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> bytes:
    from ..series.results import csv_text

    return csv_text(columns, rows).encode("utf-8")


def _series_rows(series: ManifestSeries, doc: dict[str, Any]) -> tuple[list[dict], list[VisitFailure]]:
    """Summary rows and failed visits of one series' results.json."""
    image_of = {v.path.name: v.image for v in series.visits}  # basenames are unique within a series
    date_of = {v["image"]: v["date"] for v in doc["visits"]}
    rows = [
        {
            "patient": series.patient,
            "patch": series.patch,
            "image": image_of.get(m["image"], m["image"]),
            "date": date_of.get(m["image"]),
            "variable": m["variable"],
            "value": m["value"],
            "unit": m["unit"],
            "method": m["method"],
        }
        for m in doc["measurements"]
    ]
    failures = [
        VisitFailure(series.folder, image_of.get(v["image"], v["image"]), v["error"])
        for v in doc["visits"]
        if v.get("error")
    ]
    return rows, failures
