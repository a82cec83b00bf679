"""Self-checks against known truth: a visit whose figure its own photo contradicts is flagged."""

import csv
import datetime
import io
import json
import re

import cv2
import numpy as np
import pytest
from conftest import analyze_to

from repigment.core.color import linear_to_srgb, srgb_to_linear
from repigment.series.selfcheck import (
    evidence_residual_fraction,
    footprint_contrast,
    looks_like_skin,
    temporal_outliers,
    unconfirmed_spots,
)
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


def test_a_visit_flagged_by_its_own_photo_is_judged_by_the_course_and_spares_its_neighbours():
    import datetime as dt

    from repigment.series.pipeline import VisitResult, _check_course

    weeks = [0.0, 4.0, 8.0, 12.0, 24.0, 52.0]
    figures = [0.0, 4.0, 7.0, 100.0, 19.0, 42.0]  # week 12: a washed-out photo read as fully repigmented
    visits = [VisitResult(image=f"v{i}.jpg", date=dt.date(2026, 1, 5) + dt.timedelta(weeks=w), weeks_since_start=w,
                          intervals={"repigmentation_pct": (f - 1.0, f + 1.0)}) for i, (w, f) in enumerate(zip(weeks, figures))]
    visits[3].flag_for_review("taken under a light far from the baseline's", plausible_pct=(90.0, 100.0))
    _check_course(visits, weeks, figures)
    assert [visit.needs_review for visit in visits] == [False, False, False, True, False, False]
    assert any("breaks away" in reason and "7 % at week 8" in reason for reason in visits[3].review_reasons)
    low, high = visits[3].intervals["repigmentation_pct"]
    assert low <= 7.0 and high >= 100.0  # covers the course around it, and the figure
    assert visits[4].intervals["repigmentation_pct"] == (18.0, 20.0)


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
    return analyze_to(folder, out), out


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


@pytest.fixture(scope="module")
def missed_patch_series(tmp_path_factory):
    """Every follow-up visit's mask comes back empty while its photo still shows the patch
    (a segmentation that fails the way a washed-out light made it fail)."""
    import dataclasses

    import repigment.series.photos as photos
    import repigment.series.pipeline as pipeline

    folder = tmp_path_factory.mktemp("missed") / "series"
    spec = SeriesSpec(seed=5, skin_type="IV", course="stable", image_size=(900, 675), weeks=(0, 4, 24))
    write_series(generate_series(spec), folder)
    original = pipeline.depigmented_mask

    def empty_at_visits(rgb, **options):
        result = original(rgb, **options)
        if options.get("threshold") is None:  # the baseline
            return result
        return dataclasses.replace(result, mask=np.zeros_like(result.mask))

    patch = pytest.MonkeyPatch()
    patch.setattr(pipeline, "depigmented_mask", empty_at_visits)
    patch.setattr(photos, "depigmented_mask", empty_at_visits)
    try:
        out = folder.parent / "out"
        return analyze_to(folder, out), out
    finally:
        patch.undo()


def test_an_empty_mask_over_a_patch_that_still_stands_out_is_flagged(missed_patch_series):
    result, _ = missed_patch_series
    for visit in result.visits[1:]:
        assert visit.score.repigmentation_pct > 95  # what the broken mask says
        assert visit.needs_review and "still depigmented" in visit.review_reasons[0]
        assert visit.evidence_residual > 0.8
        low, high = visit.intervals["repigmentation_pct"]
        assert low <= 20.0  # the range reaches what the photo shows (truth: 0 %)


def test_flagged_visits_are_left_out_of_milestones_and_written_out(missed_patch_series):
    result, out = missed_patch_series
    assert result.milestones.vasi50_week is None  # 100 % "reached" at week 4 would be a milestone
    document = json.loads((out / "results.json").read_text())
    flagged = [v for v in document["visits"] if v["needs_review"]]
    assert [v["image"] for v in flagged] == [v.image for v in result.visits[1:]]
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert [r["image"] for r in rows if r["needs_review"] == "True"] == [v["image"] for v in flagged]
    assert all(r["review_reasons"] for r in rows if r["needs_review"] == "True")


def test_a_washed_out_visit_is_matched_to_the_baseline_on_shared_skin(washed_out_series):
    result, _ = washed_out_series
    washed = result.visits[1]
    assert any("matched to the baseline on shared normal skin" in n and "haze" in n for n in washed.notes)
    assert abs(washed.score.repigmentation_pct) <= 3.0  # truth 0 %; 100 % before matching


@pytest.fixture(scope="module")
def dark_visit_series(tmp_path_factory):
    """A stable type III patch (truth 0 %), one visit photographed 1.5 EV too dark."""
    folder = tmp_path_factory.mktemp("dark") / "series"
    spec = SeriesSpec(seed=12, skin_type="III", course="stable", image_size=(900, 675), weeks=(0, 4, 8, 12))
    write_series(generate_series(spec), folder)
    truth = json.loads((folder / "truth.json").read_text())
    path = folder / truth["visits"][2]["image"]
    linear = srgb_to_linear(cv2.imread(str(path))[..., ::-1].copy())
    cv2.imwrite(str(path), linear_to_srgb(linear * np.float32(0.354))[..., ::-1].copy(),
                [cv2.IMWRITE_JPEG_QUALITY, 90])
    return analyze_to(folder, folder.parent / "out")


def test_a_visit_under_a_light_far_from_the_baseline_needs_review_with_a_wider_range(dark_visit_series):
    dark = dark_visit_series.visits[2]
    assert dark.ok and dark.needs_review
    reason = dark.review_reasons[0]
    assert "light far from the baseline's" in reason
    assert 0.25 <= float(re.search(r"exposure x([0-9.]+)", reason).group(1)) <= 0.45  # truth: 0.354
    low, high = dark.intervals["repigmentation_pct"]
    assert low <= dark.score.repigmentation_pct - 10 and high >= dark.score.repigmentation_pct + 10
    # The others were taken under ordinary light and stay as they were.
    assert [v.needs_review for v in dark_visit_series.visits] == [False, False, True, False]


@pytest.fixture(scope="module")
def overexposed_visit_series(tmp_path_factory):
    """A stable type III patch (truth 0 %) whose week-12 photo is 1.5 EV overexposed: the patch clips to white."""
    folder = tmp_path_factory.mktemp("overexposed") / "series"
    spec = SeriesSpec(seed=7026, skin_type="III", course="stable", image_size=(640, 480), weeks=(0, 4, 8, 12),
                      light_casts=0.25)
    write_series(generate_series(spec), folder)
    assert json.loads((folder / "truth.json").read_text())["visits"][3]["light"] == "+1.5 EV"
    return analyze_to(folder, folder.parent / "out")


def test_a_patch_overexposed_to_white_stays_depigmented_through_the_colour_match(overexposed_visit_series):
    """Matched down to the baseline's light, clipped white would pass for normal skin."""
    bright = overexposed_visit_series.visits[3]
    assert bright.ok and bright.needs_review  # a light this far off is still for review
    assert abs(bright.score.repigmentation_pct) <= 5.0  # 15.7 % when clipped white was scaled down
    low, high = bright.intervals["repigmentation_pct"]
    assert low <= 0.0 <= high


@pytest.fixture(scope="module")
def warm_light_series(tmp_path_factory):
    """A stable type V patch (truth 0 %) on 40-50 % of a frame that cuts it; the week-4 photo under a warm light."""
    folder = tmp_path_factory.mktemp("warm") / "series"
    spec = SeriesSpec(seed=22, skin_type="V", course="stable", marker=False, image_size=(900, 675), weeks=(0, 4, 8),
                      patch_share=(0.4, 0.5))
    write_series(generate_series(spec), folder)
    truth = json.loads((folder / "truth.json").read_text())
    path = folder / truth["visits"][1]["image"]
    linear = srgb_to_linear(cv2.imread(str(path))[..., ::-1].copy())
    warm = linear_to_srgb(np.clip(linear * np.array([1.4, 1.0, 0.7], np.float32), 0, 1))
    cv2.imwrite(str(path), warm[..., ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return analyze_to(folder, folder.parent / "out"), warm


def test_a_patch_whose_red_clips_under_a_warm_light_stays_skin_through_the_colour_match(warm_light_series):
    """Scaled back to the baseline's light, the clipped patch turns grey-blue: no skin hue, no patch."""
    result, warm = warm_light_series
    assert np.mean(warm[..., 0] >= 250) > 0.2  # the light clips the patch's red channel
    visit = result.visits[1]
    assert visit.ok
    assert abs(visit.score.repigmentation_pct) <= 3.0  # 97.7 % when the matched photo's own skin was judged


def test_match_to_reference_removes_a_haze_and_a_colour_cast():
    from repigment.core.color import apply_gains, match_to_reference

    rng = np.random.default_rng(0)
    reference = np.empty((120, 160, 3), np.uint8)
    reference[:, :80] = np.clip(rng.normal((175, 125, 95), 6, (120, 80, 3)), 0, 255)  # skin
    reference[:, 80:] = np.clip(rng.normal((25, 20, 18), 3, (120, 80, 3)), 0, 255)  # dark hair / background
    hazy = apply_gains(reference, (1.0 / 1.2, 1.0, 1.0 / 0.8))  # a cool cast...
    linear = srgb_to_linear(hazy).astype(np.float32) * 0.8 + 0.08  # ...darker, under a veil
    hazy = linear_to_srgb(linear)
    skin = np.zeros((120, 160), bool)
    skin[:, :80] = True
    matched = match_to_reference(hazy, reference, skin, context=~skin)
    assert matched.veil is not None and np.all(matched.veil > 0.04)
    error = np.abs(matched.rgb.astype(int) - reference.astype(int))
    assert np.median(error[skin]) <= 3 and np.median(error[~skin]) <= 4


def test_the_clinical_summary_counts_no_milestone_or_checkpoint_from_a_visit_in_review(missed_patch_series):
    from repigment.clinical.summary import clinical_summary

    result, _ = missed_patch_series
    summary = clinical_summary(result, body_region="trunk", hand_unit=150.0)
    assert [v["needs_review"] for v in summary["visits"]] == [False, True, True]
    assert summary["vasi"]["milestones"] == {"vasi50_week": None, "vasi75_week": None, "vasi90_week": None}
    assert summary["checkpoints"]["week24"] is None or not summary["checkpoints"]["week24"]["reached"]


def test_the_app_table_says_needs_review():
    from repigment.webapp.course_data import visit_status

    entry = {"repigmentation_pct": 99.0, "error": None, "needs_review": True}
    assert visit_status(entry) == (True, "Needs review")
    assert visit_status({**entry, "needs_review": False}) == (True, "Measured")


def test_a_baseline_that_shows_a_quarter_of_the_patch_puts_every_visit_in_review(tmp_path):
    """Visits reading the patch four times the baseline's size say the baseline mask is in doubt."""
    folder = tmp_path / "series"
    spec = SeriesSpec(seed=21, skin_type="IV", course="stable", image_size=(640, 480), weeks=(0, 4, 8, 12))
    write_series(generate_series(spec), folder)
    truth = json.loads((folder / "truth.json").read_text())
    baseline = folder / truth["visits"][0]["image"]
    patch = cv2.imread(str(folder / truth["visits"][0]["truth_mask_photo"]), cv2.IMREAD_GRAYSCALE) > 0
    columns = np.flatnonzero(patch.any(axis=0))
    hidden = patch.copy()
    hidden[:, : columns[0] + (columns[-1] - columns[0]) // 4] = False  # keep the left quarter as it is
    photo = cv2.imread(str(baseline))
    normal = np.median(photo[~cv2.dilate(patch.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)], axis=0)
    photo[hidden] = normal.astype(np.uint8)
    cv2.imwrite(str(baseline), photo, [cv2.IMWRITE_JPEG_QUALITY, 95])
    result = analyze_to(folder, tmp_path / "out")
    followups = [visit for visit in result.visits[1:] if visit.ok]
    assert followups and all(visit.score.repigmentation_pct < -200 for visit in followups)
    assert all(any("times the baseline's" in reason for reason in visit.review_reasons) for visit in followups)


def _footprint_with_spots():
    """A patch, a small spot beside it, and a region too large to be a spot."""
    base = np.zeros((200, 200), bool)
    base[20:120, 20:120] = True  # the patch: 10,000 px
    base[150:158, 150:158] = True  # a spot: 64 px
    base[150:175, 20:45] = True  # 625 px: over 5 % of the mask, never judged
    return base


def test_a_spot_no_early_visit_shows_is_unconfirmed():
    base = _footprint_with_spots()
    later = base.copy()
    later[150:158, 150:158] = False
    later[150:175, 20:45] = False
    view = np.ones_like(base)
    spots = unconfirmed_spots(base, [later, later], [view, view])
    expected = np.zeros_like(base)
    expected[150:158, 150:158] = True
    np.testing.assert_array_equal(spots, expected)


def test_a_spot_one_early_visit_shows_stays():
    base = _footprint_with_spots()
    without = base.copy()
    without[150:158, 150:158] = False
    view = np.ones_like(base)
    assert not unconfirmed_spots(base, [without, base], [view, view]).any()


def test_visits_that_miss_the_patch_or_the_spot_are_no_evidence():
    base = _footprint_with_spots()
    washed_out = np.zeros_like(base)  # misses the patch itself: says nothing of a spot
    later = base.copy()
    later[150:158, 150:158] = False
    view = np.ones_like(base)
    assert not unconfirmed_spots(base, [later, washed_out], [view, view]).any()
    framed_off = view.copy()
    framed_off[140:, 140:] = False  # the spot is outside this photo
    assert not unconfirmed_spots(base, [later, later], [view, framed_off]).any()
    assert not unconfirmed_spots(base, [later], [view]).any()  # one visit is not enough


def test_a_spot_a_visit_shows_in_part_or_a_pixel_off_stays():
    base = _footprint_with_spots()
    later = base.copy()
    later[150:158, 150:158] = False
    view = np.ones_like(base)
    quarter = later.copy()
    quarter[150:158, 150:152] = True  # 16 of the spot's 64 px
    eighth = later.copy()
    eighth[150:158, 150:151] = True  # 8 px
    assert not unconfirmed_spots(base, [quarter, quarter], [view, view], tolerance_px=0).any()
    assert unconfirmed_spots(base, [eighth, eighth], [view, view], tolerance_px=0)[152, 152]
    shifted = later.copy()
    shifted[155:163, 155:163] = True  # the spot, registered 5 px off along both axes (9 px overlap)
    assert not unconfirmed_spots(base, [shifted, shifted], [view, view]).any()
    assert unconfirmed_spots(base, [shifted, shifted], [view, view], tolerance_px=0)[152, 152]


def test_the_patch_is_never_a_spot():
    base = np.zeros((200, 200), bool)
    base[20:60, 20:60] = True  # two patches, each over 5 % of the mask
    base[100:115, 100:115] = True
    base[170:174, 170:174] = True
    later = np.zeros_like(base)
    later[20:60, 20:60] = True  # the smaller patch missed: not a spot all the same
    views = [np.ones_like(base)] * 2
    spots = unconfirmed_spots(base, [later, later], views)
    assert np.count_nonzero(spots) == 16 and spots[171, 171]


def test_among_many_small_macules_none_is_a_stray_spot():
    """Confetti-like vitiligo: no region is the patch, so none is judged."""
    base = np.zeros((200, 200), bool)
    for y in range(10, 190, 36):
        for x in range(10, 190, 36):
            base[y:y + 12, x:x + 12] = True
    one = np.zeros_like(base)
    one[10:22, 10:22] = True
    views = [np.ones_like(base)] * 2
    assert not unconfirmed_spots(base, [one, one], views).any()


@pytest.fixture(scope="module")
def glare_at_baseline(tmp_path_factory):
    """A stable type III patch (truth 0 %) whose baseline photo holds two specular glare spots."""
    folder = tmp_path_factory.mktemp("glare") / "series"
    spec = SeriesSpec(seed=106, skin_type="III", course="stable", image_size=(640, 480), weeks=(0, 4, 8))
    write_series(generate_series(spec), folder)
    return folder, analyze_to(folder, folder.parent / "out")


def test_glare_spots_at_baseline_that_later_visits_do_not_show_leave_the_footprint(glare_at_baseline):
    """Counted in the footprint, the spots read as 1 % repigmentation at every visit of a stable patch."""
    folder, result = glare_at_baseline
    truth = json.loads((folder / "truth.json").read_text())
    expected = cv2.imread(str(folder / truth["visits"][0]["truth_mask_baseline"]), cv2.IMREAD_GRAYSCALE) > 0
    measured = cv2.imread(str(folder.parent / "out" / result.visits[0].mask_path), cv2.IMREAD_GRAYSCALE) > 0
    near_truth = cv2.dilate(expected.view(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    assert np.count_nonzero(measured & ~near_truth) == 0  # no spot away from the true patch
    assert any("2 small light spots" in note and "weeks 4 and 8" in note for note in result.visits[0].notes)
    assert all(any("light spots" in note for note in visit.notes) for visit in result.visits)
    for visit in result.visits[1:]:
        assert visit.ok and abs(visit.score.repigmentation_pct) <= 1.0


def test_weeks_after_treatment_start_the_baseline_footprint_is_kept(glare_at_baseline, tmp_path):
    """Photos taken weeks 20-28 of treatment: a spot may have repigmented by then."""
    folder, _ = glare_at_baseline
    truth = json.loads((folder / "truth.json").read_text())
    baseline_date = datetime.date.fromisoformat(truth["visits"][0]["date"])
    result = analyze_to(folder, tmp_path / "out", treatment_start=baseline_date - datetime.timedelta(weeks=20))
    assert [round(v.weeks_since_start) for v in result.visits] == [20, 24, 28]
    assert not any("light spot" in note for visit in result.visits for note in visit.notes)


def test_without_visits_in_the_first_weeks_the_baseline_footprint_is_kept(tmp_path):
    """Weeks later, a spot may have repigmented: nothing then tells glare from skin."""
    folder = tmp_path / "series"
    spec = SeriesSpec(seed=106, skin_type="III", course="stable", image_size=(640, 480), weeks=(0, 24))
    write_series(generate_series(spec), folder)
    result = analyze_to(folder, tmp_path / "out")
    assert not any("light spot" in note for visit in result.visits for note in visit.notes)
    truth = json.loads((folder / "truth.json").read_text())
    expected = cv2.imread(str(folder / truth["visits"][0]["truth_mask_baseline"]), cv2.IMREAD_GRAYSCALE) > 0
    measured = cv2.imread(str(tmp_path / "out" / result.visits[0].mask_path), cv2.IMREAD_GRAYSCALE) > 0
    near_truth = cv2.dilate(expected.view(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    assert np.count_nonzero(measured & ~near_truth) > 0  # the same glare spots, kept
