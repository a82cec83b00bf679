"""The words repigment's records are written in, each defined once.

:class:`BodyRegion` (where a patch is), :class:`EventKind` (what happened on a
patch's treatment timeline), :class:`Course` (how a synthetic patch changes) and
:data:`DEFAULT_MARKER_MM` (the printed scale marker's usual side). The clinical
summary, the store, the CLI, the app, batch scoring and the synthetic generator
all take their choices from here, so a value written by one is read by the
others.

Each vocabulary is an :class:`enum.StrEnum`: its members are the strings saved
in records (``BodyRegion.UPPER_LIMBS == "upper-limbs"``), each has a ``label``
for people, and ``parse`` turns what a user or an older database wrote into a
member. This module imports nothing from repigment but :mod:`repigment.errors`,
and no NumPy, so that the CLI's ``--help`` and ``import repigment.batch`` stay
light.
"""

from __future__ import annotations

import enum
from typing import Any, Self

from .errors import InvalidParameterError

__all__ = ["DEFAULT_MARKER_MM", "BodyRegion", "Course", "EventKind"]

#: Printed side of the ArUco scale marker, black edge to black edge, mm, when none is given.
DEFAULT_MARKER_MM = 20.0


class _Vocabulary(enum.StrEnum):
    """A closed set of words: each member is its saved value with a label for people."""

    # ``what`` names the vocabulary in error messages ("body region must be one of ...").
    what = enum.nonmember("value")

    def __new__(cls, value: str, label: str) -> Any:
        member = str.__new__(cls, value)
        member._value_ = value
        member._label = label
        return member

    @property
    def label(self) -> str:
        """The member in words, as the app shows it ("Upper limbs")."""
        return self._label

    @classmethod
    def parse(cls, text: object) -> Self:
        """The member ``text`` names, written with ``-`` or ``_`` in any case.

        Parameters
        ----------
        text : str or member
            A value as any version of repigment wrote it (``"upper-limbs"`` or ``"upper_limbs"``).

        Returns
        -------
        member

        Raises
        ------
        InvalidParameterError
            If ``text`` names no member; the message lists the choices.
        """
        if isinstance(text, cls):
            return text
        if isinstance(text, str):
            key = _key(text)
            for member in cls:
                if _key(member.value) == key:
                    return member
        raise InvalidParameterError(f"{cls.what} must be one of {cls.choices()}, got {text!r}")

    @classmethod
    def choices(cls) -> str:
        """The values, comma-separated, as error messages and help texts list them."""
        return ", ".join(member.value for member in cls)


def _key(text: str) -> str:
    # Older databases wrote "upper_limbs"; results.json and the CLI write "upper-limbs".
    return text.strip().lower().replace("_", "-")


class BodyRegion(_Vocabulary):
    """A body region of the VASI (Hamzavi et al. 2004), with the face scored apart (F-VASI).

    The values are the spelling of ``results.json``'s clinical block, of the
    CLI's ``--region`` and of the store; ``parse`` also reads the underscore
    spelling older databases kept (``"upper_limbs"``).

    Examples
    --------
    >>> BodyRegion.parse("upper_limbs")
    <BodyRegion.UPPER_LIMBS: 'upper-limbs'>
    >>> BodyRegion.UPPER_LIMBS == "upper-limbs", BodyRegion.UPPER_LIMBS.label
    (True, 'Upper limbs')
    >>> [region.value for region in BodyRegion]
    ['face', 'hands', 'upper-limbs', 'trunk', 'lower-limbs', 'feet']
    >>> BodyRegion.parse("elbow")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    repigment.errors.InvalidParameterError: body region must be one of face, hands, ..., feet, got 'elbow'
    """

    what = enum.nonmember("body region")

    FACE = "face", "Face"
    HANDS = "hands", "Hands"
    UPPER_LIMBS = "upper-limbs", "Upper limbs"
    TRUNK = "trunk", "Trunk"
    LOWER_LIMBS = "lower-limbs", "Lower limbs"
    FEET = "feet", "Feet"


class EventKind(_Vocabulary):
    """A dated event on a patch's treatment timeline.

    Examples
    --------
    >>> EventKind.parse("treatment-change")
    <EventKind.TREATMENT_CHANGE: 'treatment_change'>
    >>> EventKind.PHOTOTHERAPY.label
    'Phototherapy (NB-UVB)'
    >>> EventKind.choices()
    'phototherapy, treatment_change, pause, other'
    """

    what = enum.nonmember("event kind")

    PHOTOTHERAPY = "phototherapy", "Phototherapy (NB-UVB)"
    TREATMENT_CHANGE = "treatment_change", "Treatment change"
    PAUSE = "pause", "Treatment paused"
    OTHER = "other", "Other"


class Course(_Vocabulary):
    """How a synthetic patch changes over its visits (see :func:`repigment.synthetic.generate_series`).

    Examples
    --------
    >>> Course.parse("Marginal"), Course.SPREADING.label
    (<Course.MARGINAL: 'marginal'>, 'Spreading')
    >>> Course.parse("fast")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    repigment.errors.InvalidParameterError: course must be one of perifollicular, marginal, ..., got 'fast'
    """

    what = enum.nonmember("course")

    PERIFOLLICULAR = "perifollicular", "Perifollicular"
    MARGINAL = "marginal", "Marginal"
    COMBINED = "combined", "Combined"
    STABLE = "stable", "Stable"
    SPREADING = "spreading", "Spreading"
    DIFFUSE = "diffuse", "Diffuse"
