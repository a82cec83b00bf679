"""A patient's VASI hand unit: measured, estimated or typed in, and kept in the store.

The app's Patients page calls these; errors are repigment errors with one-line
messages, which the page shows as they are.
"""

from __future__ import annotations

from ..clinical.vasi import HandUnit
from ..errors import InvalidParameterError
from ..vocabulary import DEFAULT_MARKER_MM
from . import Patient, Store

__all__ = ["describe", "enter_and_save", "estimate_and_save", "measure_and_save", "save"]

_SOURCES = {"photo": "measured from a palm photo", "height-weight": "estimated from height and weight",
            "entered": "typed in"}


def save(store: Store, patient: Patient, unit: HandUnit) -> Patient:
    """Record a hand unit for a patient."""
    return store.set_hand_unit(patient.id, unit.cm2, source=unit.source, detail=unit.detail,
                               interval_cm2=unit.interval_cm2)


def enter_and_save(store: Store, patient: Patient, cm2: float | None) -> Patient:
    """A typed-in hand unit (checked for plausibility by :func:`repigment.clinical.vasi.entered_hand_unit`)."""
    from ..clinical.vasi import entered_hand_unit

    if cm2 is None:
        raise InvalidParameterError("type the hand unit in cm²")
    return save(store, patient, entered_hand_unit(float(cm2)))


def estimate_and_save(store: Store, patient: Patient, height_cm: float | None, weight_kg: float | None) -> Patient:
    """The hand unit as 1 % of the Mosteller body surface area."""
    from ..clinical.vasi import hand_unit_from_height_weight

    if not height_cm or not weight_kg:
        raise InvalidParameterError("give both height (cm) and weight (kg) to estimate the hand unit")
    return save(store, patient, hand_unit_from_height_weight(float(height_cm), float(weight_kg)))


def measure_and_save(
    store: Store, patient: Patient, photo: bytes, *, marker_mm: float = DEFAULT_MARKER_MM
) -> tuple[str, ...]:
    """Measure the hand unit on a palm photo with the scale marker; returns the measurement's notes.

    Raises
    ------
    repigment.clinical.hand_units.HandPhotoError
        If the photo shows no marker or no whole hand.
    """
    from ..clinical.hand_units import measure_hand_unit

    measured = measure_hand_unit(photo, marker_mm=marker_mm)
    save(store, patient, measured.hand_unit)
    return tuple(measured.notes)


def describe(patient: Patient) -> str:
    """One line: the recorded hand unit with its provenance, or that there is none."""
    if patient.hand_unit_cm2 is None:
        return "No hand unit recorded yet: VASI cannot be scored."
    text = f"Hand unit: **{patient.hand_unit_cm2:.0f} cm²**"
    if patient.hand_unit_interval is not None:
        low, high = patient.hand_unit_interval
        text += f" (likely {low:.0f}–{high:.0f} cm²)"
    how = _SOURCES.get(patient.hand_unit_source or "", patient.hand_unit_source or "")
    detail = f"; {patient.hand_unit_detail}" if patient.hand_unit_detail and patient.hand_unit_source != "entered" \
        else ""
    return text + (f", {how}{detail}." if how else ".")
