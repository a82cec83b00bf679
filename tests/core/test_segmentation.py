"""Segmentation against painted truth: hair, glare, marker, ROI, lighting."""

import cv2
import numpy as np
import pytest

from repigment.core.color import linear_to_srgb, srgb_to_linear
from repigment.core.segmentation import depigmented_mask, fill_holes, roi_mask, skin_mask
from repigment.errors import InvalidParameterError

NORMAL = (170, 120, 90)
DEPIGMENTED = (238, 212, 202)


def _photo(seed=0, size=(480, 640), normal=NORMAL):
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.standard_normal(size).astype(np.float32), (0, 0), 2) * 4
    photo = np.array(normal, np.float32)[None, None] + texture[..., None] + rng.normal(0, 2, size + (3,))
    return photo


def _finish(photo):
    return np.clip(photo, 0, 255).astype(np.uint8)


def _patch_mask(size=(480, 640)):
    mask = np.zeros(size, np.uint8)
    cv2.ellipse(mask, (320, 240), (140, 90), 15, 0, 360, 1, -1)
    return mask.astype(bool)


def _paint(photo, mask, colour=DEPIGMENTED):
    photo[mask] = np.array(colour, np.float32) + (photo[mask] - np.array(NORMAL, np.float32)) * 0.3
    return photo


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_painted_patch_is_recovered():
    truth = _patch_mask()
    result = depigmented_mask(_finish(_paint(_photo(), truth)))
    assert _dice(result.mask, truth) > 0.97
    assert result.contrast is not None and result.threshold > 0


def test_dark_hairs_over_the_patch_do_not_cut_it():
    truth = _patch_mask()
    photo = _paint(_photo(1), truth)
    rng = np.random.default_rng(3)
    for _ in range(25):
        x, y = rng.integers(100, 540), rng.integers(80, 400)
        angle = rng.uniform(0, np.pi)
        end = (int(x + 60 * np.cos(angle)), int(y + 60 * np.sin(angle)))
        cv2.line(photo, (int(x), int(y)), end, (40, 25, 20), 2, cv2.LINE_AA)
    result = depigmented_mask(_finish(photo))
    assert _dice(result.mask, truth) > 0.95


def test_glare_spots_on_normal_skin_are_not_depigmentation():
    truth = _patch_mask()
    photo = _paint(_photo(2), truth)
    for centre in [(60, 60), (580, 420), (80, 400), (560, 70)]:
        cv2.circle(photo, centre, 6, (255, 255, 255), -1)
    result = depigmented_mask(_finish(photo))
    assert result.mask.sum() == pytest.approx(truth.sum(), rel=0.05)
    for x, y in [(60, 60), (580, 420), (80, 400), (560, 70)]:
        assert not result.mask[y, x]


def test_skin_overexposed_to_white_is_a_patch_not_glare():
    """An overexposed photo clips its lightest skin, the patch, to white: that is data."""
    truth = _patch_mask()
    photo = _photo(4, normal=(235, 200, 175))
    photo[truth] = 255.0
    result = depigmented_mask(_finish(photo))
    assert _dice(result.mask, truth) > 0.95


def test_a_small_milk_white_patch_sets_the_threshold_over_a_larger_lighter_area():
    """Mottled or unevenly lit normal skin, lighter over a larger area than the patch, is not the patch."""
    lighter = np.zeros((480, 640), np.uint8)
    cv2.ellipse(lighter, (430, 170), (170, 120), 0, 0, 360, 1, -1)
    lighter = cv2.GaussianBlur(lighter.astype(np.float32), (0, 0), 12)
    truth = np.zeros((480, 640), np.uint8)
    cv2.circle(truth, (150, 360), 40, 1, -1)
    truth = truth.astype(bool)
    # Lighter by 0.4 of the patch's contrast: under the half-way point, so not depigmented.
    photo = _photo(5) + lighter[..., None] * (np.array(DEPIGMENTED, np.float32) - NORMAL) * 0.4
    result = depigmented_mask(_finish(_paint(photo, truth)))
    assert _dice(result.mask, truth) > 0.9


def test_lighter_spots_with_no_milk_white_core_are_not_patches():
    truth = _patch_mask()
    photo = _paint(_photo(6), truth)
    spots = [(70, 70), (570, 410), (90, 410), (560, 80)]
    for centre in spots:  # each lighter by under 3/4 of the patch's contrast
        spot = np.zeros((480, 640), np.uint8)
        cv2.circle(spot, centre, 14, 1, -1)
        photo[spot.astype(bool)] += (np.array(DEPIGMENTED, np.float32) - NORMAL) * 0.6
    result = depigmented_mask(_finish(photo))
    assert _dice(result.mask, truth) > 0.97
    assert not any(result.mask[y, x] for x, y in spots)
    # Nor at the low end of the decision range, where the figure's range is measured.
    assert not any(result.mask_at(0.8 * result.threshold)[y, x] for x, y in spots)


def test_a_patch_beside_a_larger_clipped_hot_spot_keeps_its_own_level():
    """A flash hot spot lighter than the patch does not set full depigmentation above the patch."""
    truth = _patch_mask()
    photo = _paint(_photo(2), truth, (232, 205, 192))
    cv2.circle(photo, (560, 90), 30, (255, 255, 255), -1)  # 0.9 % of the photo: counted, not glare
    result = depigmented_mask(_finish(photo))
    assert _dice(result.mask & truth, truth) > 0.97


def test_a_visit_keeps_only_the_kind_of_regions_its_baseline_kept():
    """The same photo scored as a later visit, at the baseline's threshold, level and core, reads no change."""
    truth = _patch_mask()
    photo = _paint(_photo(6), truth)
    for centre in [(70, 70), (570, 410), (90, 410), (560, 80)]:  # lighter spots with no milk-white core
        spot = np.zeros((480, 640), np.uint8)
        cv2.circle(spot, centre, 14, 1, -1)
        photo[spot.astype(bool)] += (np.array(DEPIGMENTED, np.float32) - NORMAL) * 0.6
    photo = _finish(photo)
    baseline = depigmented_mask(photo)
    visit = depigmented_mask(photo, threshold=baseline.threshold, reference_level=baseline.depigmented_level,
                             core_factor=baseline.core_score / baseline.threshold)
    assert visit.area_px == pytest.approx(baseline.area_px, rel=0.005)
    low = 0.8 * visit.threshold
    assert visit.mask_at(low).sum() == pytest.approx(baseline.mask_at(0.8 * baseline.threshold).sum(), rel=0.01)


@pytest.mark.parametrize(
    ("redness", "band", "found", "region_lightness"),
    [(6.0, False, True, 85.0),    # pale, still pink: a patch the frame cuts
     (0.5, False, False, 85.0),   # neutral: paper or a wall
     (0.0, False, True, 100.0),   # blown out to white: an overexposed patch, its colour lost
     (6.0, True, False, 85.0)],   # the frame makes much of its border: background beyond the body
)
def test_pale_skin_cut_by_the_frame_edge(redness, band, found, region_lightness):
    from repigment.core.segmentation import _frame_cut_patches

    region = np.zeros((300, 400), bool)
    if band:
        region[:60] = True
    else:
        cv2.circle(region.view(np.uint8), (200, 80), 110, 1, -1)
    lightness = np.where(region, region_lightness, 60.0).astype(np.float32)
    a_star = np.where(region, redness, 12.0).astype(np.float32)
    b_star = np.where(region, 3.0 if region_lightness < 100 else 0.0, 15.0).astype(np.float32)
    result = _frame_cut_patches(~region, lightness, a_star, b_star, None)
    assert result.any() == found and (not found or np.array_equal(result, region))


def test_white_paper_cut_by_the_frame_edge_is_not_skin():
    paper = np.zeros((480, 640), np.uint8)
    cv2.circle(paper, (320, 60), 80, 1, -1)  # a white card mostly on the skin, cut by the top edge
    paper = paper.astype(bool)
    photo = _photo(8)
    photo[paper] = (245, 245, 243)
    assert not skin_mask(_finish(photo))[paper].any()
    photo[paper] = (250, 224, 222)  # the same shape, pale and pink as depigmented skin: skin
    assert skin_mask(_finish(photo))[paper].mean() > 0.9


def _frame_filling_patch(seed, normal, patch_rgb):
    """A photo whose patch covers 62 % of the frame, cut by three of its edges, and the patch."""
    truth = np.zeros((480, 640), np.uint8)
    cv2.circle(truth, (250, 300), 260, 1, -1)
    truth = truth.astype(bool)
    photo = _photo(seed, normal=normal)
    photo[truth] = np.array(patch_rgb, np.float32) + (photo[truth] - np.array(normal, np.float32)) * 0.3
    return _finish(photo), truth


def test_a_patch_that_fills_most_of_the_frame_leaves_yellower_normal_skin_skin():
    # The pale pink patch is the photo's most common colour; light normal skin
    # lies 31 degrees of hue more yellow, beyond the tolerance around the patch.
    photo, truth = _frame_filling_patch(11, (205, 165, 135), (236, 211, 207))
    assert skin_mask(photo)[~truth].mean() > 0.9
    assert _dice(depigmented_mask(photo).mask, truth) > 0.95


@pytest.mark.parametrize("normal", [(200, 150, 120), (235, 200, 185)])
def test_a_patch_larger_than_the_normal_skin_around_it_under_uneven_light(normal):
    # Depigmented skin is 64 % of the photo and holds the median of the melanin
    # feature; the light falls off by a third from bottom to top (clipping nothing).
    truth = np.zeros((480, 640), np.uint8)
    cv2.ellipse(truth, (320, 240), (290, 215), 0, 0, 360, 1, -1)
    truth = truth.astype(bool)
    photo = _finish(_paint(_photo(21, normal=normal), truth))
    ramp = np.linspace(0.75, 1.0, 480, dtype=np.float32)[:, None, None]
    result = depigmented_mask(linear_to_srgb(srgb_to_linear(photo) * ramp))
    assert result.method == "od-field"
    assert _dice(result.mask, truth) > 0.95


def test_normal_skin_stays_skin_beside_a_large_patch_clipped_in_its_red_channel():
    # Overexposed, the patch's red clips: it loses its pink and turns yellower
    # than the normal skin, so normal skin is redder than the photo's most common colour.
    photo, truth = _frame_filling_patch(15, (175, 120, 90), (255, 239, 219))
    assert np.mean(photo[truth][:, 0] == 255) > 0.5
    assert skin_mask(photo)[~truth].mean() > 0.9
    # Its lost redness does not make it a wall: the melanin rule's first guess
    # takes normal skin above the median, and the rule finds the patch itself.
    result = depigmented_mask(photo)
    assert result.method == "od-field"
    assert _dice(result.mask, truth) > 0.98


def test_pink_cloth_darker_than_the_skin_stays_out_of_it():
    # More saturated and darker than this light skin, as its normal skin would
    # be beside a large patch, but redder: melanin makes skin yellower, not pinker.
    truth = _patch_mask()
    photo = _paint(_photo(12, normal=(232, 205, 190)), truth)
    photo[:170] = _photo(13, normal=(210, 145, 140))[:170]  # 27 degrees of hue redder than the skin
    assert not skin_mask(_finish(photo))[:160].any()


def test_a_brown_background_is_not_taken_for_the_normal_skin_of_light_skin():
    """Issue 11: a background of a skin colour passes the skin test; darker than
    very light skin, it would pose as the pigmented class and make all of the
    skin "depigmented". The patch within the lighter skin is found instead, and
    a later visit set aside the same colour."""
    truth = _patch_mask()
    light_skin = (232, 196, 182)
    photo = _photo(21, normal=light_skin)
    photo[truth] = np.float32((246, 228, 222)) + (photo[truth] - np.float32(light_skin)) * 0.3
    photo[:130] = _photo(22, normal=(120, 82, 58))[:130]  # brown cloth across the top
    photo = _finish(photo)
    baseline = depigmented_mask(photo)
    assert _dice(baseline.mask, truth) > 0.97
    assert baseline.skin_split is not None
    assert any("background or cloth" in note for note in baseline.notes)
    judged = dict(threshold=baseline.threshold, reference_level=baseline.depigmented_level,
                  core_factor=baseline.core_factor)
    visit = depigmented_mask(photo, skin_split=baseline.skin_split, **judged)
    assert _dice(visit.mask, truth) > 0.97
    # Without the split the visit takes the whole light skin: what the split is for.
    assert depigmented_mask(photo, **judged).area_px > 3 * truth.sum()


def test_a_beige_cloth_paler_than_the_skin_is_not_taken_for_the_patch():
    """A cloth paler than type IV skin but not as pale as the patch had passed for
    depigmented with it; the patch lies on the skin, the cloth is set aside."""
    truth = np.zeros((480, 640), np.uint8)
    cv2.ellipse(truth, (300, 160), (110, 80), 0, 0, 360, 1, -1)
    truth = truth.astype(bool)
    skin = (160, 117, 90)
    photo = _photo(25, normal=skin)
    photo[truth] = np.float32(DEPIGMENTED) + (photo[truth] - np.float32(skin)) * 0.3
    photo[330:] = _photo(26, normal=(205, 180, 150))[330:]  # beige cloth across the bottom
    assert skin_mask(_finish(photo))[340:].mean() > 0.9  # passes for skin
    photo = _finish(photo)
    baseline = depigmented_mask(photo)
    assert _dice(baseline.mask, truth) > 0.95
    assert baseline.skin_split is not None and any("paler than" in note for note in baseline.notes)
    visit = depigmented_mask(photo, threshold=baseline.threshold, reference_level=baseline.depigmented_level,
                             core_factor=baseline.core_factor, skin_split=baseline.skin_split)
    assert _dice(visit.mask, truth) > 0.95
    # A box over part of the patch decides the same way: the split is made on the whole photo.
    boxed = depigmented_mask(photo, roi=(330, 60, 200, 200))
    assert boxed.skin_split == baseline.skin_split
    assert boxed.skin_split.background_lab[0] > boxed.skin_split.skin_lab[0]  # the cloth is the paler colour


def test_a_second_less_depigmented_patch_cut_by_the_frame_is_not_a_cloth():
    """A large patch reaching the frame, less white than another: both are patches
    (their colours lie on the line from skin to patch; a cloth's does not)."""
    skin = np.float32((160, 117, 90))
    first = np.zeros((480, 640), np.uint8)
    cv2.ellipse(first, (300, 150), (110, 80), 0, 0, 360, 1, -1)
    second = np.zeros((480, 640), np.uint8)
    cv2.ellipse(second, (320, 470), (300, 140), 0, 0, 360, 1, -1)
    first, second = first.astype(bool), second.astype(bool)
    photo = _photo(25, normal=tuple(skin))
    photo[first] = np.float32(DEPIGMENTED) + (photo[first] - skin) * 0.3
    photo[second] = skin + 0.8 * (np.float32(DEPIGMENTED) - skin) + (photo[second] - skin) * 0.3
    result = depigmented_mask(_finish(photo))
    assert result.skin_split is None
    assert _dice(result.mask, first | second) > 0.99


def test_a_large_patch_is_not_split_again_within_itself():
    """A patch enclosed by normal skin is not all of the skin, however large."""
    size = (480, 640)
    truth = np.zeros(size, np.uint8)
    cv2.ellipse(truth, (320, 240), (260, 190), 0, 0, 360, 1, -1)
    truth = truth.astype(bool)  # about half of the skin
    result = depigmented_mask(_finish(_paint(_photo(23, size), truth)))
    assert result.skin_split is None
    assert _dice(result.mask, truth) > 0.97


def test_glare_spots_in_a_patch_cut_by_the_frame_are_not_a_patch_within_it():
    """A frame-filling patch reaches the edges as skin would; the glare spots on it,
    lighter still, are not a patch within the patient's skin."""
    photo, truth = _frame_filling_patch(24, (200, 150, 120), (238, 212, 202))
    glare = np.zeros(truth.shape, np.float32)
    for centre in ((180, 220), (330, 380)):
        cv2.circle(glare, centre, 9, 1.0, -1)
    glare = cv2.GaussianBlur(glare, (0, 0), 5)[..., None] * 1.6
    photo = _finish(photo.astype(np.float32) * (1 - np.minimum(glare, 1)) + 255 * np.minimum(glare, 1))
    assert (photo.min(axis=2) >= 250).any()  # clipped cores
    result = depigmented_mask(photo)
    assert result.skin_split is None
    assert _dice(result.mask, truth) > 0.95


def test_a_lighting_gradient_does_not_change_the_patch():
    truth = _patch_mask()
    photo = _finish(_paint(_photo(4), truth))
    h, w = truth.shape
    ramp = np.linspace(0.6, 1.3, w, dtype=np.float32)[None, :, None]
    shaded = linear_to_srgb(srgb_to_linear(photo) * ramp)
    plain = depigmented_mask(photo)
    result = depigmented_mask(shaded)
    assert _dice(result.mask, plain.mask) > 0.96


def test_no_patch_gives_an_empty_mask_and_says_so():
    result = depigmented_mask(_finish(_photo(5)))
    assert result.area_px < 0.001 * result.mask.size
    assert result.contrast is None
    assert any("no distinct" in note for note in result.notes)


@pytest.mark.parametrize("normal", [(235, 200, 185), (200, 150, 120), (120, 80, 60), (85, 55, 40)])
def test_skin_tones_from_very_light_to_dark(normal):
    truth = _patch_mask()
    photo = _photo(6, normal=normal)
    photo[truth] = np.array(DEPIGMENTED, np.float32)
    result = depigmented_mask(_finish(photo))
    assert _dice(result.mask, truth) > 0.95


def test_background_and_excluded_marker_are_not_skin():
    truth = _patch_mask()
    photo = _paint(_photo(7), truth)
    photo[:, :80] = (15, 20, 45)  # dark blue cloth
    photo[20:100, 500:600] = 245  # white paper of a marker
    exclude = np.zeros(truth.shape, bool)
    exclude[20:100, 500:600] = True
    result = depigmented_mask(_finish(photo), exclude=exclude)
    assert not result.skin[:, :70].any()
    assert not result.skin[exclude].any()
    assert not result.mask[exclude].any()
    assert _dice(result.mask, truth) > 0.95


def test_roi_rectangle_and_polygon_restrict_the_mask():
    truth = _patch_mask()
    photo = _finish(_paint(_photo(8), truth))
    rect = depigmented_mask(photo, roi=(0, 0, 320, 480))
    assert not rect.mask[:, 320:].any()
    polygon = np.array([[320, 0], [640, 0], [640, 480], [320, 480]])
    poly = depigmented_mask(photo, roi=polygon)
    assert not poly.mask[:, :319].any()
    assert rect.area_px + poly.area_px == pytest.approx(depigmented_mask(photo).area_px, rel=0.01)


@pytest.mark.parametrize("roi", [(1, 2, 3), (0, 0, 0, 10), (900, 900, 10, 10), [[0, 0], [1, 1]]])
def test_bad_roi_is_rejected(roi):
    with pytest.raises(InvalidParameterError):
        roi_mask((100, 100), roi)


def test_threshold_must_be_positive():
    with pytest.raises(InvalidParameterError, match="threshold"):
        depigmented_mask(_finish(_photo()), threshold=-1.0)


def test_skin_found_in_another_rendering_of_the_photo_counts_as_skin():
    # A patch the frame cuts, grey-white here (as a colour correction can make
    # clipped skin): no skin hue, and not enclosed by skin.
    patch = np.zeros((480, 640), bool)
    patch[:, :260] = True
    threshold = depigmented_mask(_finish(_paint(_photo(14), patch))).threshold  # as a series' baseline sets it
    photo = _photo(14)
    photo[patch] = (240, 240, 246)
    photo = _finish(photo)
    assert not depigmented_mask(photo, threshold=threshold).mask[patch].any()
    result = depigmented_mask(photo, threshold=threshold, extra_skin=patch)
    assert result.skin[patch].all()
    assert _dice(result.mask, patch) > 0.95
    with pytest.raises(InvalidParameterError, match="extra_skin"):
        depigmented_mask(photo, extra_skin=patch[:10])


def test_photo_without_skin():
    blue = np.full((200, 200, 3), (20, 30, 90), np.uint8)
    assert not skin_mask(blue).any()
    result = depigmented_mask(blue)
    assert result.area_px == 0 and "no skin" in result.notes[0]


@pytest.mark.parametrize("seed", range(4))
def test_fill_holes_matches_scipy(seed):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    mask = cv2.GaussianBlur(rng.random((90, 130)).astype(np.float32), (0, 0), 2.0) > 0.5
    expected = ndi.binary_fill_holes(mask)
    assert expected.sum() > mask.sum()  # the pattern has holes to fill
    np.testing.assert_array_equal(fill_holes(mask), expected)


@pytest.mark.parametrize("boost", [1.3, 0.8])
def test_threshold_follows_a_visits_own_level_of_full_depigmentation(boost):
    """The same patch photographed with more (or less) contrast between
    depigmented and normal skin keeps its area when the baseline's level is
    given, and visibly changes it with the bare baseline threshold."""
    truth = _patch_mask()
    soft = cv2.GaussianBlur(truth.astype(np.float32), (0, 0), 8.0)  # a blurred border

    def photo(contrast):
        normal = np.array(NORMAL, np.float32)
        lighter = normal + contrast * (np.array(DEPIGMENTED, np.float32) - normal)
        image = _photo(7)
        return _finish(image + soft[..., None] * (lighter - normal))

    baseline = depigmented_mask(photo(1.0))
    assert baseline.depigmented_level is not None
    visit = photo(boost)
    followed = depigmented_mask(visit, threshold=baseline.threshold, reference_level=baseline.depigmented_level)
    fixed = depigmented_mask(visit, threshold=baseline.threshold)
    assert abs(followed.area_px / baseline.area_px - 1) < 0.01
    assert abs(fixed.area_px / baseline.area_px - 1) > 0.02


def test_a_phone_that_renders_skin_more_saturated_does_not_change_the_area():
    # Another phone (or its "vivid" mode) renders colours 35 % more saturated: normal skin turns
    # browner, the patch barely changes, and the patch's level of full depigmentation rises by
    # about half. The threshold follows it all the way (capped at 1.25 times, the area grew 1.2 %).
    rng = np.random.default_rng(0)
    truth = np.zeros((400, 600), np.uint8)
    cv2.ellipse(truth, (300, 200), (150, 100), 0, 0, 360, 1, -1)
    normal, depigmented = srgb_to_linear(np.uint8(NORMAL)), srgb_to_linear(np.uint8([235, 205, 195]))
    light = cv2.GaussianBlur(np.where(truth[..., None] > 0, depigmented, normal).astype(np.float32), (0, 0), 2.0)
    photo = linear_to_srgb(light * (1 + 0.01 * rng.standard_normal((400, 600, 1)).astype(np.float32)))
    hsv = cv2.cvtColor(photo, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.35, 0, 255)
    vivid = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    baseline = depigmented_mask(photo)
    visit = depigmented_mask(vivid, threshold=baseline.threshold, reference_level=baseline.depigmented_level)
    assert visit.depigmented_level / baseline.depigmented_level > 1.4
    assert abs(visit.area_px / baseline.area_px - 1) < 0.005


@pytest.mark.parametrize("seed", range(5))
def test_otsu_matches_scikit_image(seed):
    from skimage.filters import threshold_otsu

    from repigment.core.segmentation import _otsu

    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(0, 1, 5000), rng.normal(3 + seed, 0.5, 1000 * (seed + 1))]).astype(np.float32)
    assert _otsu(values) == pytest.approx(float(threshold_otsu(values, nbins=512)), abs=1e-6)
    assert _otsu(np.full(10, 2.5, np.float32)) == 2.5


def _island_field(normal_srgb, depigmented_srgb, *, blur_sigma=1.2, radius=3, spacing=16, noise=0.01):
    """A depigmented square dotted with pigmented islands, blurred in linear light as optics do."""
    height = width = 300
    truth = np.zeros((height, width), bool)
    truth[50:250, 50:250] = True
    yy, xx = np.mgrid[0:height, 0:width]
    for cy in range(70, 240, spacing):
        for cx in range(70, 240, spacing):
            truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = False
    normal = srgb_to_linear(np.uint8(normal_srgb))
    depigmented = srgb_to_linear(np.uint8(depigmented_srgb))
    light = np.where(truth[..., None], depigmented, normal).astype(np.float32)
    light = cv2.GaussianBlur(light, (0, 0), blur_sigma)
    grain = 1.0 + noise * np.random.default_rng(0).standard_normal((height, width, 1)).astype(np.float32)
    return linear_to_srgb(light * grain), truth


def test_pigmented_islands_blurred_in_linear_light_keep_their_area():
    # Perifollicular repigmentation: 121 islands of 3 px radius in a patch, blurred by the optics.
    # Blur mixes light, not optical density, so at the density midpoint (0.5) each island edge
    # read about a pixel into the island: the patch measured 8.8 % too large and repigmentation
    # was under-counted. The threshold sits past the midpoint now (DEPIGMENTED_FRACTION).
    photo, truth = _island_field((190, 140, 110), (240, 214, 204))
    result = depigmented_mask(photo)
    assert result.method == "od-field"
    excess = result.area_px / truth.sum() - 1.0
    assert abs(excess) < 0.065, excess
    # Most of the islands are holes of the mask.
    holes = fill_holes(result.mask) & ~result.mask
    count, _ = cv2.connectedComponents(holes.view(np.uint8))
    assert count - 1 >= 0.9 * 121, count - 1


def test_a_noise_free_photo_is_segmented_without_error():
    # Normal skin whose values differ only in their last bits (no sensor noise at all, as in a
    # rendered image) has no histogram to split; the split above the median raised an error.
    photo, truth = _island_field((190, 140, 110), (240, 214, 204), noise=0.0)
    result = depigmented_mask(photo)
    assert abs(result.area_px / truth.sum() - 1.0) < 0.1


def test_regions_barely_lighter_than_the_skin_around_them_are_set_aside():
    """A region standing out from its own surroundings far less than the patch does is
    not a patch (the normal-skin field misfits there); a fainter patch still is."""
    from repigment.core.segmentation import _faint_regions

    size = (400, 600)
    whiteness = np.full(size, 20.0, np.float32)
    skin = np.ones(size, bool)
    mask = np.zeros(size, bool)
    patch, faint_patch, lighter_skin = (slice(40, 160), slice(40, 200)), (slice(250, 330), slice(60, 140)), \
        (slice(240, 330), slice(400, 490))
    whiteness[patch] += 40.0           # the patch
    whiteness[faint_patch] += 18.0     # a less depigmented patch: about half of the contrast
    whiteness[200:380, 360:540] += 25  # a broad lighter zone (uneven light) ...
    whiteness[lighter_skin] += 6.0     # ... whose lightest part passed the threshold
    for region in (patch, faint_patch, lighter_skin):
        mask[region] = True
    aside = _faint_regions(mask, whiteness, skin)
    expected = np.zeros(size, bool)
    expected[lighter_skin] = True
    assert np.array_equal(aside, expected)
    # Regions under 0.5 % of the mask move a figure little and are not judged.
    speck = (slice(360, 366), slice(560, 566))
    whiteness[speck] += 2.0
    mask[speck] = True
    assert not _faint_regions(mask, whiteness, skin)[speck].any()


def _two_patches_one_set_aside(monkeypatch):
    """A photo of two patches, and the rule made to set the right one aside."""
    import repigment.core.segmentation as segmentation

    truth = np.zeros((480, 640), bool)
    truth[100:220, 80:260] = True
    truth[260:380, 380:560] = True
    right = np.zeros_like(truth)
    right[:, 320:] = True
    monkeypatch.setattr(segmentation, "_faint_regions", lambda mask, whiteness, skin: mask & right)
    return _finish(_paint(_photo(41), truth)), truth, right


def test_only_a_photo_that_sets_its_own_threshold_sets_skin_aside_and_a_box_over_it_brings_it_back(monkeypatch):
    photo, truth, right = _two_patches_one_set_aside(monkeypatch)
    own = depigmented_mask(photo)
    assert own.set_aside is not None and _dice(own.set_aside, truth & right) > 0.95
    assert _dice(own.mask, truth & ~right) > 0.95
    assert any("left out" in note for note in own.notes)
    judged = depigmented_mask(photo, threshold=own.threshold)
    assert judged.set_aside is None and _dice(judged.mask, truth) > 0.95
    boxed = depigmented_mask(photo, roi=(360, 240, 220, 160))  # a box over the set-aside patch
    # Back in the rule's own mask, not found again by the fallback colour model.
    assert boxed.method == "od-field" and boxed.set_aside is None
    assert _dice(boxed.mask, truth & right) > 0.95
    # Under a box, the note on skin left out goes: what stays aside lies outside the box.
    assert not any("left out" in note for note in boxed.notes)
    other = depigmented_mask(photo, roi=(60, 80, 220, 160))  # a box over the other patch
    assert other.set_aside is not None and _dice(other.mask, truth & ~right) > 0.95
    assert not any("left out" in note for note in other.notes)


def test_a_set_aside_region_stays_out_at_every_threshold():
    from repigment.core.segmentation import Segmentation

    size = (100, 100)
    score = np.zeros(size, np.float32)
    score[10:40, 10:40] = 1.0
    score[60:90, 60:90] = 0.6
    aside = np.zeros(size, bool)
    aside[60:90, 60:90] = True
    skin = np.ones(size, bool)
    segmentation = Segmentation(mask=(score > 0.5) & ~aside, skin=skin, score=score, threshold=0.5, contrast=1.0,
                                normal_lab=np.zeros(3), normal_sigma=0.05, min_patch_px=4, set_aside=aside)
    for threshold in (0.3, 0.5, 0.7):
        assert not (segmentation.mask_at(threshold) & aside).any()
    assert segmentation.mask_at(0.5).sum() == 900


def _textured_island_field():
    """225 islands of 2 px radius in a faint patch on very light skin with strong texture (the smoothed path)."""
    photo, truth = _island_field((240, 214, 200), (250, 234, 228), noise=0.0, radius=2, spacing=12)
    texture = cv2.GaussianBlur(np.random.default_rng(1).standard_normal(photo.shape).astype(np.float32), (0, 0), 1.0)
    return np.clip(photo + 16 * texture, 0, 255).astype(np.uint8), truth


def test_pigment_islands_on_low_contrast_skin_stay_holes_of_the_mask():
    # Very light skin whose texture is strong against the patch's contrast: the score is smoothed
    # before the decision so that noise does not pass in speckles, which had also filled the
    # 225 islands of 2 px radius (the patch read 7.5 % too large). The regions the smoothed score
    # finds are judged inside on the unsmoothed one.
    photo, truth = _textured_island_field()
    result = depigmented_mask(photo)
    assert result.method == "od-field" and result.fine_score is not None  # the smoothed path
    assert abs(result.area_px / truth.sum() - 1.0) < 0.04, result.area_px / truth.sum()
    islands = fill_holes(truth) & ~truth
    count, labels = cv2.connectedComponents(islands.view(np.uint8))
    shown = np.unique(labels[islands & ~result.mask])
    assert len(shown) >= 0.8 * (count - 1), len(shown)  # most islands are (partly) holes of the mask
    # Intervals see the same rule at every threshold.
    assert np.array_equal(result.mask_at(result.threshold), result.mask)


def test_fine_scale_refines_only_within_its_region_and_joins_the_known_patch():
    from repigment.core.segmentation import Segmentation

    size = (80, 120)
    smoothed = np.zeros(size, np.float32)
    smoothed[10:50, 10:50] = 1.0        # the patch, islands filled in by the smoothing
    smoothed[10:50, 70:110] = 1.0       # new depigmentation, beyond the region
    fine = smoothed.copy()
    fine[20:24, 20:24] = 0.0            # an island of the patch
    fine[30:34, 80:84] = 0.0            # a hole of the new region, left as the smoothing found it
    fine[50:56, 10:50] = 1.0            # depigmented skin the smoothing thinned away, on the known patch
    fine[58:60, 10:50] = 1.0            # noise on the known patch, apart from the smoothed region
    fine[64:70, 10:50] = 1.0            # and a strip off the known patch
    fine[40:44, 40:44] = 1.0            # inside the patch but set aside
    aside = np.zeros(size, bool)
    aside[40:44, 40:44] = True
    patch = np.zeros(size, bool)
    patch[10:62, 10:50] = True
    region = np.zeros(size, bool)
    region[:, :60] = True
    segmentation = Segmentation(mask=(smoothed > 0.5) & ~aside, skin=np.ones(size, bool), score=smoothed,
                                threshold=0.5, contrast=1.0, normal_lab=np.zeros(3), normal_sigma=0.05,
                                fine_score=fine, set_aside=aside)
    refined = segmentation.with_fine_scale_within(region, patch=patch)
    mask = refined.mask
    assert not mask[20:24, 20:24].any()                      # the island shows
    assert mask[30:34, 80:84].all()                          # outside the region: unchanged
    assert mask[50:56, 10:50].all()                          # joins the patch on its footprint: counted
    assert not mask[58:60, 10:50].any()                      # apart from it: noise
    assert not mask[64:70, 10:50].any()                      # off the footprint: nothing new
    assert not mask[40:44, 40:44].any()                      # set aside stays aside
    assert mask.sum() == 2 * 1600 - 16 - 16 + 240
    assert np.array_equal(refined.mask_at(0.5), mask)
    # Nothing is found where the smoothed score found nothing (a repigmented patch).
    empty = Segmentation(mask=np.zeros(size, bool), skin=np.ones(size, bool), score=np.zeros(size, np.float32),
                         threshold=0.5, contrast=1.0, normal_lab=np.zeros(3), normal_sigma=0.05, fine_score=fine)
    assert not empty.with_fine_scale_within(region, patch=patch).mask.any()
    # Without a smoothed score there is nothing finer to judge by.
    plain = Segmentation(mask=smoothed > 0.5, skin=np.ones(size, bool), score=smoothed, threshold=0.5,
                         contrast=1.0, normal_lab=np.zeros(3), normal_sigma=0.05)
    assert plain.with_fine_scale_within(region, patch=patch) is plain


def test_fine_scale_keeps_a_polygon_region_of_interest():
    # A ring-shaped polygon encloses skin beyond it: with the mask's holes filled, the unsmoothed
    # score would have put it back.
    photo, _ = _textured_island_field()
    outer = [(40, 40), (260, 40), (260, 260), (40, 260), (40, 150)]
    inner = [(100, 150.4), (100, 200), (200, 200), (200, 100), (100, 100), (100, 149.6)]
    ring = np.array(outer[:-1] + [(40, 149.6)] + inner[::-1] + [(40, 150.4)], float)
    result = depigmented_mask(photo, roi=ring)
    assert result.fine_score is not None and result.mask.any()
    assert not (result.mask & ~roi_mask(photo.shape[:2], ring)).any()
