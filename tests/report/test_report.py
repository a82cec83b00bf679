"""The PDF report, end to end from `repigment analyze`, rendered to PNG and read back."""

import json
import shutil
import subprocess

import cv2
import numpy as np
import pytest
from conftest import run_cli

from repigment._version import __version__
from repigment.errors import InvalidParameterError, SeriesError
from repigment.report.pdf import load_results, report_pdf, write_report
from repigment.synthetic import SeriesSpec, generate_series, write_series

ACCENT = np.array([0, 114, 178])  # the chart's line colour


def _poppler(tool):
    """The path of poppler's ``tool``; a missing one fails the test, since ``make test`` installs it."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} (poppler-utils) is missing: run `bash scripts/ensure_test_tools.sh` "
                    "(or `make test`), which installs it", pytrace=False)
    return path


def _pages(pdf, tmp_path, dpi=60):
    prefix = tmp_path / "page"
    subprocess.run([_poppler("pdftoppm"), "-r", str(dpi), "-png", str(pdf), str(prefix)], check=True)
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(tmp_path.glob("page*.png"))]


def _text(pdf):
    return subprocess.run([_poppler("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """A combined course analysed by the CLI with the clinical options (face, height and weight)."""
    series_dir = tmp_path_factory.mktemp("series")
    write_series(generate_series(SeriesSpec(seed=31, skin_type="IV", course="combined", weeks=(0, 12, 24, 52),
                                            image_size=(640, 480), final_residual=0.25)), series_dir)
    out = tmp_path_factory.mktemp("out")
    proc = run_cli("analyze", series_dir, "--out", out, "--region", "face", "--height-cm", 170, "--weight-kg", 70,
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    return series_dir, out


@pytest.fixture(scope="module")
def report(analysed, tmp_path_factory):
    _, out = analysed
    pdf = tmp_path_factory.mktemp("report") / "report.pdf"
    proc = run_cli("report", out, "--out", pdf, "--patient-code", "VIT-0042", "--patch", "left cheek",
                   "--treatment", "ruxolitinib 1.5% cream twice daily", "--event", "2026-03-02: NB-UVB started")
    assert proc.returncode == 0, proc.stderr
    return pdf


def test_results_json_carries_the_clinical_block_and_keeps_old_keys(analysed):
    _, out = analysed
    document = json.loads((out / "results.json").read_text())
    for key in ("schema_version", "baseline", "scale", "milestones", "visits", "measurements"):
        assert key in document
    assert document["schema_version"] == 1
    clinical = document["clinical"]
    assert clinical["body_region"] == "face" and clinical["vasi_index"] == "F-VASI"
    assert clinical["hand_unit"]["source"] == "height-weight"
    assert clinical["hand_unit"]["cm2"] == pytest.approx(181.8, abs=0.1)
    assert clinical["vasi"]["available"]
    for visit, record in zip(document["visits"], clinical["visits"]):
        assert record["image"] == visit["image"]
        # Patch F-VASI is the visit's area in hand units, with its interval.
        assert record["patch_vasi"] == pytest.approx(visit["depigmented_area_cm2"] / 181.8, rel=1e-3)
        low, high = record["patch_vasi_interval"]
        assert low <= record["patch_vasi"] <= high
        assert record["improvement_pct"] == pytest.approx(visit["repigmentation_pct"], abs=1e-3)
    assert clinical["visits"][0]["pattern"] is None
    assert clinical["visits"][-1]["pattern"]["pattern"] in ("combined", "perifollicular", "marginal")
    assert clinical["checkpoints"]["week24"]["target_week"] == 24
    assert clinical["checkpoints"]["week52"]["endpoint"].startswith("F-VASI75")


def test_report_has_four_pages_with_content(report, tmp_path):
    pages = _pages(report, tmp_path)
    assert len(pages) == 4  # summary, photos, every visit, table
    for page in pages:
        assert page.shape[0] > page.shape[1]  # portrait
        assert (page.min(axis=2) < 200).mean() > 0.01  # not blank
    # The chart on page 1: the repigmentation line is drawn in the accent colour, in the lower half.
    summary = pages[0]
    lower = summary[summary.shape[0] // 2 :]
    line = (np.abs(lower.astype(int) - ACCENT).sum(axis=2) < 60).sum()
    assert line > 50
    # Page 2 shows two photos side by side: skin-coloured pixels in both halves of the upper part.
    photos = pages[1][: pages[1].shape[0] // 2]
    r, g, b = (photos[..., c].astype(int) for c in range(3))
    skin = (r > g + 10) & (g > b) & (r > 60)
    half = photos.shape[1] // 2
    assert skin[:, :half].sum() > 2000 and skin[:, half:].sum() > 2000


def test_report_shows_every_visit_as_a_thumbnail(report, analysed):
    text = " ".join(_text(report).split())
    document = json.loads((analysed[1] / "results.json").read_text())
    assert "Every visit" in text
    for visit in document["visits"][1:]:
        # Each visit's thumbnail is captioned with its date, week and figure.
        assert f"{visit['date']} · wk {visit['weeks_since_start']:.0f} · {visit['repigmentation_pct']:.0f} %" in text


def test_report_text_names_what_matters(report, analysed):
    text = _text(report)
    for fragment in ("VIT-0042", "left cheek", "ruxolitinib", "NB-UVB started", "Week 24", "Week 52",
                     "VASI50", "F-VASI", "Hand unit", "Mosteller", "In plain words", "Pattern",
                     f"repigment {__version__}", "Method", "not a diagnosis"):
        assert fragment in text, fragment
    # Every visit date is in the table.
    document = json.loads((analysed[1] / "results.json").read_text())
    for visit in document["visits"]:
        assert visit["date"] in text
    # The checkpoints in the same words as the results and the app (one rule, one wording).
    flat = " ".join(text.split())
    for record in document["clinical"]["checkpoints"].values():
        assert f"Week {record['target_week']}: {record['status_words']}" in flat
        assert record["status_words"] in record["clinician_message"]
    assert "borderline" not in flat


def test_patient_code_defaults_to_not_given(analysed, tmp_path):
    _, out = analysed
    text_pdf = tmp_path / "r.pdf"
    write_report(out, text_pdf)
    text = _text(text_pdf)
    assert "Patient code" in text and "not given" in text


def test_report_without_the_photos_says_so(analysed, tmp_path):
    series_dir, out = analysed
    moved = tmp_path / "elsewhere"
    shutil.copytree(out, moved)
    pdf = tmp_path / "r.pdf"
    write_report(moved, pdf, series_dir=tmp_path / "no-such-folder")
    text = _text(pdf)
    assert "photos are not shown" in text
    assert "Week 52" in text  # the rest still renders
    (tmp_path / "png").mkdir()
    assert len(_pages(pdf, tmp_path / "png")) == 3  # no every-visit page without the photos


def test_report_of_a_run_without_clinical_block(analysed, tmp_path):
    _, out = analysed
    copy = tmp_path / "old"
    shutil.copytree(out, copy)
    document = json.loads((copy / "results.json").read_text())
    del document["clinical"]
    (copy / "results.json").write_text(json.dumps(document))
    data = report_pdf(copy, body_region="trunk", hand_unit=150.0)
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(data)
    text = _text(pdf)
    assert "T-VASI" in text and "150 cm²" in text


def test_unusable_output_folder(tmp_path):
    with pytest.raises(SeriesError, match="results.json"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(SeriesError, match="JSON"):
        load_results(tmp_path)
    proc = run_cli("report", tmp_path, "--out", tmp_path / "r.pdf")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_bad_report_options_are_refused(analysed, tmp_path):
    _, out = analysed
    with pytest.raises(InvalidParameterError, match="YYYY-MM-DD"):
        report_pdf(out, events=["yesterday: started"])
    with pytest.raises(InvalidParameterError, match="80 characters"):
        report_pdf(out, patient_code="x" * 200)
    proc = run_cli("report", out, "--out", tmp_path / "r.txt")
    assert proc.returncode == 2 and ".pdf" in proc.stderr


def test_marker_command(tmp_path):
    pdf = tmp_path / "marker.pdf"
    proc = run_cli("marker", "--out", pdf, "--mm", 25)
    assert proc.returncode == 0, proc.stderr
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert "25 mm" in _text(pdf)
    proc = run_cli("marker", "--out", tmp_path / "m.pdf", "--mm", 2)
    assert proc.returncode == 2 and "10-100 mm" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_analyze_refuses_conflicting_hand_units_before_analysing(analysed, tmp_path):
    series_dir, _ = analysed
    proc = run_cli("analyze", series_dir, "--out", tmp_path / "o", "--hand-unit-cm2", 150, "--height-cm", 170,
                   "--weight-kg", 70)
    assert proc.returncode == 2 and "one way" in proc.stderr
    proc = run_cli("analyze", series_dir, "--out", tmp_path / "o", "--region", "elbow")
    assert proc.returncode == 2 and "body region" in proc.stderr
    assert not (tmp_path / "o" / "results.json").exists()
