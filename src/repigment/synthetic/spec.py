"""What the synthetic-series generator is asked for and what it returns.

`SeriesSpec` (one patient's patch photographed at a series of visits, validated field by
field), `SyntheticVisit` (one photo and its ground truth) and `SyntheticSeries` (the visits
with their physical scale), together with `COURSES` and the framing constants that tie the
photo's field of view to the printed marker's size (see the notes of
:mod:`repigment.synthetic`).
"""

from __future__ import annotations

import datetime
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from repigment.errors import InvalidParameterError
from repigment.vocabulary import DEFAULT_MARKER_MM, Course

from .skin import FITZPATRICK_TYPES

#: The courses a synthetic patch can take (the values of :class:`repigment.vocabulary.Course`).
COURSES: tuple[str, ...] = tuple(course.value for course in Course)

_FIELD_DIAG_MM = 165.0  # diagonal of the photo at the nominal pose, for a 20 mm marker
_MIN_MARKER_PX = 46.0  # smallest nominal marker side that cv2.aruco reliably detects


def _field_diag_mm(marker_mm: float) -> float:
    """Photo diagonal in mm at the nominal pose: the photographer frames patch and marker."""
    return _FIELD_DIAG_MM * (marker_mm / 20.0) ** 0.75


# ---------------------------------------------------------------------------------------------
# Specification and results


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _checked_range(name: str, value: Any, low: float, high: float, kind: type) -> tuple:
    """A ``(low, high)`` field as a tuple of ``kind``, checked to lie in order within ``[low, high]``."""
    try:
        first, second = value
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be (low, high), got {value!r}") from None
    is_kind = _is_int if kind is int else _is_real
    if not (is_kind(first) and is_kind(second)) or not low <= first <= second <= high:
        what = "integers" if kind is int else "numbers"
        raise InvalidParameterError(f"{name} must be two {what} with {low:g} <= low <= high <= {high:g}, got {value!r}")
    return kind(first), kind(second)


@dataclass(frozen=True)
class SeriesSpec:
    """What to synthesise: one patient's patch photographed at a series of visits.

    Parameters
    ----------
    seed : int
        Seed of `numpy.random.default_rng`; the same spec always gives the same pixels.
    skin_type : {"I", "II", "III", "IV", "V", "VI"}
        Fitzpatrick type of the patient's normal skin.
    course : {"perifollicular", "marginal", "combined", "stable", "spreading", "diffuse"}
        How the patch changes over the visits (see `generate_series`).
    weeks : tuple of float
        Visit times in weeks since treatment start, strictly increasing; the first visit is
        the baseline.
    treatment_start : datetime.date
        Date of week 0; visit dates are ``treatment_start + round(7 * week)`` days.
    image_size : tuple of int
        ``(width, height)`` of every photo in pixels; each side >= 240, aspect ratio <= 2.
    marker : bool
        Put a printed ArUco marker (DICT_4X4_50) next to the patch.
    marker_mm : float
        Printed side of the marker, black border to black border, in mm (5-40). The field of
        view scales with it (see the module notes); with a marker, it must come out at least
        46 px wide so that it can be detected.
    clutter : bool
        Cover a side of the frame (15-35 %) with clothing (plain or patterned, sometimes
        skin-coloured) or a dark cloth background, at rest on the same plane as the skin. It
        is narrowed, in rare cramped cases dropped, when patch and marker would not fit.
    final_residual : float
        Depigmented area at the last visit as a fraction of the baseline area (0-1). Ignored
        for "stable"; for "spreading" a value > 1 is the growth factor (otherwise 1.4).
    camera_variation : float
        0 = identical pose, blur and marker placement at every visit; 1 = full range
        (rotation +-20 deg, scale 0.8-1.2, tilt up to 10 deg, framing shifts).
    lighting_variation : float
        0 = identical lighting and white balance at every visit; 1 = full range (exposure
        0.75-1.25, gradient +-20 %, vignetting, white balance gains 0.85-1.15, glare).
    jpeg_quality : tuple of int
        ``(low, high)`` range, 1-100, of the per-visit JPEG quality used by `write_series`.
    wrong_place_visits : tuple of int
        Indices of visits (not 0) whose photo shows a different body site of the same patient.
    exif_dates : bool
        Write EXIF DateTimeOriginal into each JPEG.
    light_casts : float
        Chance (0-1) that a follow-up visit is photographed under a strong light of its
        own, one of :data:`LIGHT_CASTS` (tungsten, fluorescent, shade, flash, a washed-out
        hazy light, +-1.5 EV exposure), on top of ``lighting_variation``. Drawn from a
        stream of its own, so 0 gives the same photos as before the option existed.
    patch_share : tuple of float
        ``(low, high)`` range, within 0.01-0.6, of the baseline patch's area as a share of
        the frame; the default (0.08, 0.20) gives the same photos as before the option
        existed. Beyond a fifth of the frame and without a marker, the patch may run past
        the frame's edges (a patch cut by the frame); with a marker, it shrinks until the
        marker fits beside it.

    Raises
    ------
    ValueError
        (`repigment.errors.InvalidParameterError`) naming the offending field.
    """

    seed: int
    skin_type: str = "III"
    course: str = "combined"
    weeks: tuple[float, ...] = (0, 4, 8, 12, 24, 52)
    treatment_start: datetime.date = datetime.date(2026, 1, 5)
    image_size: tuple[int, int] = (1200, 900)
    marker: bool = True
    marker_mm: float = DEFAULT_MARKER_MM
    clutter: bool = False
    final_residual: float = 0.3
    camera_variation: float = 1.0
    lighting_variation: float = 1.0
    jpeg_quality: tuple[int, int] = (80, 95)
    wrong_place_visits: tuple[int, ...] = ()
    exif_dates: bool = False
    light_casts: float = 0.0
    patch_share: tuple[float, float] = (0.08, 0.20)

    def __post_init__(self) -> None:  # noqa: C901 - one check per field, in field order
        def bad(msg: str) -> InvalidParameterError:
            return InvalidParameterError(msg)

        if not _is_int(self.seed) or self.seed < 0:
            raise bad(f"seed must be a non-negative integer, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        if self.skin_type not in FITZPATRICK_TYPES:
            raise bad(
                f"skin_type must be one of {', '.join(FITZPATRICK_TYPES)} (Fitzpatrick type "
                f"as a Roman numeral), got {self.skin_type!r}"
            )
        # One spelling kept; anything else raises "course must be one of ...".
        object.__setattr__(self, "course", Course.parse(self.course).value)
        try:
            weeks = tuple(self.weeks)
        except TypeError:
            raise bad(f"weeks must be a sequence of numbers, got {self.weeks!r}") from None
        if not weeks:
            raise bad("weeks must contain at least one visit (the baseline)")
        if not all(_is_real(w) for w in weeks):
            raise bad(f"weeks must be finite numbers, got {weeks!r}")
        weeks = tuple(float(w) for w in weeks)
        if any(b <= a for a, b in zip(weeks, weeks[1:])):
            raise bad(f"weeks must be strictly increasing (first = baseline), got {weeks!r}")
        object.__setattr__(self, "weeks", weeks)
        if not isinstance(self.treatment_start, datetime.date) or isinstance(
            self.treatment_start, datetime.datetime
        ):
            raise bad(
                "treatment_start must be a datetime.date (not a datetime or string), "
                f"got {self.treatment_start!r}"
            )
        days = [round(7 * w) for w in weeks]
        if any(b <= a for a, b in zip(days, days[1:])):
            raise bad(
                f"weeks must put each visit on a later day than the one before, got {weeks!r}"
            )
        try:
            width, height = self.image_size
        except (TypeError, ValueError):
            raise bad(f"image_size must be (width, height), got {self.image_size!r}") from None
        if not (_is_int(width) and _is_int(height)):
            raise bad(f"image_size must be two integers (width, height), got {self.image_size!r}")
        if min(width, height) < 240 or max(width, height) > 12000:
            raise bad(f"image_size sides must be within 240-12000 px, got {self.image_size!r}")
        if max(width, height) > 2 * min(width, height):
            raise bad(f"image_size aspect ratio must be at most 2:1, got {self.image_size!r}")
        object.__setattr__(self, "image_size", (int(width), int(height)))
        for name in ("marker", "clutter", "exif_dates"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise bad(f"{name} must be True or False, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        if not _is_real(self.marker_mm) or not 5.0 <= self.marker_mm <= 40.0:
            raise bad(f"marker_mm must be a number within 5-40 mm, got {self.marker_mm!r}")
        object.__setattr__(self, "marker_mm", float(self.marker_mm))
        if self.marker:
            side = self.marker_mm * math.hypot(width, height) / _field_diag_mm(self.marker_mm)
            if side < _MIN_MARKER_PX:
                raise bad(
                    f"a {self.marker_mm:g} mm marker would be only {side:.1f} px wide in a "
                    f"{width}x{height} photo (at least {_MIN_MARKER_PX:.0f} px are needed to "
                    "detect it); use a larger image_size or marker_mm, or marker=False"
                )
        r = self.final_residual
        if not _is_real(r) or r < 0:
            raise bad(f"final_residual must be a finite number >= 0, got {r!r}")
        if self.course == "spreading":
            if r > 3.0:
                raise bad(f"final_residual (growth factor) for 'spreading' must be <= 3, got {r!r}")
        elif self.course != "stable" and r > 1.0:
            raise bad(
                f"final_residual must be within 0-1 for course {self.course!r} (use course="
                f"'spreading' for growth), got {r!r}"
            )
        object.__setattr__(self, "final_residual", float(r))
        for name in ("camera_variation", "lighting_variation", "light_casts"):
            v = getattr(self, name)
            if not _is_real(v) or not 0.0 <= v <= 1.0:
                raise bad(f"{name} must be within 0-1, got {v!r}")
            object.__setattr__(self, name, float(v))
        object.__setattr__(self, "jpeg_quality", _checked_range("jpeg_quality", self.jpeg_quality, 1, 100, int))
        try:
            wrong = tuple(self.wrong_place_visits)
        except TypeError:
            raise bad(
                "wrong_place_visits must be a sequence of visit indices, "
                f"got {self.wrong_place_visits!r}"
            ) from None
        for k in wrong:
            if not _is_int(k) or not 1 <= k < len(weeks):
                raise bad(
                    f"wrong_place_visits must hold visit indices within 1-{len(weeks) - 1} "
                    f"(visit 0 is the baseline), got {wrong!r}"
                )
        if len(set(wrong)) != len(wrong):
            raise bad(f"wrong_place_visits must not repeat an index, got {wrong!r}")
        object.__setattr__(self, "wrong_place_visits", tuple(sorted(int(k) for k in wrong)))
        object.__setattr__(self, "patch_share", _checked_range("patch_share", self.patch_share, 0.01, 0.6, float))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form of the spec (lists for tuples, ISO date)."""
        return {
            "seed": self.seed,
            "skin_type": self.skin_type,
            "course": self.course,
            "weeks": list(self.weeks),
            "treatment_start": self.treatment_start.isoformat(),
            "image_size": list(self.image_size),
            "marker": self.marker,
            "marker_mm": self.marker_mm,
            "clutter": self.clutter,
            "final_residual": self.final_residual,
            "camera_variation": self.camera_variation,
            "lighting_variation": self.lighting_variation,
            "jpeg_quality": list(self.jpeg_quality),
            "wrong_place_visits": list(self.wrong_place_visits),
            "exif_dates": self.exif_dates,
            "light_casts": self.light_casts,
            "patch_share": list(self.patch_share),
        }


@dataclass
class SyntheticVisit:
    """One synthetic visit: the photo and its ground truth.

    Attributes
    ----------
    week, date
        Visit time.
    image : numpy.ndarray
        (H, W, 3) uint8 RGB photo as the camera saw it; `write_series` JPEG-compresses it.
    truth_mask_photo : numpy.ndarray
        (H, W) bool, depigmented skin (pigment < 0.5) in this photo's frame.
    truth_mask_baseline : numpy.ndarray
        (H0, W0) bool, this visit's depigmented skin mapped into the baseline photo's frame;
        all False for a wrong-place visit.
    scene_to_photo : numpy.ndarray
        3x3 homography from scene px to this photo's px.
    wrong_place : bool
        The photo shows a different body site.
    jpeg_quality : int
        Quality `write_series` uses for this visit.
    marker_corners : numpy.ndarray or None
        (4, 2) outer corners of the marker's black square in photo px, in the marker's own
        order top-left, top-right, bottom-right, bottom-left (as `cv2.aruco` reports them).
    light : str or None
        The strong light of :data:`LIGHT_CASTS` this visit was photographed under, if any.
    truth_area_mm2 : float
        Physical depigmented area of the patch(es) shown, in mm^2.
    """

    week: float
    date: datetime.date
    image: np.ndarray
    truth_mask_photo: np.ndarray
    truth_mask_baseline: np.ndarray
    scene_to_photo: np.ndarray
    wrong_place: bool
    jpeg_quality: int
    marker_corners: np.ndarray | None
    truth_area_mm2: float = 0.0
    light: str | None = None


@dataclass
class SyntheticSeries:
    """A generated series with its ground truth.

    Attributes
    ----------
    spec : SeriesSpec
    visits : list of SyntheticVisit
    mm_per_scene_px : float
        Physical size of one scene pixel.
    baseline_mm_per_px : float or None
        True mm per baseline-photo pixel at the marker,
        ``marker_mm / sqrt(area of the marker quad)``; None without a marker.
    marker_id : int or None
        ArUco id (DICT_4X4_50) of the marker in the main scene.
    """

    spec: SeriesSpec
    visits: list[SyntheticVisit]
    mm_per_scene_px: float
    baseline_mm_per_px: float | None
    marker_id: int | None = None

    def truth_area_px(self, i: int) -> int:
        """Pixel count of ``visits[i].truth_mask_baseline`` (0 for a wrong-place visit)."""
        return int(np.count_nonzero(self.visits[i].truth_mask_baseline))

    def truth_repigmentation_pct(self, i: int) -> float:
        """Repigmentation of visit `i` since baseline, ``(A0 - Ai) / A0 * 100``.

        Areas are `truth_area_px` counts in the baseline frame; negative means the disease
        spread. NaN for a wrong-place visit, whose photo shows another patch.
        """
        if self.visits[i].wrong_place:
            return float("nan")
        a0 = self.truth_area_px(0)
        if a0 == 0:
            return float("nan")
        return (a0 - self.truth_area_px(i)) / a0 * 100.0

    def truth_area_cm2(self, i: int) -> float:
        """True physical depigmented area shown in visit `i`, in cm^2."""
        return self.visits[i].truth_area_mm2 / 100.0
