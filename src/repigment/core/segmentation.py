"""Depigmented-skin segmentation, judged against the patient's own normal skin.

Method
------
1. **Skin.** Pixels whose CIELAB hue and chroma are those of skin (lit or
   shaded, pigmented or not); plain backgrounds (black, blue, green), neutral
   objects (paper, white cloth, glare) and the marker are left out, holes
   enclosed by skin are filled, and so is pale, still pink skin that skin
   encloses except where the frame cuts it (a large patch at the edge).
2. **Melanin loss.** Each pixel's optical density ``OD_c = -ln(linear_c)`` is
   compared with a smooth *normal-skin field*: a quadratic surface per channel
   fitted to the patient's normal skin in the same photo, away from the patch
   margin. The difference, projected on melanin's absorption spectrum (strong in
   blue, weak in red), is the depigmentation score ``s``: 0 on normal skin,
   rising with melanin loss. A global exposure or white-balance change is a
   constant per-channel offset in optical density and a lighting gradient a
   smooth one, so both fall into the field and leave ``s`` unchanged.
3. **Threshold.** ``s`` on skin is split in two classes (Otsu); when the classes
   are clearly apart, the depigmented class's median is the *contrast* of full
   depigmentation, and a pixel is depigmented when it lies more than
   ``DEPIGMENTED_FRACTION`` (0.55) of the way to it: past the melanin midpoint
   (0.5, the point at which the VASI scale turns from "pigmented exceeds" to
   "depigmented exceeds"), a little toward the midpoint of *light* that an
   edge blurred by the optics shows. A series uses the baseline's threshold at
   every visit so the criterion does not drift, scaled by the visit's own
   level of full depigmentation over the baseline's (``reference_level``) so
   that the point stays put when a photo renders the patch with more or less
   contrast. When lighter normal skin (mottling, a
   lighting hot spot) outnumbers a small patch, the lighter class splits again
   and the patch is the lightest class; a photo that sets its own threshold
   keeps only regions with a core at three quarters of full depigmentation.

Thin dark hairs and specular glare are treated as missing data and filled from
the surrounding skin before the threshold; skin clipped to white over more than
a few small spots is an overexposed patch and is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InvalidParameterError
from .arrays import as_rgb
from .color import rgb_to_lab, srgb_to_linear

# Skin detection (.skin), the colour-contrast and strokes models (.guided) and
# the region-of-interest, label and mask helpers (.regions) live in modules of
# their own; every name imported from here before the split still is (__all__
# is unchanged). Imported from here though not used here: LABEL_NOT_SKIN
# (repigment.webapp.strokes, repigment.series), LABEL_UNLABELLED with the
# other labels, and _frame_cut_patches (tests/core).
from .guided import (
    _MIN_CONTRAST_SIGMAS,
    _SELF_GRAPH_CUT_ROUNDS,
    _STATISTICS_SAMPLE,
    _colour_contrast_segmentation,
    _distinct_lighter_class,
    _graph_cut_within,
    _otsu,
    _robust_sigma,
    _strokes_from_mask,
    _strokes_trimap,
    _subsample,
)
from .regions import (
    LABEL_DEPIGMENTED,
    LABEL_NORMAL_SKIN,
    LABEL_NOT_SKIN,  # noqa: F401  (re-exported)
    LABEL_UNLABELLED,  # noqa: F401  (re-exported)
    _border,
    _dilate_coarsely,
    fill_holes,
    remove_small_regions,
    resize_labels,
    roi_mask,
    validate_labels,
)
from .skin import (
    _REDNESS_SHARE,
    CLIPPED_SRGB,
    _clipped_share,
    _frame_cut_patches,  # noqa: F401  (re-exported)
    _skin_from_lab,
    lab_whiteness,
    skin_mask,
)

__all__ = [
    "MELANIN_WEIGHTS",
    "SEGMENTATION_METHOD",
    "SEGMENTATION_METHODS",
    "CLIPPED_SRGB",
    "validate_labels",
    "resize_labels",
    "Segmentation",
    "SkinSplit",
    "depigmented_mask",
    "skin_mask",
    "roi_mask",
    "inside_and_ring",
    "remove_small_regions",
    "fill_holes",
    "lab_whiteness",
    "optical_density",
    "LEVEL_RATIO_LIMITS",
]

#: Weights of (R, G, B) optical density in the depigmentation score. Mostly
#: blue minus red: melanin absorbs blue far more than red, while exposure,
#: shading and lighting gradients change all channels alike and cancel out;
#: a smaller share of overall density (0.5 x (0.18, 0.34, 0.48)) keeps the
#: strong brightness cue that depigmentation gives on dark skin. Chosen on
#: the separation of depigmented from normal skin in generated photos of all
#: six skin types (blue-red alone: best on type I, weaker on type VI).
MELANIN_WEIGHTS = np.array([-0.91, 0.17, 1.24], dtype=np.float32)

#: The words of the note on skin set aside as barely lighter than the skin around it
#: (:attr:`Segmentation.set_aside`); the note goes when a region of interest decides instead.
_SET_ASIDE_NOTE = "the area above the threshold was left out"

#: The models a segmentation can come from (see :attr:`Segmentation.method`).
SEGMENTATION_METHODS = ("od-field", "colour-contrast", "strokes")
#: Identifies this segmentation in every saved record; bump when results would change. (The
#: name is the method's, not a module path: it keeps the spelling of the records already saved.)
SEGMENTATION_METHOD = "repigment.segmentation.depigmented_mask/od-field-colour-contrast-v11"

# Two classes are "clearly apart" when their medians differ by this many pooled
# robust standard deviations; a unimodal distribution split by Otsu gives ~2.7.
_MIN_SEPARATION = 4.0
# The threshold never goes below this many standard deviations of normal skin.
_NOISE_FLOOR_SIGMAS = 2.5
#: Where between normal skin (0) and full depigmentation (1) the optical-density
#: threshold sits. 0.5 is the melanin midpoint, right where skin is graded; but
#: optics blur light, not density, and a pixel that mixes the two classes half
#: and half has the mean of their *light*, which lies past the density midpoint
#: (0.55 on type I to 0.7-0.8 on type VI for sharp edges). At 0.5 every edge,
#: above all the many edges of perifollicular islands, reads about a pixel too
#: far into pigmented skin, and repigmentation is under-counted. 0.55 corrects
#: part of that and no more, since patch edges are often graded as well.
#: Measured on generated series (v7 against v6): mean error 1.34 -> 1.15
#: points on held-out seeds, 1.66 -> 1.24 with small (1-5 %) patches.
DEPIGMENTED_FRACTION = 0.55

#: Optical density ``-ln(linear light)`` of each 8-bit sRGB value (linear light
#: floored at 1/1024, so black has a finite density).
_OPTICAL_DENSITY_LUT = -np.log(np.clip(srgb_to_linear(np.arange(256, dtype=np.uint8)), 1.0 / 1024.0, 1.0))
#: Projections of (R, G, B) optical density the segmentation works on: the
#: melanin score's density, and blue minus red (the shading-free first guess).
_PROJECTIONS = np.array([MELANIN_WEIGHTS, [-1.0, 0.0, 1.0]], dtype=np.float32)
#: Skin clipped to white over more than this share of the photo is an
#: overexposed photo, not glare (specular highlights cover well under 0.1 %).
_GLARE_MAX_SHARE = 0.005
#: Pixels brighter than 90 % linear light in every channel are specular glare:
#: the smallest 8-bit sRGB value above 0.9 linear.
_GLARE_SRGB = int(np.argmax(srgb_to_linear(np.arange(256, dtype=np.uint8)) > 0.9))


@dataclass(frozen=True)
class Segmentation:
    """Result of :func:`depigmented_mask`.

    Attributes
    ----------
    mask : ndarray of bool, shape (H, W)
        Depigmented skin (inside the region of interest when one was given).
    skin : ndarray of bool, shape (H, W)
        Skin that was judged (background, clothing, marker excluded).
    score : ndarray of float32, shape (H, W)
        Depigmentation score (optical-density units of melanin loss; 0 on
        normal skin). 0 outside skin.
    threshold : float
        Score above which a pixel counts as depigmented.
    contrast : float or None
        Median score of the depigmented class (full depigmentation), when the
        photo shows a distinct depigmented class.
    normal_lab : ndarray of float, shape (3,)
        Median CIELAB of the normal-skin reference.
    normal_sigma : float
        Robust standard deviation of the score on normal skin (noise level).
    notes : tuple of str
        Conditions worth telling the user (for example no distinct patch).
    min_patch_px : int
        Smallest depigmented region kept, pixels.
    depigmented_level : float or None
        Median score well inside the depigmented regions (the photo's level
        of full depigmentation), or ``None`` when too few such pixels exist.
    method : {"od-field", "colour-contrast", "strokes"}
        Which model made the mask: optical density against a fitted
        normal-skin field, colour contrast with the surrounding skin, or a
        colour model learned from a clinician's strokes (see
        :func:`depigmented_mask`). ``score`` and ``threshold`` are in that
        model's units.
    confidence : float
        0-1: how clearly the depigmented skin stands out from normal skin's
        own variation (0: not distinct, a best guess; 1: unmistakable).
    reason : str or None
        Why the confidence is what it is, in words, when it is below 1.
    core_score : float or None
        A region is kept only when some of it reaches this score (a photo
        that set its own threshold); None when every region above the
        threshold counts.
    skin_split : SkinSplit or None
        When a skin-coloured background or cloth had passed for normal skin
        (darker than the patient's skin) or for the patch (paler) and was set
        aside: the colours of skin, patch and background (see
        :func:`depigmented_mask`). ``None`` otherwise.
    set_aside : ndarray of bool, shape (H, W), or None
        Skin above the threshold left out of ``mask`` as not a patch: regions
        barely lighter than the skin around them (see :func:`_faint_regions`),
        or, at a series' visit, the skin its baseline set aside. It covers
        the whole photo (a region of interest does not clip it), and stays
        out of :meth:`mask_at` too. ``None`` when nothing was.
    fine_score : ndarray of float32, shape (H, W), or None
        The optical-density score before the extra smoothing that
        low-contrast (very light) skin gets, when it got it: ``score`` is
        then the smoothed one, which decides where depigmented skin is, and
        this one what of it is (see :meth:`with_fine_scale_within`).
    fine_within, fine_patch : ndarray of bool, shape (H, W), or None
        Where ``fine_score`` decides, and where a patch is known to lie,
        once :meth:`with_fine_scale_within` has refined the mask.
    """

    mask: np.ndarray
    skin: np.ndarray
    score: np.ndarray
    threshold: float
    contrast: float | None
    normal_lab: np.ndarray
    normal_sigma: float
    notes: tuple[str, ...] = field(default=())
    min_patch_px: int = 0
    depigmented_level: float | None = None
    method: str = "od-field"
    confidence: float = 1.0
    reason: str | None = None
    core_score: float | None = None
    skin_split: SkinSplit | None = None
    set_aside: np.ndarray | None = None
    fine_score: np.ndarray | None = None
    fine_within: np.ndarray | None = None
    fine_patch: np.ndarray | None = None

    @property
    def area_px(self) -> int:
        """Number of depigmented pixels."""
        return int(np.count_nonzero(self.mask))

    @property
    def threshold_method(self) -> str:
        """The ``method`` of :func:`depigmented_mask` that ``threshold`` belongs to.

        A series judges later visits at this photo's threshold with it; a
        threshold set by strokes is one of the colour-contrast model.
        """
        return "od-field" if self.method == "od-field" else "colour-contrast"

    @property
    def core_factor(self) -> float | None:
        """``core_score / threshold``: the ``core_factor`` a series passes later visits, or None."""
        return None if self.core_score is None else self.core_score / self.threshold

    def with_fine_scale_within(self, within: np.ndarray | None = None, *, patch: np.ndarray | None = None
                               ) -> Segmentation:
        """This segmentation with its regions judged inside on the unsmoothed score.

        On low-contrast skin the score is smoothed before the decision, so
        that noise does not pass the threshold in speckles; that also fills
        the small pigment islands of perifollicular repigmentation and thins
        the depigmented skin left between merging ones. Within ``within``
        (the whole photo when None) the smoothed mask's regions, holes
        filled, say where depigmented skin is, and the unsmoothed score
        ``fine_score`` which of their pixels are: islands show again as
        holes. :meth:`mask_at` applies the same rule at any threshold.

        Parameters
        ----------
        within : ndarray of bool, shape (H, W), optional
            Where the unsmoothed score decides; elsewhere the mask is unchanged.
        patch : ndarray of bool, shape (H, W), optional
            Where a patch is known to lie (a series' baseline footprint in
            this photo): depigmented pixels on the unsmoothed score count
            there beyond the smoothed regions too (the skin between merging
            islands that the smoothing thinned away), as long as they join
            one of them; nothing is found where the smoothed score found none.

        Returns
        -------
        Segmentation
            ``self`` when the score was not smoothed (``fine_score`` None).
        """
        if self.fine_score is None:
            return self
        within = np.ones(self.mask.shape, bool) if within is None else np.asarray(within, bool)
        refined = replace(self, fine_within=within, fine_patch=None if patch is None else np.asarray(patch, bool))
        return replace(refined, mask=refined._at_fine_scale(self.mask, self.threshold))

    def _at_fine_scale(self, mask: np.ndarray, threshold: float) -> np.ndarray:
        """``mask`` (smoothed, at ``threshold``) judged on ``fine_score`` where ``fine_within`` says."""
        if self.fine_score is None or self.fine_within is None:
            return mask
        fine = self.skin & (self.fine_score > threshold)
        if self.set_aside is not None:
            fine &= ~self.set_aside
        candidates = fill_holes(mask) & fine
        if self.fine_patch is not None:
            candidates |= self.fine_patch & fine
        # Only what joins a smoothed region: specks of noise on their own (in a repigmented
        # part of the footprint, or a hole) are what the smoothing is there to keep out.
        return np.where(self.fine_within, _keep_cores(candidates, mask), mask)

    def with_set_aside_within(self, region: np.ndarray) -> Segmentation:
        """This segmentation with the set-aside regions that ``region`` touches back in its mask.

        A clinician's region of interest over skin the photo's own rule set
        aside as not a patch is the clinician's call. What stays aside lies
        wholly outside ``region``, so the note on it goes too.
        """
        if self.set_aside is None:
            return self
        back = _regions_touching(self.set_aside, region)
        rest = self.set_aside & ~back
        return replace(self, mask=self.mask | back, set_aside=rest if rest.any() else None,
                       notes=tuple(note for note in self.notes if _SET_ASIDE_NOTE not in note))

    def mask_at(self, threshold: float) -> np.ndarray:
        """The mask this segmentation would give at another threshold.

        Used to see how a figure moves across the plausible decision range
        (before any region of interest is applied). A mask judged at the fine
        scale (:meth:`with_fine_scale_within`) is judged so here too.
        """
        candidates = self.skin & (self.score > threshold)
        if self.set_aside is not None:
            candidates &= ~self.set_aside
        if self.method == "od-field":
            mask = remove_small_regions(candidates, self.min_patch_px)
            if self.core_score is not None:
                mask = _keep_cores(mask, self.score >= self.core_score)
            return self._at_fine_scale(mask, threshold)
        # The graph-cut mask is not a plain threshold of the score: a stricter
        # threshold trims it, a looser one adds what then stands out.
        if threshold >= self.threshold:
            return self.mask & (self.score > threshold)
        return self.mask | remove_small_regions(candidates, self.min_patch_px)


def _masked_blur(values: np.ndarray, valid: np.ndarray, sigma: float, *, downsample: int = 1) -> np.ndarray:
    """Gaussian blur of ``values`` using only ``valid`` pixels (normalised convolution).

    With ``downsample`` > 1 the blur runs at that fraction of the resolution
    and is interpolated back: much cheaper, and as good where only a smooth
    local mean is wanted (``sigma`` several times ``downsample``).
    """
    import cv2

    weight = valid.astype(np.float32)
    weighted = values * (weight[..., None] if values.ndim == 3 else weight)
    height, width = valid.shape
    if downsample > 1:
        small = (max(1, -(-width // downsample)), max(1, -(-height // downsample)))
        weighted = cv2.resize(weighted, small, interpolation=cv2.INTER_AREA)
        weight = cv2.resize(weight, small, interpolation=cv2.INTER_AREA)
        sigma = sigma / downsample
    num = cv2.GaussianBlur(weighted, (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    if downsample > 1:
        num = cv2.resize(num, (width, height), interpolation=cv2.INTER_LINEAR)
        den = cv2.resize(den, (width, height), interpolation=cv2.INTER_LINEAR)
    # Far from any valid pixel (weight below 1e-3) the mean fades towards 0
    # instead of dividing noise by nothing.
    np.maximum(den, 1e-3, out=den)
    np.divide(num, den[..., None] if num.ndim == 3 else den, out=num)
    return num


def _fit_normal_field(density: np.ndarray, normal: np.ndarray, *, degree: int) -> np.ndarray:
    """Least-squares polynomial surface of ``density`` over ``normal`` pixels.

    ``density`` is optical density projected on :data:`MELANIN_WEIGHTS`. The
    projection commutes with the (linear) least-squares fit, so this equals
    fitting each channel's density and projecting the fitted fields.
    """
    height, width = normal.shape
    # A regular grid subsample (about 12,000 pixels) keeps the fit cheap and
    # deterministic; a seven-term surface needs far fewer.
    stride = max(1, int(np.sqrt(np.count_nonzero(normal) / 12_000)))
    ys, xs = np.nonzero(normal[::stride, ::stride])
    ys, xs = ys * stride, xs * stride
    u = xs / width - 0.5
    v = ys / height - 0.5
    terms = [np.ones_like(u)]
    if degree >= 1:
        terms += [u, v]
    if degree >= 2:
        # r**4 follows lens vignetting into the corners, where a quadratic falls short.
        terms += [u * u, u * v, v * v, (u * u + v * v) ** 2]
    design = np.stack(terms, axis=1)
    samples = density[ys, xs].astype(np.float64)
    coef = np.zeros(design.shape[1])
    keep = np.ones(len(xs), bool)
    for _ in range(2):  # one trimming pass drops moles, pores and hairs
        coef, *_ = np.linalg.lstsq(design[keep], samples[keep], rcond=None)
        residual = samples - design @ coef
        sigma = _robust_sigma(residual[keep]) or 1e-3
        keep = np.abs(residual - np.median(residual[keep])) < 3.0 * sigma
        if np.count_nonzero(keep) < design.shape[1] * 20:
            break
    # The field is a smooth polynomial: evaluate it on a coarse grid and
    # upsample (bilinear error is far below the noise, and 20x cheaper).
    import cv2

    coarse_w, coarse_h = max(2, min(width, 128)), max(2, min(height, 128))
    grid_u = ((np.arange(coarse_w) + 0.5) * (width / coarse_w) - 0.5) / width - 0.5
    grid_v = ((np.arange(coarse_h) + 0.5) * (height / coarse_h) - 0.5) / height - 0.5
    gu, gv = np.meshgrid(grid_u, grid_v)
    grid_terms = [np.ones_like(gu)]
    if degree >= 1:
        grid_terms += [gu, gv]
    if degree >= 2:
        grid_terms += [gu * gu, gu * gv, gv * gv, (gu * gu + gv * gv) ** 2]
    coarse = (np.stack(grid_terms, axis=-1) @ coef).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)


def _thin_dark_structures(lightness: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Hairs: thin, elongated, dark lines on skin."""
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    # 8-bit morphology is several times faster than float; 0.4 L* steps are
    # far below the hair contrast sought (6 sigma, sigma >= 0.5 L*).
    blackhat = cv2.morphologyEx(cv2.convertScaleAbs(lightness, alpha=2.55), cv2.MORPH_BLACKHAT, kernel)
    response = blackhat[skin]
    if response.size == 0:
        return np.zeros_like(skin)
    level = np.median(_subsample(response)) + 6.0 * max(_robust_sigma(response), 0.5 * 2.55)
    candidate = (blackhat > level) & skin
    count, labels = cv2.connectedComponents(candidate.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(skin)
    # Second moments of every component at once; axis lengths as in
    # skimage.measure.regionprops (4 x sqrt of the covariance eigenvalues).
    ys, xs = np.nonzero(labels)
    component = labels[ys, xs]
    area = np.bincount(component, minlength=count).astype(np.float64)
    n = np.maximum(area, 1.0)
    mean_x = np.bincount(component, xs, count) / n
    mean_y = np.bincount(component, ys, count) / n
    dx, dy = xs - mean_x[component], ys - mean_y[component]
    cxx = np.bincount(component, dx * dx, count) / n
    cyy = np.bincount(component, dy * dy, count) / n
    cxy = np.bincount(component, dx * dy, count) / n
    half_trace = (cxx + cyy) / 2
    root = np.sqrt(np.maximum(((cxx - cyy) / 2) ** 2 + cxy**2, 0))
    major = 4 * np.sqrt(np.maximum(half_trace + root, 0))
    minor = np.maximum(4 * np.sqrt(np.maximum(half_trace - root, 0)), 1.0)
    is_hair = (area >= 12) & (major >= 12) & (major / minor >= 3.0)
    is_hair[0] = False
    return cv2.dilate(is_hair[labels].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


def depigmented_mask(
    rgb: np.ndarray,
    *,
    roi=None,
    labels: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    threshold: float | None = None,
    method: str | None = None,
    min_patch_px: int | None = None,
    reference_level: float | None = None,
    core_factor: float | None = None,
    extra_skin: np.ndarray | None = None,
    learn_own_classes: bool = True,
    skin_split: SkinSplit | None = None,
) -> Segmentation:
    """Segment depigmented skin in a photo.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
        Colour-normalised sRGB photo at working resolution.
    roi : tuple of 4 numbers or ndarray of shape (N, 2), optional
        Region of interest, a rectangle ``(x, y, width, height)`` or a polygon,
        in pixels of ``rgb``. Only depigmentation inside it is returned, and
        when the automatic rule finds none there, the colour-contrast model
        splits the skin inside the region on its own (a clinician's box
        around the patch holds a large share of depigmented skin). Skin the
        automatic rule set aside as barely lighter than the skin around it
        is put back where the region touches it: the box is the clinician's call.
    labels : ndarray of int, shape (H, W), optional
        A clinician's strokes: 0 unlabelled, 1 depigmented skin, 2 normal skin,
        3 not skin. A colour model of this patient's classes is learned from
        them and applied to the whole photo (see :func:`validate_labels`).
    exclude : ndarray of bool, shape (H, W), optional
        Pixels that are never skin (the scale marker and its paper).
    threshold : float, optional
        Score threshold to use instead of estimating one (a series passes its
        baseline's threshold to every later visit), in the units of ``method``.
        On low-contrast skin the mask is then returned as the smoothed score
        finds it: a series judges it at the fine scale within the baseline
        footprint (:meth:`Segmentation.with_fine_scale_within`); without a
        threshold the whole photo is judged so.
    method : {"od-field", "colour-contrast"}, optional
        With ``threshold``: the model the threshold belongs to (the baseline's
        :attr:`Segmentation.method`). Default ``"od-field"``.
    min_patch_px : int, optional
        Depigmented components smaller than this are dropped as noise.
        Default: 0.01 % of the image.
    reference_level : float, optional
        With ``threshold`` and the od-field model: the
        :attr:`Segmentation.depigmented_level` of the photo that threshold came
        from. The threshold is then scaled by this photo's own level over it
        (within ``LEVEL_RATIO_LIMITS``), so that a pixel still counts as
        depigmented at the same share of *full* depigmentation when a photo renders
        depigmented skin with more or less contrast (light, camera
        processing, blur).
    core_factor : float, optional
        With ``threshold`` and the od-field model: a region counts only when
        some of it reaches this multiple of the (scaled) threshold. A series
        passes its baseline's ``core_score / threshold``, so that every visit
        keeps only the kind of regions the baseline kept.
    extra_skin : ndarray of bool, shape (H, W), optional
        With the od-field model: skin found in another rendering of the same
        photo, judged besides the skin ``rgb`` shows. A series passes a
        visit's skin as photographed when it segments the photo again after
        matching its colour to the baseline: a channel clipped under a
        strong light keeps no scale, so the matching can shift the patch's
        hue off skin's.
    learn_own_classes : bool, optional
        With the colour-contrast model, no ``threshold`` and no ``labels``:
        learn this photo's own colour classes from the surest parts of the
        contrast mask, as from a clinician's strokes, and let them place the
        mask's border (default). A series turns this off for its baseline:
        its visits are judged at the baseline's contrast threshold, which
        such a border does not follow.
    skin_split : SkinSplit, optional
        With ``threshold`` and the od-field model: the baseline's
        :attr:`Segmentation.skin_split`. The photo's regions nearest the
        background's colour are set aside before it is judged at
        ``threshold``. (Without a threshold, a mask covering at least a
        quarter of the skin and reaching the frame's edge is always searched
        for a distinct depigmented class within it: a skin-coloured
        background or cloth darker than the patient's skin is otherwise taken
        for normal skin, and all the patient's skin for depigmented; a paler
        one is taken for part of the patch. See :class:`SkinSplit`.)

    Returns
    -------
    Segmentation
        Mask, skin, score map, threshold, normal-skin reference, the model
        used, and a confidence with its reason.

    Raises
    ------
    InvalidParameterError
        If ``threshold`` is not positive, ``method`` unknown, the ROI
        malformed or the labels invalid.

    Notes
    -----
    Without labels the physically based optical-density rule runs first
    (:func:`_optical_density_segmentation`): it measures melanin loss against
    a normal-skin field and is exact where the photo shows a distinct
    depigmented class. When it finds none (common on real photos: mixed
    light, backgrounds, faces), the colour-contrast model takes over: skin
    markedly lighter and less yellow (L* - 2 b*) than the skin around it,
    shaped by a graph cut on the photo's own colours. Its mask is returned
    with a lower confidence and the reason, never silently dropped. With
    ``learn_own_classes``, the surest parts of that mask then serve as
    strokes, and the classes learned from them place its border (the reason
    says so): ``threshold`` then no longer describes the mask exactly, which
    is why a series turns it off for the baseline whose threshold it carries.

    Examples
    --------
    >>> import numpy as np
    >>> photo = np.empty((200, 200, 3), np.uint8)
    >>> photo[:] = (190, 140, 110)                 # normal skin, type III-IV
    >>> photo[60:140, 50:150] = (240, 214, 204)    # a depigmented patch
    >>> result = depigmented_mask(photo)
    >>> abs(result.area_px - 80 * 100) <= 8, result.method
    (True, 'od-field')
    """
    rgb = as_rgb(rgb)
    if extra_skin is not None and np.shape(extra_skin) != rgb.shape[:2]:
        raise InvalidParameterError(
            f"extra_skin must be a mask of shape {rgb.shape[:2]}, got {np.shape(extra_skin)}")
    if threshold is not None and not (np.isfinite(threshold) and threshold > 0):
        raise InvalidParameterError(f"threshold must be a positive number, got {threshold}")
    if method is not None and method not in ("od-field", "colour-contrast"):
        raise InvalidParameterError(f"method must be 'od-field' or 'colour-contrast', got {method!r}")
    height, width = rgb.shape[:2]
    if min_patch_px is None:
        min_patch_px = max(4, int(1e-4 * height * width))
    region = roi_mask((height, width), roi) if roi is not None else None
    if labels is not None:
        labels = validate_labels(labels, (height, width))
        strokes = int(np.count_nonzero(labels))
        return _colour_model_result(
            rgb, region=region, labels=labels, exclude=exclude, threshold=None, min_patch_px=min_patch_px,
            method="strokes", note=f"learned from {strokes} labelled pixels of the clinician's strokes",
        )
    if method == "colour-contrast" and threshold is not None:
        return _colour_model_result(
            rgb, region=region, labels=None, exclude=exclude, threshold=threshold, min_patch_px=min_patch_px,
            method="colour-contrast", note="colour contrast with the surrounding skin, at the baseline's threshold",
        )
    result = _within_lighter_skin(
        rgb, roi=roi, exclude=exclude, threshold=threshold, min_patch_px=min_patch_px,
        reference_level=reference_level, core_factor=core_factor, extra_skin=extra_skin,
        skin_split=skin_split,
    )
    if threshold is not None:
        return result  # a series refines a visit's mask within its baseline footprint only
    # Within the region of interest only: its holes filled, the mask could enclose skin beyond it.
    result = result.with_fine_scale_within(region)
    if result.contrast is not None and result.mask.any():
        sigmas = result.contrast / max(result.normal_sigma, 1e-6)
        confidence = _confidence(sigmas)
        reason = None if confidence >= 1.0 else (
            f"depigmented skin stands {sigmas:.1f} noise levels above normal skin")
        return replace(result, confidence=confidence, reason=reason)
    if result.contrast is None:
        why = "no distinct depigmented class under the melanin (optical-density) model"
    elif region is not None:
        why = "the region of interest holds none of the distinct depigmented skin"
    else:
        why = "the distinct depigmented class forms no patch with a milk-white core"
    return _colour_model_result(
        rgb, region=region, labels=None, exclude=exclude, threshold=None, min_patch_px=min_patch_px,
        method="colour-contrast",
        note=f"{why}: mask from the colour contrast with the surrounding skin"
        + (", guided by the region of interest" if region is not None else ""),
        learn_own_classes=learn_own_classes,
    )


#: A photo's own mask covering at least this share of its skin is searched
#: for a distinct depigmented class within it (see :func:`_within_lighter_skin`).
#: On generated photos, patches of 1-60 % of the frame covered up to 55 % of
#: the skin and never held one; light skin against a brown background, whose
#: "depigmented" class was all of the skin, covered 68 %.
_WITHIN_MIN_SKIN_SHARE = 0.25
#: The patient's skin reaches the frame's edge (a close-up), while a patch is
#: mostly enclosed by normal skin: the lighter class must cover at least this
#: share of the frame's border to be all of the skin.
_WITHIN_MIN_FRAME_SHARE = 0.1
#: A region found within the lighter class with at least this share of its
#: pixels clipped to white, and smaller than ``_GLARE_MAX_SHARE`` of the photo,
#: is a glare spot's halo, not a patch.
_WITHIN_GLARE_SHARE = 0.02
#: The patch found within the lighter class must be a part of lighter skin:
#: under this share of the lighter class's regions it lies in (a patch on the
#: patient's skin beside a paler cloth is a region of its own).
_WITHIN_MAX_REGION_SHARE = 0.7
#: A background is a colour of its own: at least this far (CIELAB units) off
#: the line from the patient's skin to the patch. A second, less depigmented
#: patch or a trichrome band lies on that line (0.1-1.9 units in painted
#: photos); brown and beige cloth lie 7.6-22.5 units off it.
_BACKGROUND_OFF_LINE = 4.0


@dataclass(frozen=True)
class SkinSplit:
    """The patient's skin, a patch, and a skin-coloured background or cloth set aside.

    Found by :func:`depigmented_mask` in a photo that set its own threshold;
    a series passes it to each later visit, whose background is then told
    apart by the same colours (see :func:`_within_lighter_skin`).

    Attributes
    ----------
    skin_lab, patch_lab, background_lab : tuple of 3 floats
        Median CIELAB of the patient's normal skin, of the depigmented
        patch, and of the skin-coloured region that is neither (darker
        than the skin, or paler than it but not as pale as the patch).
    """

    skin_lab: tuple[float, float, float]
    patch_lab: tuple[float, float, float]
    background_lab: tuple[float, float, float]

    @property
    def off_line(self) -> float:
        """Distance (CIELAB units) of the background's colour from the line through skin and patch."""
        skin, patch, background = (np.asarray(c, np.float64) for c in (self.skin_lab, self.patch_lab,
                                                                        self.background_lab))
        direction = (patch - skin) / max(float(np.linalg.norm(patch - skin)), 1e-9)
        offset = background - skin
        return float(np.linalg.norm(offset - (offset @ direction) * direction))

    def background(self, lab: np.ndarray) -> np.ndarray:
        """Regions of a CIELAB image nearest the background's colour (of the three) that reach the frame.

        Only regions wider than 1 % of the image's longest side, and reaching
        the frame's edge as a background does: a patch's border, which blends
        patch and skin, or a partly repigmented patch can come nearer a
        paler background's colour, and moles and hairs nearer a darker one.
        """
        import cv2

        centres = np.asarray([self.background_lab, self.skin_lab, self.patch_lab], np.float32)
        squared = [np.sum((lab - centre) ** 2, axis=-1) for centre in centres]
        nearer = ((squared[0] < squared[1]) & (squared[0] < squared[2])).view(np.uint8)
        radius = max(1, int(round(0.005 * max(nearer.shape))))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        opened = cv2.morphologyEx(nearer, cv2.MORPH_OPEN, kernel).view(bool)
        frame = np.zeros(opened.shape, bool)
        frame[[0, -1], :] = frame[:, [0, -1]] = True
        return _regions_touching(opened, frame)


def _within_lighter_skin(
    rgb: np.ndarray,
    *,
    roi,
    exclude: np.ndarray | None,
    threshold: float | None,
    skin_split: SkinSplit | None,
    **options,
) -> Segmentation:
    """The optical-density segmentation, with a skin-coloured background set aside when needed.

    Brown, tan or beige cloth and walls pass the skin test, and the
    optical-density split can then be background against skin rather than
    skin against patch. A real patch holds no second, distinct lighter class
    within it. So when a photo's own mask covers at least a quarter of the
    skin and reaches the frame's edge (a patch is mostly enclosed by normal
    skin), everything outside it is set aside and the segmentation is run
    again. When it finds a distinct depigmented class (other than the halos
    of glare spots):

    - as a part of the lighter class's regions, the darker class was a
      background darker than the skin (all of the patient's skin had passed
      for depigmented), and the new mask stands;
    - as regions of their own, the patch lies on the darker class, which is
      the patient's skin, and the lighter class's other regions are a paler
      cloth or wall (it had passed for depigmented with the patch): they are
      set aside and the photo segmented again.

    Either way the background's colour must lie off the line from skin to
    patch (``_BACKGROUND_OFF_LINE``): a second, less depigmented patch or a
    trichrome band lies on it. The three colours are kept as the result's
    ``skin_split``, and a later visit of such a series sets aside its regions
    nearest the background's colour that reach the frame
    (:meth:`SkinSplit.background`) before it is judged at ``threshold``. Every
    decision is made on the whole photo: a region of interest clips the
    result, and puts back the skin set aside under it
    (:meth:`Segmentation.with_set_aside_within`).
    """
    if threshold is not None:
        background = None if skin_split is None else skin_split.background(rgb_to_lab(rgb))
        if background is not None and background.any():
            exclude = background if exclude is None else background | exclude
        return replace(_optical_density_segmentation(rgb, roi=roi, exclude=exclude, threshold=threshold, **options),
                       skin_split=skin_split)
    # Every decision below is made on whole-photo masks; a region of interest clips the result
    # and puts back the skin set aside under it.
    region = None if roi is None else roi_mask(rgb.shape[:2], roi)

    def clipped(result: Segmentation) -> Segmentation:
        if region is None:
            return result
        result = result.with_set_aside_within(region)
        return replace(result, mask=result.mask & region)

    first = _optical_density_segmentation(rgb, exclude=exclude, **options)
    with_region = clipped(first)
    if (first.contrast is None or not first.mask.any()
            or np.count_nonzero(first.mask) < _WITHIN_MIN_SKIN_SHARE * np.count_nonzero(first.skin)):
        return with_region
    frame = _border(first.mask)
    darker = first.skin & ~first.mask
    if np.mean(frame) < _WITHIN_MIN_FRAME_SHARE or np.count_nonzero(darker) < 64:
        return with_region
    # Everything outside the lighter class is set aside here (a visit, without this
    # photo's classes, sets aside the background's colour).
    outside = ~first.mask if exclude is None else ~first.mask | exclude
    inner = _optical_density_segmentation(rgb, exclude=outside, **options)
    if inner.contrast is None or not _holds_more_than_glare(inner.mask, rgb):
        return with_region
    if _share_of_its_regions(inner.mask, first.mask) < _WITHIN_MAX_REGION_SHARE:
        # The patch is a part of the lighter skin: the darker class is a background.
        result, skin, background = inner, first.mask & ~inner.mask, darker
        how = "darker than the patient's skin around the patch and holds no patch of its own"
    else:
        # The patch is a region of its own, on the darker class: that is the patient's skin,
        # and the lighter class's other regions are something paler (beige cloth, a wall).
        background = first.mask & ~_regions_touching(first.mask, inner.mask)
        if np.count_nonzero(background) < 64:
            return with_region
        result = _optical_density_segmentation(
            rgb, exclude=background if exclude is None else background | exclude, **options)
        if result.contrast is None or not result.mask.any():
            return with_region
        skin = darker
        how = "paler than the patient's skin but holds no patch and is not as pale as the patch"
    lab = rgb_to_lab(rgb)

    def median_lab(where: np.ndarray) -> tuple[float, float, float]:
        return tuple(float(x) for x in np.median(_subsample(lab[where]), axis=0))

    split = SkinSplit(skin_lab=median_lab(skin), patch_lab=median_lab(result.mask),
                      background_lab=median_lab(background))
    if split.off_line < _BACKGROUND_OFF_LINE:  # a less depigmented band or patch, not a background
        return with_region
    note = (f"a skin-coloured region ({np.count_nonzero(background) / background.size:.0%} of the photo) is {how}, "
            "so it was taken for a background or cloth and set aside")
    return replace(clipped(result), skin_split=split, notes=result.notes + (note,))


def _regions_touching(regions: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The 8-connected regions of a bool mask ``regions`` that hold a pixel of ``seeds``."""
    import cv2

    count, labels = cv2.connectedComponents(np.ascontiguousarray(regions).view(np.uint8), connectivity=8)
    touched = np.zeros(count, bool)
    touched[labels[seeds]] = True
    touched[0] = False
    return touched[labels]


def _share_of_its_regions(mask: np.ndarray, regions: np.ndarray) -> float:
    """Share of the connected regions of ``regions`` that ``mask`` touches which ``mask`` covers."""
    return float(np.count_nonzero(mask & regions) / max(np.count_nonzero(_regions_touching(regions, mask)), 1))


def _holds_more_than_glare(mask: np.ndarray, rgb: np.ndarray) -> bool:
    """Whether ``mask`` has a region other than the halo of a glare spot (see ``_WITHIN_GLARE_SHARE``)."""
    import cv2

    count, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
    if count <= 1:
        return False
    clipped = np.min(rgb, axis=2) >= _GLARE_SRGB
    area = np.bincount(labels.ravel(), minlength=count)
    glare = np.bincount(labels[clipped], minlength=count)
    halo = (glare >= _WITHIN_GLARE_SHARE * area) & (area < _GLARE_MAX_SHARE * mask.size)
    return bool(np.any(~halo[1:]))


def _colour_model_result(
    rgb: np.ndarray,
    *,
    region: np.ndarray | None,
    labels: np.ndarray | None,
    exclude: np.ndarray | None,
    threshold: float | None,
    min_patch_px: int,
    method: str,
    note: str,
    learn_own_classes: bool = False,
) -> Segmentation:
    """:func:`_colour_contrast_segmentation` packed as a :class:`Segmentation`.

    With ``learn_own_classes`` (and neither labels nor a threshold), the
    mask's border is then placed by the photo's own classes learned from its
    surest parts.
    """
    mask, skin, contrast, used_threshold, spread, normal, normal_lab = _colour_contrast_segmentation(
        rgb, region=region, labels=labels, exclude=exclude, threshold=threshold)
    if labels is not None:
        # The strokes also set the contrast threshold (half-way between the
        # classes), which a series applies at every later visit.
        marked = float(np.median(contrast[labels == LABEL_DEPIGMENTED]))
        # Normal-skin strokes that strayed off skin say nothing of normal skin's contrast.
        normal_strokes = contrast[(labels == LABEL_NORMAL_SKIN) & skin]
        if normal_strokes.size and marked > float(np.median(normal_strokes)) + spread:
            used_threshold = (marked + float(np.median(normal_strokes))) / 2.0
    mask = remove_small_regions(mask, min_patch_px)
    if region is not None:
        mask &= region
    score = np.where(skin, contrast, 0.0).astype(np.float32)
    if threshold is None and labels is None and mask.any() and not _distinct_lighter_class(contrast[skin], used_threshold, spread):
        mask = np.zeros_like(mask)
    if learn_own_classes and labels is None and threshold is None and mask.any():
        # The contrast splits one projection of colour; this patient's own
        # classes, learned from the mask's surest parts as if they were a
        # clinician's strokes, place its border by all of colour and texture
        # at once (real photos, median Dice on single photos 0.72 -> 0.76).
        own = _strokes_from_mask(mask, skin, contrast, used_threshold)
        # Both classes need examples (a mask with nothing beyond it has no "normal" to learn).
        if np.count_nonzero(own == LABEL_DEPIGMENTED) >= 8 and np.count_nonzero(own >= LABEL_NORMAL_SKIN) >= 8:
            import cv2

            trimap = _strokes_trimap(rgb_to_lab(rgb), own, skin, normal, contrast)
            if exclude is not None:
                trimap[exclude] = cv2.GC_BGD
            refined = _graph_cut_within(rgb, trimap, region, _SELF_GRAPH_CUT_ROUNDS)
            refined = remove_small_regions(refined, min_patch_px)
            if refined.any():
                mask = refined
                note += ", its border placed by this photo's own colours learned from the mask's surest parts"
    notes = [note] if np.count_nonzero(skin) >= 64 else ["no skin found in the photo", note]
    if mask.any() and normal.any():
        depigmentation = float(np.median(_subsample(contrast[mask])) - np.median(_subsample(contrast[normal & ~mask])))
        sigmas = depigmentation / max(spread, 1e-6)
        confidence = _confidence(sigmas)
        reason = f"{note}; the patch stands {sigmas:.1f} noise levels above the skin around it"
    else:
        depigmentation, confidence = None, 0.0
        reason = f"{note}; no skin stands out as depigmented"
        notes.append("no distinct depigmented skin in this photo")
    return Segmentation(
        mask=mask,
        skin=skin,
        score=score,
        threshold=used_threshold,
        contrast=depigmentation,
        normal_lab=normal_lab,
        normal_sigma=spread,
        notes=tuple(notes),
        min_patch_px=min_patch_px,
        depigmented_level=None,
        method=method,
        confidence=confidence,
        reason=reason,
    )


def _optical_density_segmentation(
    rgb: np.ndarray,
    *,
    roi=None,
    exclude: np.ndarray | None = None,
    threshold: float | None = None,
    min_patch_px: int | None = None,
    reference_level: float | None = None,
    core_factor: float | None = None,
    extra_skin: np.ndarray | None = None,
) -> Segmentation:
    """Segment depigmented skin by optical density against a normal-skin field.

    The physically based rule of :func:`depigmented_mask` (same parameters,
    without ``labels`` and ``method``). The normal-skin reference is estimated
    from all the skin in the photo; ``roi`` only restricts the returned mask
    (it comes with a given ``threshold``, where nothing is set aside).

    Examples
    --------
    >>> import numpy as np
    >>> photo = np.empty((200, 200, 3), np.uint8)
    >>> photo[:] = (190, 140, 110)                 # normal skin, type III-IV
    >>> photo[60:140, 50:150] = (240, 214, 204)    # a depigmented patch
    >>> result = _optical_density_segmentation(photo)
    >>> abs(result.area_px - 80 * 100) <= 8     # only the sharp corners soften
    True
    """
    import cv2

    height, width = rgb.shape[:2]
    region = roi_mask((height, width), roi) if roi is not None else None
    if min_patch_px is None:
        min_patch_px = max(4, int(1e-4 * height * width))
    notes: list[str] = []

    lab = rgb_to_lab(rgb)
    skin = _skin_from_lab(lab, exclude)
    if extra_skin is not None:
        skin |= np.asarray(extra_skin, bool) if exclude is None else np.asarray(extra_skin, bool) & ~exclude
    empty = np.zeros((height, width), bool)
    if np.count_nonzero(skin) < 0.02 * height * width:
        return Segmentation(
            mask=empty,
            skin=skin,
            score=np.zeros((height, width), np.float32),
            threshold=float(threshold or np.inf),
            contrast=None,
            normal_lab=np.full(3, np.nan),
            normal_sigma=float("nan"),
            notes=("no skin found in the photo",),
        )

    od = optical_density(rgb)

    # Hairs and glare are missing data: fill them from the skin around them.
    hair = _thin_dark_structures(lab[..., 0], skin)
    # Glare: above 90 % linear light in every channel.
    glare = (np.minimum(np.minimum(rgb[..., 0], rgb[..., 1]), rgb[..., 2]) >= _GLARE_SRGB) & skin
    # Specular highlights are a few small spots; skin clipped to white over a
    # larger area is an overexposed photo, where the patch (the lightest skin)
    # clips first: its whiteness is data, not a reflection.
    if np.count_nonzero(glare) >= _GLARE_MAX_SHARE * height * width:
        glare = np.zeros_like(glare)
    glare = cv2.dilate(glare.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & skin
    trusted = skin & ~hair & ~glare
    if np.count_nonzero(trusted) < 0.5 * np.count_nonzero(skin):
        trusted = skin
        notes.append("much of the skin is covered by hair or glare")
    # Everything below is linear in optical density until the threshold, so
    # the two projections used (melanin density, and blue minus red) are
    # taken first and filtered instead of the three channels.
    projected = cv2.transform(od, _PROJECTIONS)
    del od
    untrusted = np.nonzero(skin & ~trusted)
    projected[untrusted] = _masked_blur(projected, trusted, 3.0, downsample=2)[untrusted]
    # A light smoothing averages sensor noise and pores (about 1 px).
    projected = _masked_blur(projected, skin, 1.0)
    density, chromatic = projected[..., 0], projected[..., 1]

    # First guess of normal skin: the more pigmented class on skin, judged on a
    # shading-free chromatic feature (blue minus red optical density).
    # Clipped at the median so that moles and hairs (more melanin than normal
    # skin) cannot pose as the second class; only melanin loss can.
    all_values = _subsample(chromatic[skin], 4 * _STATISTICS_SAMPLE)
    middle = np.median(all_values)
    values = np.minimum(all_values, middle)
    split = _otsu(values)
    low, high = values[values < split], values[values >= split]
    sep = _separation(low, high)
    # Depigmented skin may be more than half of the skin in view: then it
    # holds the median, the split above splits the patch, and normal skin is
    # the more pigmented class above the median. Split there too, and keep
    # the split that separates the unclipped values better (an intra-class
    # split barely does); moles and freckles cover too little to be taken,
    # and a wall or paper the skin test let in lacks the redness that
    # depigmented skin keeps.
    # (Compared on a quarter of the values: plenty for a separation.)
    raised = np.maximum(all_values, middle)
    upper_split = _otsu(raised)
    sample = all_values[::4]
    above = sample >= upper_split
    if np.mean(above) >= _LARGE_PATCH_MIN_NORMAL:
        upper_sep = _separation(sample[~above], sample[above])
        lower_sep = _separation(sample[sample < split], sample[sample >= split])
        if upper_sep >= _MIN_SEPARATION and upper_sep > lower_sep:
            # CIELAB of the same values; a patch clipped in its red channel has
            # lost its redness (see _frame_cut_patches).
            sample_lab = [_subsample(lab[..., k][skin], 4 * _STATISTICS_SAMPLE)[::4] for k in range(3)]
            redness = sample_lab[1]
            if (np.median(redness[~above]) >= _REDNESS_SHARE * np.median(redness[above])
                    or _clipped_share(*(channel[~above] for channel in sample_lab)) >= 0.5):
                split, sep = upper_split, upper_sep
    normal = skin & ((chromatic >= split) if sep >= _MIN_SEPARATION else np.ones_like(skin))

    score = np.zeros((height, width), np.float32)
    est_threshold = threshold
    contrast: float | None = None
    normal_sigma = 0.0
    depig = empty
    for _ in range(3):
        reference = _reference_region(normal, depig, skin)
        share = np.count_nonzero(reference) / (height * width)
        degree = 2 if share > 0.15 else (1 if share > 0.03 else 0)
        score = _fit_normal_field(density, reference, degree=degree)
        score -= density
        score[~skin] = 0.0
        normal_sigma = _robust_sigma(score[reference]) or 1e-3
        if threshold is None:
            est_threshold, contrast = _estimate_threshold(score[skin], normal_sigma)
        floor = _NOISE_FLOOR_SIGMAS * normal_sigma
        used = max(est_threshold, floor) if threshold is None else threshold
        previous = depig, normal
        depig = skin & (score > used)
        normal = skin & (score < 0.5 * used)
        if np.array_equal(depig, previous[0]) and np.array_equal(normal, previous[1]):
            break  # converged: another pass would repeat this one exactly
    assert est_threshold is not None
    used_threshold = float(max(est_threshold, _NOISE_FLOOR_SIGMAS * normal_sigma)) if threshold is None else float(threshold)
    # Measured at the same stage in every photo: on the unsmoothed score, at
    # the threshold the photo was given (the baseline's at every visit).
    depigmented_level, support = _depigmented_level(depig, score)
    if threshold is not None and reference_level is not None and reference_level > 0:
        level = depigmented_level
        if level is not None:
            low, high = LEVEL_RATIO_LIMITS
            ratio = float(np.clip(level / reference_level, low, high))
            # Trusted fully from _LEVEL_FULL_PX interior pixels, not at all
            # below _LEVEL_MIN_PX, so the threshold does not jump as a patch shrinks.
            weight = float(np.clip((support - _LEVEL_MIN_PX) / (_LEVEL_FULL_PX - _LEVEL_MIN_PX), 0.0, 1.0))
            used_threshold *= 1.0 + weight * (ratio - 1.0)
            depig = skin & (score > used_threshold)
    if threshold is None and contrast is None:
        notes.append("no distinct depigmented skin in this photo")

    # Where depigmentation barely stands out from skin texture and noise (very
    # light skin), average over a wider neighbourhood before the decision, so
    # noise does not cross the threshold in speckles. Higher-contrast skin keeps
    # the fine scale that small perifollicular islands need; on lower-contrast
    # skin the unsmoothed score is kept to judge the inside of the regions the
    # smoothed one finds (Segmentation.with_fine_scale_within).
    signal_to_noise = used_threshold / DEPIGMENTED_FRACTION / max(normal_sigma, 1e-6)
    extra_sigma = _extra_smoothing(signal_to_noise)
    fine_score = None
    if extra_sigma > 0:
        fine_score = np.where(skin, score, 0.0).astype(np.float32)
        score = np.where(skin, _masked_blur(score, skin, extra_sigma), 0.0).astype(np.float32)
        depig = skin & (score > used_threshold)

    mask = remove_small_regions(depig, min_patch_px)
    core_score = None
    if threshold is None and contrast is not None:
        # est_threshold sits at DEPIGMENTED_FRACTION of full depigmentation above normal skin.
        core_score = max(used_threshold, est_threshold + (_CORE_SHARE - DEPIGMENTED_FRACTION) * contrast)
    elif threshold is not None and core_factor is not None:
        core_score = core_factor * used_threshold  # the baseline's core, moved with its threshold
    if core_score is not None:
        mask = _keep_cores(mask, score >= core_score)
    set_aside = None
    if threshold is None:
        faint = _faint_regions(mask, lab_whiteness(lab), skin)
        if faint.any():
            set_aside, mask = faint, mask & ~faint
            notes.append(
                f"{100 * np.count_nonzero(faint) / (np.count_nonzero(mask) + np.count_nonzero(faint)):.0f}% of "
                f"{_SET_ASIDE_NOTE}: barely lighter than the skin around it (uneven light or the edge of a limb), "
                "it is not a patch"
            )
    # A region of interest comes here only with a given threshold, where nothing is set aside
    # (Segmentation.with_set_aside_within puts set-aside skin under a region back).
    if region is not None:
        mask &= region
    # Every third row and column is plenty for a median colour.
    reference_pixels = lab[::3, ::3][(normal & ~hair)[::3, ::3]]
    step = max(1, len(reference_pixels) // 50_000)
    normal_lab = np.median(reference_pixels[::step], axis=0) if len(reference_pixels) else np.full(3, np.nan)
    return Segmentation(
        mask=mask,
        skin=skin,
        score=score,
        threshold=used_threshold,
        contrast=contrast,
        normal_lab=normal_lab,
        normal_sigma=float(normal_sigma),
        notes=tuple(notes),
        min_patch_px=min_patch_px,
        depigmented_level=depigmented_level,
        core_score=core_score,
        set_aside=set_aside,
        fine_score=fine_score,
    )


def inside_and_ring(region: np.ndarray, surrounding: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A region's inside, away from its blurred border, and a ring of the skin around it.

    Parameters
    ----------
    region : ndarray of bool, shape (H, W)
    surrounding : ndarray of bool, shape (H, W), optional
        Pixels the ring may hold (skin, off the marker and the patches).

    Returns
    -------
    inside, ring : ndarray of bool, shape (H, W)
        The region eroded by 0.5 % of the photo's longest side, and the pixels
        1.5 % to 5 % of it outside the region (perilesional skin is often
        lighter). Margins of a few per cent need no pixel accuracy: they are
        worked out at a quarter of the size.

    Examples
    --------
    >>> region = np.zeros((400, 400), bool); region[150:250, 150:250] = True
    >>> inside, ring = inside_and_ring(region)   # ring: 6-20 px out
    >>> bool(inside[200, 200]), bool(ring[200, 200]), bool(ring[200, 140]), bool(ring[200, 120])
    (True, False, True, False)
    """
    import cv2

    height, width = region.shape
    size = max(height, width)
    factor = 4 if size >= 400 else 1
    region = np.ascontiguousarray(region, bool)
    small = cv2.resize(region.view(np.uint8), (max(1, width // factor), max(1, height // factor)),
                       interpolation=cv2.INTER_NEAREST)

    def grown(radius: float, *, shrink: bool = False) -> np.ndarray:
        r = max(1, int(round(radius / factor)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        changed = cv2.erode(small, kernel) if shrink else cv2.dilate(small, kernel)
        return cv2.resize(changed, (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)

    inside = region & grown(0.005 * size, shrink=True)
    ring = grown(0.05 * size) & ~grown(0.015 * size)
    if surrounding is not None:
        ring &= surrounding
    return inside, ring


def _local_whiteness_contrast(
    region: np.ndarray, whiteness: np.ndarray, surrounding: np.ndarray
) -> float | None:
    """Mean whiteness inside a region minus the median of the skin in a ring around it.

    The measure of :func:`repigment.series.selfcheck.footprint_contrast`, on a
    whiteness map (see :func:`inside_and_ring`); ``None`` when the inside or
    the ring is too small to judge.
    """
    inside, ring = inside_and_ring(region, surrounding)
    if np.count_nonzero(inside) < 50 or np.count_nonzero(ring) < 200:
        return None
    return float(whiteness[inside].mean() - np.median(whiteness[ring]))


def _faint_regions(mask: np.ndarray, whiteness: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Regions of a mask that are barely lighter than the skin around them.

    The optical-density score compares each pixel with a smooth normal-skin
    field fitted to the whole photo. Where the field misfits (the edge of a
    limb, a fold, uneven light), normal skin can pass the threshold. A patch
    stands out from the skin right around it; such skin does not. A region
    whose L* - 2 b* contrast with its own surroundings (see
    :func:`_local_whiteness_contrast`) is under ``_LOCAL_CONTRAST_SHARE`` of
    the whole mask's is returned, to be left out. Only the largest regions,
    each at least ``_LOCAL_CONTRAST_MIN_SHARE`` of the mask, are judged, and
    never the largest of all (it sets the whole mask's contrast).
    """
    import cv2

    aside = np.zeros(mask.shape, bool)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if count <= 2:
        return aside  # one region or none: nothing to compare it with
    surrounding = skin & ~mask
    whole = _local_whiteness_contrast(mask, whiteness, surrounding)
    if whole is None or whole <= 0:
        return aside
    areas = stats[1:, cv2.CC_STAT_AREA]
    total = int(areas.sum())
    for index in np.argsort(-areas)[1:_LOCAL_CONTRAST_MAX_REGIONS + 1] + 1:
        if stats[index, cv2.CC_STAT_AREA] < _LOCAL_CONTRAST_MIN_SHARE * total:
            break
        region = labels == index
        contrast = _local_whiteness_contrast(region, whiteness, surrounding)
        if contrast is not None and contrast < _LOCAL_CONTRAST_SHARE * whole:
            aside |= region
    return aside


#: A region of a photo's own od-field mask is left out when its contrast with
#: the skin around it is under this share of the whole mask's. On 48
#: generated baselines (seeds 10000-10047) the regions outside the true patch
#: on type I skin (edges of the limb, uneven light) stood at 0.04-0.59 of it
#: (7 of 9 under 0.35), every true patch at 0.85 or more. Not higher: a real
#: patch can be less depigmented than another in the same photo (a trichrome
#: or partly repigmented one stands at about half of the contrast), and
#: leaving out a true patch costs more than keeping lighter skin.
_LOCAL_CONTRAST_SHARE = 0.35
#: Regions under this share of the mask are not judged (they move a figure little).
_LOCAL_CONTRAST_MIN_SHARE = 0.005
#: At most this many regions besides the largest are judged (each costs a few dilations).
_LOCAL_CONTRAST_MAX_REGIONS = 20


#: Least share of the skin that normal skin found above a patch larger than
#: half of the skin must cover (moles and freckles cover far less).
_LARGE_PATCH_MIN_NORMAL = 0.15
#: Where a photo sets its own threshold, a region counts as a patch only when
#: some of it has lost this share of full depigmentation: a vitiligo macule is
#: milk-white at its core, while the lighter spots of mottled or unevenly lit
#: normal skin only graze the threshold.
_CORE_SHARE = 0.75
#: Bounds of the factor by which a visit's threshold follows its own level of
#: full depigmentation (see ``reference_level`` of :func:`depigmented_mask`).
#: Not symmetric: the level falls when pigment returns all over a patch, which
#: the threshold must not follow far; it rises only with the rendering (another
#: phone's contrast or saturation, light through a tone curve: up to about 1.6
#: times), never with treatment. Capped at 1.25, such a phone read a stable
#: patch 2-5 points more depigmented (45 on type I skin).
LEVEL_RATIO_LIMITS = (0.8, 1.7)
#: LEVEL_RATIO_LIMITS as results and reports write them.
LEVEL_RATIO_WORDS = f"x{LEVEL_RATIO_LIMITS[0]:g}-x{LEVEL_RATIO_LIMITS[1]:g}"
# The level is measured this far (share of the longest side) inside the
# regions, away from their blurred borders; it is not used on fewer than
# _LEVEL_MIN_PX such pixels and fully trusted from _LEVEL_FULL_PX on.
_LEVEL_INSET = 0.003
_LEVEL_MIN_PX = 200
_LEVEL_FULL_PX = 2000


def _depigmented_level(mask: np.ndarray, score: np.ndarray) -> tuple[float | None, int]:
    """Median score of ``mask``'s pixels away from its borders, and their number.

    The level is None when fewer than ``_LEVEL_MIN_PX`` such pixels exist.
    """
    import cv2

    inset = max(1, round(_LEVEL_INSET * max(mask.shape)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * inset + 1, 2 * inset + 1))
    inner = cv2.erode(mask.view(np.uint8), kernel).astype(bool)
    count = int(np.count_nonzero(inner))
    if count < _LEVEL_MIN_PX:
        return None, count
    return float(np.median(_subsample(score[inner]))), count


def _keep_cores(mask: np.ndarray, core: np.ndarray) -> np.ndarray:
    """The connected regions of ``mask`` that hold at least one ``core`` pixel."""
    import cv2

    count, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    keep = np.bincount(labels[core & mask], minlength=count) > 0
    keep[0] = False
    return np.take(keep, labels)


def _extra_smoothing(signal_to_noise: float) -> float:
    """Gaussian sigma (px) of extra smoothing for a contrast-to-noise ratio.

    Examples
    --------
    >>> _extra_smoothing(20.0), _extra_smoothing(5.0)
    (0.0, 2.0)
    """
    if signal_to_noise >= 10.0:
        return 0.0
    if signal_to_noise >= 7.0:
        return 1.2
    return 2.0


def _separation(low: np.ndarray, high: np.ndarray) -> float:
    if low.size < 16 or high.size < 16:
        return 0.0
    spread = np.sqrt((_robust_sigma(low) ** 2 + _robust_sigma(high) ** 2) / 2) or 1e-6
    return float(abs(np.median(high) - np.median(low)) / spread)


def _estimate_threshold(skin_scores: np.ndarray, normal_sigma: float) -> tuple[float, float | None]:
    """``DEPIGMENTED_FRACTION`` of the depigmentation contrast, or a noise-floor threshold without a patch."""
    # Only melanin *loss* matters here: hairs, moles and shadows (negative
    # scores) would otherwise form the strongest second class on fair skin.
    skin_scores = np.maximum(_subsample(skin_scores, 4 * _STATISTICS_SAMPLE), 0.0)
    split = _otsu(skin_scores)
    low, high = skin_scores[skin_scores < split], skin_scores[skin_scores >= split]
    if high.size >= max(16, 1e-3 * skin_scores.size):
        normal_level = float(np.median(low))
        level = float(np.median(high))
        # Lighter normal skin (mottling, a lighting hot spot) can outnumber a
        # small patch and take the lighter class: the patch then stands as a
        # class of its own within it, and full depigmentation is its level.
        # Only when the rest of the lighter class has lost less than half of
        # that contrast (lighter normal skin, not a second depigmented class):
        # a patch beside a still lighter glare keeps its own level.
        top_split = _otsu(high)
        middle, top = high[high < top_split], high[high >= top_split]
        if (top.size >= max(16, 1e-3 * skin_scores.size) and _separation(middle, top) >= _MIN_SEPARATION
                and np.median(middle) - normal_level < 0.5 * (np.median(top) - normal_level)):
            level = float(np.median(top))
        contrast = level - normal_level
        # A real depigmented class stands clear of normal skin's own noise and
        # texture; splitting plain skin in two gives about 1.5 sigma. (On very
        # light skin depigmentation is only 3-5 sigma: faint to the eye too.)
        if contrast >= _MIN_CONTRAST_SIGMAS * normal_sigma:
            return normal_level + DEPIGMENTED_FRACTION * contrast, contrast
    return float(2.0 * _NOISE_FLOOR_SIGMAS * normal_sigma), None


def _reference_region(normal: np.ndarray, depig: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Normal skin away from the patch margin (perilesional skin is often lighter)."""
    if not depig.any():
        return normal
    near = _dilate_coarsely(depig, 0.015 * max(normal.shape))
    away = normal & ~near
    # Keep the margin only when enough normal skin is left without it.
    return away if np.count_nonzero(away) > 0.25 * np.count_nonzero(normal) else normal


def optical_density(rgb: np.ndarray) -> np.ndarray:
    """Optical density ``-ln(linear light)`` of each channel of an 8-bit sRGB image.

    Linear light is floored at 1/1024, so black has a finite density.

    Returns
    -------
    ndarray of float32, shape (H, W, 3)

    Examples
    --------
    >>> import numpy as np
    >>> od = optical_density(np.array([[[255, 128, 0]]], np.uint8))
    >>> od.dtype.name, [round(float(v), 3) + 0.0 for v in od.ravel()]
    ('float32', [0.0, 1.533, 6.931])
    """
    import cv2

    return cv2.LUT(np.ascontiguousarray(rgb), _OPTICAL_DENSITY_LUT)


def _confidence(separation_sigmas: float) -> float:
    """Confidence in a mask from how far the patch stands above normal skin's noise.

    0 at 3 noise levels (the least a distinct patch needs), 1 from 12 on.

    Examples
    --------
    >>> _confidence(3.0), _confidence(7.5), _confidence(20.0)
    (0.0, 0.5, 1.0)
    """
    return float(np.clip((separation_sigmas - 3.0) / 9.0, 0.0, 1.0))
