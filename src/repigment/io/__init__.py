"""Read clinical photos safely into upright 8-bit RGB arrays, and write results.

Everything that touches image files goes through this package:

- :mod:`repigment.io.reading`: :func:`load_image` decodes a photo (path, bytes or
  binary file object) into an upright ``(H, W, 3)`` ``uint8`` RGB array,
  :func:`read_image_info` reads the same metadata from the header only, and
  :func:`read_labels`, :class:`LabelsByImage` and :func:`read_mask` read strokes
  images and masks.
- :mod:`repigment.io.location`: :func:`strip_location` removes GPS data from a
  photo's bytes before it is stored or shared, leaving pixels and all other
  metadata byte-for-byte untouched.
- :mod:`repigment.io.writing`: :func:`write_image_atomic` writes a PNG (typically
  a mask) so that readers never see a half-written file; :func:`encode_png` and
  :func:`atomic_write_bytes` are its two halves.

Every failure is reported as one of the :mod:`repigment.errors` exceptions, with a
one-line message that names the file (basename only) and says what to do. No raw
Pillow or OpenCV exception or warning escapes.
"""

from __future__ import annotations

from repigment.io.location import strip_location
from repigment.io.reading import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_PIXELS,
    MIN_SIDE,
    SUPPORTED_FORMATS,
    ImageInfo,
    ImageSource,
    LabelsByImage,
    LoadedImage,
    load_image,
    read_image_info,
    read_labels,
    read_mask,
)
from repigment.io.writing import atomic_write_bytes, encode_png, write_image_atomic

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_PIXELS",
    "MIN_SIDE",
    "SUPPORTED_FORMATS",
    "ImageInfo",
    "ImageSource",
    "LabelsByImage",
    "LoadedImage",
    "load_image",
    "read_image_info",
    "strip_location",
    "write_image_atomic",
    "atomic_write_bytes",
    "encode_png",
    "read_mask",
]
