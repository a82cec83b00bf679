"""Result pictures drawn from masks and images whose every pixel is known."""

import cv2
import numpy as np
import pytest

from repigment.core.visualize import (
    NEW_DEPIGMENTATION_RGB,
    OUTLINE_RGB,
    REPIGMENTED_RGB,
    STILL_DEPIGMENTED_RGB,
    change_map,
    ghost_overlay,
    outline_overlay,
    side_by_side,
)

BACKGROUND = 50  # grey level of the plain test photos; no palette colour has it in every channel


def _plain(height: int, width: int, level: int = BACKGROUND) -> np.ndarray:
    return np.full((height, width, 3), level, np.uint8)


def _border(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with at least one of their 8 neighbours outside the mask."""
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderValue=0).astype(bool)
    return mask & ~inner


@pytest.fixture
def two_regions() -> np.ndarray:
    """A disc, and a rectangle with a hole in it, well inside a 200 x 240 frame."""
    mask = cv2.circle(np.zeros((200, 240), np.uint8), (80, 100), 50, 1, -1)
    mask[20:180, 150:220] = 1
    mask[60:120, 170:200] = 0
    return mask.astype(bool)


# -- outline_overlay -----------------------------------------------------------------


@pytest.mark.parametrize("thickness", [2, 3, 5])
def test_outline_covers_the_mask_border_and_nothing_far_from_it(two_regions, thickness):
    rgb = _plain(*two_regions.shape)
    out = outline_overlay(rgb, two_regions, thickness=thickness)
    border = _border(two_regions)
    # every border pixel of every region (the hole's edge too) is painted in the outline colour
    assert (out[border] == OUTLINE_RGB).all()
    # and no pixel farther from the border than the line's width (anti-aliasing included) is touched
    distance = cv2.distanceTransform((~border).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    changed = (out != rgb).any(axis=2)
    assert distance[changed].max() <= thickness + 1
    assert (out[distance > thickness + 1] == BACKGROUND).all()


def test_outline_is_drawn_on_a_copy(two_regions):
    rgb = _plain(*two_regions.shape)
    before = rgb.copy()
    out = outline_overlay(rgb, two_regions, thickness=3)
    assert out is not rgb and not np.shares_memory(out, rgb)
    assert np.array_equal(rgb, before)
    assert out.shape == rgb.shape and out.dtype == np.uint8


def test_outline_takes_the_colour_asked_for(two_regions):
    colour = (255, 0, 255)
    out = outline_overlay(_plain(*two_regions.shape), two_regions, color=colour, thickness=3)
    assert (out[_border(two_regions)] == colour).all()


def test_empty_mask_draws_nothing():
    rgb = _plain(60, 80)
    assert np.array_equal(outline_overlay(rgb, np.zeros((60, 80), bool)), rgb)


def test_default_outline_is_a_quarter_percent_of_the_long_side():
    mask = np.zeros((800, 1200), bool)
    mask[300:500, 400:800] = True
    rgb = _plain(800, 1200)
    # 0.25 % of 1200 px = 3 px
    assert np.array_equal(outline_overlay(rgb, mask), outline_overlay(rgb, mask, thickness=3))
    assert not np.array_equal(outline_overlay(rgb, mask), outline_overlay(rgb, mask, thickness=2))


def test_outline_refuses_a_mask_of_another_size():
    with pytest.raises(ValueError, match="same size"):
        outline_overlay(_plain(60, 80), np.zeros((80, 60), bool))


# -- change_map ----------------------------------------------------------------------


@pytest.fixture
def baseline_and_visit():
    """Overlapping squares: the visit kept the middle, lost the left part and gained the right."""
    baseline = np.zeros((60, 90), bool)
    visit = np.zeros((60, 90), bool)
    baseline[10:50, 10:50] = True
    visit[10:50, 30:70] = True
    return baseline, visit


def test_change_map_colours_exactly_the_repigmented_kept_and_new_pixels(baseline_and_visit):
    baseline, visit = baseline_and_visit
    out = change_map(baseline, visit, alpha=1.0)
    expected = np.full(baseline.shape + (3,), 60, np.uint8)  # plain dark grey without a background
    expected[10:50, 10:30] = REPIGMENTED_RGB
    expected[10:50, 30:50] = STILL_DEPIGMENTED_RGB
    expected[10:50, 50:70] = NEW_DEPIGMENTATION_RGB
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("on", [1, 255])
def test_change_map_of_integer_masks_is_that_of_bool_masks(baseline_and_visit, on):
    baseline, visit = baseline_and_visit
    as_int = [np.where(mask, np.uint8(on), np.uint8(0)) for mask in (baseline, visit)]
    assert np.array_equal(change_map(*as_int), change_map(baseline, visit))


def test_change_map_blends_its_colours_with_alpha(baseline_and_visit):
    baseline, visit = baseline_and_visit
    out = change_map(baseline, visit, alpha=0.5)
    assert (out[10:50, 10:30] == np.floor(0.5 * 60 + 0.5 * np.array(REPIGMENTED_RGB))).all()
    assert (out[~(baseline | visit)] == 60).all()
    assert np.array_equal(change_map(baseline, visit, alpha=0.0), np.full(out.shape, 60, np.uint8))


def test_change_map_greys_out_the_background(baseline_and_visit):
    baseline, visit = baseline_and_visit
    photo = _plain(*baseline.shape, level=100)
    before = photo.copy()
    out = change_map(baseline, visit, background=photo, alpha=1.0)
    assert (out[~(baseline | visit)] == 95).all()  # 0.35 x 100 + 60
    assert (out[10:50, 30:50] == STILL_DEPIGMENTED_RGB).all()
    assert np.array_equal(photo, before)


def test_change_map_refuses_masks_or_background_of_another_size(baseline_and_visit):
    baseline, visit = baseline_and_visit
    with pytest.raises(ValueError, match="same shape"):
        change_map(baseline, visit[:, :-1])
    with pytest.raises(ValueError, match="same size"):
        change_map(baseline, visit, background=_plain(60, 89))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        change_map(baseline, visit, background=np.zeros(baseline.shape, np.uint8))


# -- ghost_overlay -------------------------------------------------------------------


def test_ghost_is_the_weighted_mean_of_the_two_photos():
    baseline, visit = _plain(40, 60, 200), _plain(40, 60, 100)
    assert (ghost_overlay(baseline, visit, alpha=0.4) == 140).all()  # 0.6 x 100 + 0.4 x 200
    assert np.array_equal(ghost_overlay(baseline, visit, alpha=0.0), visit)
    assert np.array_equal(ghost_overlay(baseline, visit, alpha=1.0), baseline)


def test_ghost_of_a_baseline_of_another_size_takes_the_new_photos_size():
    baseline, visit = _plain(80, 120, 200), _plain(40, 60, 100)
    out = ghost_overlay(baseline, visit, alpha=0.5)
    assert out.shape == visit.shape
    assert (out == 150).all()


@pytest.mark.parametrize("bad", [np.zeros((40, 60), np.uint8), np.zeros((40, 60, 3), np.float64)])
def test_ghost_refuses_non_rgb_images(bad):
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        ghost_overlay(bad, _plain(40, 60))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        ghost_overlay(_plain(40, 60), bad)


# -- side_by_side --------------------------------------------------------------------


def test_side_by_side_puts_the_two_images_either_side_of_a_white_gap():
    left, right = _plain(50, 70, 10), _plain(50, 30, 200)
    out = side_by_side(left, right, gap=8)
    assert out.shape == (50, 70 + 8 + 30, 3)
    assert np.array_equal(out[:, :70], left)
    assert (out[:, 70:78] == 255).all()
    assert np.array_equal(out[:, 78:], right)


def test_side_by_side_scales_the_taller_image_to_the_shorter_ones_height():
    left, right = _plain(100, 200, 10), _plain(50, 60, 200)
    out = side_by_side(left, right, gap=0)
    assert out.shape == (50, 100 + 60, 3)  # the left one halved, its proportions kept
    assert (out[:, :100] == 10).all()
    assert (out[:, 100:] == 200).all()


def test_side_by_side_refuses_non_rgb_images():
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        side_by_side(_plain(50, 50), np.zeros((50, 50, 4), np.uint8))
