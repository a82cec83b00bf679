"""Segmentation guided by a clinician (box, strokes) and the colour-contrast model, against known truth."""

import json

import cv2
import numpy as np
import pytest
from conftest import analyze_to, assert_one_line_error, run_cli
from test_segmentation import _dice, _finish, _paint, _patch_mask, _photo

from repigment.core.segmentation import depigmented_mask, resize_labels, validate_labels
from repigment.errors import InvalidParameterError


def _strokes(truth: np.ndarray) -> np.ndarray:
    """A stroke across the middle of the patch (1) and one on skin well away from it (2)."""
    labels = np.zeros(truth.shape, np.uint8)
    ys, xs = np.nonzero(truth)
    cy, cx = int(ys.mean()), int(xs.mean())
    cv2.line(labels, (cx - 60, cy), (cx + 60, cy), 1, 5)
    cv2.line(labels, (40, 40), (200, 40), 2, 5)
    return labels


def test_strokes_teach_the_patch():
    truth = _patch_mask()
    photo = _finish(_paint(_photo(11), truth))
    result = depigmented_mask(photo, labels=_strokes(truth))
    assert result.method == "strokes"
    assert _dice(result.mask, truth) > 0.93
    assert 0.0 <= result.confidence <= 1.0 and "strokes" in result.reason


def test_a_box_restricts_to_the_patch_inside_it():
    truth = _patch_mask()
    other = np.zeros_like(truth)
    cv2.circle(other.view(np.uint8), (80, 400), 40, 1, -1)
    photo = _finish(_paint(_paint(_photo(12), truth), other))
    ys, xs = np.nonzero(truth)
    box = (xs.min() - 30, ys.min() - 30, xs.max() - xs.min() + 60, ys.max() - ys.min() + 60)
    result = depigmented_mask(photo, roi=box)
    assert not (result.mask & other).any()
    assert _dice(result.mask, truth) > 0.93


def _arm_photo(seed: int, background, patch_rgb=(205, 170, 160), *, arm=((300, 230), (280, 110)),
               patch_centre=(330, 230), shade=(0.8, 1.05), background_noise=3.0):
    """An arm across a flat background, shaded left to right, with one lighter, pinker patch: (photo, truth)."""
    rng = np.random.default_rng(seed)
    height, width = 400, 600
    photo = np.zeros((height, width, 3), np.float32)
    photo[:] = background
    if background_noise:
        photo += rng.normal(0, background_noise, photo.shape)
    limb = np.zeros((height, width), np.uint8)
    cv2.ellipse(limb, arm[0], arm[1], 0, 0, 360, 1, -1)
    limb = limb.astype(bool)
    gradient = np.linspace(*shade, width, dtype=np.float32)[None, :, None]
    skin = np.array((160, 110, 80), np.float32) * gradient + rng.normal(0, 3, (height, width, 3))
    photo[limb] = skin[limb]
    truth = np.zeros((height, width), np.uint8)
    cv2.ellipse(truth, patch_centre, (70, 45), 20, 0, 360, 1, -1)
    truth = truth.astype(bool) & limb
    photo[truth] = (np.array(patch_rgb, np.float32) * gradient + rng.normal(0, 3, (height, width, 3)))[truth]
    return _finish(photo), truth


def test_faint_pink_patch_without_a_distinct_melanin_class_is_still_found():
    # Depigmented skin that is only lighter and pinker than the skin around it,
    # in a photo whose wide dark background and shading hide a melanin class.
    photo, truth = _arm_photo(5, background=(25, 30, 40), arm=((300, 200), (260, 120)), patch_centre=(330, 190),
                              shade=(0.75, 1.1), background_noise=0.0)  # dark blue cloth
    result = depigmented_mask(photo)
    assert _dice(result.mask, truth) > 0.85, result.reason


def test_a_beige_wall_is_not_taken_for_depigmented_skin():
    # A light, nearly neutral wall passes for light skin by hue and is lighter
    # and less yellow than the arm; it lacks the redness the patch keeps.
    photo, truth = _arm_photo(7, background=(215, 205, 185))
    wall = np.zeros(truth.shape, bool)
    wall[:90] = True
    result = depigmented_mask(photo)
    assert _dice(result.mask, truth) > 0.85, result.reason
    assert np.count_nonzero(result.mask & wall) < 0.01 * np.count_nonzero(wall)


def test_the_photos_own_colour_classes_place_the_border():
    # The colour contrast is one projection of colour, split where it splits the shaded arm; the
    # classes learned from its surest parts, as from strokes, place the border by all of it.
    photo, truth = _arm_photo(7, background=(215, 205, 185))
    contrast_only = depigmented_mask(photo, learn_own_classes=False)
    result = depigmented_mask(photo)
    assert result.method == contrast_only.method == "colour-contrast"
    assert _dice(result.mask, truth) > 0.99
    assert _dice(result.mask, truth) >= _dice(contrast_only.mask, truth) + 0.02
    assert "own colours" in result.reason and "own colours" not in contrast_only.reason


def test_the_own_classes_border_reaches_the_edge_of_a_polygon_drawn_across_the_patch():
    # Skin beyond the polygon that is more of the patch must not teach the background's colours.
    photo, truth = _arm_photo(7, background=(215, 205, 185))
    ys, xs = np.nonzero(truth)
    cx = int(xs.mean())
    polygon = np.array([(cx, ys.min() - 20), (xs.max() + 20, ys.max() + 20), (xs.min() - 20, ys.max() + 20)])
    inside = np.zeros(truth.shape, np.uint8)
    cv2.fillPoly(inside, [polygon.astype(np.int32)], 1)
    expected = truth & inside.astype(bool)
    assert 0.2 < expected.sum() / truth.sum() < 0.9  # the polygon cuts through the patch
    result = depigmented_mask(photo, roi=polygon)
    assert _dice(result.mask, expected) > 0.997  # 0.986 when the skin beyond it was made background


def test_a_box_finds_a_faint_patch_the_whole_photo_hides():
    # A bright patch elsewhere sets the whole photo's split above a faint one;
    # a box around the faint patch splits its own skin, and finds it whole.
    photo, truth = _arm_photo(8, background=(215, 205, 185), patch_rgb=(180, 135, 112))
    bright = np.zeros(truth.shape, np.uint8)
    cv2.circle(bright, (120, 230), 45, 1, -1)
    bright = bright.astype(bool)
    noise = np.random.default_rng(1).normal(0, 3, (np.count_nonzero(bright), 3))
    photo[bright] = np.clip(np.array((235, 205, 195)) + noise, 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(truth)
    box = (xs.min() - 25, ys.min() - 25, np.ptp(xs) + 50, np.ptp(ys) + 50)
    assert _dice(depigmented_mask(photo).mask & ~bright, truth) < 0.5  # what the box is for
    result = depigmented_mask(photo, roi=box)
    assert _dice(result.mask, truth) > 0.9, result.reason


def test_a_box_finds_patches_on_skin_too_dark_to_be_taken_for_skin():
    # Type VI skin photographed dark: the normal skin is near black, not skin by colour, so the
    # pink patches are nearly all the skin found and nothing stands out from them in the whole
    # photo. Inside the clinician's box the patches are found from the box's own split.
    rng = np.random.default_rng(3)
    height, width = 400, 600
    photo = np.zeros((height, width, 3), np.float32)
    photo[:] = (225, 230, 235)
    photo += rng.normal(0, 2, photo.shape)
    hand = np.zeros((height, width), np.uint8)
    cv2.ellipse(hand, (300, 200), (260, 150), 0, 0, 360, 1, -1)
    hand = hand.astype(bool)
    photo[hand] = (np.array((38, 26, 22), np.float32) + rng.normal(0, 3, (height, width, 3)))[hand]
    truth = np.zeros((height, width), np.uint8)
    for centre, radius in (((250, 170), 70), ((380, 240), 55), ((180, 260), 40)):
        cv2.circle(truth, centre, radius, 1, -1)
    truth = truth.astype(bool) & hand
    shade = np.linspace(0.85, 1.05, width, dtype=np.float32)[None, :, None]
    photo[truth] = (np.array((205, 150, 140), np.float32) * shade + rng.normal(0, 4, (height, width, 3)))[truth]
    photo = _finish(photo)
    ys, xs = np.nonzero(truth)
    box = (xs.min() - 40, ys.min() - 30, np.ptp(xs) + 80, np.ptp(ys) + 60)
    # (The whole photo finds nothing here today: what the box is for.)
    result = depigmented_mask(photo, roi=box)
    assert _dice(result.mask, truth) > 0.95, result.reason


def test_a_box_on_plain_skin_finds_nothing():
    rng = np.random.default_rng(4)
    skin = np.clip(rng.normal((190, 140, 110), 4, (480, 640, 3)), 0, 255).astype(np.uint8)
    result = depigmented_mask(skin, roi=(200, 150, 240, 180))
    assert result.area_px == 0 and result.confidence == 0.0


def test_plain_noisy_skin_has_no_patch_under_either_model():
    rng = np.random.default_rng(0)
    skin = np.clip(rng.normal((190, 140, 110), 4, (480, 640, 3)), 0, 255).astype(np.uint8)
    result = depigmented_mask(skin)
    assert result.area_px == 0
    assert result.confidence == 0.0
    assert any("no distinct" in note for note in result.notes)


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        (np.ones((10, 12), np.uint8), "12x10 px but the photo is 20x10"),
        (np.full((10, 20), 5, np.uint8), "found"),
        (np.full((10, 20), 2, np.uint8), "no stroke of class 1"),
        (np.ones((10, 20, 3), np.uint8), "single-channel"),
    ],
)
def test_bad_labels_are_refused_with_the_reason(labels, fragment):
    with pytest.raises(InvalidParameterError, match=fragment):
        validate_labels(labels, (10, 20))


def test_thin_strokes_survive_downscaling():
    labels = np.zeros((1200, 1600), np.uint8)
    cv2.line(labels, (100, 600), (1500, 600), 1, 2)
    cv2.line(labels, (100, 100), (1500, 100), 2, 2)
    small = resize_labels(labels, (300, 400))
    assert (small == 1).sum() >= 300 and (small == 2).sum() >= 300
    assert set(np.unique(small)) == {0, 1, 2}


def _write_photo(path, truth, seed):
    photo = _finish(_paint(_photo(seed), truth))
    cv2.imwrite(str(path), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))


def test_cli_segment_with_labels_prints_model_and_confidence(tmp_path):
    truth = _patch_mask()
    _write_photo(tmp_path / "photo.png", truth, 13)
    cv2.imwrite(str(tmp_path / "labels.png"), _strokes(truth))
    proc = run_cli("segment", tmp_path / "photo.png", "--out", tmp_path / "mask.png",
                   "--labels", tmp_path / "labels.png")
    assert proc.returncode == 0, proc.stderr
    assert "method strokes" in proc.stderr and "confidence" in proc.stderr
    mask = cv2.imread(str(tmp_path / "mask.png"), cv2.IMREAD_GRAYSCALE) > 127
    assert _dice(mask, truth) > 0.93


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: cv2.imwrite(str(p), np.ones((100, 100), np.uint8)), "but the photo is 640x480"),
        (lambda p: cv2.imwrite(str(p), np.full((480, 640), 7, np.uint8)), "may only hold 0"),
        (lambda p: cv2.imwrite(str(p), np.zeros((480, 640), np.uint8)), "no stroke of class 1"),
        (lambda p: cv2.imwrite(str(p), np.ones((480, 640, 3), np.uint8)), "single-channel"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "labels file"),
        (lambda p: p.write_bytes(b"GIF89a not a png"), "not a PNG"),
    ],
)
def test_cli_bad_labels_file_is_a_one_line_error(tmp_path, make, fragment):
    _write_photo(tmp_path / "photo.png", _patch_mask(), 14)
    make(tmp_path / "labels.png")
    proc = run_cli("segment", tmp_path / "photo.png", "--out", tmp_path / "mask.png",
                   "--labels", tmp_path / "labels.png")
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "mask.png").exists()


def test_analyze_carries_baseline_strokes_to_every_visit(small_series, tmp_path):
    truth = json.loads((small_series / "truth.json").read_text())
    baseline_truth = cv2.imread(str(small_series / truth["visits"][0]["truth_mask_photo"]), cv2.IMREAD_GRAYSCALE) > 127
    strokes = _strokes(baseline_truth)
    strokes[-12:-4, 10:60] = 3  # a "not skin" stroke along the bottom edge, carried to every visit
    result = analyze_to(small_series, tmp_path / "out", labels=strokes)
    assert result.segmentation_model == "strokes" and result.labels_used
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert document["method"]["baseline_model"] == "strokes" and document["method"]["labels"] is True
    for visit, expected in zip(result.visits, truth["visits"]):
        assert visit.ok, visit.error
        assert visit.score.repigmentation_pct == pytest.approx(expected["truth_repigmentation_pct"], abs=8.0)


def test_a_box_drawn_inside_a_patch_keeps_all_of_it():
    # The box's own split would cut the patch in two; the box may lower the threshold, never raise it.
    photo, truth = _arm_photo(8, background=(215, 205, 185))
    ys, xs = np.nonzero(truth)
    cy, cx = int(ys.mean()), int(xs.mean())
    box = (cx - 30, cy - 20, 60, 40)
    inside = np.zeros(truth.shape, bool)
    inside[cy - 20:cy + 20, cx - 30:cx + 30] = True
    result = depigmented_mask(photo, roi=box)
    assert np.count_nonzero(result.mask & inside & truth) >= 0.95 * np.count_nonzero(inside & truth)


def test_tiny_negative_strokes_do_not_make_the_whole_photo_depigmented():
    truth = _patch_mask()
    photo = _finish(_paint(_photo(11), truth))
    labels = np.zeros(truth.shape, np.uint8)
    ys, xs = np.nonzero(truth)
    labels[ys[:200], xs[:200]] = 1
    labels[5, 5:10] = 2  # 5 pixels of normal skin and 5 of not skin: too few for either model alone
    labels[8, 5:10] = 3
    result = depigmented_mask(photo, labels=labels)
    assert result.mask.mean() < 0.5 and _dice(result.mask, truth) > 0.8


@pytest.mark.parametrize("background", [(215, 205, 185), (40, 60, 80)], ids=["beige wall", "blue cloth"])
def test_normal_skin_strokes_that_stray_onto_the_background_do_not_make_the_arm_the_patch(background):
    # A ring of "normal skin" strokes drawn around a patch near the arm's edge
    # lands on the background: the model must not learn "anything that is
    # not the background is depigmented".
    photo, truth = _arm_photo(9, background=background, patch_centre=(330, 150))
    labels = np.zeros(truth.shape, np.uint8)
    ys, xs = np.nonzero(truth)
    cy, cx = int(ys.mean()), int(xs.mean())
    cv2.line(labels, (cx - 40, cy), (cx + 40, cy), 1, 5)
    cv2.line(labels, (150, 30), (450, 30), 2, 5)  # above the arm: background only
    assert not (labels == 2)[truth].any()
    result = depigmented_mask(photo, labels=labels)
    assert _dice(result.mask, truth) > 0.85, result.reason


def _own_strokes(truth: np.ndarray) -> np.ndarray:
    """Strokes on a photo's own patch (1) and on its skin around the patch (2)."""
    labels = _strokes(truth)
    inside = cv2.erode(truth.view(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    labels[((labels == 1) & ~inside) | ((labels == 2) & truth)] = 0
    ring = cv2.dilate(truth.view(np.uint8), np.ones((31, 31), np.uint8)).astype(bool) & ~cv2.dilate(
        truth.view(np.uint8), np.ones((11, 11), np.uint8)).astype(bool)
    ys, xs = np.nonzero(ring)
    labels[ys[::7], xs[::7]] = 2
    return labels


def test_strokes_on_a_later_visit_judge_that_visit_alone(small_series, tmp_path):
    import repigment

    truth = json.loads((small_series / "truth.json").read_text())
    visit = truth["visits"][1]
    own = cv2.imread(str(small_series / visit["truth_mask_photo"]), cv2.IMREAD_GRAYSCALE) > 127
    plain = repigment.analyze_series(small_series)
    result = analyze_to(small_series, tmp_path / "out", visit_labels={visit["image"]: _own_strokes(own)})
    judged = result.visits[1]
    assert judged.ok, judged.error
    assert judged.own_strokes and any("strokes on this photo" in note for note in judged.notes)
    # ... and the colour model learned from them made its mask, not the baseline's threshold.
    assert any("learned from" in note and "clinician's strokes" in note for note in judged.notes), judged.notes
    assert not any("learned from" in note for note in plain.visits[1].notes)
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [v["own_strokes"] for v in document["visits"]] == [False, True, False]
    assert judged.score.repigmentation_pct == pytest.approx(visit["truth_repigmentation_pct"], abs=8.0)
    # The baseline and the other visit are judged as without strokes.
    for k in (0, 2):
        assert result.visits[k].score.repigmentation_pct == pytest.approx(plain.visits[k].score.repigmentation_pct)
        assert not any("strokes" in note for note in result.visits[k].notes)


def test_visit_strokes_that_do_not_fit_fail_that_visit_alone(small_series):
    import repigment

    truth = json.loads((small_series / "truth.json").read_text())
    name = truth["visits"][1]["image"]
    result = repigment.analyze_series(small_series, visit_labels={name: np.ones((10, 10), np.uint8)})
    assert not result.visits[1].ok and "10x10 px but the photo is" in result.visits[1].error
    assert result.visits[0].ok and result.visits[2].ok
    with pytest.raises(InvalidParameterError, match="not a later visit"):
        repigment.analyze_series(small_series, visit_labels={truth["visits"][0]["image"]: np.ones((10, 10), np.uint8)})


def test_visit_strokes_are_read_only_when_their_visit_is_analysed(small_series):
    # A lazy mapping (the app's, over stored PNGs) is read visit by visit, never all at once
    # before the analysis; strokes that cannot be read fail their visit alone.
    from collections.abc import Mapping

    import repigment
    from repigment.errors import ImageLoadError

    truth = json.loads((small_series / "truth.json").read_text())
    names = [visit["image"] for visit in truth["visits"][1:]]
    events = []

    class Unreadable(Mapping):  # Mapping's own `in` and get() would read too
        def __getitem__(self, name):
            events.append(("read", name))
            raise ImageLoadError(f"{name}: the strokes file is damaged")

        def __iter__(self):
            return iter(names)

        def __len__(self):
            return len(names)

    result = repigment.analyze_series(small_series, visit_labels=Unreadable(),
                                      progress=lambda done, total, name: events.append(("done", done)))
    assert result.visits[0].ok
    assert all("strokes file is damaged" in visit.error for visit in result.visits[1:])
    # Nothing was read up front: each visit's strokes once, when its photo was prepared
    # (up to two visits ahead, after the series had started).
    assert events[0] == ("done", 0) and sorted(e for e in events if e[0] == "read") == [("read", n) for n in names]


def test_each_visits_strokes_are_read_once(small_series):
    from collections.abc import Mapping

    import repigment

    truth = json.loads((small_series / "truth.json").read_text())
    visit = truth["visits"][1]
    own = cv2.imread(str(small_series / visit["truth_mask_photo"]), cv2.IMREAD_GRAYSCALE) > 127
    reads = []

    class Counted(Mapping):
        def __getitem__(self, name):
            reads.append(name)
            return {visit["image"]: _own_strokes(own)}[name]

        def __iter__(self):
            return iter([visit["image"]])

        def __len__(self):
            return 1

    result = repigment.analyze_series(small_series, visit_labels=Counted())
    assert result.visits[1].own_strokes
    assert reads == [visit["image"]]


def test_strokes_files_are_read_only_when_asked_for(tmp_path):
    from repigment.errors import ImageLoadError
    from repigment.io import LabelsByImage

    strokes_png = tmp_path / "week12.png"
    cv2.imwrite(str(strokes_png), np.full((64, 80), 2, np.uint8))
    strokes = LabelsByImage({"visit_01.jpg": strokes_png, "visit_02.jpg": tmp_path / "missing.png"})
    assert "visit_02.jpg" in strokes and "visit_03.jpg" not in strokes and len(strokes) == 2
    assert strokes["visit_01.jpg"].shape == (64, 80) and set(np.unique(strokes["visit_01.jpg"])) == {2}
    with pytest.raises(ImageLoadError, match="missing.png"):
        strokes["visit_02.jpg"]


def test_one_short_normal_skin_stroke_does_not_make_the_skin_around_a_mottled_patch_depigmented():
    # The bundled sample's last visit: a patch with pigmented islands (perifollicular
    # repigmentation). A stroke across it holds both colours; one short normal-skin stroke holds a
    # narrow range of normal skin's, and the rest of the skin fell to the patch (Dice 0.33). The
    # photo's own normal skin now widens the normal class.
    from pathlib import Path

    import repigment

    series = Path(__file__).resolve().parents[2] / "sample_images" / "series_a"
    visit = json.loads((series / "truth.json").read_text())["visits"][-1]
    truth = cv2.imread(str(series / visit["truth_mask_photo"]), cv2.IMREAD_GRAYSCALE) > 127
    outline = cv2.morphologyEx(truth.view(np.uint8), cv2.MORPH_CLOSE, np.ones((25, 25), np.uint8)).astype(bool)
    ys, xs = np.nonzero(truth)
    cy, cx = int(ys.mean()), int(xs.mean())
    labels = np.zeros(truth.shape, np.uint8)
    cv2.line(labels, (cx - 30, cy - 60), (cx + 30, cy + 60), 1, 5)
    labels[(labels == 1) & ~outline] = 0
    cv2.line(labels, (60, 60), (180, 70), 2, 5)
    labels[(labels == 2) & outline] = 0
    result = repigment.segment_image(series / visit["image"], labels=labels)
    assert _dice(result.mask, truth) > 0.7, result.reason


def test_cli_analyze_takes_strokes_on_a_later_visit(small_series, tmp_path):
    truth = json.loads((small_series / "truth.json").read_text())
    visit = truth["visits"][1]
    own = cv2.imread(str(small_series / visit["truth_mask_photo"]), cv2.IMREAD_GRAYSCALE) > 127
    cv2.imwrite(str(tmp_path / "week12.png"), _own_strokes(own))
    proc = run_cli("analyze", small_series, "--out", tmp_path / "out", "-q",
                   "--visit-labels", f"{visit['image']}={tmp_path / 'week12.png'}")
    assert proc.returncode == 0, proc.stderr
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [v["own_strokes"] for v in document["visits"]] == [False, True, False]


@pytest.mark.parametrize(
    ("option", "fragment"),
    [("week12.png", "IMAGE=LABELS.png"), ("no_such_visit.jpg={labels}", "not a later visit")],
)
def test_cli_bad_visit_labels_are_a_one_line_error(small_series, tmp_path, option, fragment):
    labels = tmp_path / "week12.png"
    cv2.imwrite(str(labels), np.ones((10, 10), np.uint8))
    proc = run_cli("analyze", small_series, "--out", tmp_path / "out", "-q",
                   "--visit-labels", option.format(labels=labels))
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_visit_judged_by_its_own_strokes_notes_a_strong_light_instead_of_flagging_it(small_series, tmp_path):
    # Under a tungsten-like cast the baseline's threshold cannot be trusted (the visit is flagged);
    # strokes on the photo itself teach a model of its own colours, so the light is only noted.
    import shutil

    import repigment
    from repigment.core.color import linear_to_srgb, srgb_to_linear

    series = tmp_path / "series"
    shutil.copytree(small_series, series)
    visit = json.loads((series / "truth.json").read_text())["visits"][1]
    linear = srgb_to_linear(cv2.imread(str(series / visit["image"]))[..., ::-1].copy()).astype(np.float32)
    warm = np.clip(linear * np.array([1.0, 0.8, 0.55], np.float32) * 1.2, 0, 1)
    cv2.imwrite(str(series / visit["image"]), linear_to_srgb(warm)[..., ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 92])
    plain = repigment.analyze_series(series).visits[1]
    assert plain.light_change is not None and plain.needs_review
    own = cv2.imread(str(series / visit["truth_mask_photo"]), cv2.IMREAD_GRAYSCALE) > 127
    judged = repigment.analyze_series(series, visit_labels={visit["image"]: _own_strokes(own)}).visits[1]
    assert judged.light_change is not None and not judged.needs_review
    assert any(judged.light_change in note and "strokes" in note for note in judged.notes)
    assert judged.score.repigmentation_pct == pytest.approx(visit["truth_repigmentation_pct"], abs=8.0)
