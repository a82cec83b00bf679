"""Property-based tests: parsers, path confinement, scoring invariants, ROI masks and a loader fuzz.

Each property is bounded (``max_examples``) so the whole file runs in well under
30 s; ``deadline=None`` because the machine is shared and timings vary.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from repigment import io as rio
from repigment.core.scoring import find_milestones, score_visit, vasi_residual_level
from repigment.core.segmentation import roi_mask
from repigment.errors import ImageLoadError, InvalidParameterError, SeriesError
from repigment.series.discovery import date_from_filename, parse_iso_date, read_visits_csv, resolve_inside

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def series_dir(tmp_path_factory) -> Path:
    """A series folder with a sub-folder and a link that leads out of it."""
    root = tmp_path_factory.mktemp("props")
    folder = root / "series"
    (folder / "sub").mkdir(parents=True)
    (root / "outside").mkdir()
    (folder / "out").symlink_to(root / "outside")
    (folder / "up").symlink_to("..")
    return folder


# --------------------------------------------------------------------------
# visits.csv


@settings(max_examples=150, **SETTINGS)
@given(data=st.one_of(st.binary(max_size=400), st.text(max_size=300).map(lambda t: t.encode("utf-8")),
                      st.lists(st.sampled_from(["date", "image", ",", "\n", '"', "2026-01-05", "a.jpg", "../x",
                                                "\ufeff", "\r", "\x00", " ", "2026-02-30", "/etc/x"]),
                               max_size=30).map(lambda parts: "".join(parts).encode())))
def test_visits_csv_never_raises_anything_but_series_error(series_dir, data):
    path = series_dir / "visits.csv"
    path.write_bytes(data)
    try:
        photos = read_visits_csv(path)
    except SeriesError as exc:
        assert "\n" not in str(exc), repr(str(exc))
        return
    root = series_dir.resolve()
    assert photos and all(root in p.path.parents for p in photos)


NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 _\-]{0,20}\.(jpg|png|heic)", fullmatch=True).filter(
    lambda n: n.strip() == n
)


# --------------------------------------------------------------------------
# batch manifest


@settings(max_examples=150, **SETTINGS)
@given(data=st.one_of(st.binary(max_size=400),
                      st.lists(st.sampled_from(["patient,patch,date,image", "treatment_start", "marker_mm", ",",
                                                "\n", '"', "P1", "face", "2026-01-05", "a.jpg", "../x", "\ufeff",
                                                "\r", "\x00", " ", "2026-02-30", "/etc/x", "0", "-5", "nan"]),
                               max_size=40).map(lambda parts: "".join(parts).encode())))
def test_manifest_never_raises_anything_but_series_error(series_dir, data):
    from repigment.batch import read_manifest

    path = series_dir / "manifest.csv"
    path.write_bytes(data)
    try:
        manifest = read_manifest(path)
    except SeriesError as exc:
        assert "\n" not in str(exc), repr(str(exc))
        return
    root = series_dir.resolve()
    assert all(root in v.path.parents for series in manifest.series for v in series.visits)


@settings(max_examples=40, **SETTINGS)
@given(rows=st.lists(st.tuples(st.sampled_from(["P-1", "P-2", "P 3"]), st.sampled_from(["face", "left hand"]),
                               st.dates(), NAME), min_size=1, max_size=15, unique_by=lambda r: (r[0], r[1], r[3])))
def test_manifest_groups_rows_into_series(series_dir, rows):
    from repigment.batch import read_manifest

    # Distinct stems within a series (masks are named by stem).
    stems = {}
    for patient, patch, _, name in rows:
        key = (patient, patch, Path(name).stem.lower())
        assume(key not in stems)
        stems[key] = True
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["patient", "patch", "date", "image"])
    for patient, patch, date, name in rows:
        writer.writerow([patient, patch, date.isoformat(), name])
    path = series_dir / "manifest.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    manifest = read_manifest(path)
    expected = {}
    for patient, patch, date, name in rows:
        expected.setdefault((patient, patch), []).append((date, name))
    got = {(s.patient, s.patch): [(v.date, v.image) for v in s.visits] for s in manifest.series}
    assert got == expected
    assert len({s.folder for s in manifest.series}) == len(manifest.series)


@settings(max_examples=60, **SETTINGS)
@given(rows=st.lists(st.tuples(st.dates(), NAME), min_size=1, max_size=20), bom=st.booleans(),
       extra=st.booleans())
def test_visits_csv_round_trips_dates_and_names(series_dir, rows, bom, extra):
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["Date", "notes", "IMAGE"] if extra else ["date", "image"])
    for date, name in rows:
        writer.writerow([date.isoformat(), "x, \"quoted\"", name] if extra else [date.isoformat(), name])
    path = series_dir / "visits.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + buffer.getvalue().encode("utf-8"))
    photos = read_visits_csv(path)
    assert [(p.date, p.path.name) for p in photos] == rows
    assert all(p.path.parent == series_dir.resolve() for p in photos)


# --------------------------------------------------------------------------
# Dates


@settings(max_examples=300, **SETTINGS)
@given(text=st.one_of(st.text(max_size=30), st.from_regex(r"\s*\d{4}-\d{2}-\d{2}\s*", fullmatch=True)))
def test_parse_iso_date_returns_a_date_or_a_series_error(text):
    try:
        result = parse_iso_date(text)
    except SeriesError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(result, dt.date) and result.isoformat() == text.strip()


@settings(max_examples=200, **SETTINGS)
@given(date=st.dates())
def test_parse_iso_date_round_trips(date):
    assert parse_iso_date(date.isoformat()) == date
    assert parse_iso_date(f"  {date.isoformat()}\n") == date


@settings(max_examples=300, **SETTINGS)
@given(name=st.one_of(st.text(max_size=40), st.from_regex(r"[a-z_]*\d{4}[-_]?\d{2}[-_]?\d{2}[a-z_]*\.jpg")))
def test_date_from_filename_never_raises(name):
    result = date_from_filename(name)
    assert result is None or isinstance(result, dt.date)


@settings(max_examples=200, **SETTINGS)
@given(date=st.dates(min_value=dt.date(1000, 1, 1)), sep=st.sampled_from(["-", "_", ""]),
       prefix=st.sampled_from(["", "visit_03_", "IMG-", "left cheek "]), ext=st.sampled_from([".jpg", ".HEIC", ""]))
def test_date_from_filename_round_trips(date, sep, prefix, ext):
    stamp = f"{date.year:04d}{sep}{date.month:02d}{sep}{date.day:02d}"
    assert date_from_filename(f"{prefix}{stamp}{ext}") == date


# --------------------------------------------------------------------------
# Path confinement

PARTS = st.sampled_from(["..", ".", "sub", "out", "up", "a.jpg", "", "~", "\\..", "..\\x", "x" * 300])


@settings(max_examples=300, **SETTINGS)
@given(relative=st.one_of(st.text(max_size=40), st.lists(PARTS, min_size=1, max_size=6).map("/".join),
                          st.lists(PARTS, min_size=1, max_size=4).map(lambda p: "/" + "/".join(p))))
def test_resolve_inside_never_leaves_the_folder(series_dir, relative):
    try:
        resolved = resolve_inside(series_dir, relative)
    except SeriesError as exc:
        assert "\n" not in str(exc), repr(str(exc))
        return
    root = series_dir.resolve()
    assert resolved == root or root in resolved.parents
    # The folders on the way are real folders inside; only the file itself may
    # be a link (read through, as annexed datasets store photos).
    assert resolved.parent == Path(os.path.realpath(resolved.parent))


# --------------------------------------------------------------------------
# Scoring


@st.composite
def mask_pairs(draw):
    shape = draw(st.tuples(st.integers(1, 12), st.integers(1, 12)))
    base = draw(hnp.arrays(bool, shape))
    assume(base.any())
    visit = draw(st.one_of(st.just(base.copy()), hnp.arrays(bool, shape)))
    return base, visit


@settings(max_examples=200, **SETTINGS)
@given(masks=mask_pairs(), mm_per_px=st.one_of(st.none(), st.floats(0.01, 5)))
def test_score_visit_invariants(masks, mm_per_px):
    base, visit = masks
    score = score_visit(base, visit, mm_per_px=mm_per_px)
    assert score.area_px >= 0 and score.new_depigmentation_px >= 0
    assert score.area_cm2 is None or score.area_cm2 >= 0
    assert score.repigmentation_pct <= 100.0
    assert 0.0 <= score.residual_fraction <= 1.0
    assert score.vasi_residual_depigmentation in (0, 10, 25, 50, 75, 90, 100)
    if np.array_equal(base, visit):
        assert score.repigmentation_pct == 0.0 and score.residual_fraction == 1.0
        assert score.new_depigmentation_px == 0


@settings(max_examples=200, **SETTINGS)
@given(a=st.floats(0, 1), b=st.floats(0, 1))
def test_vasi_residual_level_is_monotone(a, b):
    low, high = sorted((a, b))
    assert vasi_residual_level(low) <= vasi_residual_level(high)


@settings(max_examples=200, **SETTINGS)
@given(data=st.lists(st.tuples(st.floats(-20, 200, allow_nan=False),
                               st.one_of(st.none(), st.floats(-300, 100, allow_nan=False))), max_size=12))
def test_find_milestones_weeks_come_from_the_input_in_order(data):
    data = sorted(data, key=lambda item: item[0])
    weeks = [w for w, _ in data]
    improvement = [v for _, v in data]
    m = find_milestones(weeks, improvement)
    found = [m.vasi50_week, m.vasi75_week, m.vasi90_week]
    assert all(w is None or w in weeks for w in found)
    # Reaching 90 % means 75 % and 50 % were reached, no later.
    for earlier, later in zip(found, found[1:]):
        if later is not None:
            assert earlier is not None and earlier <= later


# --------------------------------------------------------------------------
# Regions of interest

COORD = st.one_of(st.floats(-1e3, 1e3), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6))
# Polygon vertices within int32 range plus non-finite values; larger ones must be refused (test below).
VERTEX = st.one_of(st.floats(-1e3, 1e3), st.floats(-1e5, 1e5), st.sampled_from([float("nan"), float("inf")]))


@settings(max_examples=150, **SETTINGS)
@given(shape=st.tuples(st.integers(1, 40), st.integers(1, 40)),
       roi=st.one_of(st.lists(COORD, min_size=0, max_size=6),
                     st.lists(st.tuples(VERTEX, VERTEX), min_size=0, max_size=8)))
def test_roi_mask_stays_inside_the_image(shape, roi):
    try:
        mask = roi_mask(shape, roi)
    except InvalidParameterError as exc:
        assert "\n" not in str(exc)
        return
    assert mask.dtype == bool and mask.shape == shape and mask.any()


def test_roi_mask_polygon_with_huge_vertices_is_an_invalid_parameter():
    with pytest.raises(InvalidParameterError):
        roi_mask((20, 20), [(0.0, 0.0), (1e12, 0.0), (0.0, 1e12)])


# --------------------------------------------------------------------------
# Loader fuzz


def _seed(fmt: str, **kwargs) -> bytes:
    y, x = np.mgrid[0:64, 0:80]
    rgb = np.stack([x * 3, y * 4, (x + y) * 2], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


SEEDS = {"JPEG": _seed("JPEG", quality=80), "PNG": _seed("PNG"), "WEBP": _seed("WEBP", quality=80)}
EXTREMES = [0, 1, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]


@st.composite
def mutated(draw):
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "field", "insert", "delete", "duplicate"]))
        if op == "flip":
            data[where] ^= 1 << draw(st.integers(0, 7))
        elif op == "field" and where + 4 <= len(data):  # a size or offset field set to an extreme
            data[where:where + 4] = struct.pack(draw(st.sampled_from([">I", "<I"])), draw(st.sampled_from(EXTREMES)))
        elif op == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[where:where + draw(st.integers(1, 64))]
        elif op == "duplicate":
            data[where:where] = data[where:where + draw(st.integers(1, 64))]
    return bytes(data)


@settings(max_examples=200, **SETTINGS)
@given(data=mutated(), max_side=st.one_of(st.none(), st.integers(16, 128)))
def test_load_image_on_mutated_files_raises_only_image_load_errors(data, max_side):
    try:
        loaded = rio.load_image(data, max_side=max_side)
    except ImageLoadError as exc:
        assert "\n" not in str(exc), repr(str(exc))
        return
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.ndim == 3 and loaded.rgb.shape[2] == 3
    assert loaded.rgb.flags.c_contiguous
