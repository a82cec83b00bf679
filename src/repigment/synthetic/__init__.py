"""Synthetic serial photos of a vitiligo patch whose ground truth is known exactly.

A *scene* -- a flat piece of skin in physical units with texture, pores, skin lines, hairs,
moles, optionally clothing or a dark background and a printed ArUco marker -- is
re-photographed at every visit of a treatment course. Only the pigmentation of the patch
changes between visits (and the marker is re-stuck a few mm away). Each photo is taken with
its own camera pose (rotation, scale, tilt, framing), lighting (exposure, gradient,
vignetting, white balance, glare), optical blur and sensor noise; `write_series` stores it as
JPEG. Because the pigment field and every homography are known, the depigmented area of every
visit is known in every photo's pixel frame and in physical units.

Notes
-----
Pigment map
    ``p(x, y)`` in [0, 1] per visit, 1 = the patient's normal pigment, 0 = no melanin. The
    ground truth is ``p < 0.5``: the float map is warped into a photo with bilinear
    interpolation and thresholded there, so the truth follows the photo's own geometry.
Skin colour
    Per camera band ``c`` (R, G, B), split into a short- and a long-wavelength half ``j`` so
    that strong absorbers saturate within a band as they do for a broadband sensor::

        R_c = base_c * shade * mean_j exp(-(m * (eu_t E_cj + ph_t P_c) + mole E_cj + b H_c))

    with eumelanin ``E`` (absorbs blue > green > red), pheomelanin ``P`` (blue/green only),
    haemoglobin ``H`` (green/blue), ``m = p * (1 + texture) * (1 - perilesional rim)``,
    ``(eu_t, ph_t)`` per Fitzpatrick type and ``base`` chosen so that melanin-free skin is
    pinkish white, sRGB ~(240, 215, 205). The constants were fitted so that the normal skin of
    each type lands in its ITA° category (I very light ... VI dark); see `skin_srgb`.
    Specular reflection (relief highlights, sheen) is added on top, white and independent of
    melanin, which is what makes the relief of dark skin visible.
Units
    Scene pixels are square, ``mm_per_scene_px`` wide; at the nominal pose one scene pixel is
    one photo pixel and the photo's diagonal spans ``165 mm * (marker_mm / 20) ** 0.75``, as a
    photographer frames patch and marker together (with a 20 mm marker a 1200 x 900 photo
    covers about 13 x 10 cm and the marker is about 180 px wide; 5-40 mm markers come out at
    about 130-220 px). Scene coordinates put the nominal photo frame at ``[0, W] x [0, H]``;
    ``scene_to_photo`` maps them to photo pixels (OpenCV convention: pixel centres at integer
    coordinates).
Layout
    The baseline patch (1-3 irregular blobs with soft, ragged borders) covers 8-20 % of the
    nominal frame, less for spreading so that the grown patch fits. Patch, marker (on a white
    sticker with a 2.2-2.8 module margin, next to the patch) and, when asked for, a cloth
    band (15-35 % of the frame, on one side, with a curved edge) are laid out so that patch
    and marker stay in frame at every pose. In a crowded frame the marker is stuck square to
    the frame and the cloth band narrowed; only then may the patch go below 8 %.
Camera
    Light is handled in linear RGB: exposure, linear gradient, vignetting, white balance,
    occasional glare; then defocus blur, shot + read noise (luminance at full resolution,
    chroma at half, as after demosaicing), sRGB encoding. `write_series` adds JPEG.
Speed
    About 2 s of CPU for six 1200 x 900 visits; time scales with the pixel count.
"""

from __future__ import annotations

from .camera import LIGHT_CASTS
from .series import generate_series, write_series
from .skin import FITZPATRICK_TYPES, skin_srgb
from .spec import COURSES, SeriesSpec, SyntheticSeries, SyntheticVisit

__all__ = [
    "COURSES",
    "FITZPATRICK_TYPES",
    "LIGHT_CASTS",
    "SeriesSpec",
    "SyntheticSeries",
    "SyntheticVisit",
    "generate_series",
    "skin_srgb",
    "write_series",
]
