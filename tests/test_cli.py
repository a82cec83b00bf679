"""The repigment command line end to end, and its failure paths (exit code 2, one line)."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

from repigment.synthetic import SeriesSpec, generate_series, write_series

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_images" / "series_a"


@pytest.fixture(scope="module")
def small_series(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli_series")
    spec = SeriesSpec(seed=5, skin_type="V", course="marginal", weeks=(0, 12, 24), image_size=(640, 480))
    write_series(generate_series(spec), directory)
    return directory


def test_analyze_sample_series_writes_the_contract(tmp_path):
    assert SAMPLE.is_dir(), "the bundled sample series is missing"
    out = tmp_path / "out"
    proc = run_cli("analyze", SAMPLE, "--out", out, "--treatment-start", "2026-01-05")
    assert proc.returncode == 0, proc.stderr
    document = json.loads((out / "results.json").read_text())
    assert document["treatment_start"] == "2026-01-05"
    truth = json.loads((SAMPLE / "truth.json").read_text())
    assert len(document["visits"]) == len(truth["visits"])
    width, height = document["baseline"]["width"], document["baseline"]["height"]
    for visit, expected in zip(document["visits"], truth["visits"]):
        assert visit["error"] is None, visit["error"]
        mask = cv2.imread(str(out / visit["mask"]), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (height, width)
        assert set(np.unique(mask)) <= {0, 255}
        assert visit["repigmentation_pct"] == pytest.approx(expected["truth_repigmentation_pct"], abs=3)
    assert (out / "results.csv").read_text().count("\n") == 1 + len(document["visits"])
    assert "Repigmentation since baseline" in proc.stdout


def test_analyze_without_visits_csv_takes_dates_from_file_names(small_series, tmp_path):
    series = tmp_path / "series"
    shutil.copytree(small_series, series)
    (series / "visits.csv").unlink()
    shutil.rmtree(series / "truth")
    (series / "truth.json").unlink()
    proc = run_cli("analyze", series, "--out", tmp_path / "out", "-q")
    assert proc.returncode == 0, proc.stderr
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [v["date"] for v in document["visits"]] == sorted(v["date"] for v in document["visits"])
    assert document["treatment_start"] == document["visits"][0]["date"]


def test_corrupt_visit_is_reported_and_the_series_completes(small_series, tmp_path):
    series = tmp_path / "series"
    shutil.copytree(small_series, series)
    names = [line.split(",")[1] for line in (series / "visits.csv").read_text().splitlines()[1:]]
    data = (series / names[1]).read_bytes()
    (series / names[1]).write_bytes(data[: len(data) // 3])  # truncated JPEG
    proc = run_cli("analyze", series, "--out", tmp_path / "out", "-q")
    assert proc.returncode == 0, proc.stderr
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    broken = document["visits"][1]
    assert broken["error"] and broken["repigmentation_pct"] is None and broken["mask"] is None
    assert document["visits"][2]["error"] is None


@pytest.mark.parametrize(
    "visits_csv, fragment",
    [
        ("when,file\n2026-01-01,a.jpg\n", "missing"),
        ("date,image\n2026-02-30,a.jpg\n", "not a real calendar date"),
        ("date,image\n01/02/2026,a.jpg\n", "ISO date"),
        ("date,image\n2026-01-01,../outside.jpg\n", "inside the series folder"),
        ("date,image\n2026-01-01,/etc/passwd\n", "inside the series folder"),
    ],
)
def test_bad_visits_csv_is_a_one_line_error(tmp_path, visits_csv, fragment):
    (tmp_path / "visits.csv").write_text(visits_csv)
    assert_one_line_error(run_cli("analyze", tmp_path, "--out", tmp_path / "out"), fragment)
    assert not (tmp_path / "out" / "results.json").exists()


def test_non_utf8_visits_csv(tmp_path):
    (tmp_path / "visits.csv").write_bytes(b"date,image\n2026-01-01,caf\xe9.jpg\n")
    assert_one_line_error(run_cli("analyze", tmp_path, "--out", tmp_path / "out"), "UTF-8")


def test_photos_without_dates(tmp_path):
    cv2.imwrite(str(tmp_path / "IMG_0001.jpg"), np.full((200, 200, 3), 128, np.uint8))
    assert_one_line_error(run_cli("analyze", tmp_path, "--out", tmp_path / "out"), "IMG_0001.jpg", "visits.csv")


def test_missing_folder_and_empty_folder(tmp_path):
    assert_one_line_error(run_cli("analyze", tmp_path / "nope", "--out", tmp_path / "out"), "does not exist")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_cli("analyze", tmp_path / "empty", "--out", tmp_path / "out"), "no photos")


def test_unreadable_baseline_is_an_error(tmp_path):
    (tmp_path / "2026-01-01.jpg").write_text("<html>not a photo</html>")
    assert_one_line_error(run_cli("analyze", tmp_path, "--out", tmp_path / "out"), "baseline photo")


@pytest.mark.parametrize(
    "option, fragment",
    [
        (["--roi", "1,2,3"], "--roi"),
        (["--roi", "a,b,c,d"], "--roi"),
        (["--roi", "0,0,-5,10"], "positive"),
        (["--treatment-start", "2026-13-01"], "treatment start"),
        (["--marker-mm", "0"], "marker"),
    ],
)
def test_bad_options_are_one_line_errors(small_series, tmp_path, option, fragment):
    assert_one_line_error(run_cli("analyze", small_series, "--out", tmp_path / "out", *option), fragment)


def test_segment_writes_an_upright_full_size_mask(small_series, tmp_path):
    name = "visit_00_" + sorted(p.name for p in small_series.glob("visit_00_*.jpg"))[0][9:]
    out = tmp_path / "mask.png"
    proc = run_cli("segment", small_series / name, "--out", out)
    assert proc.returncode == 0, proc.stderr
    mask = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    truth = cv2.imread(str(small_series / "truth" / f"{Path(name).stem}_photo.png"), 0) > 0
    assert mask.shape == truth.shape and set(np.unique(mask)) <= {0, 255}
    dice = 2 * ((mask > 0) & truth).sum() / ((mask > 0).sum() + truth.sum())
    assert dice > 0.9


def test_segment_rejects_bad_input(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("just text")
    assert_one_line_error(run_cli("segment", text, "--out", tmp_path / "m.png"), "notes.jpg")
    assert not (tmp_path / "m.png").exists()
    assert_one_line_error(run_cli("segment", tmp_path / "missing.jpg", "--out", tmp_path / "m.png"))
    cv2.imwrite(str(tmp_path / "ok.png"), np.full((100, 100, 3), 128, np.uint8))
    assert_one_line_error(run_cli("segment", tmp_path / "ok.png", "--out", tmp_path / "m.jpg"), ".png")


def test_help_and_version():
    proc = run_cli("--help")
    assert proc.returncode == 0 and "analyze" in proc.stdout and "segment" in proc.stdout
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip()
