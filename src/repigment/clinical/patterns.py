"""Pattern of repigmentation and spreading, judged against the baseline footprint.

Repigmentation follows recognisable patterns (Falabella; Gan, BJD 2016):
*perifollicular* dots of pigment at hair follicles inside the patch that grow
and merge, a *marginal* border advancing inward, a *diffuse* faint darkening of
the whole patch at once, or a *combination*. New depigmentation outside the
baseline footprint is *spreading* (disease activity) and is flagged separately.

Everything here works on two masks in the same frame (the baseline footprint
``B`` and a visit's depigmented mask ``V``, both in the baseline photo's frame);
the repigmented region is ``R = B & ~V``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError

__all__ = [
    "PATTERNS",
    "PatternFeatures",
    "PatternResult",
    "SpreadingRegion",
    "Spreading",
    "classify_pattern",
    "remaining_contrast",
    "detect_spreading",
]

#: Every value :func:`classify_pattern` can return.
PATTERNS = ("none", "perifollicular", "marginal", "diffuse", "combined", "indeterminate")

# Thresholds, tuned on generated courses (repigment.synthetic) at 800x600-1024 px.
#: Repigmented share of the footprint below which the mask change is noise
#: (registration and segmentation jitter stay under about 1.5 %).
MIN_CHANGE_FRACTION = 0.025
#: Border excess (or rim excess) at or above which the border clearly advances inward.
MARGINAL_EXCESS = 0.35
#: A rim excess from here up to MARGINAL_EXCESS is a partial border advance,
#: which counts next to follicular evidence (combined).
PARTIAL_RIM_EXCESS = 0.20
#: Island evidence: at least this many islands ...
MIN_ISLANDS = 10
#: ... holding at least this share of the repigmented region.
MIN_ISLAND_SHARE = 0.05
#: Islands dominate (early perifollicular) above this share.
DOMINANT_ISLAND_SHARE = 0.30
#: A merged follicular network has at least this much pigment front inside the
#: patch per unit length of the patch border ...
NETWORK_INTERFACE = 2.5
#: ... or at least this much when the remaining depigmentation is broken into
#: at least NETWORK_PIECES pieces (each >= 0.1 % of the footprint).
NETWORK_INTERFACE_FRAGMENTED = 1.5
NETWORK_PIECES = 10
#: Below this repigmented share, a change without islands, network, border
#: advance or darkening is too small to name.
SMALL_CHANGE_FRACTION = 0.05
#: Diffuse evidence: the still-depigmented skin has lost this share of its
#: contrast against the surrounding normal skin.
DIFFUSE_CONTRAST_RATIO = 0.85
#: Repigmentation concentrated away from the border (central clearing) below
#: this border excess counts as diffuse when there are neither islands nor a network.
CENTRAL_EXCESS = -0.15
#: New depigmentation outside the footprint is spreading above this share of
#: the baseline area (noise stays under about 1.5 %).
MIN_SPREAD_FRACTION = 0.03


@dataclass(frozen=True)
class PatternFeatures:
    """What the pattern is judged from.

    Attributes
    ----------
    repigmented_fraction : float
        Repigmented share of the baseline footprint (after removing 1-px slivers).
    border_excess : float
        How much more of the repigmented region lies in the border band than if
        it were spread evenly over the footprint: 1 = all of it in the band the
        same area deep (a pure marginal advance), 0 = even spread, negative =
        concentrated in the centre.
    island_share : float
        Share of the repigmented region in islands that do not reach the
        border zone of the footprint.
    island_count : int
        Number of such islands.
    interface_ratio : float
        Length of the front between repigmented and still-depigmented skin
        inside the footprint, per unit length of the footprint's border (about
        1 for an advancing border, several for a follicular network).
    rim_excess : float
        How much more of the footprint's rim (the border zone) has repigmented
        than of the footprint as a whole: ``(rim share - overall share) / (1 -
        overall share)``; near 1 when the whole border has advanced, 0 for an
        even spread, negative when the rim lags (diffuse fading often spares
        the lighter perilesional rim).
    remaining_pieces : int
        Pieces the still-depigmented part of the footprint is broken into
        (each at least 0.1 % of the footprint).
    contrast_ratio : float or None
        Contrast of the still-depigmented skin against the surrounding normal
        skin, relative to baseline (1 = as white as at baseline); ``None`` when
        no image was given.
    """

    repigmented_fraction: float
    border_excess: float
    island_share: float
    island_count: int
    interface_ratio: float
    rim_excess: float = 0.0
    remaining_pieces: int = 1
    contrast_ratio: float | None = None


@dataclass(frozen=True)
class PatternResult:
    """Result of :func:`classify_pattern`.

    Attributes
    ----------
    pattern : str
        One of :data:`PATTERNS`.
    components : tuple of str
        The patterns seen (more than one for "combined").
    features : PatternFeatures
    reason : str
        The evidence, in words.
    """

    pattern: str
    components: tuple[str, ...]
    features: PatternFeatures
    reason: str

    def to_dict(self) -> dict:
        """JSON-ready form."""
        f = self.features
        return {
            "pattern": self.pattern,
            "components": list(self.components),
            "reason": self.reason,
            "features": {
                "repigmented_fraction": round(f.repigmented_fraction, 4),
                "border_excess": round(f.border_excess, 3),
                "island_share": round(f.island_share, 3),
                "island_count": f.island_count,
                "interface_ratio": round(f.interface_ratio, 3),
                "rim_excess": round(f.rim_excess, 3),
                "remaining_pieces": f.remaining_pieces,
                "contrast_ratio": None if f.contrast_ratio is None else round(f.contrast_ratio, 3),
            },
        }


def _check_masks(baseline_mask: np.ndarray, visit_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    base = np.asarray(baseline_mask, dtype=bool)
    visit = np.asarray(visit_mask, dtype=bool)
    if base.ndim != 2 or base.shape != visit.shape:
        raise InvalidParameterError(
            f"baseline and visit masks must be 2-D and share the baseline frame, got {base.shape} and {visit.shape}"
        )
    if not base.any():
        raise InvalidParameterError("the baseline mask is empty: there is no footprint to judge a pattern against")
    return base, visit


def _inside_distance(mask: np.ndarray) -> np.ndarray:
    """Distance of every footprint pixel to the nearest pixel outside it."""
    import cv2

    padded = np.pad(mask, 1).astype(np.uint8)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]


def _perimeter(mask: np.ndarray) -> float:
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    return float(sum(cv2.arcLength(c, True) for c in contours))


def pattern_features(
    baseline_mask: np.ndarray, visit_mask: np.ndarray, *, contrast_ratio: float | None = None
) -> PatternFeatures:
    """Measure the features :func:`classify_pattern` decides on.

    Parameters
    ----------
    baseline_mask, visit_mask : ndarray of bool, shape (H, W)
        Depigmented skin at baseline and at the visit, same frame.
    contrast_ratio : float, optional
        See :func:`remaining_contrast`.

    Returns
    -------
    PatternFeatures
    """
    import cv2
    from scipy import ndimage as ndi

    base, visit = _check_masks(baseline_mask, visit_mask)
    footprint = int(base.sum())
    repig = base & ~visit
    # 1-px slivers along the border are registration jitter, not pigment.
    repig = cv2.morphologyEx(repig.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)).astype(bool)
    repig_px = int(repig.sum())
    fraction = repig_px / footprint
    if repig_px == 0:
        return PatternFeatures(0.0, 0.0, 0.0, 0, 0.0, 0.0, 1, contrast_ratio)
    depth = _inside_distance(base)
    # The band as deep as an even inward advance removing the same area would reach.
    ordered = np.sort(depth[base])
    band_depth = ordered[min(len(ordered) - 1, max(repig_px - 1, 0))]
    band = base & (depth <= band_depth)
    expected = band.sum() / footprint
    observed = (repig & band).sum() / repig_px
    excess = float((observed - expected) / (1.0 - expected)) if expected < 1.0 else 0.0
    # Islands: repigmented components that stay clear of the border zone.
    border_zone = max(3.0, 0.03 * math.sqrt(footprint))
    labels, count = ndi.label(repig)
    touching = np.unique(labels[repig & (depth <= border_zone)])
    touching = touching[touching > 0]
    islands = repig & ~np.isin(labels, touching)
    island_count = int(count - len(touching))
    # Pigment front inside the footprint, away from the footprint's own border.
    front = cv2.morphologyEx(repig.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(bool)
    front &= visit & base & (depth > 2)
    interface = float(front.sum() / max(_perimeter(base), 1.0))
    rim = base & (depth <= border_zone)
    rim_share = (repig & rim).sum() / max(rim.sum(), 1)
    rim_excess = float((rim_share - fraction) / (1.0 - fraction)) if fraction < 1.0 else 0.0
    remaining = (base & visit).astype(np.uint8)
    pieces, _, stats, _ = cv2.connectedComponentsWithStats(remaining, connectivity=8)
    remaining_pieces = int((stats[1:, cv2.CC_STAT_AREA] >= 1e-3 * footprint).sum()) if pieces > 1 else 0
    return PatternFeatures(
        repigmented_fraction=float(fraction),
        border_excess=excess,
        island_share=float(islands.sum() / repig_px),
        island_count=island_count,
        interface_ratio=interface,
        rim_excess=rim_excess,
        remaining_pieces=remaining_pieces,
        contrast_ratio=None if contrast_ratio is None else float(contrast_ratio),
    )


def classify_pattern(
    baseline_mask: np.ndarray, visit_mask: np.ndarray, *, contrast_ratio: float | None = None
) -> PatternResult:
    """Judge the pattern of repigmentation of a visit.

    Parameters
    ----------
    baseline_mask, visit_mask : ndarray of bool, shape (H, W)
        Depigmented skin at baseline (the footprint) and at the visit, both in
        the baseline's frame (for example ``VisitResult.mask_baseline`` of
        visit 0 and of the visit).
    contrast_ratio : float, optional
        How white the still-depigmented skin is relative to baseline (see
        :func:`remaining_contrast`); needed to see a *diffuse* darkening that
        has not yet crossed the segmentation threshold.

    Returns
    -------
    PatternResult
        ``pattern`` is one of :data:`PATTERNS`.

    Raises
    ------
    InvalidParameterError
        If the masks differ in shape or the baseline mask is empty.

    Notes
    -----
    The evidence for each pattern:

    - **marginal**: the border has advanced inward: the rim of the footprint
      has repigmented clearly more than the footprint as a whole
      (``rim_excess >= 0.35``), or the repigmented region lies in the border
      band more than an even spread would put there (``border_excess >=
      0.35``; a pure inward advance scores about 0.4-0.85, an even spread 0);
    - **perifollicular**: at least 10 islands of pigment clear of the border
      zone holding at least 5 % of the repigmented region, or (once they have
      merged) a pigment front inside the patch at least 2.5 times as long as
      the patch border, or 1.5 times with the remaining depigmentation broken
      into at least 10 pieces;
    - **diffuse**: the still-depigmented skin has lost at least 15 % of its
      contrast (``contrast_ratio <= 0.85``), or without an image, broad
      repigmentation concentrated in the centre (``border_excess <= -0.15``)
      with neither islands, a network nor a border advance;
    - **combined**: more than one of these; a partial border advance
      (``rim_excess`` 0.20 to 0.35) next to follicular evidence also counts as
      both, unless islands hold at least 30 % of the repigmented region;
    - **none**: less than 2.5 % of the footprint repigmented, no island
      evidence and no loss of contrast; or less than 5 % with no evidence for
      any pattern;
    - **indeterminate**: a real change that fits none of the above.

    The thresholds were tuned on generated courses (:mod:`repigment.synthetic`).

    Examples
    --------
    >>> import numpy as np
    >>> base = np.zeros((200, 200), bool); base[40:160, 40:160] = True
    >>> shrunk = np.zeros_like(base); shrunk[60:140, 60:140] = True
    >>> classify_pattern(base, shrunk).pattern
    'marginal'
    >>> dotted = base.copy()
    >>> for y in range(55, 150, 16):
    ...     for x in range(55, 150, 16):
    ...         dotted[y:y + 6, x:x + 6] = False
    >>> classify_pattern(base, dotted).pattern
    'perifollicular'
    >>> classify_pattern(base, base).pattern
    'none'
    """
    f = pattern_features(baseline_mask, visit_mask, contrast_ratio=contrast_ratio)
    changed = f.repigmented_fraction >= MIN_CHANGE_FRACTION
    islands = f.island_count >= MIN_ISLANDS and f.island_share >= MIN_ISLAND_SHARE
    network = changed and (
        f.interface_ratio >= NETWORK_INTERFACE
        or (f.interface_ratio >= NETWORK_INTERFACE_FRAGMENTED and f.remaining_pieces >= NETWORK_PIECES)
    )
    follicular = islands or network
    darkened = f.contrast_ratio is not None and f.contrast_ratio <= DIFFUSE_CONTRAST_RATIO
    border = changed and max(f.border_excess, f.rim_excess) >= MARGINAL_EXCESS
    partial_border = (changed and follicular and f.rim_excess >= PARTIAL_RIM_EXCESS
                      and f.island_share < DOMINANT_ISLAND_SHARE)
    if not changed and not islands and not darkened:
        return PatternResult("none", (), f, f"no repigmentation beyond noise ({f.repigmented_fraction:.1%} of the patch)")

    components: list[str] = []
    reasons: list[str] = []
    if border or partial_border:
        components.append("marginal")
        reasons.append("pigment advancing inward from the border")
    if follicular:
        components.append("perifollicular")
        reasons.append(
            f"{f.island_count} islands of pigment inside the patch" if islands
            else "islands of pigment inside the patch grown into a network"
        )
    if darkened:
        reasons.append(f"the remaining white skin {1 - f.contrast_ratio:.0%} less white than at baseline")
        components.append("diffuse")
    elif changed and not components and f.border_excess <= CENTRAL_EXCESS:
        reasons.append("broad repigmentation away from the border, without islands")
        components.append("diffuse")
    if not components:
        if f.repigmented_fraction < SMALL_CHANGE_FRACTION:
            return PatternResult("none", (), f,
                                 f"too little repigmentation to judge a pattern ({f.repigmented_fraction:.1%})")
        return PatternResult(
            "indeterminate", (), f,
            f"{f.repigmented_fraction:.0%} of the patch repigmented without a clear border, island or diffuse pattern",
        )
    pattern = components[0] if len(components) == 1 else "combined"
    return PatternResult(pattern, tuple(components), f, "; ".join(reasons))


def footprint_ring(footprint: np.ndarray) -> np.ndarray:
    """The ring of skin around a footprint that :func:`remaining_contrast` compares with.

    From about 3 % to 9 % of the image's longest side outside the footprint.
    """
    import cv2

    base = np.asarray(footprint, dtype=bool)
    size = max(5, int(0.03 * max(base.shape)) | 1)
    near = cv2.dilate(base.view(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    far = cv2.dilate(base.view(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3 * size, 3 * size)))
    return far.astype(bool) & ~near.astype(bool)


def remaining_contrast(
    rgb: np.ndarray, footprint: np.ndarray, visit_mask: np.ndarray, *, ring: np.ndarray | None = None
) -> float | None:
    """Melanin loss of the still-depigmented skin against the skin around the patch.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
        The visit photo, colour-normalised and registered onto the baseline's
        frame (``VisitResult.registered_rgb``); black where the photo does not
        reach.
    footprint : ndarray of bool, shape (H, W)
        The baseline's depigmented mask.
    visit_mask : ndarray of bool, shape (H, W)
        The visit's depigmented mask in the same frame.
    ring : ndarray of bool, shape (H, W), optional
        :func:`footprint_ring` of ``footprint``, when several visits of one
        footprint are measured (it depends on the footprint alone).

    Returns
    -------
    float or None
        Median melanin-weighted optical density of normal skin in a ring around
        the patch minus that of the still-depigmented part of the footprint
        (eroded by 2 px). Divide a visit's value by the baseline's to get the
        ``contrast_ratio`` of :func:`classify_pattern`. ``None`` when too little
        remains to measure.

    Notes
    -----
    The ring starts about 3 % of the image away from the footprint (skin right
    at the margin is often lighter) and ends at 9 %. A global exposure change is
    a constant offset in optical density, so it cancels in the difference.
    """
    import cv2

    from ..core.arrays import as_rgb
    from ..core.segmentation import MELANIN_WEIGHTS, optical_density, skin_mask

    base, visit = _check_masks(footprint, visit_mask)
    rgb = as_rgb(rgb)
    if rgb.shape[:2] != base.shape:
        raise InvalidParameterError(f"rgb must be a uint8 (H, W, 3) image of the masks' size {base.shape}")
    density = optical_density(rgb) @ MELANIN_WEIGHTS
    if ring is None:
        ring = footprint_ring(base)
    ring = ring & ~visit & (rgb.max(axis=2) > 0) & skin_mask(rgb)
    core = cv2.erode((base & visit).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    if ring.sum() < 50 or core.sum() < 50:
        return None
    return float(np.median(density[ring]) - np.median(density[core]))


@dataclass(frozen=True)
class SpreadingRegion:
    """One region of new depigmentation outside the baseline footprint.

    Attributes
    ----------
    area_px : float
        Area in baseline-photo pixels (full resolution).
    area_cm2 : float or None
        Area in cm² when calibrated.
    centroid_xy : tuple of float
        Centre in baseline-photo pixels.
    bbox_xywh : tuple of float
        Bounding box in baseline-photo pixels.
    attached : bool
        Whether it grows from the patch border (else it is a separate spot).
    distance_mm : float or None
        Gap between a separate spot and the patch, mm (px when uncalibrated is
        in ``distance_px``).
    distance_px : float
        The same gap in baseline-photo pixels (0 when attached).
    location : str
        Where it is, in words, in the baseline photo's orientation.
    """

    area_px: float
    area_cm2: float | None
    centroid_xy: tuple[float, float]
    bbox_xywh: tuple[float, float, float, float]
    attached: bool
    distance_px: float
    distance_mm: float | None
    location: str

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "area_px": round(self.area_px, 1),
            "area_cm2": None if self.area_cm2 is None else round(self.area_cm2, 4),
            "centroid_xy": [round(v, 1) for v in self.centroid_xy],
            "bbox_xywh": [round(v, 1) for v in self.bbox_xywh],
            "attached": self.attached,
            "distance_px": round(self.distance_px, 1),
            "distance_mm": None if self.distance_mm is None else round(self.distance_mm, 1),
            "location": self.location,
        }


@dataclass(frozen=True)
class Spreading:
    """Result of :func:`detect_spreading`.

    Attributes
    ----------
    flagged : bool
        New depigmentation outside the footprint above the minimum area.
    area_px : float
        Total new area (full-resolution baseline pixels), flagged or not.
    area_cm2 : float or None
    fraction_of_baseline : float
        Total new area over the baseline area.
    regions : tuple of SpreadingRegion
        Largest first.
    description : str
        In words, for a report.
    """

    flagged: bool
    area_px: float
    area_cm2: float | None
    fraction_of_baseline: float
    regions: tuple[SpreadingRegion, ...]
    description: str

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "flagged": self.flagged,
            "area_px": round(self.area_px, 1),
            "area_cm2": None if self.area_cm2 is None else round(self.area_cm2, 4),
            "fraction_of_baseline": round(self.fraction_of_baseline, 4),
            "regions": [r.to_dict() for r in self.regions],
            "description": self.description,
        }


_DIRECTIONS = ("right", "lower right", "below", "lower left", "left", "upper left", "above", "upper right")


def _direction(dx: float, dy: float) -> str:
    """Compass word for an image-frame offset (y grows downwards)."""
    angle = math.degrees(math.atan2(dy, dx)) % 360.0
    return _DIRECTIONS[int(((angle + 22.5) % 360.0) // 45.0)]


def _relative(direction: str) -> str:
    """``"to the upper right of the patch"`` or ``"above the patch"``."""
    if direction in ("above", "below"):
        return f"{direction} the patch"
    return f"to the {direction} of the patch"


def detect_spreading(
    baseline_mask: np.ndarray,
    visit_mask: np.ndarray,
    *,
    px_scale: float = 1.0,
    cm2_per_px: float | None = None,
    tolerance_px: int | None = None,
    min_fraction: float = MIN_SPREAD_FRACTION,
) -> Spreading:
    """Flag new depigmentation outside the baseline footprint.

    Parameters
    ----------
    baseline_mask, visit_mask : ndarray of bool, shape (H, W)
        Depigmented skin at baseline and at the visit, same frame.
    px_scale : float, optional
        Baseline-photo (full resolution) pixels per mask pixel, so that
        positions and areas are reported in the baseline photo's pixels.
    cm2_per_px : float, optional
        cm² per full-resolution baseline pixel, for areas and distances in
        physical units.
    tolerance_px : int, optional
        The footprint is grown by this many mask pixels first, so registration
        and outline jitter do not count (default 0.3 % of the long side, >= 2).
    min_fraction : float, optional
        Smallest total new area, as a share of the baseline area, that is
        flagged.

    Returns
    -------
    Spreading

    Examples
    --------
    >>> import numpy as np
    >>> base = np.zeros((300, 300), bool); base[100:200, 100:200] = True
    >>> later = base.copy(); later[20:50, 230:270] = True   # a new spot, upper right
    >>> found = detect_spreading(base, later)
    >>> found.flagged, found.regions[0].location
    (True, 'a separate spot to the upper right of the patch, 59 px from it')
    """
    import cv2

    base, visit = _check_masks(baseline_mask, visit_mask)
    if not (np.isfinite(px_scale) and px_scale > 0):
        raise InvalidParameterError(f"px_scale must be positive, got {px_scale}")
    if tolerance_px is None:
        tolerance_px = max(2, int(round(0.003 * max(base.shape))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance_px + 1, 2 * tolerance_px + 1))
    grown = cv2.dilate(base.astype(np.uint8), kernel).astype(bool)
    new = visit & ~grown
    new = cv2.morphologyEx(new.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    area_scale = px_scale**2
    footprint_px = float(base.sum()) * area_scale
    total_px = float(new.sum()) * area_scale
    mm_per_px = None if cm2_per_px is None else math.sqrt(cm2_per_px) * 10.0
    to_cm2 = (lambda px: px * cm2_per_px) if cm2_per_px is not None else (lambda px: None)
    fraction = total_px / footprint_px
    flagged = fraction >= min_fraction
    regions: list[SpreadingRegion] = []
    if new.any():
        ys, xs = np.nonzero(base)
        centre = np.array([xs.mean(), ys.mean()])
        outside_distance = cv2.distanceTransform((~base).astype(np.uint8), cv2.DIST_L2, 5)
        touching = cv2.dilate(grown.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        count, labels, stats, centroids = cv2.connectedComponentsWithStats(new.astype(np.uint8), connectivity=8)
        order = sorted(range(1, count), key=lambda k: -stats[k, cv2.CC_STAT_AREA])
        for k in order:
            component = labels == k
            area = float(stats[k, cv2.CC_STAT_AREA]) * area_scale
            if area < 0.1 * total_px and len(regions) >= 1:
                continue  # crumbs next to a real region
            cx, cy = centroids[k]
            attached = bool((component & touching).any())
            gap = 0.0 if attached else float(outside_distance[component].min()) * px_scale
            where_side = _relative(_direction(cx - centre[0], cy - centre[1]))
            if attached:
                pts = np.argwhere(component)
                angles = np.degrees(np.arctan2(pts[:, 0] - centre[1], pts[:, 1] - centre[0]))
                sectors = len(np.unique(np.floor(angles / 45.0).astype(int)))
                where = "all around the border of the patch" if sectors >= 7 else f"along the border, {where_side}"
            else:
                gap_text = f"{gap * mm_per_px:.0f} mm" if mm_per_px is not None else f"{gap:.0f} px"
                where = f"a separate spot {where_side}, {gap_text} from it"
            x, y, w, h = (float(v) for v in stats[k, :4])
            regions.append(SpreadingRegion(
                area_px=area,
                area_cm2=to_cm2(area),
                centroid_xy=(float(cx) * px_scale, float(cy) * px_scale),
                bbox_xywh=(x * px_scale, y * px_scale, w * px_scale, h * px_scale),
                attached=attached,
                distance_px=gap,
                distance_mm=None if mm_per_px is None else gap * mm_per_px,
                location=where,
            ))
            if len(regions) == 3:
                break
    if not flagged:
        description = "No new depigmentation outside the baseline patch" if not regions else (
            f"No spreading: new depigmentation outside the patch ({fraction:.1%} of its area) is within noise"
        )
    else:
        size = f"{total_px * cm2_per_px:.2f} cm²" if cm2_per_px is not None else f"{total_px:.0f} px"
        description = (
            f"Spreading: new depigmentation of {size} ({fraction:.0%} of the baseline patch) outside the baseline "
            "patch, " + "; ".join(r.location for r in regions)
        )
    return Spreading(
        flagged=flagged,
        area_px=total_px,
        area_cm2=to_cm2(total_px),
        fraction_of_baseline=fraction,
        regions=tuple(regions),
        description=description,
    )
