"""VASI in hand units, patient totals, milestones and the week-24/52 checkpoints."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repigment.clinical.summary import checkpoint, resolve_hand_unit, vasi_series_from_clinical
from repigment.clinical.vasi import (
    HandUnit,
    entered_hand_unit,
    patch_vasi,
    patch_vasi_level,
    patient_totals,
    vasi_improvement_pct,
    vasi_index_name,
    vasi_series,
)
from repigment.core.scoring import repigmentation_pct
from repigment.errors import InvalidParameterError


def test_patch_vasi_is_area_in_hand_units():
    # 18 cm² of fully depigmented skin on a patient whose hand unit is 180 cm²: 0.1 HU x 100 %.
    assert patch_vasi(18.0, 180.0) == pytest.approx(0.1)
    assert patch_vasi(0.0, 180.0) == 0.0


def test_level_variant_follows_the_vasi_form():
    assert patch_vasi_level(18.0, 100, 180.0) == pytest.approx(0.1)
    assert patch_vasi_level(18.0, 25, 180.0) == pytest.approx(0.025)
    # New depigmentation outside the footprint counts at 100 %.
    assert patch_vasi_level(18.0, 50, 180.0, new_area_cm2=9.0) == pytest.approx(0.1)
    with pytest.raises(InvalidParameterError, match="level"):
        patch_vasi_level(18.0, 60, 180.0)


@settings(max_examples=60, deadline=None)
@given(
    base=st.floats(0.5, 400.0),
    ratio=st.floats(0.0, 3.0),
    unit=st.floats(20.0, 400.0),
)
def test_continuous_improvement_equals_area_repigmentation(base, ratio, unit):
    later = base * ratio
    improvement = vasi_improvement_pct(patch_vasi(base, unit), patch_vasi(later, unit))
    assert improvement == pytest.approx(repigmentation_pct(base, later), abs=1e-6)


def test_face_scores_f_vasi_and_other_regions_t_vasi():
    assert vasi_index_name("face") == "F-VASI"
    for region in ("hands", "upper-limbs", "trunk", "lower-limbs", "feet"):
        assert vasi_index_name(region) == "T-VASI"
    with pytest.raises(InvalidParameterError, match="body region"):
        vasi_index_name("elbow")


def test_series_scores_intervals_and_milestones():
    series = vasi_series(
        "trunk", [0, 12, 24, 52], [36.0, 27.0, 16.0, 3.0], 180.0,
        area_intervals_cm2=[(35.0, 37.0), (25.0, 29.0), (14.0, 18.0), (2.0, 4.0)],
    )
    assert series.index == "T-VASI"
    assert series.scores == pytest.approx((0.2, 0.15, 16 / 180, 3 / 180))
    assert series.intervals[1] == pytest.approx((25 / 180, 29 / 180))
    assert series.improvement_pct == pytest.approx((0.0, 25.0, 55.5556, 91.6667), abs=1e-3)
    assert (series.milestones.vasi50_week, series.milestones.vasi75_week, series.milestones.vasi90_week) == (24, 52, 52)


def test_photo_hand_unit_range_widens_the_score_range():
    unit = HandUnit(cm2=200.0, source="photo", interval_cm2=(190.0, 210.0))
    series = vasi_series("face", [0, 24], [20.0, 10.0], unit, area_intervals_cm2=[(19.0, 21.0), (9.0, 11.0)])
    low, high = series.intervals[1]
    assert low == pytest.approx(9.0 / 210.0)
    assert high == pytest.approx(11.0 / 190.0)


def test_missing_visit_is_skipped_not_counted():
    series = vasi_series("face", [0, 12, 24], [10.0, None, 2.0], 180.0)
    assert series.scores[1] is None and series.improvement_pct[1] is None
    assert series.milestones.vasi75_week == 24


def test_vasi_needs_a_baseline_area():
    with pytest.raises(InvalidParameterError, match="baseline"):
        vasi_series("face", [0, 24], [None, 3.0], 180.0)


def test_patient_totals_add_patches_of_the_same_index():
    cheek = vasi_series("face", [0, 24, 52], [9.0, 4.5, 1.8], 180.0)
    chin = vasi_series("face", [0.1, 24.2, 52.0], [9.0, 9.0, 9.0], 180.0)
    hand = vasi_series("hands", [0, 24, 52], [36.0, 18.0, 9.0], 180.0)
    totals = patient_totals([("face", cheek), ("face", chin), ("hands", hand)])
    face = totals["F-VASI"]
    assert face.scores == pytest.approx((0.1, 0.075, 0.06))
    assert face.improvement_pct == pytest.approx((0.0, 25.0, 40.0))
    assert face.milestones.vasi50_week is None
    body = totals["T-VASI"]
    assert body.scores == pytest.approx((0.2, 0.1, 0.05))
    assert body.milestones.vasi50_week == 24 and body.milestones.vasi75_week == 52
    # As in the trials' T-VASI, the face may be counted in the total too.
    with_face = patient_totals([("face", cheek), ("hands", hand)], face_in_total=True)["T-VASI"]
    assert with_face.scores[0] == pytest.approx(0.25)


def test_a_patient_total_drawing_on_a_visit_in_review_counts_for_no_milestone():
    import dataclasses

    cheek = vasi_series("face", [0, 24, 52], [9.0, 1.0, 4.0], 180.0)
    chin = vasi_series("face", [0, 24, 52], [9.0, 3.0, 4.0], 180.0)
    # The cheek's week-24 figure is contradicted by its own photo (a washed-out light).
    cheek = dataclasses.replace(cheek, needs_review=(False, True, False))
    total = patient_totals([("face", cheek), ("face", chin)])["F-VASI"]
    assert total.improvement_pct[1] == pytest.approx(77.8, abs=0.1)  # still shown
    assert total.needs_review == (False, True, False)
    assert total.milestones.vasi50_week == 52 and total.milestones.vasi75_week is None
    assert total.latest_improvement() == (52, pytest.approx(55.6, abs=0.1), False)
    untouched = patient_totals([("face", dataclasses.replace(cheek, needs_review=())), ("face", chin)])["F-VASI"]
    assert untouched.milestones.vasi75_week == 24 and untouched.needs_review == ()


def test_patient_total_is_missing_when_a_patch_was_not_photographed():
    cheek = vasi_series("face", [0, 24], [9.0, 4.5], 180.0)
    chin = vasi_series("face", [0, 30], [9.0, 4.5], 180.0)
    total = patient_totals([("face", cheek), ("face", chin)])["F-VASI"]
    assert total.scores[1] is None


def test_resolve_hand_unit_takes_exactly_one_source():
    assert resolve_hand_unit(hand_unit_cm2=175).source == "entered"
    assert resolve_hand_unit(height_cm=170, weight_kg=70).cm2 == pytest.approx(181.8, abs=0.1)
    with pytest.raises(InvalidParameterError, match="both"):
        resolve_hand_unit(height_cm=170)
    with pytest.raises(InvalidParameterError, match="one way"):
        resolve_hand_unit(hand_unit_cm2=175, height_cm=170, weight_kg=70)
    with pytest.raises(InvalidParameterError):
        entered_hand_unit(float("nan"))


# --- checkpoints ---------------------------------------------------------------------------------

def _check(week, region, values, intervals=None, **kwargs):
    weeks = [0, 12, 24, 36, 52][: len(values)]
    intervals = intervals or [None] * len(values)
    return checkpoint(week, body_region=region, weeks=weeks, improvement_pct=values,
                      improvement_intervals=intervals, **kwargs)


def test_checkpoint_is_null_until_a_visit_at_that_week():
    assert _check(24, "face", [0, 30]) is None
    assert _check(52, "face", [0, 30, 60, 70]) is None
    # A visit booked at week 24 that fell three days early still counts.
    early = checkpoint(24, body_region="face", weeks=[0, 23.6], improvement_pct=[0, 60],
                       improvement_intervals=[None, (55, 65)])
    assert early is not None and early["status"] == "reached"


@pytest.mark.parametrize("region, value, interval, status", [
    ("face", 62, (55, 70), "reached"),
    ("face", 48, (41, 55), "not reached"),    # the figure decides; the range only qualifies the words
    ("face", 56, (45.3, 67), "reached"),
    ("face", 30, (25, 35), "not reached"),
    ("trunk", 30, (26, 34), "reached"),       # 25 % is meaningful on the body
    ("trunk", 20, (15, 24), "not reached"),
    (None, 30, (26, 34), "reached"),          # region not given: body level
    ("face", 3, (-1.6, 8.9), "no improvement"),  # 0 is within the uncertainty
    ("hands", -12, (-15, -9), "no improvement"),
])
def test_week_24_against_the_levels_patients_find_meaningful(region, value, interval, status):
    record = _check(24, region, [0, 10, value], [None, None, interval])
    assert record["status"] == status
    assert record["meaningful_level_pct"] == (50.0 if region == "face" else 25.0)
    if status == "no improvement":
        assert record["no_improvement"]
        assert "label" in record["patient_message"] and "healthcare provider" in record["patient_message"]
        assert "contacting the prescriber" in record["clinician_message"]
    else:
        assert "label" not in record["patient_message"]
    if region is None:
        assert "not given" in record["clinician_message"]


def test_week_24_messages_are_plain_words():
    record = _check(24, "face", [0, 10, 62], [None, None, (55, 70)])
    message = record["patient_message"]
    assert "62%" in message and "55%" in message and "70%" in message
    assert "worthwhile" in message and "reached that" in message
    for jargon in ("VASI", "interval", "F-VASI", "segmentation"):
        assert jargon not in message
    assert "62.0% [55.0, 70.0]" in record["clinician_message"]


def test_week_52_against_the_trial_endpoints():
    face = _check(52, "face", [0, 10, 40, 60, 80], [None] * 4 + [(76, 84)])
    assert face["endpoint"].startswith("F-VASI75") and face["status"] == "reached"
    assert face["milestones"] == {"VASI50": True, "VASI75": True, "VASI90": False}
    body = _check(52, "trunk", [0, 10, 20, 30, 45], [None] * 4 + [(40, 50)])
    assert body["endpoint"].startswith("T-VASI50") and body["status"] == "not reached"
    assert body["status_words"] == "not reached, but the range reaches 50 %" and not body["certain"]
    grew = _check(52, "trunk", [0, -5, -10, -20, -40], [None] * 4 + [(-44, -36)])
    assert grew["no_improvement"] and "grown" in grew["patient_message"]


def test_one_rule_and_one_wording_for_a_figure_above_its_line_with_a_range_below():
    # Issue 12's case: 56.0 % [45.3, 67.0] at week 52 on the body.
    record = _check(52, "trunk", [0, 10, 20, 30, 56.0], [None] * 4 + [(45.3, 67.0)])
    assert record["status"] == "reached" and record["reached"] and not record["certain"]
    assert record["milestones"]["VASI50"]
    words = "reached, but the range reaches below 50 %"
    assert record["status_words"] == words
    clinician = record["clinician_message"]
    assert f"T-VASI50 (>= 50%): {words}." in clinician and "VASI50" in clinician.split("Milestones reached")[1]
    assert "borderline" not in clinician and "close" not in record["patient_message"]
    assert "has reached that" in record["patient_message"] and "dips below 50%" in record["patient_message"]
    # Just under the line is not reached, whatever the range.
    under = _check(24, "trunk", [0, 10, 24.6], [None, None, (20.0, 29.0)])
    assert under["status"] == "not reached" and "has not reached that yet" in under["patient_message"]
    assert "range reaches 25%" in under["patient_message"]


def test_checkpoint_mentions_spreading():
    spread = {"flagged": True, "area_cm2": 1.2, "description": "Spreading: new depigmentation ..."}
    record = _check(24, "face", [0, 10, 30], [None, None, (25, 35)], spreading=[None, None, spread])
    assert record["spreading"]
    assert "outside the original patch" in record["patient_message"]
    assert "1.20 cm²" in record["clinician_message"]


def test_vasi_series_from_a_clinical_block():
    block = {
        "body_region": "face",
        "vasi": {"available": True},
        "visits": [
            {"weeks_since_start": 0.0, "patch_vasi": 0.1, "patch_vasi_interval": [0.09, 0.11]},
            {"weeks_since_start": 24.0, "patch_vasi": 0.04, "patch_vasi_interval": None},
        ],
    }
    series = vasi_series_from_clinical(block)
    assert series.index == "F-VASI"
    assert series.improvement_pct[1] == pytest.approx(60.0)
    assert series.milestones.vasi50_week == 24.0
    assert vasi_series_from_clinical({"vasi": {"available": False}}) is None
    assert math.isclose(series.intervals[0][0], 0.09)


def test_clinical_block_from_a_document_and_stored_masks():
    import numpy as np

    from repigment.clinical.summary import clinical_from_document

    base = np.zeros((100, 100), bool)
    base[20:80, 20:80] = True
    later = np.zeros_like(base)
    later[35:65, 35:65] = True
    document = {
        "baseline": {"width": 200, "height": 200},
        "visits": [
            {"image": "a.jpg", "date": "2026-01-05", "weeks_since_start": 0.0, "depigmented_area_px": 14400,
             "depigmented_area_cm2": 14.4, "repigmentation_pct": 0.0, "vasi_residual_depigmentation": 100,
             "intervals": {"repigmentation_pct": [0, 0], "depigmented_area_cm2": [14.0, 14.8]}},
            {"image": "b.jpg", "date": "2026-06-22", "weeks_since_start": 24.0, "depigmented_area_px": 3600,
             "depigmented_area_cm2": 3.6, "repigmentation_pct": 75.0, "vasi_residual_depigmentation": 25,
             "intervals": {"repigmentation_pct": [72, 78], "depigmented_area_cm2": [3.2, 4.0]}},
        ],
    }
    block = clinical_from_document(document, [base, later], body_region="face", hand_unit=180.0)
    assert block["vasi_index"] == "F-VASI"
    assert block["visits"][1]["pattern"]["pattern"] == "marginal"
    assert block["visits"][1]["patch_vasi"] == pytest.approx(0.02)
    assert block["visits"][1]["patch_vasi_level"] == pytest.approx(14.4 / 180 * 0.25)
    assert block["checkpoints"]["week24"]["status"] == "reached"
    assert block["checkpoints"]["week52"] is None
    assert block["vasi"]["milestones"]["vasi75_week"] == 24.0
    no_unit = clinical_from_document(document, [base, later])
    assert not no_unit["vasi"]["available"] and "hand unit" in no_unit["vasi"]["reason"]
    assert no_unit["visits"][1]["patch_vasi"] is None
    with pytest.raises(InvalidParameterError, match="one mask per visit"):
        clinical_from_document(document, [base])


def test_the_latest_visit_in_review_says_so_before_its_figure():
    from repigment.clinical.summary import _latest

    record = {"image": "week52.jpg", "weeks_since_start": 52.0, "improvement_pct": -9.8,
              "improvement_interval": [-125.1, 0.0], "pattern": None, "patch_vasi": None,
              "patch_vasi_interval": None, "spreading": {"flagged": True, "description": "Spreading: 0.31 cm²"}}
    baseline = dict(record, weeks_since_start=0.0, improvement_pct=0.0)
    trusted = _latest([baseline, dict(record, needs_review=False)], None)
    in_review = _latest([baseline, dict(record, needs_review=True)], None)
    assert "review" not in trusted["patient_message"] and not trusted["clinician_message"].startswith("Needs review")
    assert in_review["patient_message"].startswith("The week 52 photo needs your healthcare provider's review")
    assert "new white skin" in in_review["patient_message"].lower()  # the measurement itself is still told
    assert in_review["clinician_message"].startswith("Needs review")
