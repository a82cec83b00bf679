"""The words the app uses, for clinicians and in plain language for patients.

Kept in one place so the two modes stay consistent and can be reviewed (and
one day translated) together.
"""

from __future__ import annotations

from ..series.intervals import DECISION_RANGE_WORDS

__all__ = ["CAPTURE_CHECKLIST", "CLINICIAN_PHOTO_NOTES", "Words", "words"]

#: What makes photos comparable, after the vitiligo photography consensus
#: (van Geel et al., JAAD 2020); see ../shared/domain.md.
CAPTURE_CHECKLIST: tuple[tuple[str, str], ...] = (
    ("Same place, same distance, same angle",
     "Hold the phone 20-30 cm from the skin, straight above the patch, as for your first photo. "
     "When you add a photo, the app shows your first photo faintly on top so you can line them up."),
    ("Soft, even light",
     "Daylight from a window or a bright room. No flash, no lamp straight above: they make shiny spots."),
    ("A plain, dull background",
     "A black, dark blue or green cloth behind the skin; nothing shiny or patterned."),
    ("The scale marker next to the patch",
     "Stick the printed square marker flat on the skin beside the patch, fully in view, "
     "so the app can measure the area in cm²."),
    ("The whole patch, with normal skin around it",
     "Keep the patch in the middle of the photo with some normal skin on every side."),
    ("Sharp and dry",
     "Tap the patch on the screen to focus and hold still. Let creams dry first."),
)

CLINICIAN_PHOTO_NOTES = (
    "Serial photos after the vitiligo photography consensus (van Geel et al., JAAD 2020): fixed distance, "
    "angle and framing; diffuse light; non-reflective dark background; an ArUco scale marker (DICT_4X4_50, "
    "printed side as set for the patch) on the skin near the patch, which also gives the white reference. "
    "Areas are in the baseline photo's frame; registration uses skin texture outside the patch."
)


class Words:
    """Labels for one mode; attribute access keeps call sites short."""

    def __init__(self, **entries: str):
        self.__dict__.update(entries)


_CLINICIAN = Words(
    course_page="Patch course",
    add_page="Add visit",
    review_page="Review",
    export_page="Export",
    patients_page="Patients & patches",
    guide_page="Photo guide",
    pct_axis="Repigmentation since baseline (%)",
    pct_column="Repigmentation (%)",
    area_axis="Depigmented area (cm²)",
    weeks_axis="Weeks since treatment start",
    week24="week 24",
    week52="week 52",
    vasi_labels=("VASI50", "VASI75", "VASI90"),
    measured="Measured",
    not_measured="Not measured",
    band_legend=f"shaded band: plausible range ({DECISION_RANGE_WORDS} melanin-loss threshold and alignment error "
                "at the border)",
    band_low="Plausible range from (%)",
    band_high="Plausible range to (%)",
    upload_label="Visit photos (JPEG, PNG, HEIC, TIFF or WebP; one or several visits)",
    save_button="Save and analyse",
)

_PATIENT = Words(
    course_page="My progress",
    add_page="Add photos",
    review_page="Compare photos",
    export_page="Download",
    patients_page="My patches",
    guide_page="How to take the photo",
    pct_axis="Colour regained since the first photo (%)",
    pct_column="Colour regained (%)",
    area_axis="Size of the white area (cm²)",
    weeks_axis="Weeks since you started treatment",
    week24="week 24: first check",
    week52="week 52: one year",
    vasi_labels=("half back (50%)", "three quarters (75%)", "nearly all (90%)"),
    measured="Measured",
    not_measured="Could not be measured",
    band_legend="shaded band: the true figure is most likely within it",
    band_low="Likely at least (%)",
    band_high="Likely at most (%)",
    upload_label="Your photos (from your phone or computer)",
    save_button="Save my photos",
)


def words(patient_mode: bool) -> Words:
    """The labels of the current mode."""
    return _PATIENT if patient_mode else _CLINICIAN
