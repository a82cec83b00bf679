"""Hand units from a synthetic palm photo of known area, and from height and weight."""

import io

import numpy as np
import pytest
from hand_photos import synthetic_hand_photo
from PIL import Image

from repigment.clinical.hand_units import HandPhotoError, measure_hand_unit
from repigment.clinical.vasi import (
    entered_hand_unit,
    hand_unit_cm2_from_bsa,
    hand_unit_from_height_weight,
    mosteller_bsa_m2,
)
from repigment.errors import InvalidParameterError


@pytest.mark.parametrize("seed, px_per_mm, skin", [
    (1, 4.0, (200, 148, 122)),
    (2, 3.0, (120, 80, 58)),     # darker skin, coarser photo
    (3, 5.0, (232, 196, 178)),   # fair skin
])
def test_hand_unit_from_a_palm_photo_within_5_percent(seed, px_per_mm, skin):
    photo, truth = synthetic_hand_photo(seed, px_per_mm=px_per_mm, skin_rgb=skin)
    measured = measure_hand_unit(photo, marker_mm=20.0)
    assert measured.hand_unit.source == "photo"
    assert not measured.wrist_cut
    assert measured.hand_unit.cm2 == pytest.approx(truth, rel=0.05)
    low, high = measured.hand_unit.interval_cm2
    assert low < measured.hand_unit.cm2 < high


def test_forearm_in_the_frame_is_cut_at_the_wrist():
    photo, truth = synthetic_hand_photo(4, forearm=True)
    measured = measure_hand_unit(photo, marker_mm=20.0)
    assert measured.wrist_cut
    assert measured.notes
    assert measured.hand_unit.cm2 == pytest.approx(truth, rel=0.08)


def test_hand_photo_without_marker_is_refused():
    photo, _ = synthetic_hand_photo(5)
    image = np.array(Image.open(io.BytesIO(photo)))
    image[int(190 * 4):, int(165 * 4):] = 25  # cover the marker with background
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    with pytest.raises(HandPhotoError, match="marker"):
        measure_hand_unit(buffer.getvalue())


@pytest.mark.parametrize("height, weight, expected", [
    # Mosteller, N Engl J Med 1987: BSA (m²) = sqrt(height cm x weight kg / 3600).
    (180, 80, 2.00),
    (170, 70, 1.82),
    (160, 60, 1.63),
    (152, 45, 1.38),
    (100, 16, 0.67),
    (190, 110, 2.41),
])
def test_mosteller_matches_published_values(height, weight, expected):
    assert mosteller_bsa_m2(height, weight) == pytest.approx(expected, abs=0.005)


def test_hand_unit_is_one_percent_of_body_surface():
    assert hand_unit_cm2_from_bsa(1.73) == pytest.approx(173.0)
    unit = hand_unit_from_height_weight(170, 70)
    assert unit.cm2 == pytest.approx(181.8, abs=0.1)
    assert "Mosteller" in unit.detail


@pytest.mark.parametrize("height, weight", [(1.7, 70), (170, 70000), (float("nan"), 70), (170, -3), ("tall", 70)])
def test_implausible_height_or_weight_is_refused(height, weight):
    with pytest.raises(InvalidParameterError):
        mosteller_bsa_m2(height, weight)


@pytest.mark.parametrize("value", [0, 5, 1000, float("inf")])
def test_implausible_entered_hand_unit_is_refused(value):
    with pytest.raises(InvalidParameterError, match="hand unit"):
        entered_hand_unit(value)
