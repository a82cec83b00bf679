"""The colour-contrast model, and the colour model learned from strokes.

Where the optical-density rule of :mod:`repigment.core.segmentation` finds
no distinct depigmented class, or a clinician guides it with a box or
strokes, depigmented skin is the skin markedly lighter and less yellow than
the skin around it (:func:`_colour_contrast_segmentation`), shaped by a
graph cut on the photo's own colours (:func:`_graph_cut_within`); strokes, a
clinician's or read off a mask's surest parts (:func:`_strokes_from_mask`),
teach a Gaussian colour model of each class that seeds the cut
(:func:`_strokes_trimap`). The class statistics that both models use
(:func:`_subsample`, :func:`_otsu`, :func:`_robust_sigma`) live here too;
:func:`repigment.core.segmentation.depigmented_mask` packs the result as a
:class:`~repigment.core.segmentation.Segmentation`.
"""

from __future__ import annotations

import numpy as np

from .color import rgb_to_lab
from .regions import LABEL_DEPIGMENTED, LABEL_NORMAL_SKIN, LABEL_NOT_SKIN, LABEL_UNLABELLED, _dilate_coarsely
from .skin import _broad_skin, _keeps_redness, lab_whiteness

# Full depigmentation must stand this many standard deviations of normal skin
# above it to count as a distinct depigmented class.
_MIN_CONTRAST_SIGMAS = 3.0
# The least contrast, in noise levels of the photo's normal skin, that Otsu's
# split inside a clinician's box may set the threshold to (see
# _colour_contrast_segmentation: a box holds mostly patch and its skin).
_BOX_MIN_CONTRAST_SIGMAS = 1.0


#: Statistics of a class (medians, spreads, Otsu's split) are taken on a
#: regular subsample of at most about this many values: plenty for a robust
#: estimate, and deterministic.
_STATISTICS_SAMPLE = 30_000


def _subsample(values: np.ndarray, target: int = _STATISTICS_SAMPLE) -> np.ndarray:
    """Every k-th value, so that about ``target`` remain (all when fewer)."""
    if values.size <= 2 * target:
        return values
    return values[:: values.size // target]


def _otsu(values: np.ndarray, nbins: int = 512) -> float:
    """Otsu's threshold of ``values``, as ``skimage.filters.threshold_otsu(values, nbins)``.

    The same histogram and between-class variance in a few lines of NumPy:
    importing ``skimage.filters`` (and SciPy with it) costs every batch worker
    and CLI run about 0.35 s for this one function.
    """
    values = _subsample(values).ravel()
    low, high = float(values.min()), float(values.max())
    # Values that differ only in their last bits (a noise-free, flat-coloured
    # image) have no finite-sized bins to split, and no split to find.
    resolution = np.finfo(values.dtype).eps if np.issubdtype(values.dtype, np.floating) else 0.0
    if high - low <= nbins * resolution * max(abs(low), abs(high)):  # also low == high
        return low
    counts, edges = np.histogram(values, bins=nbins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_below = np.cumsum(counts)
    weight_above = np.cumsum(counts[::-1])[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_below = np.cumsum(counts * centres) / weight_below
        mean_above = (np.cumsum((counts * centres)[::-1]) / weight_above[::-1])[::-1]
    between = weight_below[:-1] * weight_above[1:] * (mean_below[:-1] - mean_above[1:]) ** 2
    return float(centres[int(np.nanargmax(between))])


def _robust_sigma(values: np.ndarray) -> float:
    if values.size == 0:
        return 0.0
    values = _subsample(values)
    med = np.median(values)
    return float(1.4826 * np.median(np.abs(values - med)))


# --------------------------------------------------------------------------
# Colour contrast against the surrounding skin, and strokes (real photos)
# --------------------------------------------------------------------------
#
# The optical-density rule (core.segmentation) needs a distinct depigmented class in a
# fitted normal-skin field; on real photos (varied light, backgrounds, JPEG,
# faces) it often finds none. The photo-adaptive model below asks a weaker,
# more general question: which skin is markedly lighter and less yellow
# (higher L* - 2 b*) than the skin around it? Depigmented skin lacks melanin,
# so it is lighter and less yellow than the same person's skin nearby, on
# every skin type. The answer is then regularised by a graph cut on this
# photo's own colours (GrabCut: a colour model of each class plus a smooth
# boundary), so patches keep their shape and isolated pixels drop out.

#: Scale (share of the longest side) of the smooth surrounding-skin field:
#: broad enough to bridge a patch, narrow enough to follow shading.
_FIELD_SCALE = 0.1
#: Pixels this far above the threshold (as a multiple of it) are sure to be
#: depigmented, and below this fraction of it sure to be normal, when seeding
#: the graph cut.
_SURE_DEPIGMENTED = 1.3
_SURE_NORMAL = 0.5
#: Regularisation (CIELAB units squared) of the class covariances learned from
#: strokes: a few strokes hold few colours, so the model must stay broad.
_STROKE_COVARIANCE_FLOOR = 8.0
#: The graph cut runs at most at this size (longest side, px); its result is
#: smooth, so the extra pixels of a larger working image add nothing.
_GRAPH_CUT_SIZE = 640


def _normalized_blur(values: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian average of ``values`` over the pixels where ``weights`` is set.

    Computed at a quarter of the resolution (the field is smooth); where no
    weighted pixel is near, the weighted mean of the whole image stands in.
    """
    import cv2

    height, width = values.shape
    factor = 4 if max(height, width) >= 200 else 1
    size = (max(1, width // factor), max(1, height // factor))
    weight = weights.astype(np.float32)
    numerator = cv2.resize(values * weight, size, interpolation=cv2.INTER_AREA)
    denominator = cv2.resize(weight, size, interpolation=cv2.INTER_AREA)
    numerator = cv2.GaussianBlur(numerator, (0, 0), sigma / factor)
    denominator = cv2.GaussianBlur(denominator, (0, 0), sigma / factor)
    total = float(weight.sum())
    fallback = float((values * weight).sum() / total) if total else 0.0
    field = np.where(denominator > 1e-3, numerator / np.maximum(denominator, 1e-6), fallback)
    return cv2.resize(field.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def _whiteness_contrast(lab: np.ndarray, skin: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, float]:
    """How much lighter and less yellow each pixel is than the skin around it.

    Returns the contrast map (CIELAB units of L* - 2 b*), the threshold that
    splits it into depigmented and normal skin, the normal skin used as the
    reference, and the robust spread of the contrast on that normal skin.
    """
    whiteness = lab_whiteness(lab)
    values = whiteness[skin]
    normal = skin & (whiteness < _otsu(values))
    sigma = _FIELD_SCALE * max(skin.shape)
    contrast = np.zeros_like(whiteness)
    threshold, spread = np.inf, 1.0
    for _ in range(3):
        contrast = whiteness - _normalized_blur(whiteness, normal, sigma)
        spread = _robust_sigma(contrast[normal]) or 1e-3
        threshold = max(_otsu(contrast[skin]), _MIN_CONTRAST_SIGMAS * spread)
        normal = skin & (contrast < 0.5 * threshold)
    return contrast, float(threshold), normal, float(spread)


def _graph_cut(rgb: np.ndarray, trimap: np.ndarray, iterations: int = 3) -> np.ndarray:
    """GrabCut of ``rgb`` (CIELAB colour models) from an initial trimap of GC_* labels.

    ``iterations`` rounds of re-fitting the colour models and cutting again.
    """
    import cv2

    fore = (trimap == cv2.GC_FGD) | (trimap == cv2.GC_PR_FGD)
    if not fore.any():
        return np.zeros(trimap.shape, bool)
    if fore.all():
        return fore
    height, width = trimap.shape
    factor = min(1.0, _GRAPH_CUT_SIZE / max(height, width))
    image, labels = rgb, trimap
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        image = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        labels = cv2.resize(trimap, size, interpolation=cv2.INTER_NEAREST)
    labels = labels.copy()
    background_model = np.zeros((1, 65), np.float64)
    foreground_model = np.zeros((1, 65), np.float64)
    lab8 = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB)
    cv2.setRNGSeed(0)  # GrabCut seeds its colour models with k-means: same photo, same mask
    try:
        cv2.grabCut(lab8, labels, None, background_model, foreground_model, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        # One class has too few distinct colours for a colour model: keep the trimap.
        return fore
    result = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.uint8)
    if factor < 1.0:
        result = cv2.resize(result * np.uint8(255), (width, height), interpolation=cv2.INTER_LINEAR) >= 128
    return result.astype(bool)


def _graph_cut_within(
    rgb: np.ndarray, trimap: np.ndarray, region: np.ndarray | None, iterations: int = 3
) -> np.ndarray:
    """:func:`_graph_cut` of the region's bounding box only, the mask then cut to the region.

    Skin outside a clinician's box or polygon may be more of the patch: made
    background, it would teach the background's colour model the patch's
    colours and pull the border in from the region's edge, so it keeps its
    own label and is only cut off afterwards.
    """
    import cv2

    if region is None:
        return _graph_cut(rgb, trimap, iterations)
    mask = np.zeros(trimap.shape, bool)
    if not region.any():
        return mask
    x, y, width, height = cv2.boundingRect(region.view(np.uint8))
    window = (slice(y, y + height), slice(x, x + width))
    mask[window] = _graph_cut(rgb[window], trimap[window], iterations)
    return mask & region


def _pixel_features(lab: np.ndarray, contrast: np.ndarray) -> np.ndarray:
    """CIELAB at a fine and a coarse scale, and the whiteness contrast: (H, W, 7)."""
    import cv2

    scale = max(lab.shape[:2]) / 416.0
    fine = cv2.GaussianBlur(lab, (0, 0), max(0.5, 1.0 * scale))
    coarse = cv2.GaussianBlur(lab, (0, 0), 4.0 * scale)
    return np.dstack([fine, coarse, contrast[..., None]]).astype(np.float32)


def _stroke_classes(
    labels: np.ndarray, skin: np.ndarray, normal: np.ndarray, contrast: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The normal-skin and not-skin classes of a clinician's strokes, and where a patch may be.

    Strokes meant as "normal skin" around a patch often stray onto the
    background beside it; those that fall off skin count as "not skin", or
    they would teach the model that skin of any colour is the patch. The
    photo's own normal skin (``normal``, from the colour ``contrast``) joins
    the normal-skin strokes where it lies away from the marked patches and is
    clearly less white than them. When the depigmented strokes lie on skin,
    the patch is looked for on skin only: a beige wall or white cloth, closer
    in colour to the patch than to the marked background, is not skin.
    """
    positive = labels == LABEL_DEPIGMENTED
    normal_class = (labels == LABEL_NORMAL_SKIN) & skin
    not_skin_class = (labels == LABEL_NOT_SKIN) | ((labels == LABEL_NORMAL_SKIN) & ~skin)
    # A stroke or two of normal skin hold a narrow range of its colours; the
    # rest of this photo's normal skin would then fall to the broader patch
    # class. The automatic estimate widens the class: skin the colour contrast
    # calls normal, away from the marked patches and clearly less white
    # than them.
    away = ~_dilate_coarsely(positive, _STROKE_CLEARANCE * max(labels.shape))
    marked_level = float(np.median(contrast[positive]))
    normal_class |= normal & away & (labels == LABEL_UNLABELLED) & (contrast < _STROKE_NORMAL_SHARE * marked_level)
    on_skin = np.count_nonzero(positive & skin) >= _STROKES_ON_SKIN * np.count_nonzero(positive)
    candidates = skin if on_skin else np.ones(labels.shape, bool)
    return normal_class, not_skin_class, candidates


#: The automatic normal skin that joins the normal-skin strokes keeps this
#: share of the photo's size away from the depigmented strokes.
_STROKE_CLEARANCE = 0.05
#: Share of the depigmented strokes on skin above which a patch is looked for on skin only.
_STROKES_ON_SKIN = 0.8
#: Automatic normal skin joins the strokes' normal class below this share of
#: the marked patches' median colour contrast.
_STROKE_NORMAL_SHARE = 0.5


def _gaussian_log_likelihood_ratio(features: np.ndarray, positive: np.ndarray, *negatives: np.ndarray) -> np.ndarray:
    """log p(x | positive) - max over classes of log p(x | negative class).

    Each class is one Gaussian fitted to its labelled pixels, its covariance
    floored by ``_STROKE_COVARIANCE_FLOOR`` (few strokes hold few colours).
    Normal skin and what is not skin are kept as separate classes: pooled
    into one Gaussian, their spread would take in the patch between them.
    Classes with fewer than 8 pixels are left out (all of them pooled when
    none has 8; no evidence either way when even that is too few).
    """
    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)

    def log_likelihood(mask: np.ndarray) -> np.ndarray:
        samples = _subsample(features[mask].astype(np.float64), 20_000)
        mean = samples.mean(axis=0)
        covariance = np.cov(samples.T) + _STROKE_COVARIANCE_FLOOR * np.eye(flat.shape[1])
        inverse = np.linalg.inv(covariance)
        _, log_det = np.linalg.slogdet(covariance)
        centred = flat - mean
        # (centred @ inverse) * centred summed per row: the Mahalanobis distance through BLAS.
        return -0.5 * (np.sum((centred @ inverse) * centred, axis=1) + log_det)

    best_other = np.full(len(flat), -np.inf)
    usable = [mask for mask in negatives if np.count_nonzero(mask) >= 8]
    if not usable:
        # Each class too small alone: one model of all of them together.
        pooled = np.logical_or.reduce(negatives) if negatives else np.zeros(features.shape[:2], bool)
        if np.count_nonzero(pooled) < 8:
            return np.zeros(features.shape[:2])
        usable = [pooled]
    for mask in usable:
        best_other = np.maximum(best_other, log_likelihood(mask))
    return (log_likelihood(positive) - best_other).reshape(features.shape[:2])


def _colour_contrast_segmentation(
    rgb: np.ndarray,
    *,
    region: np.ndarray | None,
    labels: np.ndarray | None,
    exclude: np.ndarray | None,
    threshold: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float, np.ndarray, np.ndarray]:
    """Depigmented skin by colour contrast with the surrounding skin.

    Three ways in: automatic (``region`` and ``labels`` None), guided by a
    region (Otsu's split of the skin inside it may lower the threshold, and
    nothing outside it is kept), or learned from a clinician's strokes (a Gaussian
    colour model of each class they mark seeds the graph cut).

    Returns the mask, the skin considered, the contrast map, the threshold,
    the robust spread of the contrast on normal skin, the normal skin and its
    median CIELAB.
    """
    import cv2

    lab = rgb_to_lab(rgb)
    # About a pixel of smoothing at 416 px (the size of typical shared photos)
    # averages sensor noise and JPEG blocks before colours are judged.
    smooth = cv2.GaussianBlur(lab, (0, 0), max(0.5, max(lab.shape[:2]) / 416.0))
    skin = _broad_skin(smooth)
    if exclude is not None:
        skin &= ~exclude
    skin &= _keeps_redness(smooth, skin)
    if np.count_nonzero(skin) < 64:
        empty = np.zeros(skin.shape, bool)
        return empty, skin, np.zeros(skin.shape, np.float32), float("inf"), 1.0, empty, np.full(3, np.nan)
    contrast, estimated, normal, spread = _whiteness_contrast(smooth, skin)
    threshold_given = threshold is not None
    if threshold is None:
        threshold = estimated
    trimap = np.full(skin.shape, cv2.GC_PR_BGD, np.uint8)
    if labels is None and region is not None and not threshold_given and np.count_nonzero(skin & region) >= 64:
        # Inside a clinician's box the patch is a large share of the skin:
        # Otsu's split of the box's own skin can find a faint patch that the
        # whole photo's split (set by brighter patches elsewhere) misses. It
        # may lower the threshold, never raise it: a box drawn inside a patch
        # would otherwise split the patch itself. Its floor is one noise level
        # of the photo's normal skin, not the three a whole photo needs: plain
        # skin splits near its median, a boxed patch well above it, and the
        # spread of a whole photo's skin (uneven light, several body parts)
        # can be as large as a faint patch's contrast (a type VI hand whose
        # near-black skin leaves the patch as most of the skin found: Dice 0
        # with the box; 0.73 now). Whether what passes is a distinct class
        # is judged after, as everywhere.
        threshold = min(threshold, max(_otsu(contrast[skin & region]), _BOX_MIN_CONTRAST_SIGMAS * spread))
    if labels is None:
        trimap[skin & (contrast > threshold)] = cv2.GC_PR_FGD
        trimap[skin & (contrast > _SURE_DEPIGMENTED * threshold)] = cv2.GC_FGD
        trimap[skin & (contrast < _SURE_NORMAL * threshold)] = cv2.GC_BGD
    else:
        trimap = _strokes_trimap(lab, labels, skin, normal, contrast)
    if exclude is not None:
        trimap[exclude] = cv2.GC_BGD
    mask = _graph_cut_within(rgb, trimap, region)
    reference = lab[normal & ~mask]
    normal_lab = np.median(_subsample(reference), axis=0) if len(reference) else np.full(3, np.nan)
    return mask, skin, contrast, float(threshold), spread, normal, normal_lab


def _strokes_trimap(
    lab: np.ndarray, labels: np.ndarray, skin: np.ndarray, normal: np.ndarray, contrast: np.ndarray
) -> np.ndarray:
    """The graph cut's trimap (GC_* labels) from strokes: each class's colour model, strokes sure."""
    import cv2

    trimap = np.full(skin.shape, cv2.GC_PR_BGD, np.uint8)
    positive = labels == LABEL_DEPIGMENTED
    negative = labels >= LABEL_NORMAL_SKIN
    if np.count_nonzero(positive) >= 8 and np.count_nonzero(negative) >= 8:
        normal_class, not_skin_class, candidates = _stroke_classes(labels, skin, normal, contrast)
        ratio = _gaussian_log_likelihood_ratio(
            _pixel_features(lab, contrast), positive, normal_class, not_skin_class)
        trimap[(ratio > 0) & candidates] = cv2.GC_PR_FGD
    trimap[positive] = cv2.GC_FGD
    trimap[negative] = cv2.GC_BGD
    return trimap


def _strokes_from_mask(mask: np.ndarray, skin: np.ndarray, contrast: np.ndarray, threshold: float) -> np.ndarray:
    """Strokes a clinician might have drawn, read off a colour-contrast mask's surest parts.

    Depigmented: the mask's inside on skin, ``_SELF_STROKE_INSET`` in from
    its border and above the threshold. Normal skin: skin ``_SELF_STROKE_CLEARANCE``
    beyond the mask, under half the threshold; not skin: the rest that far
    out. Both on every third row and column, as strokes are sparse (the
    classes' Gaussian models need their colours, not every pixel).
    """
    import cv2

    scale = max(mask.shape) / 416.0

    def disk(radius: float) -> np.ndarray:
        r = max(1, round(radius * scale))
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))

    inside = cv2.erode(mask.view(np.uint8), disk(_SELF_STROKE_INSET)).astype(bool) & skin & (contrast > threshold)
    near = cv2.dilate(mask.view(np.uint8), disk(_SELF_STROKE_CLEARANCE)).astype(bool)
    sparse = np.zeros(mask.shape, bool)
    sparse[::3, ::3] = True
    labels = np.zeros(mask.shape, np.uint8)
    labels[skin & ~near & (contrast < 0.5 * threshold) & sparse] = LABEL_NORMAL_SKIN
    labels[~skin & ~near & sparse] = LABEL_NOT_SKIN
    labels[inside] = LABEL_DEPIGMENTED
    return labels


#: Strokes read off a colour-contrast mask (see _strokes_from_mask): the
#: depigmented class this far inside its border, normal skin and what is not
#: skin this far beyond it (pixels at 416 px, the size of typical shared photos).
_SELF_STROKE_INSET = 2.0
_SELF_STROKE_CLEARANCE = 6.0
#: One round of the graph cut's colour models: the classes are already this
#: photo's own, and more rounds drift from them (real photos, median Dice on
#: single photos: 0.76 with one round, 0.75 with two or three), each round
#: about 0.2 s (the cut runs at 640 px whatever the photo's size).
_SELF_GRAPH_CUT_ROUNDS = 1


def _distinct_lighter_class(contrast: np.ndarray, threshold: float, spread: float) -> bool:
    """Whether the skin's contrast values hold a class of their own above ``threshold``.

    Plain skin has only a noise tail there: its median sits just above the
    threshold (about 1.2 times it) and Otsu's split stays well under the
    3-sigma floor. A depigmented class lifts either clearly.
    """
    above = contrast[contrast > threshold]
    if above.size < 16:
        return False
    level = float(np.median(_subsample(above)))
    if level - float(np.median(_subsample(contrast[contrast <= threshold]))) < _MIN_VISIBLE_CONTRAST:
        return False  # sensor noise and skin texture, however "distinct"
    return bool(level >= _DISTINCT_MEDIAN_RATIO * threshold
                or _otsu(contrast) >= _DISTINCT_OTSU_SHARE * _MIN_CONTRAST_SIGMAS * spread)


#: A lighter class is distinct when its median stands this many times above
#: the threshold, or Otsu's split reaches this share of the 3-sigma floor
#: (plain skin: about 1.2 and 0.37).
_DISTINCT_MEDIAN_RATIO = 1.3
_DISTINCT_OTSU_SHARE = 0.45
#: Least difference of L* - 2 b* between the lighter class and the rest that
#: an eye would call lighter skin (about 2 CIELAB units of L* with b* 1 lower).
_MIN_VISIBLE_CONTRAST = 4.0
