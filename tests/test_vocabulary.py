"""The vocabularies of repigment.vocabulary and the names derived from them elsewhere."""

from __future__ import annotations

import subprocess
import sys

import pytest

from repigment.errors import InvalidParameterError
from repigment.vocabulary import DEFAULT_MARKER_MM, BodyRegion, Course, EventKind


@pytest.mark.parametrize("text", ["upper-limbs", "upper_limbs", " Upper_Limbs ", BodyRegion.UPPER_LIMBS])
def test_body_region_reads_either_spelling(text):
    region = BodyRegion.parse(text)
    assert region is BodyRegion.UPPER_LIMBS and region == "upper-limbs" and region.label == "Upper limbs"


@pytest.mark.parametrize("vocabulary, bad, what", [
    (BodyRegion, "elbow", "body region"), (BodyRegion, None, "body region"), (EventKind, "surgery", "event kind"),
    (Course, 3, "course"),
])
def test_an_unknown_word_is_refused_with_the_choices(vocabulary, bad, what):
    with pytest.raises(InvalidParameterError) as caught:
        vocabulary.parse(bad)
    message = str(caught.value)
    assert message.startswith(f"{what} must be one of ") and "\n" not in message
    assert all(member.value in message for member in vocabulary)


def test_the_derived_names_keep_their_types_and_values():
    from repigment.clinical.vasi import BODY_REGIONS as VASI_REGIONS
    from repigment.core.calibration import DEFAULT_MARKER_MM as CALIBRATION_MM
    from repigment.store import BODY_REGIONS, EVENT_KINDS
    from repigment.synthetic import COURSES

    assert VASI_REGIONS == ("face", "hands", "upper-limbs", "trunk", "lower-limbs", "feet")
    assert BODY_REGIONS == {"face": "Face", "hands": "Hands", "upper-limbs": "Upper limbs", "trunk": "Trunk",
                            "lower-limbs": "Lower limbs", "feet": "Feet"}
    assert EVENT_KINDS == {"phototherapy": "Phototherapy (NB-UVB)", "treatment_change": "Treatment change",
                           "pause": "Treatment paused", "other": "Other"}
    assert COURSES == ("perifollicular", "marginal", "combined", "stable", "spreading", "diffuse")
    assert CALIBRATION_MM == DEFAULT_MARKER_MM == 20.0


def test_the_vocabulary_imports_no_numpy():
    code = "import sys, repigment.vocabulary, repigment.batch; print('numpy' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
