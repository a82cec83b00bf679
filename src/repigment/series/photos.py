"""A photo at working resolution: loaded, calibrated, colour-normalised and segmented.

:func:`calibrate_photo` reads a photo at the working size, finds its scale
marker and normalises its colour; :func:`prepare_photo` segments it on top.
Every photo of a series, a single photo and an upload check go through them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..core.calibration import DEFAULT_MARKER_MM, MarkerDetection, detect_marker, marker_exclusion_mask
from ..core.color import ColorNormalization, normalize_color
from ..core.segmentation import (
    CLIPPED_SRGB,
    Segmentation,
    SkinSplit,
    depigmented_mask,
    remove_small_regions,
    resize_labels,
    validate_labels,
)
from ..io import LoadedImage
from ..limits import Deadline, Limits

__all__ = ["DEFAULT_WORKING_SIZE", "CalibratedPhoto", "PreparedPhoto", "calibrate_photo", "prepare_photo"]


#: Longest side, in pixels, at which photos are analysed. A 12 MP JPEG is
#: decoded straight to a quarter (1000 px) and reduced to this; 900 px scored
#: as well as 1000 px on the accuracy benchmark (stable series better) at a
#: fifth fewer pixels to process.
DEFAULT_WORKING_SIZE = 900


@dataclass
class PreparedPhoto:
    """A photo loaded, calibrated and segmented at working resolution.

    Attributes
    ----------
    name : str
        File name.
    rgb : ndarray of uint8, shape (h, w, 3)
        Colour-normalised working image.
    original_size : tuple of int
        ``(width, height)`` of the upright full-resolution photo.
    scale : float
        Working width / original width.
    marker : MarkerDetection or None
        The scale marker in working-image pixels.
    segmentation : Segmentation
        Depigmented skin at working resolution.
    color_method : str
        How the colour was normalised (:attr:`repigment.core.color.ColorNormalization.method`).
    color_gains : ndarray of float, shape (3,), or None
        The per-channel gains (linear light) of that normalisation: with a
        reference photo's, they tell how far apart the two photos' lights were.
    blown_out : ndarray of bool, shape (h, w), or None
        Pixels the camera clipped to white in every channel (kept white by
        every colour correction); None when there are none.
    """

    name: str
    rgb: np.ndarray
    original_size: tuple[int, int]
    scale: float
    marker: MarkerDetection | None
    segmentation: Segmentation
    color_method: str
    color_gains: np.ndarray | None = None
    blown_out: np.ndarray | None = None

    def registration_mask(self, *, skin_only: bool = True) -> np.ndarray:
        """Where registration may take features: outside the patch (with a
        margin) and off the marker's paper; on skin only unless ``skin_only``
        is false (then clothing and background count too)."""
        import cv2

        seg = self.segmentation
        height, width = seg.mask.shape
        size = max(5, int(0.03 * max(height, width)) | 1)
        # Partly depigmented skin is left out too (it may change by the next
        # visit), but only in regions of some size: on low-contrast skin the
        # half threshold is crossed by noise speckle all over the photo.
        partial = remove_small_regions(seg.skin & (seg.score > 0.5 * seg.threshold), int(5e-4 * seg.mask.size))
        changing = seg.mask | partial
        patch = cv2.dilate(
            changing.astype(np.uint8),
            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)),
        ).astype(bool)
        usable = ~patch & (seg.skin if skin_only else True)
        if self.marker is not None:
            # The marker is re-stuck at every visit: its paper must not steer the alignment.
            usable &= ~marker_exclusion_mask((height, width), self.marker, margin=0.5)
        return usable


@dataclass(frozen=True)
class CalibratedPhoto:
    """A photo loaded at working resolution, its scale marker found and its colour normalised.

    Attributes
    ----------
    loaded : LoadedImage
        The upright photo at working resolution, as read.
    marker : MarkerDetection or None
        The scale marker in working-image pixels.
    exclude : ndarray of bool or None
        The marker's paper, kept out of every mask.
    normalized : ColorNormalization
        The colour-normalised working image and how it was normalised.
    blown_out : ndarray of bool or None
        Pixels the camera clipped to white in every channel (kept white by the
        normalisation); None when there are none.
    """

    loaded: LoadedImage
    marker: MarkerDetection | None
    exclude: np.ndarray | None
    normalized: ColorNormalization
    blown_out: np.ndarray | None


def calibrate_photo(
    source,
    *,
    marker_mm: float = DEFAULT_MARKER_MM,
    working_size: int = DEFAULT_WORKING_SIZE,
    limits: Limits | None = None,
    deadline: Deadline | None = None,
) -> CalibratedPhoto:
    """Load a photo at working resolution, find its scale marker and normalise its colour.

    The first stage of :func:`prepare_photo`, and all that an upload check
    needs (:func:`repigment.series.intake.check_photo`), so both judge a photo
    as the analysis sees it.

    Parameters
    ----------
    source : path, bytes or file-like
        The photo.
    marker_mm : float, optional
        Printed side of the scale marker, mm.
    working_size : int, optional
        Longest side of the working image.
    limits : Limits, optional
        Pixel and file-size limits (defaults of :class:`repigment.limits.Limits`).
    deadline : Deadline, optional
        Time budget, checked after loading.

    Returns
    -------
    CalibratedPhoto

    Raises
    ------
    ImageLoadError
        If the photo cannot be read.
    ProcessingTimeLimitError
        If the deadline passes.
    """
    from ..io import load_image

    limits = limits or Limits()
    loaded = load_image(
        source, max_side=working_size, max_pixels=limits.max_pixels, max_file_bytes=limits.max_file_bytes
    )
    if deadline is not None:
        deadline.check("loading")
    marker = detect_marker(loaded.rgb, marker_mm=marker_mm)
    exclude = None
    if marker is not None:
        exclude = marker_exclusion_mask(loaded.rgb.shape[:2], marker)
    # The marker's white balances colour only when it is plausible paper white
    # (a marker in deep shadow or under coloured light would blow the photo up).
    gains = None if marker is None else 0.85 / np.maximum(marker.white_rgb, 1e-6)
    if gains is not None and np.all(marker.white_rgb > 0.02) and np.all((gains > 0.25) & (gains < 4.0)):
        normalized = normalize_color(loaded.rgb, white_rgb=marker.white_rgb)
    else:
        normalized = normalize_color(loaded.rgb)
    # Blown out to white in every channel: at least that light, of unknown
    # colour. A colour correction that scales it down with the rest would make
    # an overexposed patch pass for normal skin, so it stays white.
    blown_out = loaded.rgb.min(axis=2) >= CLIPPED_SRGB
    if blown_out.any():
        normalized = replace(normalized, rgb=np.where(blown_out[..., None], np.uint8(255), normalized.rgb))
    else:
        blown_out = None
    return CalibratedPhoto(loaded=loaded, marker=marker, exclude=exclude, normalized=normalized,
                           blown_out=blown_out)


def prepare_photo(
    source,
    *,
    marker_mm: float = DEFAULT_MARKER_MM,
    threshold: float | None = None,
    working_size: int = DEFAULT_WORKING_SIZE,
    limits: Limits | None = None,
    deadline: Deadline | None = None,
    reference_level: float | None = None,
    method: str | None = None,
    roi=None,
    labels: np.ndarray | None = None,
    core_factor: float | None = None,
    learn_own_classes: bool = True,
    skin_split: SkinSplit | None = None,
) -> PreparedPhoto:
    """Load, calibrate, colour-normalise and segment one photo.

    Parameters
    ----------
    source : path, bytes or file-like
        The photo.
    marker_mm : float, optional
        Printed side of the scale marker, mm.
    threshold : float, optional
        Depigmentation threshold to apply (a series' baseline threshold).
    reference_level : float, optional
        The baseline's level of full depigmentation, so the threshold follows
        this photo's own (see :func:`repigment.core.segmentation.depigmented_mask`).
    method : {"od-field", "colour-contrast"}, optional
        The model ``threshold`` belongs to (the baseline's segmentation method).
    core_factor : float, optional
        With ``threshold``: the baseline's core score over its threshold (see
        :func:`repigment.core.segmentation.depigmented_mask`).
    roi : tuple of 4 numbers or ndarray of shape (N, 2), optional
        Region of interest in the upright photo's full-size pixels; guides and
        restricts the segmentation.
    labels : ndarray of int, shape (H, W), optional
        A clinician's strokes on the upright photo at full size (see
        :func:`repigment.core.segmentation.validate_labels`).
    working_size : int, optional
        Longest side of the working image.
    limits : Limits, optional
        Pixel and file-size limits (defaults of :class:`repigment.limits.Limits`).
    deadline : Deadline, optional
        Time budget, checked between stages.
    learn_own_classes : bool, optional
        See :func:`repigment.core.segmentation.depigmented_mask`; a series' baseline
        turns it off.
    skin_split : SkinSplit, optional
        With ``threshold``: the baseline's
        :attr:`repigment.core.segmentation.Segmentation.skin_split` (see
        :func:`repigment.core.segmentation.depigmented_mask`).

    Returns
    -------
    PreparedPhoto

    Raises
    ------
    ImageLoadError
        If the photo cannot be read.
    ProcessingTimeLimitError
        If the deadline passes.
    """
    calibrated = calibrate_photo(source, marker_mm=marker_mm, working_size=working_size, limits=limits,
                                 deadline=deadline)
    loaded, marker, exclude, normalized = (calibrated.loaded, calibrated.marker, calibrated.exclude,
                                           calibrated.normalized)
    work_roi = None if roi is None else np.asarray(roi, dtype=np.float64) * loaded.scale
    work_labels = None
    if labels is not None:
        width0, height0 = loaded.info.original_size
        work_labels = resize_labels(validate_labels(labels, (height0, width0)), normalized.rgb.shape[:2])
    segmentation = depigmented_mask(
        normalized.rgb, roi=work_roi, labels=work_labels, exclude=exclude, threshold=threshold,
        method=method, reference_level=reference_level, core_factor=core_factor,
        learn_own_classes=learn_own_classes, skin_split=skin_split)
    if deadline is not None:
        deadline.check("segmentation")
    return PreparedPhoto(
        name=loaded.name,
        rgb=normalized.rgb,
        original_size=loaded.info.original_size,
        scale=loaded.scale,
        marker=marker,
        segmentation=segmentation,
        color_method=normalized.method,
        color_gains=np.asarray(normalized.gains, np.float64),
        blown_out=calibrated.blown_out,
    )
