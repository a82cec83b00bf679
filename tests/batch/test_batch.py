"""Batch scoring from a manifest: validation, outputs, exit codes, resumability, Dask, interrupts."""

import csv
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import analyze_to, cli_env, run_cli
from hypothesis import given
from hypothesis import strategies as st

from repigment.batch import (
    FAILURE_COLUMNS,
    SUMMARY_COLUMNS,
    read_manifest,
    score_manifest,
    series_folder_name,
)
from repigment.errors import SeriesError
from repigment.synthetic import SeriesSpec, generate_series, write_series

HEADER = ("patient", "patch", "date", "image")


def write_manifest(path: Path, rows, header=HEADER) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two generated series of three visits under one folder, and their manifest."""
    root = tmp_path_factory.mktemp("batch_photos")
    rows = []
    for patient, seed in (("P-001", 1), ("P-002", 2)):
        spec = SeriesSpec(seed=seed, skin_type="III", course="combined", image_size=(640, 480), weeks=(0, 12, 24))
        write_series(generate_series(spec), root / patient)
        for visit in read_csv(root / patient / "visits.csv"):
            rows.append((patient, "left forearm", visit["date"], f"{patient}/{visit['image']}"))
    return root, write_manifest(root / "manifest.csv", rows)


@pytest.fixture(scope="module")
def pool_run(photos, tmp_path_factory):
    """The manifest scored once on two local worker processes."""
    _, manifest = photos
    out = tmp_path_factory.mktemp("pool_out")
    calls = []
    result = score_manifest(manifest, out, workers=2, progress=lambda *a: calls.append(a))
    return result, out, calls


# --- the manifest ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"patient,patch,image\nP1,arm,a.jpg\n", "missing: date"),
        (b"", "missing: patient, patch, date, image"),
        (b"patient,patch,date,image\n", "lists no visits"),
        (b"patient,patch,date,image\nP1,arm,2026-13-01,a.jpg\n", "line 2: date '2026-13-01' is not a real"),
        (b"patient,patch,date,image\nP1,arm,01/03/2026,a.jpg\n", "line 2: date '01/03/2026' is not an ISO date"),
        (b"patient,patch,date,image\nP1,arm,2026-03-01,../a.jpg\n", "line 2: image '../a.jpg' must be a file name"),
        (b"patient,patch,date,image\nP1,arm,2026-03-01,/etc/passwd\n", "line 2: image '/etc/passwd' must be"),
        (b"patient,patch,date,image\nP1,arm,2026-03-01,caf\xe9.jpg\n", "not UTF-8"),
        (b"patient,patch,date,image\n,arm,2026-03-01,a.jpg\n", "line 2: no patient"),
        (b"patient,patch,date,image\nP1,arm,2026-03-01,a.jpg,extra\n", "line 2: more fields"),
        (b"patient,patch,date,image\nP1,arm,2026-03-01,a.jpg\nP1,arm,2026-04-01,sub/a.png\n", "same file name"),
        (b"patient,patch,date,image,marker_mm\nP1,arm,2026-03-01,a.jpg,big\n", "marker_mm 'big' is not a number"),
        (b"patient,patch,date,image,marker_mm\nP1,arm,2026-03-01,a.jpg,0.1\n", "between 1 and 500 mm"),
        (
            b"patient,patch,date,image,treatment_start\nP1,arm,2026-03-01,a.jpg,2026-01-01\n"
            b"P1,arm,2026-04-01,b.jpg,2026-02-01\n",
            "line 3: treatment_start 2026-02-01 differs from 2026-01-01 on line 2",
        ),
    ],
)
def test_unusable_manifest_is_refused_with_one_line(tmp_path, content, message):
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(content)
    with pytest.raises(SeriesError, match=re.escape(message)) as info:
        read_manifest(manifest)
    assert "\n" not in str(info.value)


def test_unusable_manifest_exits_2_before_scoring(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(b"patient,patch,date,image\nP1,arm,2026-03-01,../outside.jpg\n")
    proc = run_cli("batch", manifest, "--out", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: manifest manifest.csv line 2: image '../outside.jpg' must be a file name inside the manifest's "
        "folder, not a path out of it"
    ]
    assert not (tmp_path / "out").exists()
    assert run_cli("batch", tmp_path / "missing.csv", "--out", tmp_path / "out").returncode == 2


def test_manifest_groups_series_and_takes_optional_columns(tmp_path):
    manifest = write_manifest(
        tmp_path / "m.csv",
        [
            (" P1 ", "arm", "2026-03-01", "a/v0.jpg", "", "25"),
            ("P1", "leg", "2026-03-01", "b/v0.jpg", "", ""),
            ("P1", "arm", "2026-04-01", "a/v1.jpg", "2026-02-15", ""),
            ("", "", "", "", "", ""),  # a blank line
        ],
        header=("Patient", "patch", "date", "image", "treatment_start", "marker_mm"),
    )
    parsed = read_manifest(manifest)
    arm, leg = parsed.series
    assert (arm.patient, arm.patch, len(arm.visits)) == ("P1", "arm", 2)
    assert str(arm.treatment_start) == "2026-02-15" and arm.marker_mm == 25.0
    assert leg.treatment_start is None and leg.marker_mm == 20.0
    assert arm.visits[1].path == (tmp_path / "a" / "v1.jpg").resolve()
    assert arm.folder != leg.folder


@given(st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60))
def test_series_folder_names_are_safe_and_distinct(patient, patch, other):
    name = series_folder_name(patient, patch)
    assert re.fullmatch(r"[A-Za-z0-9-]+__[A-Za-z0-9-]+__[0-9a-f]{10}", name)
    assert len(name) <= 96
    if other != patch:
        assert series_folder_name(patient, other) != name


# --- a real run ----------------------------------------------------------------------------------


def test_run_writes_each_series_like_analyze_and_a_long_summary(photos, pool_run):
    root, manifest = photos
    result, out, calls = pool_run
    assert (result.scored, result.skipped, result.failed, result.failures) == (2, 0, 0, ())
    assert calls[0] == (0, 2, "") and [c[:2] for c in calls[1:]] == [(1, 2), (2, 2)]
    for status in result.series:
        folder = out / status.folder
        assert status.results_json == folder / "results.json"
        document = json.loads(status.results_json.read_text())
        assert [v["error"] for v in document["visits"]] == [None, None, None]
        assert all((folder / v["mask"]).is_file() for v in document["visits"])
        assert (folder / "results.csv").is_file() and (folder / "batch.json").is_file()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        [s.folder for s in result.series] + ["summary.csv", "failures.csv"]
    )
    summary = read_csv(result.summary_csv)
    assert tuple(summary[0]) == SUMMARY_COLUMNS
    records = [m for s in result.series for m in json.loads(s.results_json.read_text())["measurements"]]
    assert len(summary) == len(records) and {r["image"] for r in records} == {
        f"visit_0{k}_{d}.jpg" for k, d in enumerate(("2026-01-05", "2026-03-30", "2026-06-22"))
    }
    first = summary[0]
    assert (first["patient"], first["patch"], first["image"]) == ("P-001", "left forearm", "P-001/visit_00_2026-01-05.jpg")
    repigmentation = [r for r in summary if r["variable"] == "repigmentation"]
    assert {r["unit"] for r in repigmentation} == {"percent"}
    assert all(r["method"] for r in summary)
    assert result.failures_csv.read_text() == ",".join(FAILURE_COLUMNS) + "\n"


def test_series_output_equals_analyze_on_the_same_photos(photos, pool_run, tmp_path):

    root, _ = photos
    result, out, _ = pool_run
    analyze_to(root / "P-001", tmp_path)
    assert (out / result.series[0].folder / "results.csv").read_bytes() == (tmp_path / "results.csv").read_bytes()


def test_rerun_skips_complete_series_and_rescores_only_what_is_missing_or_tampered(photos, pool_run, tmp_path):
    _, manifest = photos
    first, original, _ = pool_run
    out = tmp_path / "out"
    shutil.copytree(original, out)
    (out / ".tmp-left-by-a-killed-run").mkdir()
    summary = first.summary_csv.read_bytes()

    again = score_manifest(manifest, out, workers=2)
    assert (again.scored, again.skipped) == (0, 2)
    assert again.summary_csv.read_bytes() == summary  # rebuilt, complete
    assert not (out / ".tmp-left-by-a-killed-run").exists()

    a, b = (out / s.folder / "results.json" for s in first.series)
    a.unlink()
    b_written = b.stat().st_mtime_ns
    resumed = score_manifest(manifest, out, workers=2)
    assert [s.status for s in resumed.series] == ["scored", "skipped"]
    assert b.stat().st_mtime_ns == b_written
    assert resumed.summary_csv.read_bytes() == summary

    document = json.loads(b.read_text())
    document["visits"][2]["repigmentation_pct"] = 99.0  # valid JSON, plausible, and wrong
    b.write_text(json.dumps(document, indent=2))
    rescored = score_manifest(manifest, out, workers=1)
    assert [s.status for s in rescored.series] == ["skipped", "scored"]
    assert json.loads(b.read_text())["visits"][2]["repigmentation_pct"] != 99.0
    assert rescored.summary_csv.read_bytes() == summary


def test_bad_photos_are_failures_with_exit_code_1(photos, tmp_path):
    root, _ = photos
    good = sorted((root / "P-001").glob("visit_*.jpg"))
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(good[0], folder / "base.jpg")
    (folder / "cut.jpg").write_bytes(good[1].read_bytes()[:300])  # a truncated JPEG
    (folder / "text.jpg").write_bytes(b"not a photo")
    manifest = write_manifest(
        tmp_path / "manifest.csv",
        [
            ("P1", "arm", "2026-01-05", "photos/base.jpg"),
            ("P1", "arm", "2026-03-30", "photos/cut.jpg"),
            ("P2", "arm", "2026-01-05", "photos/text.jpg"),  # an unusable baseline
            ("P2", "arm", "2026-03-30", "photos/missing.jpg"),
        ],
    )
    out = tmp_path / "out"
    proc = run_cli("batch", manifest, "--out", out, "--workers", "1")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    failures = read_csv(out / "failures.csv")
    assert [(f["image"], f["series"]) for f in failures] == [
        ("photos/cut.jpg", series_folder_name("P1", "arm")),
        ("photos/text.jpg", series_folder_name("P2", "arm")),
        ("photos/missing.jpg", series_folder_name("P2", "arm")),
    ]
    assert all(f["reason"] for f in failures)
    assert failures[1]["reason"] == failures[2]["reason"] and "baseline photo text.jpg" in failures[1]["reason"]
    summary = read_csv(out / "summary.csv")
    scored = json.loads((out / series_folder_name("P1", "arm") / "results.json").read_text())
    assert {r["patient"] for r in summary} == {"P1"} and len(summary) == len(scored["measurements"])
    assert {r["image"] for r in summary} == {"photos/base.jpg", "photos/cut.jpg"}
    assert not (out / series_folder_name("P2", "arm")).exists()


def test_dask_local_cluster_gives_the_same_numbers(photos, pool_run, tmp_path):
    _, manifest = photos
    first, _, _ = pool_run
    result = score_manifest(manifest, tmp_path / "out", workers=2, scheduler="local")
    assert (result.scored, result.failed) == (2, 0)
    assert result.summary_csv.read_bytes() == first.summary_csv.read_bytes()


def test_sigterm_stops_workers_and_leaves_no_partial_output(photos, tmp_path):
    _, manifest = photos
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "repigment.cli", "batch", str(manifest), "--out", str(out), "--workers", "2", "-q"],
        stderr=subprocess.PIPE, text=True, env=cli_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob(".tmp-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(out.glob(".tmp-*")), "scoring never started"
        workers = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip() == "error: interrupted"
    assert not [p for p in out.iterdir() if p.name.startswith((".tmp-", ".old-"))]
    assert not (out / "summary.csv").exists()
    for folder in (p for p in out.iterdir() if p.is_dir()):
        assert (folder / "results.json").is_file()  # only complete series are left
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
