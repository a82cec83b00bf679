"""Read photos, strokes (labels) images and masks into numpy arrays.

This module holds the reading side of :mod:`repigment.io`: :func:`load_image`
decodes a photo into an upright ``(H, W, 3)`` ``uint8`` RGB array,
:func:`read_image_info` reads its metadata (:class:`ImageInfo`) from the header
only, :func:`read_labels` and :class:`LabelsByImage` read strokes images and
:func:`read_mask` reads a saved mask. The private helpers open and sniff the
file, enforce the size limits, parse EXIF/XMP (date, orientation, location) and
decode and orient the pixels.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import IO

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from repigment.errors import (
    CorruptImageError,
    ImageLoadError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidParameterError,
    UnsupportedImageError,
)
from repigment.io._common import _label

#: Largest accepted pixel count (width * height), a guard against decompression bombs.
DEFAULT_MAX_PIXELS: int = 120_000_000
#: Largest accepted file size in bytes.
DEFAULT_MAX_FILE_BYTES: int = 200 * 1024**2
#: Images whose shorter side is below this many pixels are rejected as too small.
MIN_SIDE: int = 64
#: Pillow format names that are read (``ImageInfo.format`` is always one of them).
#: Multi-picture JPEGs from phones (Pillow's "MPO") are reported as "JPEG"; for
#: animated GIF/WebP and multi-page TIFF the first frame is used.
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "TIFF", "WEBP", "HEIF", "GIF")

ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]

# Plugins Pillow may try; restricting them keeps exotic decoders (EPS, ...) out.
# "JPEG" also opens MPO files.
_PIL_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "GIF", "HEIF")
_FORMAT_NAMES = "JPEG, PNG, TIFF, WebP, HEIC/HEIF or GIF"

# What Pillow (and pillow-heif) raise on bad data while parsing or decoding.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    RuntimeError,
    NotImplementedError,
    struct.error,
    zlib.error,
)
# What reading a damaged EXIF block may raise; metadata is best effort.
_METADATA_ERRORS = (*_DECODE_ERRORS, AttributeError, UnicodeError, OverflowError)

_TAG_ORIENTATION = 0x0112
_TAG_DATETIME = 0x0132
_TAG_XMP = 0x02BC
_TAG_EXIF_IFD = 0x8769
_TAG_GPS_IFD = 0x8825
_TAG_DATETIME_ORIGINAL = 0x9003


@dataclass(frozen=True)
class ImageInfo:
    """What a photo's header says about it.

    Attributes
    ----------
    original_size : tuple of int
        ``(width, height)`` of the upright, full-resolution image (EXIF orientation
        applied).
    taken_at : datetime or None
        EXIF ``DateTimeOriginal`` (falling back to ``DateTime``) as a naive
        datetime, or None when absent or unreadable.
    format : str
        One of :data:`SUPPORTED_FORMATS`, e.g. ``"JPEG"`` or ``"HEIF"``.
    orientation : int
        EXIF orientation tag value, 1..8 (1 when absent or invalid). For HEIF the
        rotation lives in the container and is applied by the decoder; this is the
        value stored in its EXIF block.
    has_location : bool
        Whether the file carries GPS data (EXIF GPS tags or XMP ``GPS*`` fields).
    """

    original_size: tuple[int, int]
    taken_at: datetime | None
    format: str
    orientation: int
    has_location: bool


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A decoded photo.

    Attributes
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
        Upright RGB pixels, C-contiguous and writeable.
    info : ImageInfo
        Header metadata; ``info.original_size`` is the full-resolution size.
    scale : float
        ``rgb.shape[1] / info.original_size[0]``; 1.0 when not downscaled.
    name : str
        Basename of the source file, ``""`` for bytes (or an unnamed file object).
    """

    rgb: np.ndarray
    info: ImageInfo
    scale: float
    name: str


@dataclass(frozen=True)
class _Header:
    info: ImageInfo
    stored_size: tuple[int, int]  # (width, height) as Pillow opened it, before draft
    exif_deferred: bool  # PNG whose eXIf chunk may follow the pixel data


# --------------------------------------------------------------------------
# Public API


def read_image_info(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> ImageInfo:
    """Read a photo's size, date, orientation and location flag without decoding it.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary file object
        The photo. A file object is read from its current position.
    max_pixels : int, optional
        Largest accepted ``width * height``.
    max_file_bytes : int, optional
        Largest accepted file size in bytes.

    Returns
    -------
    ImageInfo
        Header metadata; ``original_size`` is the upright size.

    Raises
    ------
    UnsupportedImageError
        Empty file, not an image, or an image format that is not read.
    CorruptImageError
        The header is damaged.
    ImageTooLargeError
        More than `max_file_bytes` bytes or more than `max_pixels` pixels.
    ImageTooSmallError
        The shorter side is below :data:`MIN_SIDE`.
    ImageLoadError
        A path that does not exist or cannot be read.
    InvalidParameterError
        A limit that is not a positive integer.

    Notes
    -----
    Only headers are parsed, so a file truncated inside its pixel data passes here
    and fails in :func:`load_image`.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> Image.new("RGB", (400, 300)).save(buf, format="PNG")
    >>> read_image_info(buf.getvalue())
    ImageInfo(original_size=(400, 300), taken_at=None, format='PNG', orientation=1, has_location=False)
    """
    _check_positive_int(max_pixels, "max_pixels")
    _check_positive_int(max_file_bytes, "max_file_bytes")
    _register_heif_opener()
    with _open_source(source, max_file_bytes) as (fp, name):
        label = _label(name)
        with _quiet_pillow(), _open_pillow(fp, label, max_pixels) as im:
            header = _read_header(im, label, max_pixels)
            if not header.exif_deferred:
                return header.info
            return _header_info(im, _png_header_exif(im, fp), header.stored_size)


def load_image(
    source: ImageSource,
    *,
    max_side: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> LoadedImage:
    """Decode a photo into an upright 8-bit RGB array.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary file object
        The photo (JPEG, PNG, TIFF, WebP, HEIC/HEIF or GIF). A file object is read
        from its current position.
    max_side : int, optional
        If given, the image is shrunk (never enlarged) so that its longer side is
        `max_side` pixels. JPEGs are then decoded directly at a reduced scale,
        which is several times faster than decoding at full size.
    max_pixels : int, optional
        Largest accepted ``width * height``, checked before any pixel is decoded.
    max_file_bytes : int, optional
        Largest accepted file size in bytes, checked before the file is parsed.

    Returns
    -------
    LoadedImage
        ``rgb`` of shape (H, W, 3) and dtype uint8, upright; ``info``; ``scale``
        (``rgb`` width over the upright original width) and the source ``name``.

    Raises
    ------
    UnsupportedImageError
        Empty file, not an image (e.g. text or HTML with an image extension), or
        an image format that is not read.
    CorruptImageError
        Truncated or damaged data. Nothing is half-decoded.
    ImageTooLargeError
        More than `max_file_bytes` bytes or more than `max_pixels` pixels.
    ImageTooSmallError
        The shorter side is below :data:`MIN_SIDE`.
    ImageLoadError
        A path that does not exist or cannot be read.
    InvalidParameterError
        `max_side` or a limit that is not a positive integer.

    Notes
    -----
    - The EXIF orientation (all 8 values) is applied, so ``rgb`` is upright.
    - Conversion to 8-bit RGB: 16-bit samples are scaled so that 65535 -> 255;
      32-bit integer ("I") images are treated as 16-bit data; float ("F") images
      are taken as 0..1 if their maximum is at most 1, else as 0..255. Palette,
      greyscale, bilevel and CMYK (including Adobe inverted CMYK JPEGs) are
      converted with Pillow; transparency is composited over white. Colour
      profiles are not applied.
    - Pillow's own decompression-bomb ceiling (``2 * PIL.Image.MAX_IMAGE_PIXELS``,
      about 179 million pixels by default) still applies if `max_pixels` is larger.
    - Relies on ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` being False (Pillow's
      default) to detect truncated files; this module never changes it.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> Image.new("RGB", (400, 300), (200, 150, 120)).save(buf, format="PNG")
    >>> img = load_image(buf.getvalue(), max_side=200)
    >>> img.rgb.shape, img.rgb.dtype
    ((150, 200, 3), dtype('uint8'))
    >>> img.rgb[0, 0].tolist()
    [200, 150, 120]
    >>> img.scale, img.info.original_size, img.info.format
    (0.5, (400, 300), 'PNG')
    """
    if max_side is not None:
        _check_positive_int(max_side, "max_side")
    _check_positive_int(max_pixels, "max_pixels")
    _check_positive_int(max_file_bytes, "max_file_bytes")
    _register_heif_opener()
    with _open_source(source, max_file_bytes) as (fp, name):
        label = _label(name)
        with _quiet_pillow(), _open_pillow(fp, label, max_pixels) as im:
            header = _read_header(im, label, max_pixels)
            stored_w, stored_h = header.stored_size
            target = None
            if max_side is not None and max(stored_w, stored_h) > max_side:
                target = _fit_longest_side(stored_w, stored_h, max_side)
                if im.format in ("JPEG", "MPO"):
                    # Decode at 1/2, 1/4 or 1/8 scale straight from the DCT data.
                    im.draft("RGB", target)
            arr, pending = _decode(im, label, header)
            info = header.info
            if header.exif_deferred:
                # PNG may store eXIf after the pixel data, read by load().
                info = _header_info(im, _safe_exif(im), header.stored_size)
                pending = info.orientation
    height, width = arr.shape[:2]
    if max_side is not None and target is not None and max(width, height) > max_side:
        # The target comes from the header size (exact aspect ratio, unlike a draft's
        # rounded-up size) unless the decoder delivered a differently shaped image.
        if abs(width * stored_h - height * stored_w) > 2 * max(stored_w, stored_h):
            target = _fit_longest_side(width, height, max_side)
        arr = _resize_area(arr, target)
    arr = _apply_orientation(arr, pending)
    rgb = np.require(arr, dtype=np.uint8, requirements=["C_CONTIGUOUS", "WRITEABLE", "OWNDATA"])
    return LoadedImage(rgb=rgb, info=info, scale=rgb.shape[1] / info.original_size[0], name=name)


def read_labels(
    path: str | os.PathLike[str] | bytes, *, max_pixels: int | None = None, max_file_bytes: int | None = None
) -> np.ndarray:
    """Read a strokes image: a single-channel PNG of values 0-3.

    0 unlabelled, 1 depigmented skin, 2 normal skin, 3 not skin (see
    :func:`repigment.core.segmentation.validate_labels`, which checks the values
    and the size against the photo).

    Parameters
    ----------
    path : str, os.PathLike or bytes
        The PNG file, or its bytes.
    max_pixels : int, optional
        Refuse larger images (default: the photo pixel limit).
    max_file_bytes : int, optional
        Refuse larger files (default: the photo file-size limit).

    Returns
    -------
    ndarray of uint8, shape (H, W)

    Raises
    ------
    ImageLoadError
        If the file is missing, not a PNG, damaged, too large or not single-channel.
    """
    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    max_file_bytes = max_file_bytes or DEFAULT_MAX_FILE_BYTES
    if isinstance(path, (bytes, bytearray)):
        label, data = "labels", bytes(path[: max_file_bytes + 1])
    else:
        label = f"labels file {os.path.basename(os.fspath(path))!r}"
        try:
            with open(path, "rb") as handle:
                data = handle.read(max_file_bytes + 1)
        except OSError as exc:
            raise ImageLoadError(f"{label} could not be read ({exc.strerror or exc}); check the path") from exc
    if len(data) > max_file_bytes:
        raise ImageTooLargeError(
            f"{label} is larger than {max_file_bytes // (1024 * 1024)} MB; strokes need far less "
            "(raise REPIGMENT_MAX_FILE_MB if it really is this large)")
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise UnsupportedImageError(f"{label} is not a PNG; save the strokes as a single-channel PNG")
    with _quiet_pillow(), _open_pillow(io.BytesIO(data), label, max_pixels) as im:
        if im.width * im.height > max_pixels:
            raise ImageTooLargeError(f"{label} has {im.width * im.height:,} pixels, more than {max_pixels:,}")
        if im.mode not in ("L", "P", "I", "I;16", "1"):
            raise UnsupportedImageError(
                f"{label} has {im.mode} pixels; save it as a single-channel (greyscale) PNG of values 0-3")
        try:
            array = np.asarray(im if im.mode != "P" else im.convert("L"))
        except _DECODE_ERRORS as exc:
            raise CorruptImageError(f"{label} is damaged; save it again") from exc
    if array.min(initial=0) < 0 or array.max(initial=0) > 255:
        raise InvalidParameterError(f"{label} holds values outside 0-3; use 0-3 only")
    return array.astype(np.uint8)


class LabelsByImage(Mapping[str, np.ndarray]):
    """Strokes images by photo name, each read (:func:`read_labels`) only when asked for.

    A full-size strokes image is one byte per photo pixel (12 MB at 12 MP):
    a series with strokes on every visit would otherwise hold them all at
    once. Asking whether a photo has strokes reads nothing; each lookup reads
    its file again.

    Parameters
    ----------
    sources : mapping of str to path or bytes
        Each photo's strokes PNG, by the photo's file name.
    max_pixels, max_file_bytes : int, optional
        As for :func:`read_labels`.

    Examples
    --------
    >>> import cv2, numpy as np
    >>> png = cv2.imencode(".png", np.ones((64, 64), np.uint8))[1].tobytes()
    >>> strokes = LabelsByImage({"visit_01.jpg": png})
    >>> "visit_01.jpg" in strokes, strokes["visit_01.jpg"].shape
    (True, (64, 64))
    """

    def __init__(
        self,
        sources: Mapping[str, str | os.PathLike[str] | bytes],
        *,
        max_pixels: int | None = None,
        max_file_bytes: int | None = None,
    ):
        self._sources = dict(sources)
        self._limits = {"max_pixels": max_pixels, "max_file_bytes": max_file_bytes}

    def __getitem__(self, image: str) -> np.ndarray:
        return read_labels(self._sources[image], **self._limits)

    def __contains__(self, image: object) -> bool:
        return image in self._sources  # Mapping's own would read the file to answer

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)


def read_mask(
    path: str | os.PathLike[str], shape: tuple[int, int] | None = None, *, max_side: int | None = None
) -> np.ndarray | None:
    """Read a 0/255 mask PNG (as repigment writes them) as a bool array.

    Parameters
    ----------
    path : str or os.PathLike
        The mask file.
    shape : tuple of int, optional
        ``(H, W)`` to resize to (area average, cut at one half).
    max_side : int, optional
        Without ``shape``: reduce (never enlarge) so the longer side is at most this.

    Returns
    -------
    ndarray of bool or None
        ``None`` when the file is missing or not an image.
    """
    image = cv2.imread(os.fspath(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        return None
    height, width = image.shape
    if shape is None and max_side is not None:
        factor = min(1.0, max_side / max(height, width))
        shape = (max(1, int(round(height * factor))), max(1, int(round(width * factor))))
    if shape is not None and shape != image.shape:
        image = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return image >= 128


# --------------------------------------------------------------------------
# Opening


@functools.cache
def _register_heif_opener() -> None:
    """Teach Pillow to open HEIC/HEIF (iPhone photos); runs once per process."""
    import pillow_heif

    pillow_heif.register_heif_opener()


def _check_positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        msg = f"{name} must be a positive integer, got {value!r}"
        raise InvalidParameterError(msg)


@contextlib.contextmanager
def _open_source(source: ImageSource, max_file_bytes: int) -> Iterator[tuple[IO[bytes], str]]:
    """Yield a seekable binary file at offset 0 and the source's basename.

    The file size is checked first; paths are opened here so that filesystem
    errors are told apart from decoding errors.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        _check_file_size(len(data), max_file_bytes, "")
        yield io.BytesIO(data), ""
    elif isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        name = os.path.basename(path)
        name = name.decode(errors="replace") if isinstance(name, bytes) else name
        label = _label(name)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the with block below
        except FileNotFoundError as exc:
            raise ImageLoadError(f"{label} was not found; check the path and file name") from exc
        except IsADirectoryError as exc:
            raise ImageLoadError(f"{label} is a folder, not an image file; pass the path of a photo") from exc
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            msg = f"{label} could not be opened ({reason}); check that the file is readable"
            raise ImageLoadError(msg) from exc
        with f:
            if f.seekable():
                _check_file_size(os.fstat(f.fileno()).st_size, max_file_bytes, name)
                yield f, name
            else:  # a pipe or device: read it, within the limit
                yield io.BytesIO(_read_limited(f, max_file_bytes, name)), name
    elif hasattr(source, "read"):
        raw_name = getattr(source, "name", "")
        name = os.path.basename(raw_name) if isinstance(raw_name, str) else ""
        yield io.BytesIO(_read_limited(source, max_file_bytes, name)), name
    else:
        msg = f"source must be a path, bytes or a binary file object, not {type(source).__name__}"
        raise TypeError(msg)


def _read_limited(f: IO[bytes], max_file_bytes: int, name: str) -> bytes:
    """Read a stream to its end, refusing more than `max_file_bytes` bytes."""
    chunks = []
    total = 0
    while total <= max_file_bytes:
        chunk = f.read(min(1 << 22, max_file_bytes + 1 - total))
        if not chunk:
            break
        if not isinstance(chunk, bytes | bytearray):
            msg = f"{_label(name)} was opened in text mode; open it in binary mode ('rb')"
            raise InvalidParameterError(msg)
        chunks.append(chunk)
        total += len(chunk)
    if total > max_file_bytes:
        msg = (
            f"{_label(name)} is larger than the {_megabytes(max_file_bytes)} limit; "
            "reduce the photo or raise the limit (REPIGMENT_MAX_FILE_MB)"
        )
        raise ImageTooLargeError(msg)
    _check_file_size(total, max_file_bytes, name)
    return b"".join(chunks)


def _megabytes(n: int) -> str:
    return f"{n / 1024**2:.1f} MB".replace(".0 MB", " MB")


def _check_file_size(size: int, max_file_bytes: int, name: str) -> None:
    label = _label(name)
    if size == 0:
        raise UnsupportedImageError(f"{label} is empty (0 bytes); copy or export the photo again")
    if size > max_file_bytes:
        msg = (
            f"{label} is {_megabytes(size)}, more than the {_megabytes(max_file_bytes)} limit; "
            "reduce the photo or raise the limit (REPIGMENT_MAX_FILE_MB)"
        )
        raise ImageTooLargeError(msg)


# ``warnings.catch_warnings`` saves and restores the process-wide filter list:
# two threads loading photos at once (the pipeline prefetches) would restore
# each other's filters and leave them installed. One loader at a time.
_WARNING_FILTERS_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_pillow() -> Iterator[None]:
    """Keep Pillow's data warnings (bombs, odd EXIF, bad MPO...) inside the loader."""
    with _WARNING_FILTERS_LOCK, warnings.catch_warnings():
        # Our own pixel limit replaces Pillow's warning.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        # Plugins report damaged metadata as plain UserWarnings.
        warnings.simplefilter("ignore", UserWarning)
        yield


@contextlib.contextmanager
def _open_pillow(fp: IO[bytes], label: str, max_pixels: int | None) -> Iterator[Image.Image]:
    """``Image.open`` restricted to the supported formats, with errors translated."""
    fp.seek(0)
    head = fp.read(256)
    fp.seek(0)
    try:
        im = Image.open(fp, formats=_PIL_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(_bomb_message(label, str(exc), max_pixels)) from exc
    except UnidentifiedImageError as exc:
        raise _unidentified_error(label, head) from exc
    except MemoryError as exc:
        msg = f"{label} could not be opened in the available memory; downscale the photo"
        raise ImageTooLargeError(msg) from exc
    except _DECODE_ERRORS as exc:
        kind = _sniff(head)[0] or "image"
        msg = f"{label} looks like a {kind} but its header is damaged; copy the original photo again"
        raise CorruptImageError(msg) from exc
    with im:
        yield im


def _bomb_message(label: str, pillow_message: str, max_pixels: int | None) -> str:
    match = re.search(r"\((\d+) pixels\)", pillow_message)
    pixels = f"{int(match.group(1)):,} pixels" if match else "too many pixels"
    pillow_limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    if max_pixels is not None and max_pixels < pillow_limit:
        return (
            f"{label} declares {pixels}, more than the limit of {max_pixels:,}; "
            "downscale the photo or raise the limit (REPIGMENT_MAX_PIXELS)"
        )
    return (
        f"{label} declares {pixels}, more than Pillow's safety limit of {pillow_limit:,}; "
        "downscale the photo or raise PIL.Image.MAX_IMAGE_PIXELS"
    )


_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1", b"mif2"}
)


def _sniff(head: bytes) -> tuple[str | None, bool]:
    """Name the file type from its first bytes: (kind or None, supported)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG", True
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG", True
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF", True
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF", True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP", True
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "HEIF", True
        if brand in (b"avif", b"avis"):
            return "AVIF", False
        return "video", False
    if head.startswith(b"%PDF"):
        return "PDF", False
    if head[128:132] == b"DICM":
        return "DICOM", False
    if head.startswith(b"8BPS"):
        return "Photoshop (PSD)", False
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "JPEG 2000", False
    if head.startswith(b"BM") and len(head) >= 18 and head[14] in (12, 40, 52, 56, 64, 108, 124):
        return "BMP", False
    return None, False


def _unidentified_error(label: str, head: bytes) -> ImageLoadError:
    kind, supported = _sniff(head)
    if supported:
        return CorruptImageError(
            f"{label} looks like a {kind} but its header is damaged or truncated; "
            "copy the original photo again"
        )
    if kind is not None:
        return UnsupportedImageError(
            f"{label} is a {kind} file, which repigment does not read; export it as JPEG or PNG and try again"
        )
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml", b"<svg")):
        return UnsupportedImageError(
            f"{label} is a web page or XML document, not a photo; "
            "save the image itself, not the page, and try again"
        )
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text and all(c.isprintable() or c in "\t\r\n" for c in text.rstrip("\x00")[:200]):
        msg = f"{label} contains text, not image data; check that the right file was chosen"
        return UnsupportedImageError(msg)
    return UnsupportedImageError(
        f"{label} is not an image repigment can read (expected {_FORMAT_NAMES}); "
        "export it as JPEG or PNG and try again"
    )


# --------------------------------------------------------------------------
# Header


def _read_header(im: Image.Image, label: str, max_pixels: int) -> _Header:
    """Check the declared size against the limits and collect the metadata."""
    width, height = im.size
    if width * height > max_pixels:
        msg = (
            f"{label} has {width}x{height} = {width * height:,} pixels, more than the limit of "
            f"{max_pixels:,}; downscale the photo or raise the limit (REPIGMENT_MAX_PIXELS)"
        )
        raise ImageTooLargeError(msg)
    if min(width, height) < MIN_SIDE:
        msg = (
            f"{label} is only {width}x{height} pixels; at least {MIN_SIDE} pixels per side are "
            "needed, so use the original photo rather than a thumbnail"
        )
        raise ImageTooSmallError(msg)
    # Pillow's PNG getexif() decodes the whole image when eXIf is not in the header.
    deferred = im.format == "PNG" and "exif" not in im.info
    exif = Image.Exif() if deferred else _safe_exif(im)
    return _Header(info=_header_info(im, exif, im.size), stored_size=im.size, exif_deferred=deferred)


def _safe_exif(im: Image.Image) -> Image.Exif:
    try:
        return im.getexif()
    except _METADATA_ERRORS:
        return Image.Exif()


def _header_info(im: Image.Image, exif: Image.Exif, stored_size: tuple[int, int]) -> ImageInfo:
    fmt = "JPEG" if im.format == "MPO" else str(im.format)
    if fmt == "HEIF":
        # libheif already applied the container's rotation; pillow-heif keeps the EXIF value aside.
        orientation = _valid_orientation(im.info.get("original_orientation"))
        upright = stored_size
    else:
        orientation = _valid_orientation(_exif_get(exif, _TAG_ORIENTATION))
        width, height = stored_size
        tags = getattr(im, "tag_v2", None)
        if fmt == "TIFF" and tags is not None:
            # Recent Pillow reports TIFF sizes already rotated; the tags are the stored size.
            width, height = tags.get(256, width), tags.get(257, height)
        upright = (height, width) if orientation >= 5 else (width, height)
    return ImageInfo(
        original_size=(int(upright[0]), int(upright[1])),
        taken_at=_taken_at(exif),
        format=fmt,
        orientation=orientation,
        has_location=_has_location(im, exif),
    )


def _exif_get(exif: Image.Exif, tag: int, ifd: int | None = None) -> object:
    try:
        return (exif.get_ifd(ifd) if ifd is not None else exif).get(tag)
    except _METADATA_ERRORS:
        return None


def _valid_orientation(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 8:
        return value
    return 1


_EXIF_DATE = re.compile(r"(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?")


def _parse_exif_datetime(value: object) -> datetime | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" (or close variants) as a naive datetime, else None."""
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str):
        return None
    match = _EXIF_DATE.match(value.strip().strip("\x00").strip())
    if match is None:
        return None
    parts = [int(p) if p else 0 for p in match.groups()]
    try:
        return datetime(*parts)  # type: ignore[arg-type]
    except (ValueError, OverflowError):
        return None


def _taken_at(exif: Image.Exif) -> datetime | None:
    taken = _parse_exif_datetime(_exif_get(exif, _TAG_DATETIME_ORIGINAL, _TAG_EXIF_IFD))
    if taken is None:
        taken = _parse_exif_datetime(_exif_get(exif, _TAG_DATETIME))
    return taken


_XMP_GPS_ATTRIBUTE = re.compile(rb"""\s[A-Za-z_][\w.\-]*:GPS\w*\s*=\s*(?:"[^"]*"|'[^']*')""")
_XMP_GPS_ELEMENT = re.compile(rb"<([A-Za-z_][\w.\-]*:GPS\w*)\b[^>]*?(?:/>|>.*?</\1\s*>)", re.DOTALL)


def _xmp_packets(im: Image.Image) -> list[bytes]:
    packets = [im.info.get("xmp"), im.info.get("XML:com.adobe.xmp")]
    tags = getattr(im, "tag_v2", None)
    if tags is not None:
        with contextlib.suppress(*_METADATA_ERRORS):
            packets.append(tags.get(_TAG_XMP))
    out = []
    for packet in packets:
        if isinstance(packet, str):
            packet = packet.encode("utf-8", errors="replace")
        if isinstance(packet, bytes | bytearray):
            out.append(bytes(packet))
    return out


def _has_location(im: Image.Image, exif: Image.Exif) -> bool:
    try:
        if exif.get_ifd(_TAG_GPS_IFD):
            return True
    except _METADATA_ERRORS:
        if _TAG_GPS_IFD in exif:  # unreadable GPS block: assume it holds a location
            return True
    return any(_XMP_GPS_ATTRIBUTE.search(p) or _XMP_GPS_ELEMENT.search(p) for p in _xmp_packets(im))


def _png_header_exif(im: Image.Image, fp: IO[bytes]) -> Image.Exif:
    """A PNG's EXIF without decoding it: eXIf anywhere, else an ImageMagick raw profile."""
    exif = Image.Exif()
    with contextlib.suppress(*_METADATA_ERRORS):
        raw = _png_exif_from_file(fp)
        if raw is None:
            profile = im.info.get("Raw profile type exif") or im.info.get("Raw profile type APP1")
            if isinstance(profile, str):
                raw = bytes.fromhex("".join(profile.split("\n")[3:]))
        if raw:
            exif.load(raw)
    return exif


def _png_exif_from_file(fp: IO[bytes]) -> bytes | None:
    """The eXIf chunk of a PNG, found by skipping from chunk header to chunk header."""
    position = fp.tell()
    try:
        fp.seek(8)
        while True:
            header = fp.read(8)
            if len(header) < 8:
                return None
            length, ctype = struct.unpack(">I4s", header)
            if ctype == b"eXIf":
                payload = fp.read(length)
                return payload if len(payload) == length else None
            if ctype == b"IEND":
                return None
            fp.seek(length + 4, io.SEEK_CUR)
    finally:
        fp.seek(position)


# --------------------------------------------------------------------------
# Decoding


def _decode(im: Image.Image, label: str, header: _Header) -> tuple[np.ndarray, int]:
    """Fully decode the first frame to (H, W, 3) uint8; also return the orientation still to apply."""
    fmt = header.info.format
    try:
        im.load()
        arr = _to_rgb8(im)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(_bomb_message(label, str(exc), None)) from exc
    except MemoryError as exc:
        msg = f"{label} could not be decoded in the available memory; pass max_side or downscale the photo"
        raise ImageTooLargeError(msg) from exc
    except _DECODE_ERRORS as exc:
        msg = (
            f"{label} is truncated or damaged: its {fmt} pixel data could not be decoded; "
            "copy the original photo again"
        )
        raise CorruptImageError(msg) from exc
    pending = header.info.orientation
    if fmt == "HEIF":
        pending = 1
    elif fmt == "TIFF" and _TAG_ORIENTATION not in getattr(im, "tag_v2", {}):
        pending = 1  # recent Pillow rotates TIFFs itself on load, then drops the tag
    return arr, pending


def _to_rgb8(im: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to (H, W, 3) uint8 RGB, alpha composited over white."""
    mode = im.mode
    has_transparency = "transparency" in im.info
    if mode == "RGB" and not has_transparency:
        return np.asarray(im)
    if mode in ("L", "1") and not has_transparency:
        grey = np.asarray(im.convert("L") if mode == "1" else im)
        return cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2RGB)
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(im).astype(np.int64)
        grey = ((np.clip(values, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    if mode == "F":
        values = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        if values.size and values.max() <= 1.0:
            values = values * 255.0
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or has_transparency:
        rgba = np.asarray(im if mode == "RGBA" else im.convert("RGBA"))
        return _over_white(rgba)
    return np.asarray(im.convert("RGB"))  # CMYK, YCbCr, LAB, HSV, ...


def _over_white(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:4]
    if alpha.min() == 255:
        return rgba[..., :3]
    a = alpha.astype(np.uint16)
    rgb = rgba[..., :3].astype(np.uint16)
    return ((rgb * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def _fit_longest_side(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is exactly `max_side`."""
    if width >= height:
        return max_side, max(1, int(height * max_side / width + 0.5))
    return max(1, int(width * max_side / height + 0.5)), max_side


def _resize_area(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (arr.shape[1], arr.shape[0]) == size:
        return arr
    return cv2.resize(np.ascontiguousarray(arr), size, interpolation=cv2.INTER_AREA)


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an image stored with EXIF `orientation` upright (same as ImageOps.exif_transpose)."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(arr, -1)
    if orientation == 7:
        return arr[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return np.rot90(arr, 1)
    return arr
