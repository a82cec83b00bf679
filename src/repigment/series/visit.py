"""One visit of a series: registered to the baseline, colour-matched, segmented and checked.

:func:`_register_visit` lines a prepared visit photo up with the baseline,
matches its colour to the baseline's on shared normal skin when the light
changed, carries the baseline's strokes and set-aside skin into it and maps
its mask into the baseline's frame; :func:`_check_against_evidence` checks
its figure against evidence the mask did not use (see
:mod:`repigment.series.selfcheck`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..core.calibration import marker_exclusion_mask
from ..core.color import ColorNormalization, apply_gains, match_to_reference
from ..core.registration import ImageFeatures, register_to_baseline, visible_in_baseline, warp_to_baseline
from ..core.segmentation import CLIPPED_SRGB, LABEL_NOT_SKIN, Segmentation
from ..limits import Deadline
from .footprint import _dilate_disk
from .photos import PreparedPhoto
from .results import VisitErrorCode, VisitResult
from .selfcheck import evidence_residual_fraction, footprint_contrast, looks_like_skin

# Share of the baseline footprint a visit photo must show to be scored at all,
# and above which it counts as showing all of it.
_MIN_FOOTPRINT_COVERAGE = 0.85
_FULL_FOOTPRINT_COVERAGE = 0.98


def _register_visit(
    visit: VisitResult,
    prepared: PreparedPhoto,
    features: ImageFeatures,
    deadline: Deadline,
    base: PreparedPhoto,
    base_features: ImageFeatures,
    base_features_wide: Callable[[], ImageFeatures],
    base_mask_work: np.ndarray,
    region_work: np.ndarray | None,
    *,
    keep_images: bool = False,
    base_labels_work: np.ndarray | None = None,
    match_colour: tuple[np.ndarray, np.ndarray, Callable[[np.ndarray, np.ndarray | None, np.ndarray], Segmentation]]
    | None = None,
    own_strokes: bool = False,
    base_set_aside: np.ndarray | None = None,
) -> tuple[Segmentation, np.ndarray, float] | None:
    """Register one prepared visit photo.

    Fills ``visit`` (registration, notes, working-frame mask, or the error),
    matches the photo's colour to the baseline's on shared normal skin when
    ``match_colour`` (the baseline's shared-skin and context masks and a
    function that segments a corrected photo) is given, unless the visit is
    judged by its ``own_strokes`` (then the baseline's strokes do not carry
    either, nor the skin the baseline set aside, ``base_set_aside``), and
    returns the visit's segmentation, the homography from its working frame
    to the baseline's working frame and its working scale, or ``None`` when
    it cannot be scored. The share of the baseline footprint it shows is
    ``visit.footprint_coverage``.
    """
    visit.notes.extend(prepared.segmentation.notes)
    moving_skin = features.mask
    registration = register_to_baseline(
        None, prepared.rgb, baseline_features=base_features, moving_features=features
    )
    if not registration.ok and registration.code in ("no_texture", "few_matches", "few_inliers", "narrow"):
        # Too little normal skin in view: take features from the whole frame
        # outside the patch, but still require the skin itself to agree.
        wide_features = base_features_wide()
        registration = register_to_baseline(
            None, prepared.rgb, moving_mask=prepared.registration_mask(skin_only=False),
            baseline_features=wide_features, verify_masks=(base_features.mask, moving_skin),
        )
    visit.registration = registration
    deadline.check("registration")
    if keep_images and registration.homography is not None:
        import cv2

        height, width = base_mask_work.shape
        visit.registered_rgb = cv2.warpPerspective(prepared.rgb, registration.homography, (width, height))
    if not registration.ok:
        visit.fail(VisitErrorCode.NOT_ALIGNED, f"not aligned to the baseline: {registration.reason}")
        return None
    visible = visible_in_baseline(prepared.segmentation.mask.shape, registration.homography, base_mask_work.shape)
    coverage = float(np.count_nonzero(visible & base_mask_work) / max(np.count_nonzero(base_mask_work), 1))
    visit.footprint_coverage = coverage
    if coverage < _MIN_FOOTPRINT_COVERAGE:
        visit.fail(VisitErrorCode.OUT_OF_FRAME,
                   f"the photo shows only {coverage:.0%} of the baseline patch; frame the whole patch as at baseline")
        return None
    if coverage < _FULL_FOOTPRINT_COVERAGE:
        visit.notes.append(
            f"only {coverage:.0%} of the baseline patch is in this photo: figures are estimated from that part "
            "and the range covers any change in the rest; frame the whole patch next time"
        )
    if match_colour is not None:
        _match_colour_to_baseline(visit, prepared, registration.homography, base, match_colour, visible,
                                  resegment=not own_strokes)
    if base_labels_work is not None and not own_strokes:
        prepared.segmentation = _segment_with_carried_labels(prepared, base_labels_work, registration.homography)
    od_field = not own_strokes and prepared.segmentation.method == "od-field"
    if od_field:
        # The footprint in this photo's frame and the distance from it, once for both rules below.
        shape = prepared.segmentation.mask.shape
        footprint = _baseline_to_visit(base_mask_work, registration.homography, shape)
        distance = _distance_from(footprint)
        prepared.segmentation = _without_faint_new_regions(visit, prepared.segmentation, footprint, distance)
    if not own_strokes and base_set_aside is not None:
        prepared.segmentation = _without_set_aside_skin(prepared.segmentation, base_set_aside, registration.homography)
    if od_field and prepared.segmentation.fine_score is not None:
        # Pigment islands are judged at the fine scale within the patch, as at baseline;
        # new depigmentation beyond it is judged smoothed, as it was found.
        near_patch = distance <= _NEW_REGION_MARGIN * max(shape)
        prepared.segmentation = prepared.segmentation.with_fine_scale_within(near_patch, patch=footprint)
    visit.mask_baseline = warp_to_baseline(prepared.segmentation.mask, registration.homography, base_mask_work.shape)
    if region_work is not None:
        visit.mask_baseline &= region_work
    return prepared.segmentation, registration.homography, prepared.scale


#: A visit is segmented again, colour-matched to the baseline, when the light's
#: colour changed (a channel's gain differs from the mean gain by more than
#: this share), exposure changed by more than this factor, or a haze was found.
#: Smaller changes cancel in the segmentation's normal-skin field and are not
#: worth a second segmentation.
_COLOUR_MATCH_MIN_CAST = 0.04
_COLOUR_MATCH_MIN_EXPOSURE = 1.5


#: Lights the colour matching cannot fully undo: a channel's gain this far
#: from the mean gain (tungsten against daylight), exposure changed by more
#: than this factor, or more than this share of the normal skin clipped. On
#: generated series such visits are off by 3-14 points on average (others:
#: 1.2), so they are flagged for review with their range widened by
#: ``_STRONG_LIGHT_UNCERTAINTY_PCT`` each way.
_STRONG_LIGHT_CAST = 0.25
_STRONG_LIGHT_EXPOSURE = 1.8


_STRONG_LIGHT_CLIPPED = 0.05
_STRONG_LIGHT_UNCERTAINTY_PCT = 10.0


def _match_colour_to_baseline(
    visit: VisitResult,
    prepared: PreparedPhoto,
    homography: np.ndarray,
    base: PreparedPhoto,
    match_colour: tuple[np.ndarray, np.ndarray, Callable[[np.ndarray, np.ndarray | None, np.ndarray], Segmentation]],
    visible: np.ndarray,
    *,
    resegment: bool = True,
) -> None:
    """Bring a registered visit's colour and exposure to the baseline's, and segment it again.

    The gains come from normal skin both photos show (outside the baseline
    footprint and its margin, off the marker and background), on top of the
    marker's white balance where there is one. Without ``resegment`` (a visit
    judged by its own strokes) only a strong change of light is noted.
    """
    import cv2

    base_shared, base_context, segment = match_colour
    height, width = base_shared.shape
    in_base = cv2.warpPerspective(prepared.rgb, homography, (width, height))
    skin = cv2.warpPerspective(_surrounding_skin(prepared).view(np.uint8), homography, (width, height),
                               flags=cv2.INTER_NEAREST).astype(bool)
    shared = base_shared & skin
    matched = match_to_reference(in_base, base.rgb, shared, context=visible & base_context)
    # Blown-out skin is judged on all of the baseline's normal skin in view: the visit's own
    # skin test leaves out the whitest pixels, which is what overexposure makes of skin.
    visit.light_change = _strong_light_change(in_base, base_shared & visible, prepared, base, matched)
    if matched is None or not resegment:
        return
    exposure, cast = _exposure_and_cast(matched.gains)
    if (cast <= _COLOUR_MATCH_MIN_CAST and not np.any(matched.veil)
            and 1.0 / _COLOUR_MATCH_MIN_EXPOSURE <= exposure <= _COLOUR_MATCH_MIN_EXPOSURE):
        return
    rgb = apply_gains(prepared.rgb, matched.gains, matched.veil)
    if prepared.blown_out is not None:
        rgb[prepared.blown_out] = 255  # see prepare_photo
    exclude = None
    if prepared.marker is not None:
        exclude = marker_exclusion_mask(rgb.shape[:2], prepared.marker)
    # Skin of the photo as taken counts too: see ``extra_skin`` of depigmented_mask.
    prepared.rgb, prepared.segmentation = rgb, segment(rgb, exclude, prepared.segmentation.skin)
    gains = ", ".join(f"{channel} x{gain:.2f}" for channel, gain in zip("RGB", matched.gains))
    haze = f", a haze of {np.mean(matched.veil):.1%} taken off" if np.any(matched.veil) else ""
    visit.notes.append(f"colour and exposure matched to the baseline on shared normal skin ({gains}{haze})")


def _exposure_and_cast(gains: np.ndarray) -> tuple[float, float]:
    """Per-channel gains as an exposure factor (their mean) and a colour cast (largest share off it)."""
    exposure = float(np.mean(gains))
    return exposure, float(np.max(np.abs(np.asarray(gains) / exposure - 1.0)))


def _strong_light_change(
    registered: np.ndarray,
    shared: np.ndarray,
    prepared: PreparedPhoto,
    base: PreparedPhoto,
    matched: ColorNormalization | None,
) -> str | None:
    """How far a visit's light was from the baseline's, when too far to undo without loss.

    The light of the raw photos differs by the baseline's normalisation gains
    over the visit's and its match to the baseline; ``None`` when that is
    within ``_STRONG_LIGHT_CAST`` and ``_STRONG_LIGHT_EXPOSURE`` and the normal
    skin is not blown out.
    """
    # A regular subsample of about 20,000 shared pixels is plenty for a share.
    step = max(1, int(np.sqrt(np.count_nonzero(shared) / 20_000)))
    sample = registered[::step, ::step][shared[::step, ::step]]
    if len(sample):
        clipped = float(np.mean(sample.max(axis=1) >= CLIPPED_SRGB))
        if clipped > _STRONG_LIGHT_CLIPPED:
            return f"overexposed: {clipped:.0%} of the normal skin is blown out to white"
    if prepared.color_gains is None or base.color_gains is None:
        return None
    light = base.color_gains / np.maximum(prepared.color_gains, 1e-6)
    if matched is not None:
        light = light / np.maximum(matched.gains, 1e-6)
    exposure, cast = _exposure_and_cast(light)
    if cast <= _STRONG_LIGHT_CAST and 1.0 / _STRONG_LIGHT_EXPOSURE <= exposure <= _STRONG_LIGHT_EXPOSURE:
        return None
    return f"taken under a light far from the baseline's (colour cast {cast:.0%}, exposure x{exposure:.2f})"


def _segment_with_carried_labels(
    prepared: PreparedPhoto, base_labels_work: np.ndarray, homography: np.ndarray
) -> Segmentation:
    """A registered visit's segmentation with the baseline's strokes carried onto it.

    The visit is judged at the threshold the strokes set at baseline (its
    preliminary segmentation already is); what the strokes marked as not skin
    stays out of its mask. Depigmented and normal-skin strokes do not carry as
    such: skin marked depigmented at baseline may have repigmented since, and
    skin marked normal may have lost pigment, which is what the series measures.
    """
    preliminary = prepared.segmentation
    carried = _baseline_to_visit(base_labels_work, homography, preliminary.mask.shape)
    not_skin = carried == LABEL_NOT_SKIN
    if not not_skin.any():
        return preliminary
    return replace(preliminary, mask=preliminary.mask & ~not_skin, skin=preliminary.skin & ~not_skin)


#: A visit is contradicted when its mask finds less of the baseline patch
#: still depigmented than the footprint's contrast shows, by more than this.
#: (The contrast agrees with the mask within about 0.1 on generated series
#: under ordinary light; a hazy, washed-out light lowers the contrast, so the
#: other direction is judged only at its extreme.)
_EVIDENCE_TOLERANCE = 0.15
#: A visit whose depigmented area is more than this multiple of the
#: baseline's is in doubt: more likely a baseline mask that missed part of
#: the patch than a patch that spread that far during treatment (the
#: generator's fastest spreading course triples the area in a year).
_IMPLAUSIBLE_GROWTH = 3.0
#: New depigmentation whose contrast with the skin around it is under this
#: share of the baseline patch's is lighter normal skin, not lost pigment.
_NEW_DEPIGMENTATION_MIN_CONTRAST = 0.5
#: New depigmentation is checked for skin hue once it exceeds this share of the baseline area.
_NEW_DEPIGMENTATION_CHECKED = 0.05
#: New depigmentation is in doubt when lighter skin left out beyond the patch
#: (see _without_faint_new_regions) reaches this share of the baseline area:
#: the photo renders the skin around the patch lighter (a phone's local tone
#: mapping: 70-150 %, with the patch's border grown by 9-10 % of its area on a
#: stable series), and the border's growth may be that, not spreading.
#: Generated series without such processing: at most 27 %.
_LIGHTER_SKIN_CONTRADICTS = 0.4


def _without_set_aside_skin(
    segmentation: Segmentation, base_set_aside: np.ndarray, homography: np.ndarray
) -> Segmentation:
    """A visit's segmentation without the skin its baseline set aside as not a patch.

    That skin (see :attr:`repigment.core.segmentation.Segmentation.set_aside`) lies
    where the photo's normal-skin field misfits, at the edge of a limb or in
    uneven light, and a visit photographed the same way passes it again: kept
    at a visit, it would count against a baseline area that left it out.
    Depigmentation spreading into it is not seen either, which the baseline's
    note asks the clinician to check.
    """
    aside = _baseline_to_visit(base_set_aside, homography, segmentation.mask.shape)
    if not aside.any():
        return segmentation
    if segmentation.set_aside is not None:
        aside |= segmentation.set_aside
    return replace(segmentation, mask=segmentation.mask & ~aside, set_aside=aside)


def _without_faint_new_regions(
    visit: VisitResult, segmentation: Segmentation, footprint: np.ndarray, distance: np.ndarray | None = None
) -> Segmentation:
    """Leave out new depigmentation that is only lighter skin, noting how much when it matters.

    A new vitiligo macule, like the patch, is milk-white: most of it has lost
    near full depigmentation. A region apart from the baseline footprint and
    its margin whose median score stays under ``_NEW_REGION_LEVEL_SHARE`` of
    this photo's level of full depigmentation is lighter normal skin
    (mottling, light) that grazed the threshold. A region joined to the patch
    is judged by its part outside the margin, once that part reaches twice as
    far: a spreading edge is thin where it leaves the margin, but one that
    reaches that far is a band of milk-white skin, while lighter skin along
    the edge of a body part or a phone's tone-mapping halo beside a dark
    background stays faint; only the part outside the margin is left out.
    Only the optical-density model has such a level. ``footprint`` is the
    baseline footprint in this photo's frame, ``distance`` each pixel's
    distance from it (:func:`_distance_from`; computed here when None).
    """
    import cv2

    level = segmentation.depigmented_level
    if level is None or not segmentation.mask.any():
        return segmentation
    mask = segmentation.mask
    count, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
    height, width = mask.shape
    if not footprint.any():
        return segmentation  # nothing to be new against (such a visit is refused for its framing)
    if distance is None:
        distance = _distance_from(footprint)
    near = distance <= _NEW_REGION_MARGIN * max(height, width)
    far = distance > 2.0 * _NEW_REGION_MARGIN * max(height, width)
    # Each part of the mask outside the margin: a region apart from the patch whole, or what a
    # region joined to it has beyond the margin. The latter is judged only once it reaches
    # well beyond, by all its pixels outside the margin (a milk-white band's blurred rim is
    # what reaches farthest). Median under the share of the level <=> more than half under it.
    outside = mask & ~near
    parts, part_labels = cv2.connectedComponents(outside.view(np.uint8), connectivity=8)
    apart = np.bincount(labels[near & mask], minlength=count) == 0
    joined = np.zeros(parts, bool)
    joined[part_labels[outside]] = ~apart[labels[outside]]  # a part lies within one region
    reaches = np.bincount(part_labels[far & mask], minlength=parts) > 0
    lighter_only = outside & (segmentation.score < _NEW_REGION_LEVEL_SHARE * level)
    faint = ((~joined | reaches)
             & (np.bincount(part_labels[lighter_only], minlength=parts)
                > 0.5 * np.bincount(part_labels[outside], minlength=parts)))
    faint[0] = False
    if not faint.any():
        return segmentation
    left_out = np.take(faint, part_labels)
    share = np.count_nonzero(left_out) / np.count_nonzero(footprint)
    visit.lighter_skin_share = share
    if share >= _NEW_REGION_NOTED_SHARE:  # specks are not worth a clinician's attention
        visit.notes.append(
            f"lighter skin beyond the baseline patch ({share:.1%} of its area), under "
            f"{_NEW_REGION_LEVEL_SHARE:.0%} of full depigmentation, is not counted as new depigmentation")
    return replace(segmentation, mask=mask & ~left_out)


def _distance_from(footprint: np.ndarray) -> np.ndarray:
    """Each pixel's distance (px) from ``footprint``: a margin costs a fraction of a wide dilation."""
    import cv2

    return cv2.distanceTransform((~footprint).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_3)


#: The baseline footprint's margin, as a share of the photo's longest side:
#: new depigmentation within it is judged with the patch (see _without_faint_new_regions).
_NEW_REGION_MARGIN = 0.02
#: New depigmentation counts only where its median score reaches this share of
#: the photo's level of full depigmentation (see _without_faint_new_regions).
_NEW_REGION_LEVEL_SHARE = 0.75
#: Lighter skin left out is noted from this share of the baseline area on.
_NEW_REGION_NOTED_SHARE = 0.01


def _baseline_to_visit(image: np.ndarray, homography: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A baseline-frame mask or label image in a visit's frame (nearest neighbour, 0 outside).

    ``homography`` maps the visit's working pixels to the baseline's, as
    registration gives it; a bool mask comes back bool.
    """
    import cv2

    height, width = shape
    warped = cv2.warpPerspective(np.asarray(image).view(np.uint8) if image.dtype == bool else image,
                                 np.linalg.inv(homography), (width, height), flags=cv2.INTER_NEAREST,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped.astype(bool) if image.dtype == bool else warped


def _surrounding_skin(prepared: PreparedPhoto) -> np.ndarray:
    """Skin of a prepared photo that may serve as surrounding normal skin (off the marker)."""
    usable = prepared.segmentation.skin.copy()
    if prepared.marker is not None:
        usable &= ~marker_exclusion_mask(usable.shape, prepared.marker, margin=0.5)
    return usable


def _check_against_evidence(
    visit: VisitResult,
    prepared: PreparedPhoto,
    homography: np.ndarray,
    base_mask_work: np.ndarray,
    base_evidence: float | None,
    base_area_full: int,
) -> None:
    """Flag a scored visit whose figure the photo's own evidence contradicts.

    The baseline footprint still standing out from the skin around it while
    the mask is (nearly) empty, or the reverse; new depigmentation that does
    not have the hue of skin, barely stands out, or comes with much lighter
    skin beyond the patch (a photo that renders the skin lighter); an area
    more than ``_IMPLAUSIBLE_GROWTH`` times the baseline's; and a light too
    far from the baseline's to be undone (``visit.light_change``; when such a
    light also grows the patch, the range reaches the figure without the
    growth). The
    lighter skin beyond the patch is known only for a series whose baseline
    the optical-density model segmented (see :func:`_without_faint_new_regions`).
    """
    if visit.light_change is not None and visit.own_strokes:
        # The strokes taught a model of this photo's own colours: the light is no reason to doubt it.
        visit.notes.append(f"{visit.light_change}; judged by the strokes drawn on this photo")
    elif visit.light_change is not None:
        pct = visit.score.repigmentation_pct
        # Repigmentation cannot pass 100 %; it can go below 0 (spreading).
        plausible = [pct - _STRONG_LIGHT_UNCERTAINTY_PCT, min(100.0, pct + _STRONG_LIGHT_UNCERTAINTY_PCT)]
        if visit.score.new_depigmentation_px > _NEW_DEPIGMENTATION_CHECKED * base_area_full:
            # Normal skin such a light renders pale can pass for new depigmentation: the
            # figure without it (what the mask kept of the baseline patch) is as plausible.
            plausible.append(100.0 * (1.0 - visit.score.residual_fraction))
        visit.flag_for_review(
            f"{visit.light_change}: the colour matching cannot fully undo it, so the figure may be well off; "
            "compare the photos",
            plausible_pct=tuple(plausible))
    seg = prepared.segmentation
    surrounding = _surrounding_skin(prepared)
    height, width = seg.mask.shape
    footprint = _baseline_to_visit(base_mask_work, homography, (height, width))
    score = visit.score
    evidence = evidence_residual_fraction(
        footprint_contrast(prepared.rgb, footprint, usable=surrounding), base_evidence)
    visit.evidence_residual = evidence
    if evidence is not None:
        measured = score.residual_fraction
        if measured < evidence - _EVIDENCE_TOLERANCE or (evidence < 0.15 and measured > 0.6):  # see above
            visit.flag_for_review(
                f"the mask finds {measured:.0%} of the baseline patch still depigmented, but the patch stands out "
                f"from the skin around it with {evidence:.0%} of its baseline contrast in this photo (light, "
                "exposure or focus may have changed the photo): check the outline",
                plausible_pct=(1.0 - evidence) * 100.0,
            )
    if score.area_px > _IMPLAUSIBLE_GROWTH * base_area_full:
        visit.flag_for_review(
            f"the depigmented area is {score.area_px / base_area_full:.1f} times the baseline's: vitiligo rarely "
            "spreads that far under treatment, so the baseline mask may have missed part of the patch; check it")
    if score.new_depigmentation_px > _NEW_DEPIGMENTATION_CHECKED * base_area_full:
        new = seg.mask & ~_dilate_disk(footprint, _NEW_REGION_MARGIN * max(height, width))
        # The figure without it: what the mask kept of the baseline patch (of its part in view,
        # when the photo cuts some of it off, as the figure itself).
        without_new = 100.0 * (1.0 - score.residual_fraction)
        share = looks_like_skin(prepared.rgb, new, seg.normal_lab)
        new_contrast = footprint_contrast(prepared.rgb, new, usable=surrounding & ~seg.mask)
        if share < 0.5:
            visit.flag_for_review(
                f"the new depigmentation outside the baseline patch is mostly not skin-coloured ({share:.0%} "
                "has the hue of this patient's skin): cloth or background may have been counted",
                plausible_pct=without_new,
            )
        elif (new_contrast is not None and base_evidence is not None
              and new_contrast < _NEW_DEPIGMENTATION_MIN_CONTRAST * base_evidence):
            visit.flag_for_review(
                f"the new depigmentation outside the baseline patch is only {new_contrast / base_evidence:.0%} as "
                "distinct from the skin around it as the baseline patch: light may have made normal skin pass",
                plausible_pct=without_new,
            )
        elif visit.lighter_skin_share >= _LIGHTER_SKIN_CONTRADICTS:
            visit.flag_for_review(
                f"the skin beyond the baseline patch looks lighter than at baseline ({visit.lighter_skin_share:.0%} "
                "of the patch's area, left out as not depigmented), so the patch's growth of "
                f"{without_new - score.repigmentation_pct:.0f}% may be the same effect of light or of the "
                "phone's processing rather than spreading: compare the photos",
                plausible_pct=without_new,
            )
