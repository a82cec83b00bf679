"""Skin optics of the synthetic-series generator: colour of skin from its chromophores.

Absorbance of eumelanin, pheomelanin and haemoglobin per camera band, the normal melanin
mix of each Fitzpatrick type (`FITZPATRICK_TYPES`), the sRGB <-> linear conversions and
lookup table shared by the scene and the camera, and `skin_srgb`, the mean colour of smooth
skin at a given pigment level; the model is described in the notes of
:mod:`repigment.synthetic`.
"""

from __future__ import annotations

import functools

import numpy as np

from repigment.errors import InvalidParameterError

FITZPATRICK_TYPES = ("I", "II", "III", "IV", "V", "VI")

# ---------------------------------------------------------------------------------------------
# Skin optics. Absorbance per unit chromophore for the (R, G, B) camera bands, each band split
# into its short- and long-wavelength half. Fitted to normal-skin colours of types I-VI and a
# melanin-free colour of sRGB (240, 215, 205); see the module notes.
_EUMELANIN = np.array([[0.61, 0.61], [0.86, 0.68], [1.89, 0.68]], dtype=np.float64)
_PHEOMELANIN = np.array([0.0, 1.07, 1.30], dtype=np.float64)
_HAEMOGLOBIN = np.array([0.04, 0.30, 0.22], dtype=np.float64)
_DEPIGMENTED_SRGB = (240.0, 215.0, 205.0)
# (eumelanin, pheomelanin) of normal skin per type.
_MELANIN_BY_TYPE = {
    "I": (0.09, 0.09),
    "II": (0.53, 0.14),
    "III": (0.80, 0.19),
    "IV": (1.24, 0.26),
    "V": (1.99, 0.21),
    "VI": (3.38, 0.04),
}


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, dtype=np.float64), 0.0, 1.0)
    return 255.0 * np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.power(v, 1 / 2.4) - 0.055)


@functools.cache
def _srgb_lut() -> np.ndarray:
    """uint8 sRGB code for each 16-bit linear level."""
    return np.round(_linear_to_srgb(np.arange(65536) / 65535.0)).astype(np.uint8)


_BASE_REFLECTANCE = _srgb_to_linear(np.array(_DEPIGMENTED_SRGB)) * np.exp(_HAEMOGLOBIN)


def _type_absorbance(skin_type: str) -> np.ndarray:
    """(3, 2) absorbance of one unit of the type's normal melanin mix."""
    eu, ph = _MELANIN_BY_TYPE[skin_type]
    return eu * _EUMELANIN + ph * _PHEOMELANIN[:, None]


def skin_srgb(skin_type: str, pigment: float = 1.0) -> np.ndarray:
    """Mean sRGB colour of smooth skin under the nominal lighting of the generator.

    Parameters
    ----------
    skin_type : {"I", "II", "III", "IV", "V", "VI"}
        Fitzpatrick type.
    pigment : float, optional
        Fraction of the type's normal melanin, 1 = normal skin, 0 = depigmented.

    Returns
    -------
    numpy.ndarray
        Shape (3,), float sRGB in [0, 255], before texture, lighting and noise.

    Raises
    ------
    ValueError
        If `skin_type` is unknown or `pigment` is outside [0, 1].

    Examples
    --------
    >>> skin_srgb("VI").round()
    array([94., 63., 48.])
    >>> skin_srgb("VI", pigment=0.0).round()
    array([240., 215., 205.])
    """
    if skin_type not in FITZPATRICK_TYPES:
        raise InvalidParameterError(
            f"skin_type must be one of {', '.join(FITZPATRICK_TYPES)}, got {skin_type!r}"
        )
    if not 0.0 <= float(pigment) <= 1.0:
        raise InvalidParameterError(f"pigment must be in [0, 1], got {pigment!r}")
    a = float(pigment) * _type_absorbance(skin_type) + _HAEMOGLOBIN[:, None]
    lin = _BASE_REFLECTANCE * np.exp(-a).mean(axis=1)
    return _linear_to_srgb(lin)
