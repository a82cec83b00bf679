"""repigment: measure vitiligo repigmentation from serial photos.

The core stages are pure functions in one module each (:mod:`repigment.io`,
:mod:`repigment.core.calibration`, :mod:`repigment.core.color`,
:mod:`repigment.core.registration`, :mod:`repigment.core.segmentation`,
:mod:`repigment.core.scoring`); :func:`analyze_series` and :func:`segment_image`
run them on a series folder or a single photo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = ["__version__", "analyze_series", "segment_image"]

if TYPE_CHECKING:  # pragma: no cover
    from .series.pipeline import analyze_series, segment_image


def __getattr__(name: str) -> Any:
    # Lazy so that `repigment --help` does not import OpenCV and scikit-image.
    if name in ("analyze_series", "segment_image"):
        from .series import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'repigment' has no attribute {name!r}")
