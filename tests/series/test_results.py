"""Series results as records, JSON and CSV, checked against the result they were made from.

One small generated series is analysed once for the module; every file and
record must then say exactly what the :class:`SeriesResult` in memory says.
"""

import csv
import dataclasses
import datetime as dt
import io
import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import analyze_to

from repigment._version import __version__
from repigment.errors import SeriesError
from repigment.series import results
from repigment.series.results import (
    CSV_COLUMNS,
    SCHEMA_VERSION,
    MaskWriter,
    Measurement,
    csv_text,
    measurements,
    result_to_dict,
    results_csv_text,
    write_results,
)

FAST = 256  # working size: enough for a 480 x 360 series, and quick
UNITS = {"px", "cm2", "percent", "weeks", "1"}
# (variable, unit) of each visit's measurement records -> the key of the same figure in results.json
MEASURED_FIGURES = {
    ("weeks_since_start", "weeks"): "weeks_since_start",
    ("depigmented_area", "px"): "depigmented_area_px",
    ("depigmented_area", "cm2"): "depigmented_area_cm2",
    ("repigmentation", "percent"): "repigmentation_pct",
    ("vasi_residual_depigmentation", "percent"): "vasi_residual_depigmentation",
    ("new_depigmentation", "px"): "new_depigmentation_px",
}
FAILED_ERROR = "the photo could not be aligned with the baseline: retake it"


@pytest.fixture(scope="module")
def analysed(small_series, tmp_path_factory):
    """The three-visit series analysed, with its output folder."""
    out = tmp_path_factory.mktemp("results_out")
    result = analyze_to(small_series, out, working_size=FAST)
    assert all(visit.ok for visit in result.visits), [visit.error for visit in result.visits]
    return result, out


@pytest.fixture(scope="module")
def result(analysed):
    return analysed[0]


@pytest.fixture(scope="module")
def document(analysed) -> dict:
    return json.loads((analysed[1] / "results.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def with_failed_visit(result):
    """The result with its last visit failed: no registration, no figures (its stale mask path kept)."""
    failed = dataclasses.replace(result.visits[-1], registration=None, score=None, error=FAILED_ERROR,
                                 homography_full=None, intervals={})
    assert failed.mask_path is not None
    return dataclasses.replace(result, visits=[*result.visits[:-1], failed])


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _csv_rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    return reader.fieldnames, rows


# -- results.json --------------------------------------------------------------------


def test_results_json_holds_the_series_figures_of_the_result(result, document):
    width, height = result.baseline_size
    assert document["schema_version"] == SCHEMA_VERSION
    assert document["repigment_version"] == result.repigment_version == __version__
    assert document["created_utc"] == result.created_utc
    assert document["treatment_start"] == result.treatment_start.isoformat()
    assert document["baseline"] == {"image": result.baseline, "date": result.visits[0].date.isoformat(),
                                    "width": width, "height": height}
    assert document["scale"]["mm_per_px"] == pytest.approx(result.mm_per_px, abs=5e-7)
    assert document["scale"]["marker_mm"] == result.marker_mm
    assert document["scale"]["marker_id"] == result.marker_id
    assert document["method"]["working_size"] == result.working_size == FAST
    assert document["method"]["threshold"] == pytest.approx(result.threshold, abs=5e-6)
    assert document["method"]["labels"] is result.labels_used
    assert document["milestones"] == dataclasses.asdict(result.milestones)


def test_results_json_holds_every_figure_of_every_visit(result, document):
    assert [v["image"] for v in document["visits"]] == [visit.image for visit in result.visits]
    for visit, saved in zip(result.visits, document["visits"]):
        score, registration = visit.score, visit.registration
        assert saved["date"] == visit.date.isoformat()
        assert saved["weeks_since_start"] == visit.weeks_since_start
        assert saved["registration"]["ok"] is registration.ok
        assert saved["registration"]["score"] == pytest.approx(registration.score, abs=5e-5)
        assert saved["registration"]["reason"] == registration.reason
        assert np.allclose(saved["registration"]["homography"], visit.homography_full, rtol=0, atol=1e-9)
        assert saved["depigmented_area_px"] == score.area_px
        assert saved["depigmented_area_cm2"] == pytest.approx(score.area_cm2, abs=5e-5)
        assert saved["repigmentation_pct"] == pytest.approx(score.repigmentation_pct, abs=5e-4)
        assert saved["vasi_residual_depigmentation"] == score.vasi_residual_depigmentation
        assert saved["residual_fraction"] == pytest.approx(score.residual_fraction, abs=5e-6)
        assert saved["new_depigmentation_px"] == score.new_depigmentation_px
        assert saved["mask"] == visit.mask_path
        assert saved["error"] is None
        assert saved["needs_review"] is visit.needs_review
        assert saved["review_reasons"] == list(visit.review_reasons)  # JSON keeps the tuple as a list
        for key, (low, high) in visit.intervals.items():
            assert saved["intervals"][key] == pytest.approx([low, high], abs=5e-4)


def test_run_time_is_an_iso_utc_time(result):
    created = dt.datetime.fromisoformat(result.created_utc.replace("Z", "+00:00"))
    assert created.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.timezone.utc) - created) < dt.timedelta(hours=1)


def test_failed_visit_has_no_figures_and_says_why(with_failed_visit):
    saved = result_to_dict(with_failed_visit)["visits"][-1]
    assert saved["error"] == FAILED_ERROR
    assert saved["registration"] == {"ok": False, "score": None, "reason": FAILED_ERROR, "homography": None}
    for key in ("depigmented_area_px", "depigmented_area_cm2", "repigmentation_pct",
                "vasi_residual_depigmentation", "residual_fraction", "new_depigmentation_px", "mask"):
        assert saved[key] is None, key
    assert saved["intervals"] == {}


def test_clinical_block_is_added_and_changes_nothing_else(result):
    clinical = {"vasi": {"hand_units": 1.5}, "region": "face"}
    plain, with_clinical = result_to_dict(result), result_to_dict(result, clinical=clinical)
    assert "clinical" not in plain
    assert with_clinical.pop("clinical") == clinical
    assert with_clinical == plain


# -- measurement records -------------------------------------------------------------


def test_every_measurement_carries_a_documented_unit_and_a_method(result):
    records = measurements(result)
    assert len(records) == 7 * len(result.visits)
    for record in records:
        assert record.unit in UNITS, record
        assert record.method.startswith("repigment."), record
    for visit in result.visits:
        pairs = {(r.variable, r.unit) for r in records if r.image == visit.image}
        assert pairs == set(MEASURED_FIGURES) | {("registration_score", "1")}


def test_measurements_round_trip_through_results_json(result, document):
    assert [Measurement(**saved) for saved in document["measurements"]] == measurements(result)


def test_each_measured_figure_carries_the_range_its_visit_reports(result, document):
    ranged = {("depigmented_area", "px"): "depigmented_area_px", ("depigmented_area", "cm2"): "depigmented_area_cm2",
              ("repigmentation", "percent"): "repigmentation_pct"}
    for visit, saved in zip(result.visits, document["visits"]):
        for record in (r for r in measurements(result) if r.image == visit.image):
            key = ranged.get((record.variable, record.unit))
            if key is None:
                assert record.interval is None, record
            else:
                assert record.interval == tuple(saved["intervals"][key]), (visit.image, key)
                low, high = record.interval
                assert low <= record.value <= high


def test_measurement_values_are_the_visit_figures_in_their_units(result, document):
    for visit, saved in zip(result.visits, document["visits"]):
        values = {(r.variable, r.unit): r.value for r in measurements(result) if r.image == visit.image}
        for pair, key in MEASURED_FIGURES.items():
            assert values[pair] == saved[key], (visit.image, pair)
        assert values[("registration_score", "1")] == saved["registration"]["score"]
        # cm² is px at the marker's scale (within the slant the plane correction allows)
        cm2_at_scale = values[("depigmented_area", "px")] * result.mm_per_px ** 2 / 100
        assert values[("depigmented_area", "cm2")] == pytest.approx(cm2_at_scale, rel=0.05)


def test_failed_visit_measurements_keep_unit_and_method_without_value(with_failed_visit):
    failed = with_failed_visit.visits[-1]
    records = [r for r in measurements(with_failed_visit) if r.image == failed.image]
    assert len(records) == 7
    for record in records:
        assert record.unit in UNITS and record.method.startswith("repigment.")
        expected = failed.weeks_since_start if record.variable == "weeks_since_start" else None
        assert record.value == expected, record


# -- results.csv ---------------------------------------------------------------------


def test_results_csv_has_one_row_per_visit_in_the_documented_columns(analysed):
    result, out = analysed
    text = (out / "results.csv").read_text(encoding="utf-8")
    assert text == results_csv_text(result)
    columns, rows = _csv_rows(text)
    assert columns == list(CSV_COLUMNS)
    assert [row["image"] for row in rows] == [visit.image for visit in result.visits]
    for visit, row in zip(result.visits, rows):
        score = visit.score
        assert row["date"] == visit.date.isoformat()
        assert float(row["weeks_since_start"]) == visit.weeks_since_start
        assert row["registration_ok"] == "True"
        assert float(row["registration_score"]) == pytest.approx(visit.registration.score, abs=5e-5)
        assert row["registration_reason"] == ""
        assert int(row["depigmented_area_px"]) == score.area_px
        assert float(row["depigmented_area_cm2"]) == pytest.approx(score.area_cm2, abs=5e-5)
        assert float(row["repigmentation_pct"]) == pytest.approx(score.repigmentation_pct, abs=5e-4)
        assert int(row["vasi_residual_depigmentation"]) == score.vasi_residual_depigmentation
        assert float(row["residual_fraction"]) == pytest.approx(score.residual_fraction, abs=5e-6)
        assert int(row["new_depigmentation_px"]) == score.new_depigmentation_px
        assert row["mask"] == visit.mask_path
        assert row["error"] == ""
        assert row["needs_review"] == str(visit.needs_review)
        assert row["review_reasons"] == "; ".join(visit.review_reasons)


def test_failed_visit_row_has_empty_figures_and_the_error(with_failed_visit):
    _, rows = _csv_rows(results_csv_text(with_failed_visit))
    row = rows[-1]
    assert row["error"] == row["registration_reason"] == FAILED_ERROR
    assert row["registration_ok"] == "False"
    for column in ("registration_score", "depigmented_area_px", "depigmented_area_cm2", "repigmentation_pct",
                   "vasi_residual_depigmentation", "residual_fraction", "new_depigmentation_px", "mask"):
        assert row[column] == "", column


def test_review_reasons_share_one_cell(result):
    reasons = ["the patch looks larger than its mask", "light far from the baseline's"]
    flagged = dataclasses.replace(result.visits[1], review_reasons=list(reasons))
    _, rows = _csv_rows(results_csv_text(dataclasses.replace(result, visits=[result.visits[0], flagged])))
    assert rows[1]["needs_review"] == "True"
    assert rows[1]["review_reasons"] == "; ".join(reasons)


def test_csv_text_quotes_commas_quotes_and_line_breaks():
    rows = [
        {"image": "forearm, left.jpg", "note": 'says "ok"', "value": 1.5},
        {"image": "two\nlines.jpg", "note": None},  # None and a missing key are both empty
        {"image": "plain.jpg", "note": "x", "value": 0, "ignored": "not a column"},
    ]
    text = csv_text(("image", "note", "value"), rows)
    assert text.startswith("image,note,value\n")
    assert "\r" not in text  # \n line ends, not the csv module's default \r\n
    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["image", "note", "value"],
        ["forearm, left.jpg", 'says "ok"', "1.5"],
        ["two\nlines.jpg", "", ""],
        ["plain.jpg", "x", "0"],
    ]


@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://x\").jpg", "+1.jpg", "-1.jpg", "@SUM(A1).jpg",
                                  "\tx.jpg", "\rx.jpg"])
def test_csv_text_keeps_a_spreadsheet_from_running_a_cell_as_a_formula(name):
    """A photo's name is the user's: a spreadsheet opening results.csv must show it, not run it."""
    text = csv_text(("image", "pct", "area"), [{"image": name, "pct": -12.5, "area": 3}])
    (row,) = list(csv.DictReader(io.StringIO(text, newline="")))
    # A carriage return would split the row (the csv module leaves it unquoted): it is a line feed.
    assert row == {"image": "'" + name.replace("\r", "\n"), "pct": "-12.5", "area": "3"}  # numbers as they are


# -- writing -------------------------------------------------------------------------


def test_write_results_writes_the_csv_then_the_json_last(result, tmp_path, monkeypatch):
    written = []
    real_write = results.atomic_write_bytes

    def recording_write(path, data, **kwargs):
        written.append(Path(path).name)
        real_write(path, data, **kwargs)

    monkeypatch.setattr(results, "atomic_write_bytes", recording_write)
    path = write_results(result, tmp_path / "out")
    assert path == tmp_path / "out" / "results.json"
    assert written == ["results.csv", "results.json"]
    assert _files(tmp_path / "out") == {"results.csv", "results.json"}  # no temporary file left behind
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(json.dumps(result_to_dict(result)))
    assert (tmp_path / "out" / "results.csv").read_text(encoding="utf-8") == results_csv_text(result)


def test_write_results_replaces_an_existing_results_json_whole(result, tmp_path):
    old = {"schema_version": SCHEMA_VERSION, "padding": "x" * 1_000_000}  # longer than the new file
    (tmp_path / "results.json").write_text(json.dumps(old), encoding="utf-8")
    write_results(result, tmp_path, clinical={"region": "hand"})
    document = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert "padding" not in document
    assert document == json.loads(json.dumps(result_to_dict(result, clinical={"region": "hand"})))
    assert _files(tmp_path) == {"results.csv", "results.json"}


def test_failed_rename_leaves_the_old_results_json_and_no_temporary_file(result, tmp_path, monkeypatch):
    (tmp_path / "results.json").write_text('{"old": true}', encoding="utf-8")
    real_replace = os.replace

    def failing_replace(src, dst, *args, **kwargs):
        if Path(dst).name == "results.json":
            raise OSError("disk full")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_results(result, tmp_path)
    assert (tmp_path / "results.json").read_text(encoding="utf-8") == '{"old": true}'
    assert _files(tmp_path) == {"results.csv", "results.json"}


def test_a_figure_that_is_not_a_number_is_refused_not_written(result, tmp_path):
    broken = dataclasses.replace(result, threshold=math.nan)
    (tmp_path / "results.json").write_text('{"old": true}', encoding="utf-8")
    with pytest.raises(ValueError):
        write_results(broken, tmp_path)
    assert (tmp_path / "results.json").read_text(encoding="utf-8") == '{"old": true}'


def test_a_refused_figure_leaves_the_old_table_too(result, tmp_path):
    """results.csv and results.json stay a pair: neither is replaced when the JSON cannot be made."""
    (tmp_path / "results.json").write_text('{"old": true}', encoding="utf-8")
    (tmp_path / "results.csv").write_text("old\n", encoding="utf-8")
    with pytest.raises(ValueError):
        write_results(dataclasses.replace(result, threshold=math.nan), tmp_path)
    assert (tmp_path / "results.csv").read_text(encoding="utf-8") == "old\n"


def test_mask_writer_writes_the_mask_under_masks_by_photo_stem(result, tmp_path):
    mask = np.zeros((36, 48), bool)
    mask[5:20, 10:30] = True
    writer = MaskWriter(tmp_path)
    relative = writer(result.visits[1], mask)
    assert relative == f"masks/{Path(result.visits[1].image).stem}.png"
    written = cv2.imread(str(tmp_path / relative), cv2.IMREAD_UNCHANGED)
    assert written.shape == mask.shape
    assert np.array_equal(written, np.where(mask, 255, 0).astype(np.uint8))
    writer(result.visits[1], ~mask)  # a second run replaces it
    assert np.array_equal(cv2.imread(str(tmp_path / relative), cv2.IMREAD_UNCHANGED) > 0, ~mask)
    assert _files(tmp_path) == {relative}


def test_masks_written_by_the_run_hold_each_visits_area(analysed):
    result, out = analysed
    width, height = result.baseline_size
    assert _files(out) == {"results.csv", "results.json"} | {visit.mask_path for visit in result.visits}
    for visit in result.visits:
        mask = cv2.imread(str(out / visit.mask_path), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (height, width)
        assert int((mask > 0).sum()) == visit.score.area_px


# -- reading results.json back --------------------------------------------------------


def test_results_json_reads_back_as_the_result_that_wrote_it(analysed):
    result, out = analysed
    saved = results.read_results(out)
    assert saved.path == out / "results.json"
    assert saved == results.read_results(out / "results.json")
    assert (saved.treatment_start, saved.baseline, saved.baseline_size) == (
        result.treatment_start, result.baseline, result.baseline_size)
    assert saved.mm_per_px == pytest.approx(result.mm_per_px, rel=1e-5)
    assert saved.milestones == result.milestones
    assert saved.repigment_version == __version__ and saved.clinical is None
    assert [v.image for v in saved.visits] == [v.image for v in result.visits]
    for visit, back in zip(result.visits, saved.visits):
        assert back.date == visit.date and back.weeks_since_start == visit.weeks_since_start
        assert back.measured and back.registered and back.error is None and back.error_code is None
        assert back.depigmented_area_px == visit.score.area_px
        assert back.repigmentation_pct == pytest.approx(visit.score.repigmentation_pct, abs=1e-3)
        low, high = visit.intervals["repigmentation_pct"]
        assert back.repigmentation_interval == pytest.approx((low, high), abs=1e-3)
        assert back.needs_review == visit.needs_review and back.notes == tuple(visit.notes)


def test_a_failed_visit_reads_back_with_its_code(result, tmp_path):
    failed = dataclasses.replace(result.visits[1], score=None)
    failed.fail(results.VisitErrorCode.NOT_ALIGNED, FAILED_ERROR)
    results.write_results(dataclasses.replace(result, visits=[result.visits[0], failed, *result.visits[2:]]),
                          tmp_path)
    back = results.read_results(tmp_path).visits[1]
    assert not back.measured and back.repigmentation_pct is None
    assert back.error == FAILED_ERROR and back.error_code is results.VisitErrorCode.NOT_ALIGNED


@pytest.mark.parametrize("content, message", [
    (None, "has no results.json"),
    ("{not json", "not readable JSON"),
    ('{"visits": []}', "not a repigment results file"),
    ('{"schema_version": 99, "visits": [{}], "baseline": {}}', "schema version 99"),
    ('{"schema_version": 1, "visits": [{}], "baseline": {}}', "is damaged"),
])
def test_an_unusable_results_file_is_a_one_line_series_error(tmp_path, content, message):
    if content is not None:
        (tmp_path / "results.json").write_text(content, encoding="utf-8")
    with pytest.raises(SeriesError, match=message) as info:
        results.read_results(tmp_path)
    assert "\n" not in str(info.value)


def test_a_series_result_is_final_once_the_series_is_done(result):
    """Nothing after the series may change a figure it reported."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.threshold = 0.0
    for visit in result.visits:
        with pytest.raises(dataclasses.FrozenInstanceError):
            visit.score = None
        assert isinstance(visit.notes, tuple) and isinstance(visit.review_reasons, tuple)
    copy = dataclasses.replace(result.visits[1], error="retake it")  # a copy is a new, open result
    copy.error_code = results.VisitErrorCode.NOT_ALIGNED
    assert copy.error_code == "not_aligned" and result.visits[1].error is None


def test_each_visit_makes_its_records_when_its_figures_are_final(result, document):
    """The records are the visit's own, made by the series, and results.json holds them."""
    for visit in result.visits:
        assert visit.measurements and list(visit.measurements) == results.visit_measurements(visit)
    saved = [Measurement(**record) for record in document["measurements"]]
    assert saved == [record for visit in result.visits for record in visit.measurements]
    assert dataclasses.replace(result.visits[1]).measurements == ()  # a copy makes its own when asked
