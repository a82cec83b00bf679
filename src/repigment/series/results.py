"""Series results: what a series run found, as typed results, records, JSON and CSV.

Every figure is also kept as a measurement record (what it is, its value, its
unit, the method that made it), in the manner of PlantCV's observations, and
``results.json`` carries the package version and the time of the run (UTC).

Files are written to a temporary name in the same folder and renamed into
place, so an interrupted run leaves either the old file or the new one.
``results.json`` is written last: its presence means the run completed.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io as _io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import FrozenInstanceError, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..core.calibration import MARKER_METHOD
from ..core.registration import REGISTRATION_METHOD, Registration
from ..core.scoring import (
    REPIGMENTATION_METHOD,
    SCORE_METHOD,
    VASI_LEVEL_METHOD,
    WEEKS_METHOD,
    Milestones,
    VisitScore,
)
from ..core.segmentation import SEGMENTATION_METHOD
from ..errors import ImageLoadError, InvalidParameterError, ProcessingTimeLimitError, SeriesError
from ..io import atomic_write_bytes, encode_png
from .intervals import DECISION_RANGE, DECISION_RANGE_WORDS

__all__ = [
    "VisitErrorCode",
    "VisitResult",
    "SeriesResult",
    "SCHEMA_VERSION",
    "CSV_COLUMNS",
    "Measurement",
    "MaskWriter",
    "atomic_write_bytes",
    "result_to_dict",
    "measurements",
    "visit_measurements",
    "write_results",
    "csv_text",
    "results_csv_text",
    "SavedVisit",
    "SavedResults",
    "read_results",
]

#: Version of the results.json layout; bump on any incompatible change.
SCHEMA_VERSION = 1

CSV_COLUMNS = (
    "image",
    "date",
    "weeks_since_start",
    "registration_ok",
    "registration_score",
    "registration_reason",
    "depigmented_area_px",
    "depigmented_area_cm2",
    "repigmentation_pct",
    "vasi_residual_depigmentation",
    "residual_fraction",
    "new_depigmentation_px",
    "mask",
    "error",
    "needs_review",
    "review_reasons",
)


class VisitErrorCode(StrEnum):
    """Why a visit has no figures, for programs (``VisitResult.error`` says it for people)."""

    #: The photo could not be read (damaged, unsupported, too large or too small).
    UNREADABLE = "unreadable"
    #: The photo could not be lined up with the baseline (another patch, or too little in common).
    NOT_ALIGNED = "not_aligned"
    #: Lined up, but it shows too little of the baseline patch to score.
    OUT_OF_FRAME = "out_of_frame"
    #: Something given for this visit is unusable (its strokes do not fit the photo).
    INVALID_INPUT = "invalid_input"
    #: The photo took longer than the time limit.
    TIME_LIMIT = "time_limit"
    #: Any other failure (out of memory, an unexpected error in a library).
    FAILED = "failed"

    @classmethod
    def of(cls, exc: BaseException) -> VisitErrorCode:
        """The code of an exception that stopped a visit."""
        if isinstance(exc, ImageLoadError):
            return cls.UNREADABLE
        if isinstance(exc, ProcessingTimeLimitError):
            return cls.TIME_LIMIT
        if isinstance(exc, InvalidParameterError):
            return cls.INVALID_INPUT
        return cls.FAILED


@dataclass(frozen=True)
class Measurement:
    """One figure with its provenance.

    Attributes
    ----------
    image : str
        The photo it was measured on.
    variable : str
        What it is (``depigmented_area``, ``repigmentation`` ...).
    value : float, int or None
    unit : str
        ``px``, ``cm2``, ``percent``, ``weeks`` or ``1``.
    method : str
        The id of the method that produced it (the stage's ``*_METHOD``
        constant, with the segmentation model it scored).
    interval : tuple of (float, float) or None
        Its plausible range (``VisitResult.intervals``), where it has one.
    """

    image: str
    variable: str
    value: float | int | None
    unit: str
    method: str
    interval: tuple[float, float] | None = None

    def __post_init__(self):
        if self.interval is not None:  # read back from JSON as a list
            object.__setattr__(self, "interval", tuple(self.interval))

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON holds it (its interval a list)."""
        return {"image": self.image, "variable": self.variable, "value": self.value, "unit": self.unit,
                "method": self.method, "interval": None if self.interval is None else list(self.interval)}


@dataclass
class VisitResult:
    """The scores of one visit photo.

    The series fills it in stage by stage (registration, mask, score,
    checks); once the series is done it is final: its lists become tuples and
    setting a field raises ``dataclasses.FrozenInstanceError``. A copy made
    with ``dataclasses.replace`` is a new, open result.

    Attributes
    ----------
    image : str
        Photo file name.
    date : datetime.date
    weeks_since_start : float
    registration : Registration or None
        ``None`` when the photo could not even be loaded.
    score : VisitScore or None
        ``None`` when the visit could not be scored (see ``error``).
    error : str or None
        Why the visit has no figures, in one line for people.
    error_code : VisitErrorCode or None
        The same for programs; set with ``error`` (see :meth:`fail`).
    notes : list of str, a tuple once final
        Remarks that do not prevent scoring.
    mask_baseline : ndarray of bool or None
        The visit's depigmented mask in the baseline's *working* frame (for
        display); the full-resolution mask is written to disk when an output
        folder is given.
    mask_path : str or None
        Mask file, relative to the output folder.
    registered_rgb : ndarray of uint8 or None
        With ``keep_images``: the visit photo (colour-normalised, working
        resolution) warped onto the baseline's working frame.
    intervals : dict of str to (float, float)
        Plausible range of ``depigmented_area_px``, ``depigmented_area_cm2``
        and ``repigmentation_pct`` (see :func:`repigment.series.intervals.figure_intervals`).
    homography_full : ndarray, shape (3, 3), or None
        Maps this photo's full-resolution upright pixels to the baseline
        photo's full-resolution pixels (when aligned).
    threshold : float or None
        Depigmentation score threshold applied to this photo (the baseline's,
        scaled by this photo's level of full depigmentation).
    evidence_residual : float or None
        Share of the baseline patch still depigmented judged by the footprint's
        contrast with the skin around it alone, without the mask
        (:func:`repigment.series.selfcheck.evidence_residual_fraction`).
    review_reasons : list of str, a tuple once final
        Why this visit's figure is contradicted by evidence its mask did not
        use (see :mod:`repigment.series.selfcheck`); empty when it is not. A visit
        with reasons *needs review*: its range covers what the evidence
        allows, and it is left out of the milestones until reviewed.
    light_change : str or None
        How far this photo's light was from the baseline's when that is more
        than the colour matching can undo without loss (a visit taken under
        it needs review, unless its own strokes judge it); ``None`` otherwise.
    own_strokes : bool
        Whether this visit was judged by strokes on its own photo (see
        ``visit_labels`` of :func:`repigment.series.pipeline.analyze_photos`) rather than the baseline's
        threshold.
    lighter_skin_share : float
        Lighter skin beyond the baseline footprint that was left out as not
        depigmented, as a share of the footprint's area (0 when none, and
        where the baseline's model has no level of full depigmentation).
    footprint_coverage : float or None
        Share of the baseline footprint this photo shows, once registered.
    measurements : tuple of Measurement
        The visit's figures as records, made when its figures are final (the
        course checks may widen a range after the visit is scored); empty
        until then, and in a copy (:func:`visit_measurements` makes them).
    """

    image: str
    date: _dt.date
    weeks_since_start: float
    registration: Registration | None = None
    score: VisitScore | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    mask_baseline: np.ndarray | None = None
    mask_path: str | None = None
    registered_rgb: np.ndarray | None = None
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    homography_full: np.ndarray | None = None
    threshold: float | None = None
    evidence_residual: float | None = None
    review_reasons: list[str] = field(default_factory=list)
    light_change: str | None = None
    own_strokes: bool = False
    lighter_skin_share: float = 0.0
    error_code: VisitErrorCode | None = None
    footprint_coverage: float | None = None
    measurements: tuple[Measurement, ...] = field(default=(), init=False, compare=False, repr=False)

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_final", False):
            raise FrozenInstanceError(f"cannot set {name!r}: the visit's result is final once its series is done")
        super().__setattr__(name, value)

    def _finish(self) -> None:
        """Make the result final and its records (the series calls it once every check is done)."""
        self.notes = tuple(self.notes)
        self.review_reasons = tuple(self.review_reasons)
        self.measurements = tuple(visit_measurements(self))
        self.__dict__["_final"] = True

    def fail(self, code: VisitErrorCode, message: str) -> None:
        """Record why the visit has no figures: ``code`` for programs, ``message`` for people."""
        self.error_code = VisitErrorCode(code)
        self.error = message

    @property
    def needs_review(self) -> bool:
        """Whether evidence contradicts this visit's figure (see ``review_reasons``)."""
        return bool(self.review_reasons)

    def flag_for_review(self, reason: str, *, plausible_pct: float | tuple[float, ...] | None = None) -> None:
        """Mark the figure as contradicted, and widen its range to cover ``plausible_pct``."""
        self.review_reasons.append(reason)
        self.notes.append(f"needs review: {reason}")
        if plausible_pct is not None:
            self.widen_range(plausible_pct)

    def widen_range(self, plausible_pct: float | tuple[float, ...]) -> None:
        """Widen the repigmentation range to cover ``plausible_pct``."""
        if "repigmentation_pct" in self.intervals:
            values = np.atleast_1d(np.asarray(plausible_pct, float))
            low, high = self.intervals["repigmentation_pct"]
            self.intervals["repigmentation_pct"] = (min(low, float(values.min())), max(high, float(values.max())))

    @property
    def ok(self) -> bool:
        return self.error is None and self.score is not None


@dataclass(frozen=True)
class SeriesResult:
    """Result of :func:`repigment.series.pipeline.analyze_series`.

    Built once, when every visit has been scored and checked, and not changed
    afterwards (frozen, and so is each of its visits).

    Attributes
    ----------
    treatment_start : datetime.date
    baseline : str
        File name of the baseline photo.
    baseline_size : tuple of int
        ``(width, height)`` of the baseline photo (the frame of every mask).
    mm_per_px : float or None
        Millimetres per baseline-frame pixel, from the marker.
    marker_mm : float
    marker_id : int or None
    threshold : float
        Depigmentation threshold of the baseline; each visit applies it scaled
        by its own level of full depigmentation (``VisitResult.threshold``).
    contrast : float or None
        Depigmentation contrast measured at baseline.
    milestones : Milestones
    visits : list of VisitResult
        In date order; the first is the baseline.
    roi : tuple or None
        Region of interest in baseline pixels.
    working_size : int
    segmentation_model : str
        The baseline's segmentation model (:attr:`Segmentation.method`).
    segmentation_confidence : float
        0-1, how clearly the baseline's depigmented skin stands out.
    segmentation_reason : str or None
        Why that confidence is below 1.
    labels_used : bool
        Whether a clinician's strokes guided the segmentation.
    repigment_version : str
    created_utc : str
        ISO 8601 time of the run, UTC.
    """

    treatment_start: _dt.date
    baseline: str
    baseline_size: tuple[int, int]
    mm_per_px: float | None
    marker_mm: float
    marker_id: int | None
    threshold: float
    contrast: float | None
    milestones: Milestones
    visits: list[VisitResult]
    roi: tuple | None
    working_size: int
    repigment_version: str = __version__
    created_utc: str = ""
    baseline_working_rgb: np.ndarray | None = None
    segmentation_model: str = "od-field"
    segmentation_confidence: float = 1.0
    segmentation_reason: str | None = None
    labels_used: bool = False
    series_dir: str | None = None

    @property
    def failed_visits(self) -> list[VisitResult]:
        return [v for v in self.visits if not v.ok]


class MaskWriter:
    """Writes each visit's full-resolution mask to ``OUT_DIR/masks/<stem>.png``."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)

    def __call__(self, visit, mask: np.ndarray) -> str:
        relative = f"masks/{Path(visit.image).stem}.png"
        atomic_write_bytes(self.out_dir / relative, encode_png(mask.astype(bool)))
        return relative


def _round(value: float | None, digits: int) -> float | None:
    if value is None:
        return None
    return round(float(value), digits)


def _visit_dict(visit) -> dict[str, Any]:
    reg = visit.registration
    score = visit.score if visit.ok else None
    return {
        "image": visit.image,
        "date": visit.date.isoformat(),
        "weeks_since_start": visit.weeks_since_start,
        "registration": {
            "ok": bool(reg.ok) if reg is not None else False,
            "score": _round(reg.score, 4) if reg is not None else None,
            "reason": reg.reason if reg is not None else visit.error,
            "homography": None if visit.homography_full is None else [
                [round(float(x), 9) for x in row] for row in visit.homography_full
            ],
        },
        "depigmented_area_px": score.area_px if score else None,
        "depigmented_area_cm2": _round(score.area_cm2, 4) if score else None,
        "repigmentation_pct": _round(score.repigmentation_pct, 3) if score else None,
        "vasi_residual_depigmentation": score.vasi_residual_depigmentation if score else None,
        "residual_fraction": _round(score.residual_fraction, 5) if score else None,
        "new_depigmentation_px": score.new_depigmentation_px if score else None,
        "mask": visit.mask_path if score else None,
        "threshold": _round(visit.threshold, 5) if score else None,
        "error": visit.error,
        "error_code": None if visit.error_code is None else str(visit.error_code),
        "footprint_coverage": _round(visit.footprint_coverage, 4),
        "evidence_residual_fraction": _round(visit.evidence_residual, 4) if score else None,
        "lighter_skin_share": _round(visit.lighter_skin_share, 4) if score else None,
        "needs_review": visit.needs_review,
        "review_reasons": list(visit.review_reasons),
        "own_strokes": visit.own_strokes,
        "notes": list(visit.notes),
        "intervals": {
            key: [_round(low, 3), _round(high, 3)] for key, (low, high) in visit.intervals.items()
        } if score else {},
    }


def measurements(result) -> list[Measurement]:
    """Every figure of a series result as a measurement record, with its range where it has one.

    The records each visit made when its figures became final; a visit without
    them (a copy, or one built by hand) has them made now.
    """
    return [record for visit in result.visits for record in (visit.measurements or visit_measurements(visit))]


def visit_measurements(visit: VisitResult) -> list[Measurement]:
    """A visit's figures as measurement records: value, unit, the id of the method and the range.

    A visit without figures still has its records, with no value, so every
    visit has the same rows.
    """
    score = visit.score if visit.ok else None
    reg = visit.registration

    def interval(key: str) -> tuple[float, float] | None:
        # Rounded as the visit's "intervals" block of results.json rounds them.
        if score is None or key not in visit.intervals:
            return None
        low, high = visit.intervals[key]
        return _round(low, 3), _round(high, 3)

    # A visit judged by strokes on its own photo was segmented by the model learned from them.
    model = SEGMENTATION_METHOD + ("+own-strokes" if visit.own_strokes else "")
    area_method = f"{SCORE_METHOD}<{model}>"
    return [
        Measurement(visit.image, "weeks_since_start", visit.weeks_since_start, "weeks", WEEKS_METHOD),
        Measurement(visit.image, "registration_score", None if reg is None else _round(reg.score, 4), "1",
                    REGISTRATION_METHOD),
        Measurement(visit.image, "depigmented_area", score.area_px if score else None, "px", area_method,
                    interval("depigmented_area_px")),
        Measurement(visit.image, "depigmented_area", _round(score.area_cm2, 4) if score else None, "cm2",
                    f"{area_method}+{MARKER_METHOD}", interval("depigmented_area_cm2")),
        Measurement(visit.image, "repigmentation", _round(score.repigmentation_pct, 3) if score else None,
                    "percent", REPIGMENTATION_METHOD, interval("repigmentation_pct")),
        Measurement(visit.image, "vasi_residual_depigmentation",
                    score.vasi_residual_depigmentation if score else None, "percent", VASI_LEVEL_METHOD),
        Measurement(visit.image, "new_depigmentation", score.new_depigmentation_px if score else None, "px",
                    SCORE_METHOD),
    ]


def result_to_dict(result, *, clinical: dict | None = None) -> dict[str, Any]:
    """The ``results.json`` document of a series result (schema version 1).

    Parameters
    ----------
    result : SeriesResult
    clinical : dict, optional
        The clinical block (:func:`repigment.clinical.summary.clinical_summary`),
        added under the new top-level key ``"clinical"``; every other key keeps
        its meaning.
    """
    from ..core.segmentation import DEPIGMENTED_FRACTION, LEVEL_RATIO_WORDS

    width, height = result.baseline_size
    baseline_visit = result.visits[0]
    document = {
        "schema_version": SCHEMA_VERSION,
        "repigment_version": result.repigment_version,
        "created_utc": result.created_utc,
        "treatment_start": result.treatment_start.isoformat(),
        "baseline": {
            "image": result.baseline,
            "date": baseline_visit.date.isoformat(),
            "width": width,
            "height": height,
        },
        "scale": {
            "mm_per_px": _round(result.mm_per_px, 6),
            "marker_mm": result.marker_mm,
            "marker_id": result.marker_id,
            "source": "aruco DICT_4X4_50" if result.mm_per_px is not None else None,
        },
        "source": {"series_dir": result.series_dir},
        "roi": list(result.roi) if result.roi is not None else None,
        "method": {
            "segmentation": SEGMENTATION_METHOD,
            "registration": REGISTRATION_METHOD,
            "working_size": result.working_size,
            "threshold": _round(result.threshold, 5),
            "threshold_per_visit": "the baseline's, scaled by the visit's level of full depigmentation "
                                   f"({LEVEL_RATIO_WORDS}), or the visit's own for a visit judged by strokes on "
                                   "its photo (own_strokes); see visits[].threshold",
            "baseline_contrast": _round(result.contrast, 5),
            "baseline_model": result.segmentation_model,
            "baseline_confidence": _round(result.segmentation_confidence, 3),
            "baseline_confidence_reason": result.segmentation_reason,
            "labels": result.labels_used,
            "area_frame": "baseline photo pixels (full resolution)",
            "milestones_from": "repigmentation_pct",
            "intervals": f"decision range {DECISION_RANGE_WORDS} melanin loss (threshold x{DECISION_RANGE[0]:g}-"
                         f"x{DECISION_RANGE[1]:g} of the nominal {round(100 * DEPIGMENTED_FRACTION)} %) and registration "
                         "residual along the mask boundary",
        },
        "milestones": {
            "vasi50_week": result.milestones.vasi50_week,
            "vasi75_week": result.milestones.vasi75_week,
            "vasi90_week": result.milestones.vasi90_week,
        },
        "visits": [_visit_dict(v) for v in result.visits],
        "measurements": [m.to_dict() for m in measurements(result)],
    }
    if clinical is not None:
        document["clinical"] = clinical
    return document


def csv_text(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """CSV with a header row, ``\\n`` line ends, and missing or ``None`` values empty.

    A text cell that a spreadsheet would run as a formula (it starts with
    ``=``, ``+``, ``-``, ``@``, a tab or a carriage return: a photo named
    ``=HYPERLINK(...).jpg``) is written with a leading apostrophe, which
    spreadsheets show as text. Numbers, negative ones too, are written as
    they are. A carriage return in text becomes a line feed: with ``\\n``
    line ends the csv module would leave it unquoted, splitting the row.

    Examples
    --------
    >>> print(csv_text(["image", "pct"], [{"image": "=1+1.jpg", "pct": -2.5}]), end="")
    image,pct
    '=1+1.jpg,-2.5
    """
    buffer = _io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _spreadsheet_safe(row.get(k)) for k in columns})
    return buffer.getvalue()


def _spreadsheet_safe(value: Any) -> Any:
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    if value.startswith(("=", "+", "-", "@", "\t", "\r")):
        value = "'" + value
    return value.replace("\r\n", "\n").replace("\r", "\n")


def results_csv_text(result) -> str:
    """``results.csv``: one row per visit, columns :data:`CSV_COLUMNS`."""
    rows = []
    for visit in result.visits:
        row = _visit_dict(visit)
        reg = row.pop("registration")
        row["registration_ok"] = reg["ok"]
        row["registration_score"] = reg["score"]
        row["registration_reason"] = reg["reason"]
        row["review_reasons"] = "; ".join(row["review_reasons"]) or None
        rows.append(row)
    return csv_text(CSV_COLUMNS, rows)


def write_results(result, out_dir: str | os.PathLike, *, clinical: dict | None = None) -> Path:
    """Write ``results.csv`` then ``results.json`` (last, atomically) to ``out_dir``.

    ``clinical``, when given, is added to ``results.json`` under ``"clinical"``
    (see :func:`result_to_dict`).

    Returns
    -------
    Path
        The ``results.json`` written.
    """
    # Both made before either is written: a figure JSON cannot hold (NaN) leaves both files as they were.
    document = json.dumps(result_to_dict(result, clinical=clinical), indent=2, allow_nan=False)
    table = results_csv_text(result)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "results.csv", table.encode("utf-8"))
    atomic_write_bytes(out / "results.json", document.encode("utf-8"))
    return out / "results.json"


# --- reading results.json back ----------------------------------------------------------------


@dataclass(frozen=True)
class SavedVisit:
    """One visit of a ``results.json``, read back (see :func:`read_results`).

    The figures are those of :class:`VisitResult`, as saved: ``None`` where
    the visit has none (see ``error`` and ``error_code``).
    """

    image: str
    date: _dt.date
    weeks_since_start: float
    registered: bool
    depigmented_area_px: int | None
    depigmented_area_cm2: float | None
    repigmentation_pct: float | None
    repigmentation_interval: tuple[float, float] | None
    vasi_residual_depigmentation: int | None
    mask: str | None
    error: str | None
    error_code: VisitErrorCode | None
    needs_review: bool
    review_reasons: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def measured(self) -> bool:
        """Whether the visit has a figure."""
        return self.error is None and self.repigmentation_pct is not None


@dataclass(frozen=True)
class SavedResults:
    """A ``results.json`` read back and checked: typed figures, and the document itself.

    Attributes
    ----------
    path : Path or None
        The file read (None when read from a document in memory, such as the
        app's store).
    repigment_version, created_utc : str
        Which version wrote it, and when (UTC).
    treatment_start : datetime.date
    baseline : str
        The baseline photo's file name.
    baseline_size : tuple of int
        ``(width, height)`` of the baseline photo, the frame of every mask.
    mm_per_px : float or None
        Scale from the marker; None without one.
    milestones : Milestones
    visits : tuple of SavedVisit
        In date order; the first is the baseline.
    clinical : dict or None
        The clinical block, when the writer added one.
    document : dict
        The whole document, for what the types above do not cover.
    """

    path: Path | None
    repigment_version: str
    created_utc: str
    treatment_start: _dt.date
    baseline: str
    baseline_size: tuple[int, int]
    mm_per_px: float | None
    milestones: Milestones
    visits: tuple[SavedVisit, ...]
    clinical: dict[str, Any] | None = field(default=None, repr=False)
    document: dict[str, Any] = field(default_factory=dict, repr=False)


def read_results(source: str | os.PathLike | dict[str, Any]) -> SavedResults:
    """Read and check a ``results.json``: an analysis folder, the file itself, or its document.

    Parameters
    ----------
    source : path or dict
        An output folder holding ``results.json``, the file, or an already
        parsed document (the app keeps them in its store).

    Returns
    -------
    SavedResults

    Raises
    ------
    SeriesError
        With a one-line message when there is no readable results file of this
        schema version.

    Examples
    --------
    >>> read_results({"schema_version": 0, "visits": [{}], "baseline": {}})
    Traceback (most recent call last):
    ...
    repigment.errors.SeriesError: results.json has schema version 0; this version reads 1
    """
    path = None
    if isinstance(source, dict):
        document, name = source, "results.json"
    else:
        path = Path(source)
        if path.is_dir():
            path = path / "results.json"
        name = str(path)
        if not path.is_file():
            folder = path.parent
            raise SeriesError(f"{folder} has no results.json; run `repigment analyze SERIES --out {folder}` first")
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SeriesError(f"{path} is not readable JSON ({exc}); rerun `repigment analyze`") from None
    if not isinstance(document, dict) or not document.get("visits") or "baseline" not in document:
        raise SeriesError(f"{name} is not a repigment results file; rerun `repigment analyze`")
    if document.get("schema_version") != SCHEMA_VERSION:
        raise SeriesError(
            f"{name} has schema version {document.get('schema_version')!r}; this version reads {SCHEMA_VERSION}")
    try:
        baseline, milestones = document["baseline"], document["milestones"]
        return SavedResults(
            path=path,
            repigment_version=str(document["repigment_version"]),
            created_utc=str(document.get("created_utc") or ""),
            treatment_start=_dt.date.fromisoformat(document["treatment_start"]),
            baseline=str(baseline["image"]),
            baseline_size=(int(baseline["width"]), int(baseline["height"])),
            mm_per_px=(document.get("scale") or {}).get("mm_per_px"),
            milestones=Milestones(milestones["vasi50_week"], milestones["vasi75_week"], milestones["vasi90_week"]),
            visits=tuple(_saved_visit(entry) for entry in document["visits"]),
            clinical=document.get("clinical"),
            document=document,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SeriesError(f"{name} is damaged ({type(exc).__name__}: {exc}); rerun `repigment analyze`") from None


def _saved_visit(entry: dict[str, Any]) -> SavedVisit:
    interval = (entry.get("intervals") or {}).get("repigmentation_pct")
    code = entry.get("error_code")
    return SavedVisit(
        image=str(entry["image"]),
        date=_dt.date.fromisoformat(entry["date"]),
        weeks_since_start=float(entry["weeks_since_start"]),
        registered=bool((entry.get("registration") or {}).get("ok", False)),
        depigmented_area_px=entry.get("depigmented_area_px"),
        depigmented_area_cm2=entry.get("depigmented_area_cm2"),
        repigmentation_pct=entry.get("repigmentation_pct"),
        repigmentation_interval=None if interval is None else (float(interval[0]), float(interval[1])),
        vasi_residual_depigmentation=entry.get("vasi_residual_depigmentation"),
        mask=entry.get("mask"),
        error=entry.get("error"),
        error_code=None if code is None else VisitErrorCode(code),
        needs_review=bool(entry.get("needs_review", False)),
        review_reasons=tuple(entry.get("review_reasons") or ()),
        notes=tuple(entry.get("notes") or ()),
    )
