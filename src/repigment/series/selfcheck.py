"""Self-checks: evidence a visit's figure did not use, and whether it agrees.

A mask can be wrong with confidence: a washed-out photo whose patch falls
under the threshold reads "100 % repigmented"; a strip of cloth reads as new
depigmentation. These checks look at what the mask's decision did not:

- :func:`footprint_contrast`: how much lighter and less yellow the baseline's
  footprint still is than the skin around it, in the visit's own photo. Its
  ratio to the baseline's is a threshold-free estimate of the share of the
  patch still depigmented (the mean of a region is linear in the share of its
  pixels that are depigmented).
- :func:`looks_like_skin`: whether pixels have the hue of this patient's skin
  (new depigmentation on cloth does not).
- :func:`temporal_outliers`: visits that disagree with the visits before and
  after them, when treatment changes skin slowly; :func:`neighbour_course`
  gives those visits' figures, which a flagged visit's range also covers.
- :func:`unconfirmed_spots`: small spots of the baseline mask that the first
  visits, weeks later, do not show (glare or sheen on the baseline photo):
  treatment does not clear skin that fast.

A visit that fails a check is flagged "needs review" by the series pipeline,
with the reason; its range is widened to what the evidence allows and it is
left out of the milestones until reviewed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.color import rgb_to_lab
from ..core.segmentation import inside_and_ring, lab_whiteness  # the colour-contrast model's L* - 2 b*

__all__ = [
    "footprint_contrast",
    "evidence_residual_fraction",
    "looks_like_skin",
    "neighbour_course",
    "temporal_outliers",
    "unconfirmed_spots",
]


def _whiteness(rgb: np.ndarray) -> np.ndarray:
    return lab_whiteness(rgb_to_lab(rgb))


def footprint_contrast(
    rgb: np.ndarray, footprint: np.ndarray, *, usable: np.ndarray | None = None
) -> float | None:
    """Mean whiteness inside a footprint minus the median of the skin around it.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
        A colour-normalised photo.
    footprint : ndarray of bool, shape (H, W)
        The region to judge (the baseline's depigmented mask in this photo's frame).
    usable : ndarray of bool, shape (H, W), optional
        Pixels that may serve as surrounding skin (skin, off the marker).

    Returns
    -------
    float or None
        CIELAB units of L* - 2 b*; ``None`` when the footprint's inside or the
        ring around it is too small to judge.

    Notes
    -----
    The inside is the footprint eroded by 0.5 % of the longest side (its
    blurred border is neither), the surrounding skin a ring from 1.5 % to 5 %
    of the longest side outside it (perilesional skin is often lighter): see
    :func:`repigment.core.segmentation.inside_and_ring`.

    Examples
    --------
    >>> import numpy as np
    >>> photo = np.full((200, 200, 3), (170, 120, 90), np.uint8)
    >>> photo[50:150, 50:150] = (235, 205, 195)
    >>> patch = np.zeros((200, 200), bool); patch[50:150, 50:150] = True
    >>> footprint_contrast(photo, patch) > 20
    True
    """
    inside, ring = inside_and_ring(np.asarray(footprint, bool), usable)
    if np.count_nonzero(inside) < 50 or np.count_nonzero(ring) < 200:
        return None
    rgb = np.asarray(rgb)
    inner_white = _whiteness(rgb[inside][:, None, :])
    ring_white = _whiteness(rgb[ring][:, None, :])
    return float(inner_white.mean() - np.median(ring_white))


def evidence_residual_fraction(visit_contrast: float | None, baseline_contrast: float | None) -> float | None:
    """Share of the baseline patch still depigmented, by :func:`footprint_contrast` alone.

    ``visit / baseline``, clipped to 0-1; ``None`` when either is missing or
    the baseline's patch barely stands out (under 4 units), so no estimate.

    Examples
    --------
    >>> evidence_residual_fraction(15.0, 30.0)
    0.5
    >>> evidence_residual_fraction(5.0, 2.0) is None
    True
    """
    if visit_contrast is None or baseline_contrast is None or baseline_contrast < 4.0:
        return None
    return float(np.clip(visit_contrast / baseline_contrast, 0.0, 1.0))


def looks_like_skin(rgb: np.ndarray, region: np.ndarray, normal_lab: np.ndarray) -> float:
    """Share of ``region``'s pixels whose CIELAB hue is within 30 degrees of normal skin's.

    Depigmented skin keeps the hue of the patient's skin (haemoglobin's pink
    and what melanin remains); olive, khaki, grey or blue cloth does not.
    Returns 1.0 for an empty region or an unknown normal colour.

    Examples
    --------
    >>> import numpy as np
    >>> cloth = np.full((10, 10, 3), (128, 128, 70), np.uint8)       # olive
    >>> looks_like_skin(cloth, np.ones((10, 10), bool), np.array([60.0, 15.0, 20.0]))
    0.0
    """
    region = np.asarray(region, bool)
    normal_lab = np.asarray(normal_lab, np.float64)
    if not region.any() or not np.all(np.isfinite(normal_lab)):
        return 1.0
    lab = rgb_to_lab(rgb)[region]
    skin_hue = np.arctan2(normal_lab[2], normal_lab[1])
    hue = np.arctan2(lab[:, 2], lab[:, 1])
    difference = np.abs(np.angle(np.exp(1j * (hue - skin_hue))))
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    # Nearly neutral pixels (white skin under a cool light) have no reliable hue: count them as skin.
    return float(np.mean((difference < np.radians(30.0)) | (chroma < 6.0)))


def temporal_outliers(
    weeks: Sequence[float], pct: Sequence[float | None], *, tolerance: float = 15.0, outside: float = 10.0
) -> dict[int, str]:
    """Visits whose figure breaks away from the course of the visits around them.

    Parameters
    ----------
    weeks : sequence of float
        Weeks since treatment start, in date order.
    pct : sequence of float or None
        Repigmentation % of each visit (``None``: not scored, skipped).
    tolerance : float, optional
        Points by which a visit must differ from the course drawn straight
        between the scored visits before and after it.
    outside : float, optional
        Points by which it must also lie outside the range of those two
        visits: a fast but steady response stays within it.

    Returns
    -------
    dict of int to str
        Visit index to the reason.

    Notes
    -----
    Repigmentation under treatment moves a few points a month; a visit that
    jumps away from both neighbours and back is more likely a photo problem
    (light, framing, a mask that took in cloth) than a change of the skin.
    The first and last scored visits have no course on both sides and are
    not judged here.

    Examples
    --------
    >>> temporal_outliers([0, 4, 8, 12], [0.0, 100.0, 2.0, 3.0])
    {1: 'breaks away from the visits before and after it (100 % between 0 % at week 0 and 2 % at week 8)'}
    >>> temporal_outliers([0, 12, 24, 52], [0.0, 5.0, 55.0, 60.0])
    {}
    """
    scored = [i for i, value in enumerate(pct) if value is not None]
    flagged: dict[int, str] = {}
    for before, index, after in zip(scored, scored[1:], scored[2:]):
        value, low, high = pct[index], pct[before], pct[after]
        span = weeks[after] - weeks[before]
        share = (weeks[index] - weeks[before]) / span if span > 0 else 0.5
        course = low + share * (high - low)
        beyond = max(min(low, high) - value, value - max(low, high))
        if abs(value - course) > tolerance and beyond > outside:
            flagged[index] = (
                f"breaks away from the visits before and after it ({value:.0f} % between {low:.0f} % at week "
                f"{weeks[before]:.0f} and {high:.0f} % at week {weeks[after]:.0f})"
            )
    return flagged


def neighbour_course(weeks: Sequence[float], pct: Sequence[float | None], index: int) -> tuple[float, float] | None:
    """The figures of the nearest scored visits before and after ``index``.

    Parameters
    ----------
    weeks : sequence of float
        Weeks since treatment start, in date order.
    pct : sequence of float or None
        Repigmentation % of each visit (``None``: not scored or not trusted).
    index : int
        The visit whose neighbours are wanted.

    Returns
    -------
    tuple of float or None
        ``(before, after)`` figures, or None without a scored visit on both
        sides (the last visit has no course after it).

    Examples
    --------
    >>> neighbour_course([0, 4, 8, 12], [0.0, None, 100.0, 12.0], 2)
    (0.0, 12.0)
    >>> neighbour_course([0, 4, 8], [0.0, 5.0, 100.0], 2) is None
    True
    """
    before = [value for value in pct[:index] if value is not None]
    after = [value for value in pct[index + 1:] if value is not None]
    if not before or not after:
        return None
    return float(before[-1]), float(after[0])


def unconfirmed_spots(
    baseline_mask: np.ndarray,
    early_masks: Sequence[np.ndarray],
    views: Sequence[np.ndarray],
    *,
    max_share: float = 0.05,
    shown: float = 0.25,
    main_shown: float = 0.7,
    min_visits: int = 2,
    tolerance_px: int = 2,
) -> np.ndarray:
    """Small spots of a baseline mask that no early visit shows.

    Parameters
    ----------
    baseline_mask : ndarray of bool, shape (H, W)
        The baseline's depigmented skin.
    early_masks : sequence of ndarray of bool, shape (H, W)
        Masks of follow-up visits taken before treatment can clear skin (the
        first weeks), registered onto the baseline's frame.
    views : sequence of ndarray of bool, shape (H, W)
        The part of the baseline's frame each of those photos shows.
    max_share : float, optional
        Regions under this share of ``baseline_mask`` are spots, judged here;
        the others, and always the largest, are the patch.
    shown : float, optional
        A visit shows a spot when its mask, grown by ``tolerance_px``, covers
        at least this share of the spot's part in its view.
    main_shown : float, optional
        A visit is evidence only when its mask covers at least this share of
        the patch's part in its view: in the first weeks the patch is still
        there, and a visit that misses much of it (under a washed-out light,
        for instance) says nothing about a spot.
    min_visits : int, optional
        At least this many visits must be evidence and have at least half of
        the spot in view, and none may show it.
    tolerance_px : int, optional
        Registration error allowed for: each visit's mask is grown by this
        many pixels before it is compared with a spot.

    Returns
    -------
    ndarray of bool, shape (H, W)
        The spots to leave out of the baseline footprint (all False when none,
        and when the patch is not most of the mask: among many similar small
        macules none stands out as a stray spot).

    Notes
    -----
    Treatment repigments slowly (faint signs in weeks 4-8), and a patch
    stays where it is: a spot that is in the baseline mask while photos
    taken in the following weeks show the rest of the patch but not it was
    more likely light on the baseline photo (specular glare, sheen) than
    depigmented skin. Counted in the footprint, such a spot reads as
    repigmentation at every later visit.

    Examples
    --------
    >>> import numpy as np
    >>> base = np.zeros((60, 60), bool); base[10:40, 10:40] = True; base[50:54, 50:54] = True
    >>> later = np.zeros((60, 60), bool); later[10:40, 10:40] = True
    >>> view = np.ones((60, 60), bool)
    >>> spots = unconfirmed_spots(base, [later, later], [view, view])
    >>> int(spots.sum()), bool(spots[51, 51])
    (16, True)
    >>> int(unconfirmed_spots(base, [later], [view]).sum())   # one visit is not enough
    0
    """
    import cv2

    baseline_mask = np.asarray(baseline_mask, bool)
    spots = np.zeros(baseline_mask.shape, bool)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(baseline_mask.view(np.uint8), connectivity=8)
    if count <= 2:
        return spots  # one region or none: nothing to judge besides the patch itself
    areas = stats[1:, cv2.CC_STAT_AREA]
    total = int(areas.sum())
    is_patch = np.concatenate([[False], areas >= max_share * total])
    is_patch[int(np.argmax(areas)) + 1] = True
    if areas[is_patch[1:]].sum() < 0.5 * total:
        return spots
    patch = np.take(is_patch, labels)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance_px + 1, 2 * tolerance_px + 1))
    evidence = []
    for mask, view in zip(early_masks, views):
        mask, view = np.asarray(mask, bool), np.asarray(view, bool)
        if np.count_nonzero(mask & patch) >= main_shown * np.count_nonzero(patch & view) > 0:
            grown = cv2.dilate(mask.view(np.uint8), kernel).view(bool) if tolerance_px > 0 else mask
            evidence.append((grown, view))
    if len(evidence) < min_visits:
        return spots
    for index in np.flatnonzero(~is_patch[1:]) + 1:
        # Judged within its bounding box: the label image is full size, the spot is not.
        x, y, w, h = (int(v) for v in stats[index, :4])
        spot = labels[y:y + h, x:x + w] == index
        area = np.count_nonzero(spot)
        judged = [(mask[y:y + h, x:x + w], in_view) for mask, view in evidence
                  if 2 * np.count_nonzero(in_view := view[y:y + h, x:x + w] & spot) >= area]
        if len(judged) >= min_visits and all(
                np.count_nonzero(mask & in_view) < shown * np.count_nonzero(in_view) for mask, in_view in judged):
            spots[y:y + h, x:x + w] |= spot
    return spots
