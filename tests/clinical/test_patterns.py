"""Pattern of response and spreading, on drawn masks and on generated courses of known truth."""

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from repigment import analyze_series
from repigment.clinical.patterns import PATTERNS, classify_pattern, detect_spreading
from repigment.clinical.summary import clinical_summary
from repigment.errors import InvalidParameterError
from repigment.synthetic import SeriesSpec, generate_series, write_series

SIZE = (800, 600)


def _disk(shape, centre, radius):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2


def _blob():
    """An irregular patch: a union of disks."""
    shape = (400, 500)
    mask = _disk(shape, (250, 200), 110) | _disk(shape, (330, 150), 70) | _disk(shape, (170, 260), 60)
    return mask


def _erode(mask, px):
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.erode(mask.astype(np.uint8), kernel).astype(bool)


def _dots(mask, spacing, radius, rng):
    """Pigment islands scattered over the inside of the patch."""
    out = mask.copy()
    inside = _erode(mask, 8)
    ys, xs = np.nonzero(inside[::spacing, ::spacing])
    for y, x in zip(ys * spacing, xs * spacing):
        y += rng.integers(-3, 4)
        x += rng.integers(-3, 4)
        out &= ~_disk(mask.shape, (x, y), radius)
    return out


# --- drawn masks --------------------------------------------------------------------------------

def test_border_advancing_inward_is_marginal():
    base = _blob()
    for depth in (6, 20, 45):
        result = classify_pattern(base, _erode(base, depth))
        assert result.pattern == "marginal", (depth, result)
        assert result.features.border_excess > 0.5


def test_islands_inside_the_patch_are_perifollicular():
    base = _blob()
    rng = np.random.default_rng(0)
    early = _dots(base, 22, 3, rng)
    result = classify_pattern(base, early)
    assert result.pattern == "perifollicular", result
    assert result.features.island_count >= 20
    merged = _dots(base, 14, 6, rng)
    assert classify_pattern(base, merged).pattern == "perifollicular"


def test_border_and_islands_together_are_combined():
    base = _blob()
    both = _dots(_erode(base, 15), 22, 4, np.random.default_rng(1))
    result = classify_pattern(base, both)
    assert result.pattern == "combined", result
    assert set(result.components) == {"marginal", "perifollicular"}


def test_faint_overall_darkening_is_diffuse_when_contrast_is_known():
    base = _blob()
    assert classify_pattern(base, base).pattern == "none"
    assert classify_pattern(base, base, contrast_ratio=0.97).pattern == "none"
    result = classify_pattern(base, base, contrast_ratio=0.75)
    assert result.pattern == "diffuse" and "less white" in result.reason


def test_broad_central_clearing_without_islands_is_diffuse():
    base = _blob()
    cleared = base & ~_disk(base.shape, (260, 190), 75)
    assert classify_pattern(base, cleared).pattern == "diffuse"


def test_jitter_along_the_border_is_no_pattern():
    base = _blob()
    shifted = np.roll(base, 1, axis=1)
    assert classify_pattern(base, shifted).pattern == "none"


def test_pattern_inputs_are_checked():
    with pytest.raises(InvalidParameterError, match="frame"):
        classify_pattern(np.ones((10, 10), bool), np.ones((10, 12), bool))
    with pytest.raises(InvalidParameterError, match="empty"):
        classify_pattern(np.zeros((10, 10), bool), np.zeros((10, 10), bool))


def test_spreading_flag_with_area_and_location():
    base = _blob()
    later = base.copy()
    later |= _disk(base.shape, (60, 60), 30)  # a new spot up and to the left of the patch
    found = detect_spreading(base, later, px_scale=2.0, cm2_per_px=0.0004)
    assert found.flagged
    spot = found.regions[0]
    assert not spot.attached
    assert spot.location.startswith("a separate spot to the upper left of the patch")
    # Reported in full-resolution baseline pixels (the mask is at half size).
    assert spot.centroid_xy == pytest.approx((120.0, 120.0), abs=2.0)
    assert spot.area_px == pytest.approx(4 * np.pi * 30**2, rel=0.1)
    assert spot.area_cm2 == pytest.approx(spot.area_px * 0.0004)
    assert spot.distance_mm is not None and spot.distance_mm > 0
    assert "cm²" in found.description


def test_spreading_along_the_border_is_attached():
    base = _blob()
    grown = base | (cv2.dilate(base.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
                    & (np.mgrid[0:400, 0:500][1] > 330))
    found = detect_spreading(base, grown)
    assert found.flagged
    assert found.regions[0].attached
    assert "along the border" in found.regions[0].location and "right" in found.regions[0].location


def test_small_new_specks_are_not_spreading():
    base = _blob()
    later = base | _disk(base.shape, (40, 380), 3)
    found = detect_spreading(base, later)
    assert not found.flagged
    assert found.description.startswith("No")


# --- generated courses ---------------------------------------------------------------------------

def _analyse(tmp_path_factory, name, **spec):
    directory = tmp_path_factory.mktemp(name)
    series = generate_series(SeriesSpec(image_size=SIZE, **spec))
    write_series(series, directory)
    result = analyze_series(directory, keep_images=True)
    return series, result


@pytest.fixture(scope="module")
def perifollicular(tmp_path_factory):
    return _analyse(tmp_path_factory, "perifollicular", seed=21, skin_type="IV", course="perifollicular",
                    weeks=(0, 36, 52), final_residual=0.3)


@pytest.fixture(scope="module")
def marginal(tmp_path_factory):
    return _analyse(tmp_path_factory, "marginal", seed=22, skin_type="III", course="marginal",
                    weeks=(0, 24, 52), final_residual=0.3)


@pytest.fixture(scope="module")
def spreading(tmp_path_factory):
    return _analyse(tmp_path_factory, "spreading", seed=23, skin_type="V", course="spreading",
                    weeks=(0, 52), final_residual=1.6)


def _patterns(result):
    base = result.visits[0].mask_baseline
    return [classify_pattern(base, v.mask_baseline) for v in result.visits[1:]]


def test_generated_perifollicular_course_is_perifollicular(perifollicular):
    _, result = perifollicular
    assert all(v.ok for v in result.visits)
    assert [p.pattern for p in _patterns(result)] == ["perifollicular", "perifollicular"]
    summary = clinical_summary(result, body_region="face", hand_unit=180.0)
    assert [v["pattern"]["pattern"] for v in summary["visits"][1:]] == ["perifollicular", "perifollicular"]
    assert not any(v["spreading"]["flagged"] for v in summary["visits"][1:])


def test_generated_marginal_course_is_marginal(marginal):
    _, result = marginal
    assert all(v.ok for v in result.visits)
    assert [p.pattern for p in _patterns(result)] == ["marginal", "marginal"]


def test_generated_spreading_course_is_flagged_at_the_right_place(spreading):
    series, result = spreading
    assert all(v.ok for v in result.visits)
    base = result.visits[0].mask_baseline
    found = detect_spreading(base, result.visits[-1].mask_baseline)
    assert found.flagged
    # Truth: new depigmentation outside the (slightly grown) true baseline footprint.
    truth_base = series.visits[0].truth_mask_baseline
    truth_new = series.visits[-1].truth_mask_baseline & ~cv2.dilate(
        truth_base.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))).astype(bool)
    assert found.area_px == pytest.approx(truth_new.sum(), rel=0.35)
    # The satellite patch: the truth's separate component, found as a separate spot at its place.
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(truth_new.astype(np.uint8))
    grown = cv2.dilate(truth_base.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    separate = [k for k in range(1, count) if not (labels == k)[grown].any() and stats[k, cv2.CC_STAT_AREA] > 100]
    assert separate, "the generated course should have a satellite patch"
    satellite = centroids[max(separate, key=lambda k: stats[k, cv2.CC_STAT_AREA])]
    spots = [r for r in found.regions if not r.attached]
    assert spots
    nearest = min(spots, key=lambda r: np.hypot(*(np.array(r.centroid_xy) - satellite)))
    assert np.hypot(*(np.array(nearest.centroid_xy) - satellite)) < 15
    x, y, w, h = nearest.bbox_xywh
    assert x <= satellite[0] <= x + w and y <= satellite[1] <= y + h
    # And no pattern of repigmentation is claimed for a patch that only grew.
    assert classify_pattern(base, result.visits[-1].mask_baseline).pattern == "none"
    summary = clinical_summary(result, body_region="trunk")
    assert summary["visits"][-1]["spreading"]["flagged"]
    assert summary["checkpoints"]["week52"]["spreading"]


def test_every_pattern_name_is_documented():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert PATTERNS
    # The README's "Pattern of response" bullet names every pattern the classifier can return.
    bullet = re.search(r"^- \*\*Pattern of response\*\*.*?(?=^- |^#|\Z)", readme, re.M | re.S)
    assert bullet, "README has no 'Pattern of response' bullet"
    for name in PATTERNS:
        assert re.search(rf"\b{re.escape(name)}\b", bullet.group(0)), f"pattern {name!r} missing from README.md"
