import cv2
import numpy as np
import pytest

from repigment.core.calibration import MarkerDetection, detect_marker, marker_exclusion_mask, plane_area_mm2
from repigment.core.color import (
    individual_typology_angle,
    ita_category,
    linear_to_srgb,
    normalize_color,
    rgb_to_lab,
    srgb_to_linear,
)
from repigment.errors import InvalidParameterError

DICT = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)


def _photo_with_marker(side_px, angle_deg=0.0, marker_id=5, size=(600, 800), paper=235):
    tag = cv2.aruco.generateImageMarker(DICT, marker_id, side_px)
    quiet = side_px // 4
    sheet = np.full((side_px + 2 * quiet, side_px + 2 * quiet), paper, np.uint8)
    sheet[quiet:quiet + side_px, quiet:quiet + side_px] = np.where(tag > 0, paper, 20)
    photo = np.empty(size + (3,), np.uint8)
    photo[:] = (180, 130, 100)
    centre = (size[1] / 2, size[0] / 2)
    rot = cv2.getRotationMatrix2D((sheet.shape[1] / 2, sheet.shape[0] / 2), angle_deg, 1.0)
    rot[:, 2] += np.array(centre) - np.array(sheet.shape[::-1]) / 2
    warped = cv2.warpAffine(sheet, rot, size[::-1], flags=cv2.INTER_LINEAR, borderValue=0)
    inside = cv2.warpAffine(np.ones_like(sheet), rot, size[::-1], flags=cv2.INTER_NEAREST) > 0
    photo[inside] = warped[inside][:, None]
    return photo


@pytest.mark.parametrize("angle", [0.0, 17.0, -33.0])
@pytest.mark.parametrize("side_px", [60, 150])
def test_marker_of_known_size_is_found(angle, side_px):
    photo = _photo_with_marker(side_px, angle)
    found = detect_marker(photo, marker_mm=20.0)
    assert found is not None and found.marker_id == 5
    assert found.side_px == pytest.approx(side_px, rel=0.02)
    assert found.mm_per_px == pytest.approx(20.0 / side_px, rel=0.02)


def test_marker_white_reference_reads_the_paper():
    photo = _photo_with_marker(120, paper=200)
    found = detect_marker(photo)
    expected = srgb_to_linear(np.array([200], np.uint8))[0]
    np.testing.assert_allclose(found.white_rgb, expected, rtol=0.03)


def test_no_marker_gives_none():
    photo = np.full((300, 300, 3), (180, 130, 100), np.uint8)
    assert detect_marker(photo) is None


def test_marker_size_is_validated():
    with pytest.raises(InvalidParameterError, match="marker_mm"):
        detect_marker(np.zeros((100, 100, 3), np.uint8), marker_mm=0)


def test_marker_exclusion_covers_the_marker():
    photo = _photo_with_marker(100)
    found = detect_marker(photo)
    mask = marker_exclusion_mask(photo.shape[:2], found)
    ys, xs = np.nonzero(mask)
    corners = found.corners
    assert xs.min() < corners[:, 0].min() and xs.max() > corners[:, 0].max()
    assert ys.min() < corners[:, 1].min() and ys.max() > corners[:, 1].max()


def test_srgb_round_trip_is_exact():
    values = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(linear_to_srgb(srgb_to_linear(values)), values)


def test_marker_white_balance_removes_a_colour_cast():
    photo = _photo_with_marker(120, paper=220)
    linear = srgb_to_linear(photo) * np.array([1.2, 1.0, 0.8], np.float32)
    cast = linear_to_srgb(linear)
    found = detect_marker(cast)
    balanced = normalize_color(cast, white_rgb=found.white_rgb).rgb
    skin = balanced[10, 10].astype(int)
    reference = normalize_color(photo, white_rgb=detect_marker(photo).white_rgb).rgb[10, 10].astype(int)
    assert np.abs(skin - reference).max() <= 2


def test_ita_of_known_colours():
    assert float(individual_typology_angle(np.array([50.0, 10.0, 20.0]))) == pytest.approx(0.0)
    lab = rgb_to_lab(np.array([[[240, 215, 205]]], np.uint8))[0, 0]
    assert lab[1] > 0  # depigmented skin keeps a pink tint
    assert ita_category(60) == "very light" and ita_category(-45) == "dark"


def _tilted_view():
    """A camera looking at the skin plane at a tilt: plane mm -> image pixels."""
    plane_to_px = np.array([[9.0, 1.2, 140.0], [-0.8, 8.1, 90.0], [0.0021, 0.0013, 1.0]])
    corners_mm = np.float32([[0, 0], [20, 0], [20, 20], [0, 20]])
    corners_px = cv2.perspectiveTransform(corners_mm[None], plane_to_px)[0].astype(np.float64)
    marker = MarkerDetection(1, corners_px, 0.0, 0.0, np.ones(3), marker_mm=20.0)
    return plane_to_px, marker


def test_plane_area_of_a_tilted_view_is_the_area_on_the_skin():
    plane_to_px, marker = _tilted_view()
    # A 30 x 40 mm rectangle on the skin, away from the marker, seen in perspective.
    rect_mm = np.float32([[40, 10], [70, 10], [70, 50], [40, 50]])
    rect_px = cv2.perspectiveTransform(rect_mm[None], plane_to_px)[0]
    mask = np.zeros((700, 1000), np.uint8)
    cv2.fillPoly(mask, [np.round(rect_px).astype(np.int32)], 1)
    pixels = int(mask.sum())
    area = plane_area_mm2(mask.astype(bool), marker)
    assert area == pytest.approx(1200.0, rel=0.01)
    # One mm-per-pixel figure from the marker would be clearly off at this tilt.
    naive = pixels * (20.0 / np.sqrt(cv2.contourArea(marker.corners.astype(np.float32)))) ** 2
    assert abs(naive - 1200.0) > 0.05 * 1200.0


@pytest.mark.parametrize("shape", [(61, 83), (800, 1203), (17, 5)])
def test_plane_area_in_blocks_equals_the_per_pixel_sum(shape):
    plane_to_px, marker = _tilted_view()
    rng = np.random.default_rng(shape[0])
    mask = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 3) > 0.5
    h = cv2.getPerspectiveTransform(marker.corners.astype(np.float32), np.float32([[0, 0], [20, 0], [20, 20], [0, 20]]))
    h = h / h[2, 2]
    ys, xs = np.nonzero(mask)
    det = np.linalg.det(h)
    centre = marker.corners.mean(axis=0)
    reference = det / abs(h[2, 0] * centre[0] + h[2, 1] * centre[1] + 1.0) ** 3
    sizes = np.clip(det / np.abs(h[2, 0] * xs + h[2, 1] * ys + 1.0) ** 3, reference / 1.5**2, reference * 1.5**2)
    assert plane_area_mm2(mask, marker) == pytest.approx(float(sizes.sum()), rel=1e-4)
