"""Series results as records, JSON and CSV, written so nothing is half-written.

Every figure is also kept as a measurement record (what it is, its value, its
unit, the method that made it), in the manner of PlantCV's observations, and
every file carries the package version and the time of the run (UTC).

Files are written to a temporary name in the same folder and renamed into
place, so an interrupted run leaves either the old file or the new one.
``results.json`` is written last: its presence means the run completed.
"""

from __future__ import annotations

import csv
import io as _io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write_bytes, encode_png

__all__ = [
    "SCHEMA_VERSION",
    "CSV_COLUMNS",
    "Measurement",
    "MaskWriter",
    "atomic_write_bytes",
    "result_to_dict",
    "measurements",
    "write_results",
    "csv_text",
    "results_csv_text",
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
        Fully qualified function (and method version) that produced it.
    """

    image: str
    variable: str
    value: float | int | None
    unit: str
    method: str


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
    """Every figure of a series result as a measurement record."""
    from .pipeline import REGISTRATION_METHOD, SEGMENTATION_METHOD

    records: list[Measurement] = []
    for visit in result.visits:
        score = visit.score if visit.ok else None
        reg = visit.registration
        # A visit judged by strokes on its own photo was segmented by the model learned from them.
        model = SEGMENTATION_METHOD + ("+own-strokes" if visit.own_strokes else "")
        area_method = f"repigment.scoring.score_visit<{model}>"
        records += [
            Measurement(visit.image, "weeks_since_start", visit.weeks_since_start, "weeks",
                        "repigment.scoring.weeks_since"),
            Measurement(visit.image, "registration_score", None if reg is None else _round(reg.score, 4), "1",
                        REGISTRATION_METHOD),
            Measurement(visit.image, "depigmented_area", score.area_px if score else None, "px", area_method),
            Measurement(visit.image, "depigmented_area", _round(score.area_cm2, 4) if score else None, "cm2",
                        area_method + "+repigment.calibration.detect_marker"),
            Measurement(visit.image, "repigmentation", _round(score.repigmentation_pct, 3) if score else None,
                        "percent", "repigment.scoring.repigmentation_pct"),
            Measurement(visit.image, "vasi_residual_depigmentation",
                        score.vasi_residual_depigmentation if score else None, "percent",
                        "repigment.scoring.vasi_residual_level"),
            Measurement(visit.image, "new_depigmentation", score.new_depigmentation_px if score else None, "px",
                        "repigment.scoring.score_visit"),
        ]
    return records


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
    from .pipeline import DECISION_RANGE, DECISION_RANGE_WORDS, REGISTRATION_METHOD, SEGMENTATION_METHOD

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
        "measurements": [m.__dict__ for m in measurements(result)],
    }
    if clinical is not None:
        document["clinical"] = clinical
    return document


def csv_text(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """CSV with a header row, ``\\n`` line ends, and missing or ``None`` values empty."""
    buffer = _io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})
    return buffer.getvalue()


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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "results.csv", results_csv_text(result).encode("utf-8"))
    document = json.dumps(result_to_dict(result, clinical=clinical), indent=2, allow_nan=False)
    atomic_write_bytes(out / "results.json", document.encode("utf-8"))
    return out / "results.json"
