import datetime as dt

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from repigment.core.scoring import (
    VASI_LEVELS,
    find_milestones,
    repigmentation_pct,
    residual_fraction,
    score_visit,
    vasi_residual_level,
    weeks_since,
)
from repigment.errors import InvalidParameterError


def test_repigmentation_pct_known_values():
    assert repigmentation_pct(1000, 1000) == 0.0
    assert repigmentation_pct(1000, 0) == 100.0
    assert repigmentation_pct(1000, 250) == 75.0
    assert repigmentation_pct(1000, 1300) == pytest.approx(-30.0)


def test_repigmentation_pct_rejects_empty_baseline():
    with pytest.raises(InvalidParameterError, match="baseline"):
        repigmentation_pct(0, 10)


def test_painted_patch_of_known_area_is_measured_in_px_and_cm2():
    baseline = np.zeros((300, 400), bool)
    baseline[100:200, 100:300] = True  # 20 000 px
    visit = np.zeros_like(baseline)
    visit[100:150, 100:300] = True  # 10 000 px left, all inside the footprint
    visit[10:20, 10:20] = True  # 100 px of new depigmentation outside it
    score = score_visit(baseline, visit, mm_per_px=0.1)
    assert score.area_px == 10_100
    assert score.area_cm2 == pytest.approx(10_100 * 0.01 / 100)
    assert score.repigmentation_pct == pytest.approx(49.5)
    assert score.residual_fraction == pytest.approx(0.5)
    assert score.vasi_residual_depigmentation == 50
    assert score.new_depigmentation_px == 100


def test_identical_masks_score_zero_change():
    mask = np.zeros((50, 50), bool)
    mask[10:30, 5:45] = True
    score = score_visit(mask, mask.copy())
    assert score.repigmentation_pct == 0.0
    assert score.vasi_residual_depigmentation == 100
    assert score.area_cm2 is None


@pytest.mark.parametrize(
    "fraction, level",
    [(0.0, 0), (0.04, 0), (0.06, 10), (0.2, 25), (0.5, 50), (0.7, 75), (0.85, 90), (0.96, 100), (1.0, 100)],
)
def test_vasi_levels(fraction, level):
    assert vasi_residual_level(fraction) == level


@given(st.floats(0, 1), st.floats(0, 1))
def test_vasi_level_is_monotone(a, b):
    low, high = sorted((a, b))
    assert vasi_residual_level(low) <= vasi_residual_level(high)
    assert vasi_residual_level(low) in VASI_LEVELS


def test_vasi_level_rejects_out_of_range():
    with pytest.raises(InvalidParameterError):
        vasi_residual_level(1.5)


def test_residual_fraction_needs_same_frame():
    with pytest.raises(InvalidParameterError, match="baseline frame"):
        residual_fraction(np.ones((3, 3), bool), np.ones((4, 4), bool))


def test_weeks_since():
    start = dt.date(2026, 1, 5)
    assert weeks_since(start, dt.date(2026, 1, 5)) == 0
    assert weeks_since(start, dt.date(2027, 1, 4)) == 52
    assert weeks_since(start, dt.date(2026, 1, 1)) < 0


def test_milestones_skip_unscored_visits_and_report_first_week():
    m = find_milestones([0, 4, 8, 24, 52], [0.0, None, 55.0, 80.0, 95.0])
    assert (m.vasi50_week, m.vasi75_week, m.vasi90_week) == (8, 24, 52)
    none = find_milestones([0, 4], [0.0, 20.0])
    assert (none.vasi50_week, none.vasi75_week, none.vasi90_week) == (None, None, None)


@given(
    st.integers(1, 10_000),
    st.integers(0, 10_000),
)
def test_repigmentation_never_exceeds_100(a0, at):
    value = repigmentation_pct(a0, at)
    assert value <= 100.0
    assert (value < 0) == (at > a0)
