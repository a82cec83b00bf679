import cv2
import numpy as np
import pytest

from repigment.core.registration import (
    compose_scaling,
    register_to_baseline,
    visible_in_baseline,
    warp_to_baseline,
)


def _skin_texture(seed, size=(480, 640)):
    """Skin-like colour with multi-scale texture and dark dots (pores, moles)."""
    rng = np.random.default_rng(seed)
    h, w = size
    grey = np.zeros(size, np.float32)
    for sigma, amp in ((1.0, 6), (3.0, 8), (12.0, 10)):
        grey += amp * cv2.GaussianBlur(rng.standard_normal(size).astype(np.float32), (0, 0), sigma) * sigma**0.5
    for _ in range(250):
        cv2.circle(grey, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(1, 4)), -25, -1)
    base = np.array([190, 140, 110], np.float32)
    rgb = base[None, None, :] * (1 + grey[..., None] / 120.0)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _homography(angle_deg, scale, tx, ty, px=0.0, py=0.0, centre=(320, 240)):
    a = np.radians(angle_deg)
    cx, cy = centre
    to_origin = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], float)
    rot = np.array([[scale * np.cos(a), -scale * np.sin(a), 0], [scale * np.sin(a), scale * np.cos(a), 0], [0, 0, 1]])
    back = np.array([[1, 0, cx + tx], [0, 1, cy + ty], [0, 0, 1]], float)
    persp = np.array([[1, 0, 0], [0, 1, 0], [px, py, 1]], float)
    return back @ rot @ persp @ to_origin


def _corner_error(h_true, h_est, shape):
    h, w = shape
    pts = np.float32([[0, 0], [w, 0], [w, h], [0, h], [w / 2, h / 2]])[None]
    a = cv2.perspectiveTransform(pts, h_true)[0]
    b = cv2.perspectiveTransform(pts, h_est)[0]
    return float(np.abs(a - b).max())


@pytest.mark.parametrize(
    "angle, scale, persp",
    [(0, 1.0, 0.0), (20, 1.2, 0.0), (-20, 0.8, 0.0), (12, 1.1, 2e-4), (-8, 0.9, -2e-4)],
)
def test_known_homography_is_recovered_under_lighting_change(angle, scale, persp):
    scene = _skin_texture(1, (700, 900))
    baseline = scene[110:590, 130:770].copy()
    # The visit sees the scene through a known homography, darker and warmer.
    h_scene_to_visit = _homography(angle, scale, 8, -6, persp, -persp, centre=(450, 350))
    h_scene_to_base = np.array([[1, 0, -130], [0, 1, -110], [0, 0, 1]], float)
    visit = cv2.warpPerspective(scene, h_scene_to_visit, (640, 480))
    visit = np.clip(visit.astype(np.float32) * np.array([0.8, 0.75, 0.6]), 0, 255).astype(np.uint8)
    h_true = h_scene_to_base @ np.linalg.inv(h_scene_to_visit)  # visit -> baseline

    reg = register_to_baseline(baseline, visit)
    assert reg.ok, reg.reason
    assert reg.score > 0.5
    assert _corner_error(h_true, reg.homography, visit.shape[:2]) < 1.5


def test_photo_of_another_place_fails_with_a_reason():
    baseline = _skin_texture(1)
    elsewhere = _skin_texture(2)
    reg = register_to_baseline(baseline, elsewhere)
    assert not reg.ok
    assert not reg
    assert reg.reason and "\n" not in reg.reason


def test_featureless_photo_fails_instead_of_raising():
    flat = np.full((480, 640, 3), (190, 140, 110), np.uint8)
    reg = register_to_baseline(_skin_texture(1), flat)
    assert not reg.ok and "texture" in reg.reason


def test_mirror_image_is_rejected():
    baseline = _skin_texture(3)
    reg = register_to_baseline(baseline, baseline[:, ::-1].copy())
    assert not reg.ok


def test_compose_scaling_and_warp_map_a_mask_into_the_full_frame():
    mask = np.zeros((100, 150), bool)
    mask[20:60, 30:90] = True
    h_full = compose_scaling(np.eye(3), moving_scale=1.0, baseline_scale=0.5)  # working is half size
    full = warp_to_baseline(mask, h_full, (200, 300))
    assert full.shape == (200, 300)
    assert abs(int(full.sum()) - 4 * int(mask.sum())) < 0.03 * 4 * mask.sum()
    assert visible_in_baseline((100, 150), h_full, (200, 300)).mean() > 0.98


def test_features_are_the_strongest_of_the_allowed_skin_not_of_the_whole_photo():
    """A high-contrast object (the marker, a ruler) outside the allowed mask
    must not use up the feature budget: the skin keeps its full share."""
    from repigment.core import registration

    skin = _skin_texture(5, size=(960, 1280))
    board = (np.random.default_rng(1).random((40, 40)) > 0.5).astype(np.uint8) * 255  # marker-like modules
    photo = skin.copy()
    photo[:, 700:] = cv2.resize(board, (580, 960), interpolation=cv2.INTER_NEAREST)[..., None]
    allowed = np.zeros(photo.shape[:2], bool)
    allowed[:, :600] = True
    alone = registration.image_features(skin, allowed)
    beside_board = registration.image_features(photo, allowed)
    assert len(alone.points) >= 200
    assert len(beside_board.points) >= 0.9 * len(alone.points)
    assert beside_board.points[:, 0].max() < 600
    assert beside_board.descriptors.shape == (len(beside_board.points), 128)
