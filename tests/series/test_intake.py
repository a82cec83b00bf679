"""Upload checks against known truth: a visit of the same patch lines up, another patch does not."""

from __future__ import annotations

import pytest

from repigment.series import intake as checks
from repigment.synthetic import SeriesSpec, generate_series, write_series


@pytest.fixture(scope="module")
def series_with_a_wrong_place_photo(tmp_path_factory):
    spec = SeriesSpec(seed=11, weeks=(0, 12, 24), image_size=(640, 480), camera_variation=0.3,
                      wrong_place_visits=(2,))
    folder = write_series(generate_series(spec), tmp_path_factory.mktemp("upload") / "series")
    return sorted(folder.glob("visit_*.jpg"))


def test_a_visit_of_the_same_patch_lines_up_and_another_patch_does_not(series_with_a_wrong_place_photo):
    baseline, same, elsewhere = series_with_a_wrong_place_photo
    reference = checks.baseline_reference(baseline)
    # The visit is segmented as a series segments its visits: the baseline's model and core.
    assert reference.method == "od-field" and reference.core_factor is not None and reference.core_factor > 1.0
    lined_up = checks.check_alignment(reference, same.read_bytes(), same.name)
    assert lined_up.ok, lined_up.reason
    assert lined_up.ghost is not None
    wrong = checks.check_alignment(reference, elsewhere.read_bytes(), elsewhere.name)
    assert not wrong.ok and wrong.advice


def test_an_unreadable_upload_is_a_reason_not_an_exception(series_with_a_wrong_place_photo):
    reference = checks.baseline_reference(series_with_a_wrong_place_photo[0])
    result = checks.check_alignment(reference, b"not a photo", "visit.jpg")
    assert not result.ok and result.reason
