"""Skin detection: which pixels of a photo are the patient's skin.

:func:`skin_mask` keeps the pixels within a hue tolerance of this patient's
own skin colour or colours (:func:`_skin_colours`), not much more saturated
than it, and fills back the holes skin encloses and the pale patches the
frame cuts (:func:`_frame_cut_patches`). The colour-contrast model's broader
test (:func:`_broad_skin`), the redness that depigmented skin keeps and
walls and paper lack (:func:`_keeps_redness`), and the whiteness L* - 2 b*
(:func:`lab_whiteness`) that both segmentation models judge skin by live
here too; :mod:`repigment.core.segmentation` and :mod:`repigment.core.guided`
import them.
"""

from __future__ import annotations

import numpy as np

from .color import rgb_to_lab
from .regions import _border, fill_holes

__all__ = [
    "CLIPPED_SRGB",
    "SKIN_HUE_TOLERANCE",
    "WHITENESS_B_WEIGHT",
    "skin_mask",
    "lab_whiteness",
]


def skin_mask(rgb: np.ndarray, *, exclude: np.ndarray | None = None) -> np.ndarray:
    """Skin pixels of a colour-normalised photo.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
        Colour-normalised sRGB photo (see :func:`repigment.core.color.normalize_color`).
    exclude : ndarray of bool, shape (H, W), optional
        Pixels that are never skin (the scale marker, for instance).

    Returns
    -------
    skin : ndarray of bool, shape (H, W)

    Notes
    -----
    Skin of every Fitzpatrick type, and depigmented skin (which keeps a pink
    haemoglobin tint), has a CIELAB hue angle between red and yellow. A broad
    window on that finds the photo's dominant skin colour (and, when a large
    patch makes that colour the patch's pale pink, the yellower normal skin
    as well); skin is then what lies within ``SKIN_HUE_TOLERANCE`` degrees of
    *this patient's* skin hue and is not much more saturated than it, so red,
    pink or orange cloth, dark backgrounds, blue or green cloth and neutral
    objects fall outside. Holes enclosed by skin (moles, glare, low-chroma
    depigmentation) are filled back, and so are pale regions the frame cuts
    that keep skin's redness or are clipped (see :func:`_frame_cut_patches`).
    """
    return _skin_from_lab(rgb_to_lab(rgb), exclude)


def _skin_from_lab(lab: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
    """:func:`skin_mask` of an image already converted to CIELAB."""
    import cv2

    lightness, a_star, b_star = cv2.split(lab)
    chroma = cv2.magnitude(a_star, b_star)
    hue = cv2.phase(a_star, b_star, angleInDegrees=True)  # [0, 360), accurate to ~0.3 degrees
    broad = (lightness > 10) & (chroma > 4.0) & (hue > 5) & (hue < 100) & (a_star > 0.5)
    candidate = broad
    if np.count_nonzero(broad) > 0.01 * broad.size:
        # The most common colour is as clear on every other row and column.
        sample = broad[::2, ::2]
        colours = _skin_colours(
            a_star[::2, ::2][sample], b_star[::2, ::2][sample], lightness[::2, ::2][sample])
        near_hue = np.zeros(lightness.shape, bool)
        for skin_hue, _ in colours:
            # Within the hue tolerance of the skin hue h: the cosine of the angle
            # between (a*, b*) and h's direction exceeds cos(tolerance).
            along_skin_hue = a_star * np.float32(np.cos(np.radians(skin_hue))) + b_star * np.float32(
                np.sin(np.radians(skin_hue)))
            near_hue |= along_skin_hue > chroma * np.float32(np.cos(np.radians(SKIN_HUE_TOLERANCE)))
        skin_chroma = max(colour_chroma for _, colour_chroma in colours)
        candidate = (lightness > 10) & (chroma > 4.0) & near_hue & (chroma < 1.6 * skin_chroma + 8.0)
    candidate = cv2.morphologyEx(
        candidate.astype(np.uint8), cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    ).astype(bool)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidate.astype(np.uint8), connectivity=4)
    if count <= 1:
        return candidate
    keep = stats[:, cv2.CC_STAT_AREA] >= max(0.01 * candidate.size, 64)
    keep[0] = False
    skin = keep[labels]
    if exclude is not None:
        # Fill around the marker first so its paper counts as a hole, then drop it.
        skin = fill_holes(skin | exclude) & ~exclude
    else:
        skin = fill_holes(skin)
    skin |= _frame_cut_patches(skin, lightness, a_star, b_star, exclude)
    # Pixels along the border with cloth or background blend both colours
    # (lens blur, JPEG) and can pass for pale skin: trust skin only a few
    # pixels in from that border.
    margin = max(1, int(round(0.003 * max(skin.shape))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    eroded = cv2.erode(skin.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE).astype(bool)
    return eroded


def _clipped_share(lightness: np.ndarray, a_star: np.ndarray, b_star: np.ndarray) -> float:
    """Share of CIELAB pixels (a regular subsample) whose sRGB is clipped in some channel."""
    import cv2

    step = max(1, lightness.size // 5000)
    lab = np.stack([lightness[::step], a_star[::step], b_star[::step]], axis=-1).astype(np.float32)
    rgb = cv2.cvtColor(lab[:, None, :], cv2.COLOR_Lab2RGB)[:, 0, :]  # sRGB in [0, 1]
    return float(np.mean(rgb.max(axis=1) >= CLIPPED_SRGB / 255.0))


def _frame_cut_patches(
    skin: np.ndarray, lightness: np.ndarray, a_star: np.ndarray, b_star: np.ndarray, exclude: np.ndarray | None
) -> np.ndarray:
    """Pale skin that skin encloses except where the frame cuts it.

    A patch enclosed by skin is filled as a hole, however pale; one cut by the
    frame's edge touches the outside and is not. Such a region counts as skin
    when the frame makes only a small part of its border, it is lighter than
    the skin around it, and it keeps the blood's redness that depigmented
    skin keeps and walls, paper and white cloth lack, or is mostly clipped
    in some channel (an overexposed patch, whose redness is lost).
    """
    import cv2

    found = np.zeros_like(skin)
    if not skin[::2, ::2].any():
        return found
    # The marker's paper lies on the skin: it borders a patch as skin does.
    bordering = skin if exclude is None else skin | exclude
    count, labels, stats, _ = cv2.connectedComponentsWithStats((~bordering).view(np.uint8), connectivity=4)
    if count <= 1:
        return found
    area = stats[:, cv2.CC_STAT_AREA]
    candidates = (area >= _FRAME_CUT_MIN_SHARE * skin.size) & (area <= _FRAME_CUT_MAX_SHARE * skin.size)
    candidates[0] = False
    if not candidates.any():
        return found
    # Border pixels of each region: on the frame, and next to skin.
    on_frame = np.bincount(_border(labels), minlength=count)
    grown_skin = cv2.dilate(bordering.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    next_to_skin = np.bincount(labels[grown_skin & ~bordering], minlength=count)
    candidates &= (on_frame > 0) & (on_frame <= _FRAME_CUT_EDGE_SHARE * (on_frame + next_to_skin))
    if not candidates.any():
        return found
    skin_lightness = float(np.median(lightness[::2, ::2][skin[::2, ::2]]))
    skin_redness = float(np.median(a_star[::2, ::2][skin[::2, ::2]]))
    for label in np.flatnonzero(candidates):
        region = labels == label
        region_lightness = lightness[region]
        if np.median(region_lightness) <= skin_lightness + _FRAME_CUT_LIGHTER:
            continue
        region_redness = a_star[region]
        # A patch overexposed in a channel (red first, on skin) has lost its
        # redness: clipped skin this large is data (see the glare rule).
        if (np.median(region_redness) >= _REDNESS_SHARE * skin_redness > 0
                or _clipped_share(region_lightness, region_redness, b_star[region]) >= 0.5):
            found |= region
    return found


#: A region cut by the frame counts as a patch of skin (see _frame_cut_patches)
#: when the frame makes at most this share of its border, it is at least this
#: many L* units lighter than the skin, and covers this range of the photo.
_FRAME_CUT_EDGE_SHARE = 0.25
_FRAME_CUT_LIGHTER = 5.0
_FRAME_CUT_MIN_SHARE = 0.005
_FRAME_CUT_MAX_SHARE = 0.7
#: 8-bit value from which a channel counts as clipped (JPEG rings clipped values down to about 250).
CLIPPED_SRGB = 250


#: How far (degrees of CIELAB hue) a pixel's hue may be from the photo's own
#: skin hue to count as skin. Normal and depigmented skin of one person lie
#: within about 15 degrees of each other; cloth usually does not.
SKIN_HUE_TOLERANCE = 25.0


def _skin_colours(a_star: np.ndarray, b_star: np.ndarray, lightness: np.ndarray) -> list[tuple[float, float]]:
    """Hue (degrees) and chroma of the photo's skin: its most common skin-like colour, and maybe normal skin.

    The first is the mode of the a*b* histogram. When depigmented skin fills
    much of the frame, its pale pink can be that mode; the patient's normal
    skin is then a second mode, more saturated, more yellow and darker, whose
    hue may lie at the edge of the tolerance around the first (light skin's
    yellow against a patch's pink). A patch clipped in its red channel has
    lost its pink, and normal skin may be the redder one. Such a mode is
    returned too, so that skin is judged against both.
    """
    import cv2

    if a_star.size > 200_000:
        step = a_star.size // 100_000
        a_star, b_star, lightness = a_star[::step], b_star[::step], lightness[::step]
    # A 2D histogram of unit bins over a* in [-10, 50), b* in [-10, 60).
    inside = (a_star >= -10) & (a_star < 50) & (b_star >= -10) & (b_star < 60)
    ia = (a_star[inside] + 10).astype(np.intp)
    ib = (b_star[inside] + 10).astype(np.intp)
    hist = np.bincount(ia * 70 + ib, minlength=60 * 70).reshape(60, 70)
    hist = cv2.GaussianBlur(hist.astype(np.float32), (0, 0), 1.5)
    grid_a, grid_b = np.meshgrid(np.arange(60) - 9.5, np.arange(70) - 9.5, indexing="ij")

    def colour(index: int) -> tuple[float, float, float, float]:
        a_mode, b_mode = grid_a.flat[index], grid_b.flat[index]
        return float(np.degrees(np.arctan2(b_mode, a_mode))), float(np.hypot(a_mode, b_mode)), a_mode, b_mode

    main_index = int(np.argmax(hist))
    hue, chroma, a_mode, b_mode = colour(main_index)
    colours = [(hue, chroma)]
    grid_hue = np.degrees(np.arctan2(grid_b, grid_a))
    grid_chroma = np.hypot(grid_a, grid_b)
    # Melanin adds yellow-brown to the blood's pink: normal skin is more
    # saturated and more yellow (a larger hue angle) than depigmented skin,
    # unless the patch is clipped in its red channel and has lost its pink.
    step = max(1, a_star.size // 20_000)  # a regular subsample is plenty for a share
    a_some, b_some, l_some = a_star[::step], b_star[::step], lightness[::step]
    near_main = np.hypot(a_some - a_mode, b_some - b_mode) <= 2.0
    main_clipped = bool(near_main.any()) and _clipped_share(
        l_some[near_main], a_some[near_main], b_some[near_main]) >= 0.5
    other = ((np.hypot(grid_a - a_mode, grid_b - b_mode) > _SECOND_MODE_DISTANCE)
             & (grid_chroma * _SECOND_MODE_CHROMA_RATIO >= chroma)
             & (np.abs(grid_hue - hue) <= _SECOND_MODE_HUE)
             & ((grid_hue > hue) | main_clipped))
    if not other.any():
        return colours
    second_index = int(np.argmax(np.where(other, hist, 0.0)))
    if hist.flat[second_index] < _SECOND_MODE_MASS * hist.flat[main_index]:
        return colours
    second_hue, second_chroma, a_second, b_second = colour(second_index)
    values = lightness[inside]

    def median_lightness(a_centre: float, b_centre: float) -> float:
        near = np.hypot(a_star[inside] - a_centre, b_star[inside] - b_centre) <= 2.0
        return float(np.median(values[near])) if near.any() else np.nan

    if median_lightness(a_second, b_second) <= median_lightness(a_mode, b_mode) - _SECOND_MODE_DARKER:
        colours.append((second_hue, second_chroma))
    return colours


#: A second skin colour (see _skin_colours) lies this far (a*b* units) from
#: the first, has at least 1/this ratio of its chroma, up to this many degrees
#: more yellow, holds at least this share of its histogram peak, and is this
#: many L* units darker.
_SECOND_MODE_DISTANCE = 4.0
_SECOND_MODE_CHROMA_RATIO = 0.7
_SECOND_MODE_HUE = 40.0
_SECOND_MODE_MASS = 0.2
_SECOND_MODE_DARKER = 5.0


#: How lighter-and-less-yellow a pixel is: L* - 2 b* (CIELAB). On 25 real
#: photos with outlines this separates depigmented from surrounding skin
#: better than L*, b*, ITA or optical-density features alone (median ROC AUC
#: 0.93).
WHITENESS_B_WEIGHT = 2.0


def _broad_skin(lab: np.ndarray) -> np.ndarray:
    """Pixels whose colour could be skin, lit or shaded, pigmented or not.

    A hue between magenta-red and yellow and some chroma; neutral objects
    (white paper, grey walls, black background) and blue or green cloth fall
    outside, and so do very saturated colours (cloth, lipstick).
    """
    import cv2

    lightness, a_star, b_star = cv2.split(lab)
    chroma = cv2.magnitude(a_star, b_star)
    hue = cv2.phase(a_star, b_star, angleInDegrees=True)
    hue = np.where(hue > 180, hue - 360, hue)
    return (lightness > 15) & (chroma > 4) & (chroma < 60) & (hue > -15) & (hue < 95)


def lab_whiteness(lab: np.ndarray) -> np.ndarray:
    """How light and little yellow each pixel is: L* - 2 b* of a CIELAB image.

    Examples
    --------
    >>> lab = np.array([[[70.0, 10.0, 15.0], [80.0, 8.0, 8.0]]], np.float32)
    >>> lab_whiteness(lab).tolist()
    [[40.0, 64.0]]
    """
    return lab[..., 0] - np.float32(WHITENESS_B_WEIGHT) * lab[..., 2]


def _keeps_redness(lab: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Pixels red enough (a*) to be skin of this person, depigmented or not.

    Depigmented skin loses melanin but keeps the blood under it, so its a*
    stays a good part of the pigmented skin's; beige walls, floors and paper
    that pass for light skin by hue are nearly neutral (a* near 0).
    """
    a_star = lab[..., 1]
    whiteness = lab_whiteness(lab)
    values = whiteness[skin]
    if values.size < 64:
        return np.ones(skin.shape, bool)
    pigmented = skin & (whiteness <= np.median(values))
    reference = float(np.median(a_star[pigmented]))
    if reference < _MIN_REFERENCE_REDNESS:
        return np.ones(skin.shape, bool)
    return a_star >= _REDNESS_SHARE * reference


#: Depigmented skin keeps at least this share of the pigmented skin's a*
#: (on 25 real photos: 0.5-1.6 inside the outlines; beige walls and floors
#: taken for depigmented skin: below 0.15).
_REDNESS_SHARE = 0.3
#: Least a* of pigmented skin for the redness test (greyish photos skip it).
_MIN_REFERENCE_REDNESS = 6.0
