"""Tests of the synthetic serial-photo generator (repigment.synthetic)."""

from __future__ import annotations

import csv
import datetime
import io
import json
import math

import cv2
import numpy as np
import pytest
from PIL import ExifTags, Image
from skimage.color import rgb2lab

from repigment.synthetic import (
    COURSES,
    FITZPATRICK_TYPES,
    SeriesSpec,
    generate_series,
    skin_srgb,
    write_series,
)

SMALL = (640, 480)

# ITA° categories (domain notes): type -> (low, high)
ITA_RANGE = {
    "I": (55, 90),
    "II": (41, 55),
    "III": (28, 41),
    "IV": (10, 28),
    "V": (-30, 10),
    "VI": (-90, -30),
}


def lab_of(rgb) -> np.ndarray:
    return rgb2lab(np.asarray(rgb, dtype=np.float64).reshape(1, 1, 3) / 255.0)[0, 0]


def ita_of(rgb) -> float:
    lab = lab_of(rgb)
    return math.degrees(math.atan2(lab[0] - 50.0, lab[2]))


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def apply_h(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    q = np.c_[pts, np.ones(len(pts))] @ h.T
    return q[:, :2] / q[:, 2:3]


@pytest.fixture(scope="module")
def series():
    """A full 6-visit series with marker and clutter, shared by several tests."""
    return generate_series(SeriesSpec(seed=7, image_size=SMALL, clutter=True))


# --- determinism ---------------------------------------------------------------------------


def test_same_spec_gives_identical_pixels():
    spec = SeriesSpec(seed=3, image_size=(320, 240), weeks=(0, 12, 52), clutter=True)
    a, b = generate_series(spec), generate_series(spec)
    for va, vb in zip(a.visits, b.visits):
        np.testing.assert_array_equal(va.image, vb.image)
        np.testing.assert_array_equal(va.truth_mask_photo, vb.truth_mask_photo)
        np.testing.assert_array_equal(va.truth_mask_baseline, vb.truth_mask_baseline)
        np.testing.assert_array_equal(va.scene_to_photo, vb.scene_to_photo)
        assert va.jpeg_quality == vb.jpeg_quality
    other = generate_series(SeriesSpec(seed=4, image_size=(320, 240), weeks=(0, 12, 52)))
    assert not np.array_equal(a.visits[0].image, other.visits[0].image)


# --- skin colour ---------------------------------------------------------------------------


def test_skin_colour_model_ita_categories_and_contrast():
    rows = []
    prev_ita = math.inf
    prev_de = 0.0
    for t in FITZPATRICK_TYPES:
        normal, depig = skin_srgb(t), skin_srgb(t, pigment=0.0)
        ita_n, ita_d = ita_of(normal), ita_of(depig)
        lab_n, lab_d = lab_of(normal), lab_of(depig)
        de = float(np.linalg.norm(lab_n - lab_d))
        rows.append(f"{t:>3} normal {np.round(normal).astype(int)} ITA {ita_n:6.1f} | "
                    f"depigmented {np.round(depig).astype(int)} ITA {ita_d:5.1f} | dE {de:5.1f}")
        lo, hi = ITA_RANGE[t]
        assert lo < ita_n < hi, f"type {t}: ITA {ita_n:.1f} outside {lo}..{hi}"
        assert ita_n < prev_ita  # darker type -> lower ITA
        assert de > prev_de  # contrast grows with the type, lowest in type I
        # Melanin-free skin: lighter, less yellow, still pink (a* > 0).
        assert lab_d[0] > lab_n[0] and lab_d[2] < lab_n[2] and lab_d[1] > 0
        prev_ita, prev_de = ita_n, de
    print("\nskin colour model (sRGB, nominal lighting):\n" + "\n".join(rows))


@pytest.mark.parametrize("skin_type", ["I", "III", "VI"])
def test_rendered_normal_skin_matches_model(skin_type):
    spec = SeriesSpec(seed=5, skin_type=skin_type, weeks=(0,), image_size=(320, 240),
                      marker=False, lighting_variation=0.0, camera_variation=0.0)
    v = generate_series(spec).visits[0]
    far = ~cv2.dilate(v.truth_mask_photo.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    core = cv2.erode(v.truth_mask_photo.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    normal = np.median(v.image[far], axis=0)
    depig = np.median(v.image[core], axis=0)
    lo, hi = ITA_RANGE[skin_type]
    assert lo - 3 < ita_of(normal) < hi + 3
    assert ita_of(depig) > ita_of(normal) + 5
    assert lab_of(depig)[1] > 0


# --- courses -------------------------------------------------------------------------------


@pytest.mark.parametrize("course", ["perifollicular", "marginal", "combined"])
@pytest.mark.parametrize("residual", [0.3, 0.6])
def test_last_visit_repigmentation_matches_final_residual(course, residual):
    s = generate_series(SeriesSpec(seed=11, course=course, final_residual=residual,
                                   image_size=(480, 360), weeks=(0, 24, 52), marker=False))
    pct = [s.truth_repigmentation_pct(k) for k in range(3)]
    assert pct[0] == 0.0
    assert pct[-1] == pytest.approx((1 - residual) * 100, abs=4.0)
    assert 0 <= pct[1] <= pct[2]


def test_diffuse_reaches_final_residual():
    s = generate_series(SeriesSpec(seed=12, course="diffuse", image_size=(480, 360),
                                   weeks=(0, 52), marker=False))
    assert s.truth_repigmentation_pct(1) == pytest.approx(70.0, abs=5.0)


def test_stable_patch_does_not_change():
    s = generate_series(SeriesSpec(seed=13, course="stable", image_size=(480, 360), marker=False))
    pcts = [s.truth_repigmentation_pct(k) for k in range(len(s.visits))]
    assert all(abs(p) < 0.5 for p in pcts), pcts
    areas = [s.truth_area_cm2(k) for k in range(len(s.visits))]
    assert max(areas) == pytest.approx(min(areas))


def test_spreading_grows_with_a_satellite_outside_the_baseline():
    s = generate_series(SeriesSpec(seed=14, course="spreading", image_size=(480, 360),
                                   weeks=(0, 12, 52), marker=False))
    pct = [s.truth_repigmentation_pct(k) for k in range(3)]
    assert pct[0] == 0 and pct[2] < pct[1] < 0
    assert pct[2] == pytest.approx(-40.0, abs=6.0)
    base = s.visits[0].truth_mask_baseline.astype(np.uint8)
    grown_zone = cv2.dilate(base, np.ones((31, 31), np.uint8)).astype(bool)
    n, _ = cv2.connectedComponents((s.visits[2].truth_mask_baseline & ~grown_zone).astype(np.uint8))
    assert n >= 2, "expected new depigmentation away from the baseline footprint"


def test_every_course_generates():
    for course in COURSES:
        s = generate_series(SeriesSpec(seed=1, course=course, image_size=(320, 240),
                                       weeks=(0, 52), final_residual=0.5))
        assert s.truth_area_px(0) > 0


# --- geometry and truth --------------------------------------------------------------------


def test_visit_metadata(series):
    spec = series.spec
    assert len(series.visits) == len(spec.weeks)
    for v, w in zip(series.visits, spec.weeks):
        assert v.week == w
        assert v.date == spec.treatment_start + datetime.timedelta(days=round(7 * w))
        assert v.image.shape == (SMALL[1], SMALL[0], 3) and v.image.dtype == np.uint8
        assert v.truth_mask_photo.shape == v.truth_mask_baseline.shape == (SMALL[1], SMALL[0])
        assert v.truth_mask_photo.dtype == bool
        assert spec.jpeg_quality[0] <= v.jpeg_quality <= spec.jpeg_quality[1]
        assert v.scene_to_photo.shape == (3, 3)


def test_baseline_masks_agree_at_visit_zero(series):
    v0 = series.visits[0]
    np.testing.assert_array_equal(v0.truth_mask_baseline, v0.truth_mask_photo)


def test_patch_in_frame_and_sized(series):
    w, h = SMALL
    for v in series.visits:
        m = v.truth_mask_photo
        assert m.any()
        inner = np.zeros_like(m)
        inner[3:-3, 3:-3] = True
        assert not (m & ~inner).any(), "patch must stay inside the photo"
    frac = series.visits[0].truth_mask_photo.mean()
    assert 0.03 < frac < 0.30


def test_a_large_patch_may_run_past_the_frame():
    spec = SeriesSpec(seed=3, marker=False, patch_share=(0.5, 0.6), image_size=SMALL, weeks=(0, 4),
                      camera_variation=0.0)
    baseline = generate_series(spec).visits[0].truth_mask_photo
    assert baseline.mean() > 0.35
    edges = np.concatenate([baseline[0], baseline[-1], baseline[:, 0], baseline[:, -1]])
    assert edges.any(), "a patch this large is cut by the frame"


def test_truth_masks_consistent_with_homographies(series):
    h0 = series.visits[0].scene_to_photo
    a0 = series.truth_area_px(0)
    for v in series.visits[1:]:
        m = h0 @ np.linalg.inv(v.scene_to_photo)
        warped = cv2.warpPerspective(v.truth_mask_photo.astype(np.uint8), m, SMALL,
                                     flags=cv2.INTER_NEAREST).astype(bool)
        mismatch = np.count_nonzero(warped ^ v.truth_mask_baseline) / a0
        assert mismatch < 0.06, mismatch


def test_truth_area_in_cm2_agrees_with_marker_scale(series):
    for k in (0, len(series.visits) - 1):
        from_px = series.truth_area_px(k) * series.baseline_mm_per_px**2 / 100.0
        assert series.truth_area_cm2(k) == pytest.approx(from_px, rel=0.08)


def test_camera_variation_zero_gives_identical_pose():
    s = generate_series(SeriesSpec(seed=2, image_size=(320, 240), weeks=(0, 4, 8),
                                   camera_variation=0.0, lighting_variation=0.0, course="stable"))
    for v in s.visits[1:]:
        np.testing.assert_allclose(v.scene_to_photo, s.visits[0].scene_to_photo)
        np.testing.assert_allclose(v.marker_corners, s.visits[0].marker_corners)
        diff = np.abs(v.image.astype(int) - s.visits[0].image.astype(int))
        assert np.median(diff) <= 4  # only sensor noise differs


def test_poses_vary_with_camera_variation(series):
    corners = np.array([[0, 0], [SMALL[0], 0], [SMALL[0], SMALL[1]], [0, SMALL[1]]], float)
    h0 = series.visits[0].scene_to_photo
    moves = [np.abs(apply_h(h0 @ np.linalg.inv(v.scene_to_photo), corners) - corners).max()
             for v in series.visits[1:]]
    assert max(moves) > 10


# --- marker --------------------------------------------------------------------------------


def test_marker_detected_in_every_photo(series):
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    detector = cv2.aruco.ArucoDetector(
        cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), params)
    for v in series.visits:
        img = jpeg_roundtrip(v.image, v.jpeg_quality)
        corners, ids, _ = detector.detectMarkers(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
        assert ids is not None and series.marker_id in ids.ravel()
        found = corners[list(ids.ravel()).index(series.marker_id)].reshape(4, 2)
        np.testing.assert_allclose(found, v.marker_corners, atol=1.6)


def test_marker_size_and_baseline_scale(series):
    corners = series.visits[0].marker_corners
    side_px = math.sqrt(cv2.contourArea(corners.astype(np.float32)))
    assert series.baseline_mm_per_px == pytest.approx(series.spec.marker_mm / side_px, rel=1e-6)
    # 20 mm marker at about 120-220 px in a 1200 px wide photo.
    assert 120 * SMALL[0] / 1200 * 0.85 < side_px < 220 * SMALL[0] / 1200 * 1.15
    # The true scale at the marker agrees with the scene scale and the baseline homography.
    h0 = series.visits[0].scene_to_photo
    centre = corners.mean(axis=0)
    back = apply_h(np.linalg.inv(h0), np.array([centre, centre + [1, 0], centre + [0, 1]]))
    jac = np.array([back[1] - back[0], back[2] - back[0]])
    mm_per_px = series.mm_per_scene_px * math.sqrt(abs(np.linalg.det(jac)))
    assert series.baseline_mm_per_px == pytest.approx(mm_per_px, rel=0.03)


def test_no_marker():
    s = generate_series(SeriesSpec(seed=1, image_size=(320, 240), weeks=(0, 4), marker=False))
    assert s.baseline_mm_per_px is None and s.marker_id is None
    assert all(v.marker_corners is None for v in s.visits)


# --- registration on skin texture ---------------------------------------------------------


def test_skin_texture_supports_feature_registration():
    """SIFT on normal skin (patch and re-stuck marker masked) recovers the true mapping."""
    s = generate_series(SeriesSpec(seed=21, skin_type="IV", image_size=(960, 720), weeks=(0, 24)))
    sift = cv2.SIFT_create(contrastThreshold=0.02)

    def features(v):
        gray = cv2.cvtColor(jpeg_roundtrip(v.image, v.jpeg_quality), cv2.COLOR_RGB2GRAY)
        patch = v.truth_mask_photo.astype(np.uint8) * 255
        mask = 255 - cv2.dilate(patch, np.ones((15, 15), np.uint8))
        c = v.marker_corners
        cv2.fillConvexPoly(mask, np.round(c.mean(0) + (c - c.mean(0)) * 2.0).astype(np.int32), 0)
        return sift.detectAndCompute(gray, mask)

    k0, d0 = features(s.visits[0])
    k1, d1 = features(s.visits[1])
    pairs = cv2.BFMatcher().knnMatch(d1, d0, k=2)
    good = [a for a, b in pairs if a.distance < 0.75 * b.distance]
    assert len(good) >= 30
    src = np.float32([k1[m.queryIdx].pt for m in good])
    dst = np.float32([k0[m.trainIdx].pt for m in good])
    h_est, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    assert inliers.sum() >= 20
    h_true = s.visits[0].scene_to_photo @ np.linalg.inv(s.visits[1].scene_to_photo)
    ys, xs = np.nonzero(s.visits[1].truth_mask_photo)
    pts = np.c_[xs, ys][:: max(1, len(xs) // 500)].astype(float)
    err = np.linalg.norm(apply_h(h_est, pts) - apply_h(h_true, pts), axis=1)
    assert np.median(err) < 1.5


# --- wrong place ---------------------------------------------------------------------------


def test_wrong_place_visit():
    s = generate_series(
        SeriesSpec(seed=8, image_size=(320, 240), weeks=(0, 4, 8), wrong_place_visits=(1,))
    )
    v = s.visits[1]
    assert v.wrong_place and not s.visits[0].wrong_place and not s.visits[2].wrong_place
    assert not v.truth_mask_baseline.any()
    assert v.truth_mask_photo.any()
    assert math.isnan(s.truth_repigmentation_pct(1))
    # A different scene: its patch is not the baseline patch seen through some pose.
    assert not np.array_equal(v.truth_mask_photo, s.visits[0].truth_mask_photo)


# --- writing -------------------------------------------------------------------------------


def test_write_series_layout(tmp_path):
    spec = SeriesSpec(seed=9, image_size=(320, 240), weeks=(0, 4, 24), wrong_place_visits=(2,),
                      exif_dates=True)
    s = generate_series(spec)
    out = write_series(s, tmp_path / "series")
    assert out == tmp_path / "series"
    with open(out / "visits.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["date", "image"]
    assert len(rows) == 1 + len(spec.weeks)
    doc = json.loads((out / "truth.json").read_text())
    for key in ("spec", "mm_per_scene_px", "baseline_mm_per_px", "treatment_start", "visits"):
        assert key in doc
    assert doc["spec"]["weeks"] == [0.0, 4.0, 24.0]
    assert doc["treatment_start"] == "2026-01-05"
    for k, ((date, name), v, jv) in enumerate(zip(rows[1:], s.visits, doc["visits"])):
        assert name == f"visit_{k:02d}_{v.date.isoformat()}.jpg" == jv["image"]
        assert date == v.date.isoformat() == jv["date"]
        for key in ("week", "wrong_place", "truth_area_px", "truth_repigmentation_pct",
                    "truth_area_cm2", "jpeg_quality", "scene_to_photo"):
            assert key in jv
        with Image.open(out / name) as im:
            assert im.format == "JPEG" and im.size == (320, 240)
            stamp = im.getexif().get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal]
            assert stamp.startswith(v.date.strftime("%Y:%m:%d"))
        stem = name[:-4]
        for which, mask in (("baseline", v.truth_mask_baseline), ("photo", v.truth_mask_photo)):
            png = np.asarray(Image.open(out / "truth" / f"{stem}_{which}.png"))
            assert png.dtype == np.uint8 and set(np.unique(png)) <= {0, 255}
            np.testing.assert_array_equal(png == 255, mask)
        assert np.allclose(jv["scene_to_photo"], v.scene_to_photo)
    assert doc["visits"][0]["truth_repigmentation_pct"] == 0.0
    assert doc["visits"][1]["truth_area_px"] == s.truth_area_px(1)
    assert doc["visits"][2]["wrong_place"] is True
    assert doc["visits"][2]["truth_area_px"] is None
    assert doc["visits"][2]["truth_repigmentation_pct"] is None


def test_write_series_without_exif(tmp_path):
    s = generate_series(SeriesSpec(seed=9, image_size=(320, 240), weeks=(0,), marker=False))
    out = write_series(s, tmp_path)
    with Image.open(next(out.glob("visit_00_*.jpg"))) as im:
        assert ExifTags.Base.DateTimeOriginal not in im.getexif().get_ifd(ExifTags.IFD.Exif)
    assert json.loads((out / "truth.json").read_text())["baseline_mm_per_px"] is None


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"skin_type": "VII"}, "skin_type must be one of"),
        ({"skin_type": "3"}, "skin_type"),
        ({"course": "fast"}, "course must be one of"),
        ({"weeks": ()}, "at least one visit"),
        ({"weeks": (0, 8, 4)}, "strictly increasing"),
        ({"weeks": (0, 4, 4)}, "strictly increasing"),
        ({"weeks": (0, 0.05)}, "later day"),
        ({"weeks": (0, float("nan"))}, "finite"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"image_size": (100, 80)}, "image_size"),
        ({"image_size": (3000, 500)}, "aspect"),
        ({"image_size": (640,)}, "image_size"),
        ({"marker_mm": 0}, "marker_mm"),
        ({"final_residual": -0.1}, "final_residual"),
        ({"final_residual": 1.5}, "spreading"),
        ({"camera_variation": 1.5}, "camera_variation"),
        ({"lighting_variation": -1}, "lighting_variation"),
        ({"jpeg_quality": (95, 80)}, "jpeg_quality"),
        ({"jpeg_quality": (0, 80)}, "jpeg_quality"),
        ({"wrong_place_visits": (0,)}, "baseline"),
        ({"wrong_place_visits": (6,)}, "wrong_place_visits"),
        ({"wrong_place_visits": (2, 2)}, "repeat"),
        ({"treatment_start": "2026-01-05"}, "treatment_start"),
        ({"marker": "yes"}, "marker must be True or False"),
        ({"patch_share": (0.3, 0.7)}, "patch_share"),
        ({"patch_share": (0.3, 0.2)}, "patch_share"),
        ({"patch_share": 0.3}, "patch_share"),
    ],
)
def test_bad_spec_values_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SeriesSpec(**{"seed": 1, **kwargs})


def test_spec_normalises_and_serialises():
    spec = SeriesSpec(seed=np.int64(3), weeks=[0, 4], course="spreading", final_residual=1.8,
                      wrong_place_visits=[1])
    assert spec.weeks == (0.0, 4.0) and spec.seed == 3 and spec.wrong_place_visits == (1,)
    d = spec.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["treatment_start"] == "2026-01-05"


def test_generate_series_rejects_non_spec():
    with pytest.raises(TypeError):
        generate_series({"seed": 1})
