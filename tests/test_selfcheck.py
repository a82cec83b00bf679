"""Self-checks against known truth: a visit whose figure its own photo contradicts is flagged."""

import csv
import io
import json

import cv2
import numpy as np
import pytest

from repigment import analyze_series
from repigment.color import linear_to_srgb, srgb_to_linear
from repigment.selfcheck import evidence_residual_fraction, footprint_contrast, looks_like_skin, temporal_outliers
from repigment.synthetic import SeriesSpec, generate_series, write_series


def _patch_photo(depigmented=(235, 205, 195), normal=(170, 120, 90)):
    photo = np.empty((240, 320, 3), np.uint8)
    photo[:] = normal
    patch = np.zeros((240, 320), bool)
    patch[70:170, 100:220] = True
    photo[patch] = depigmented
    return photo, patch


def test_footprint_contrast_falls_with_the_share_still_depigmented():
    photo, patch = _patch_photo()
    full = footprint_contrast(photo, patch)
    half = photo.copy()
    half[70:170, 100:220][:, ::2] = (170, 120, 90)  # every other column repigmented
    assert evidence_residual_fraction(footprint_contrast(half, patch), full) == pytest.approx(0.5, abs=0.08)
    gone = np.full_like(photo, (170, 120, 90))
    assert evidence_residual_fraction(footprint_contrast(gone, patch), full) == pytest.approx(0.0, abs=0.02)


def test_a_too_small_footprint_gives_no_evidence():
    photo, _ = _patch_photo()
    tiny = np.zeros((240, 320), bool)
    tiny[100:103, 100:103] = True
    assert footprint_contrast(photo, tiny) is None


def test_cloth_does_not_look_like_skin_but_depigmented_skin_does():
    normal_lab = np.array([55.0, 15.0, 22.0])
    region = np.ones((8, 8), bool)
    olive = np.full((8, 8, 3), (120, 120, 70), np.uint8)
    pale_pink = np.full((8, 8, 3), (235, 205, 195), np.uint8)
    assert looks_like_skin(olive, region, normal_lab) < 0.1
    assert looks_like_skin(pale_pink, region, normal_lab) > 0.9


def test_temporal_outliers_name_only_the_disagreeing_visit():
    flagged = temporal_outliers([0, 4, 8, 12, 24], [0.0, 2.0, 97.0, 5.0, 12.0])
    assert list(flagged) == [2] and "week 4" in flagged[2] and "week 12" in flagged[2]
    assert temporal_outliers([0, 4, 8, 12, 24], [0.0, 5.0, 12.0, 30.0, 60.0]) == {}
    assert temporal_outliers([0, 4, 8], [0.0, None, 90.0]) == {}


def _washed_out(path):
    """A cool, hazy, washed-out light: blue gain, lower exposure, and a veil of flare."""
    bgr = cv2.imread(str(path))
    linear = srgb_to_linear(bgr[..., ::-1].copy()).astype(np.float32)
    hazy = np.clip(linear * np.array([0.85, 0.97, 1.2], np.float32) * 0.8 + 0.10, 0, 1)
    cv2.imwrite(str(path), linear_to_srgb(hazy)[..., ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 90])


@pytest.fixture(scope="module")
def washed_out_series(tmp_path_factory):
    """A stable type II patch (truth 0 % at every visit), one visit under a washed-out cool light."""
    folder = tmp_path_factory.mktemp("washed") / "series"
    spec = SeriesSpec(seed=11, skin_type="II", course="stable", marker=False, image_size=(900, 675))
    write_series(generate_series(spec), folder)
    truth = json.loads((folder / "truth.json").read_text())
    _washed_out(folder / truth["visits"][1]["image"])
    out = folder.parent / "out"
    return analyze_series(folder, out), out


def test_no_visit_is_far_off_without_a_flag_and_its_range_covers_the_truth(washed_out_series):
    result, _ = washed_out_series
    washed = result.visits[1]
    assert washed.ok
    for visit in result.visits:
        # Truth is 0 % at every visit of a stable patch.
        if abs(visit.score.repigmentation_pct) > 5.0:
            assert visit.needs_review, (visit.image, visit.score.repigmentation_pct)
            low, high = visit.intervals["repigmentation_pct"]
            assert low <= 5.0, (low, high)
    # Only the washed-out photo is in question, and the notes name it, not the baseline.
    assert all(not v.needs_review for v in result.visits if v is not washed)
    assert not any("baseline photo is in doubt" in note for v in result.visits for note in v.notes)


def test_flagged_visits_are_left_out_of_milestones_and_written_out(washed_out_series):
    result, out = washed_out_series
    assert result.milestones.vasi50_week is None
    document = json.loads((out / "results.json").read_text())
    flagged = [v for v in document["visits"] if v["needs_review"]]
    assert flagged  # the washed-out visit (about 100 % read for a stable patch)
    assert [v["image"] for v in flagged] == [v.image for v in result.visits if v.needs_review]
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert [r["image"] for r in rows if r["needs_review"] == "True"] == [v["image"] for v in flagged]
    assert all(r["review_reasons"] for r in rows if r["needs_review"] == "True")
