"""Remove GPS location data from photo files without re-encoding them.

This module holds :func:`strip_location` and its private helpers: the walkers
for the TIFF/EXIF IFD structure, JPEG segments, PNG chunks, WebP chunks, HEIF
boxes (``iinf``/``iloc``) and GIF extensions, which blank the EXIF GPS block
and XMP ``GPS*`` fields in place. Header parsing and the check for remaining
location data come from :mod:`repigment.io.reading`.
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
import zlib
from collections.abc import Iterator

from repigment.errors import UnsupportedImageError
from repigment.io._common import _label
from repigment.io.reading import (
    _TAG_GPS_IFD,
    _TAG_XMP,
    _XMP_GPS_ATTRIBUTE,
    _XMP_GPS_ELEMENT,
    _has_location,
    _open_pillow,
    _png_header_exif,
    _quiet_pillow,
    _register_heif_opener,
    _safe_exif,
    read_image_info,  # noqa: F401  (used by strip_location's doctest)
)


def strip_location(data: bytes) -> bytes:
    """Return the same image file with its GPS location removed.

    Parameters
    ----------
    data : bytes
        A JPEG, PNG, TIFF, WebP, HEIC/HEIF or GIF file.

    Returns
    -------
    bytes
        The file with the EXIF GPS block (IFD 0x8825) and XMP ``GPS*`` fields
        removed. When there is no location, `data` is returned unchanged.

    Raises
    ------
    UnsupportedImageError
        Not an image, an unsupported format, or location data stored in a layout
        that cannot be rewritten safely (the result is verified before returning).
    CorruptImageError
        The header is damaged.
    ImageTooLargeError
        The header declares more pixels than Pillow will parse.

    Notes
    -----
    The metadata is edited in place, so the file keeps its exact length and
    structure and nothing is re-encoded:

    - The GPS pointer is removed from the EXIF IFD that holds it and the GPS
      block itself, with its out-of-line values, is overwritten with zeros.
    - XMP ``...:GPS...`` properties are overwritten with spaces.
    - Pixel data, ICC profile, date/time tags, orientation, camera tags,
      MakerNote, thumbnail and any other XMP are preserved byte for byte. (The
      PNG chunks that are edited are re-compressed if they were compressed and
      get a new CRC, so a PNG may change length.)

    Covered containers: JPEG APP1 segments (including the extra images of MPO
    and gain-map JPEGs), PNG ``eXIf``, XMP and ImageMagick "Raw profile" text
    chunks, WebP ``EXIF``/``XMP `` chunks, TIFF IFDs, HEIF ``Exif`` and XMP items
    and GIF XMP. Location names (city, country) written as text are not GPS data
    and are kept.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> exif = Image.Exif()
    >>> exif.get_ifd(0x8825)[1] = "N"
    >>> buf = io.BytesIO()
    >>> Image.new("RGB", (64, 64)).save(buf, format="JPEG", exif=exif)
    >>> read_image_info(buf.getvalue()).has_location
    True
    >>> read_image_info(strip_location(buf.getvalue())).has_location
    False
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        msg = f"strip_location() takes the image file's bytes, not {type(data).__name__}"
        raise TypeError(msg)
    data = bytes(data)
    label = _label("")
    if not data:
        raise UnsupportedImageError(f"{label} is empty (0 bytes); pass the photo's file contents")
    _register_heif_opener()
    fmt = _location_format(data, label)
    if fmt is None:
        return data
    buf = bytearray(data)
    # Parsers skip what they do not understand; the check below catches leftovers.
    with contextlib.suppress(IndexError, ValueError, struct.error):
        if fmt == "JPEG":
            _strip_jpeg(buf)
        elif fmt == "PNG":
            buf = _strip_png(buf)
        elif fmt == "WEBP":
            _strip_webp(buf)
        elif fmt == "TIFF":
            _scrub_tiff(buf, 0, len(buf))
        elif fmt == "HEIF":
            _strip_heif(buf)
        elif fmt == "GIF":
            _strip_gif(buf)
    result = bytes(buf)
    if _location_format(result, label) is not None:
        msg = (
            f"{label}: its {fmt} file stores location data in a layout repigment "
            "cannot rewrite safely; remove it with a tool such as exiftool -gps:all= first"
        )
        raise UnsupportedImageError(msg)
    return result


# --------------------------------------------------------------------------
# Location removal. Everything below edits metadata in place (same length),
# so offsets elsewhere in the file stay valid and pixels are never touched.


def _location_format(data: bytes, label: str) -> str | None:
    """The file's format if it carries location data, else None (header only)."""
    fp = io.BytesIO(data)
    with _quiet_pillow(), _open_pillow(fp, label, None) as im:
        fmt = "JPEG" if im.format == "MPO" else str(im.format)
        if fmt == "PNG" and "exif" not in im.info:
            exif = _png_header_exif(im, fp)
        else:
            exif = _safe_exif(im)
        return fmt if _has_location(im, exif) else None


# Bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, ..., IFD8).
_TIFF_TYPE_SIZES = {
    1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8
}


def _scrub_tiff(buf: bytearray, start: int, end: int) -> None:
    """Remove GPS from the TIFF structure (EXIF block or TIFF file) in ``buf[start:end]``.

    In every IFD of the main chain the GPS pointer entry is deleted (later entries
    move up, the freed entry becomes zeros) and the GPS IFD with its values is
    zeroed. XMP (tag 700) is scrubbed too. Classic TIFF and BigTIFF; malformed
    parts are skipped, and strip_location() re-checks the result.
    """
    if end - start < 8:
        return
    order = bytes(buf[start : start + 2])
    if order not in (b"II", b"MM"):
        return
    e = "<" if order == b"II" else ">"
    magic = struct.unpack_from(e + "H", buf, start + 2)[0]
    if magic == 42:
        count_fmt, entry_size, offset_fmt = "H", 12, "I"
        first = struct.unpack_from(e + "I", buf, start + 4)[0]
    elif magic == 43 and end - start >= 16:  # BigTIFF
        count_fmt, entry_size, offset_fmt = "Q", 20, "Q"
        first = struct.unpack_from(e + "Q", buf, start + 8)[0]
    else:
        return
    count_size = struct.calcsize(count_fmt)
    value_size = struct.calcsize(offset_fmt)

    def entries(ifd: int) -> tuple[int, int] | None:
        pos = start + ifd
        if ifd < 8 or pos + count_size > end:
            return None
        n = struct.unpack_from(e + count_fmt, buf, pos)[0]
        if pos + count_size + n * entry_size + value_size > end:
            return None
        return pos, n

    def value_range(entry: int) -> tuple[int, int] | None:
        typ = struct.unpack_from(e + "H", buf, entry + 2)[0]
        count = struct.unpack_from(e + offset_fmt, buf, entry + 4)[0]
        size = _TIFF_TYPE_SIZES.get(typ, 0) * count
        if size == 0:
            return None
        if size <= value_size:
            return entry + 4 + value_size, entry + 4 + value_size + size
        data = start + struct.unpack_from(e + offset_fmt, buf, entry + 4 + value_size)[0]
        return (data, data + size) if start < data and data + size <= end else None

    def zero_ifd(ifd: int) -> None:
        found = entries(ifd)
        if found is None:
            return
        pos, n = found
        for i in range(n):
            entry = pos + count_size + i * entry_size
            span = value_range(entry)
            if span is not None:
                buf[span[0] : span[1]] = bytes(span[1] - span[0])
        stop = pos + count_size + n * entry_size + value_size
        buf[pos:stop] = bytes(stop - pos)

    seen: set[int] = set()
    ifd = first
    while ifd and ifd not in seen and len(seen) < 1024:
        seen.add(ifd)
        found = entries(ifd)
        if found is None:
            return
        pos, n = found
        i = 0
        while i < n:
            entry = pos + count_size + i * entry_size
            tag = struct.unpack_from(e + "H", buf, entry)[0]
            if tag == _TAG_GPS_IFD:
                typ = struct.unpack_from(e + "H", buf, entry + 2)[0]
                # LONG/IFD pointers are 4 bytes even in BigTIFF's 8-byte value slot.
                gps = struct.unpack_from(e + ("I" if typ in (4, 13) else "Q"), buf, entry + 4 + value_size)[0]
                if gps not in seen:
                    zero_ifd(gps)
                # Delete the entry: shift later entries and the next-IFD offset up.
                tail_end = pos + count_size + n * entry_size + value_size
                buf[entry : tail_end - entry_size] = buf[entry + entry_size : tail_end]
                buf[tail_end - entry_size : tail_end] = bytes(entry_size)
                n -= 1
                struct.pack_into(e + count_fmt, buf, pos, n)
                continue
            if tag == _TAG_XMP:
                span = value_range(entry)
                if span is not None:
                    _scrub_xmp(buf, *span)
            i += 1
        ifd = struct.unpack_from(e + offset_fmt, buf, pos + count_size + n * entry_size)[0]


def _blank(match: re.Match[bytes]) -> bytes:
    return b" " * len(match.group(0))


def _scrub_xmp(buf: bytearray, start: int, end: int) -> None:
    """Overwrite XMP ``prefix:GPS...`` attributes and elements with spaces, in place."""
    packet = bytes(buf[start:end])
    cleaned = _XMP_GPS_ATTRIBUTE.sub(_blank, _XMP_GPS_ELEMENT.sub(_blank, packet))
    if cleaned != packet:
        buf[start:end] = cleaned


_XMP_APP1 = b"http://ns.adobe.com/xap/1.0/\x00"


def _jpeg_segments(buf: bytearray, soi: int) -> Iterator[tuple[int, int, int]]:
    """(marker, payload start, payload end) of the segments from SOI up to SOS."""
    if buf[soi : soi + 2] != b"\xff\xd8":
        return
    pos = soi + 2
    while pos + 4 <= len(buf):
        if buf[pos] != 0xFF:
            return
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xD9:
            return
        length = struct.unpack_from(">H", buf, pos + 2)[0]
        if length < 2 or pos + 2 + length > len(buf):
            return
        yield marker, pos + 4, pos + 2 + length
        if marker == 0xDA:
            return
        pos += 2 + length


def _strip_jpeg(buf: bytearray) -> None:
    def scrub_from(soi: int) -> int:
        last = soi
        for marker, start, stop in _jpeg_segments(buf, soi):
            last = stop
            if marker != 0xE1:
                continue
            if buf[start : start + 5] == b"Exif\x00":
                _scrub_tiff(buf, start + 6, stop)
            elif buf[start : start + len(_XMP_APP1)] == _XMP_APP1:
                _scrub_xmp(buf, start + len(_XMP_APP1), stop)
        return last

    after = scrub_from(0)
    # Later images (MPO views, gain maps): FF D8 cannot occur inside entropy-coded data.
    soi = buf.find(b"\xff\xd8\xff", after)
    while soi != -1:
        scrub_from(soi)
        soi = buf.find(b"\xff\xd8\xff", soi + 3)


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def _scrub_exif_blob(blob: bytes) -> bytes:
    work = bytearray(blob)
    offset = 6 if work[:5] == b"Exif\x00" else 0
    _scrub_tiff(work, offset, len(work))
    return bytes(work)


def _scrub_raw_profile(text: bytes) -> bytes:
    """ImageMagick "Raw profile type exif" text: newline, name, length, hex lines."""
    lines = text.split(b"\n")
    if len(lines) < 4:
        return text
    body = lines[3:]
    try:
        blob = bytes.fromhex(b"".join(body).decode("ascii"))
    except ValueError:
        return text
    new_hex = _scrub_exif_blob(blob).hex().encode("ascii")
    out, pos = [], 0
    for line in body:  # keep the original line layout
        width = len(line.strip())
        out.append(line.replace(line.strip(), new_hex[pos : pos + width]) if width else line)
        pos += width
    return b"\n".join(lines[:3] + out)


def _strip_png(buf: bytearray) -> bytearray:
    out = bytearray(buf[:8])
    pos = 8
    while pos + 12 <= len(buf):
        length, ctype = struct.unpack_from(">I4s", buf, pos)
        stop = pos + 12 + length
        if stop > len(buf):
            break
        payload = bytes(buf[pos + 8 : pos + 8 + length])
        new = payload
        if ctype == b"eXIf":
            new = _scrub_exif_blob(payload)
        elif ctype in (b"tEXt", b"zTXt", b"iTXt"):
            new = _scrub_png_text(ctype, payload)
        out += _png_chunk(ctype, new) if new != payload else buf[pos:stop]
        pos = stop
        if ctype == b"IEND":
            break
    out += buf[pos:]
    return out


def _scrub_png_text(ctype: bytes, payload: bytes) -> bytes:
    """Scrub an XMP or "Raw profile type exif/APP1" text chunk; other chunks are returned as is."""
    keyword, sep, rest = payload.partition(b"\x00")
    is_xmp = ctype == b"iTXt" and keyword == b"XML:com.adobe.xmp"
    is_raw_exif = keyword in (b"Raw profile type exif", b"Raw profile type APP1")
    if not sep or not (is_xmp or is_raw_exif):
        return payload
    try:
        if ctype == b"tEXt":
            prefix, compressed, text = b"", False, rest
        elif ctype == b"zTXt":
            prefix, compressed, text = rest[:1], True, rest[1:]
        else:  # iTXt: compression flag, method, language\0, translated keyword\0, text
            language, _, tail = rest[2:].partition(b"\x00")
            translated, _, text = tail.partition(b"\x00")
            compressed = bool(rest[0])
            prefix = rest[:2] + language + b"\x00" + translated + b"\x00"
        plain = zlib.decompress(text) if compressed else text
    except (zlib.error, IndexError):
        return payload
    if is_xmp:
        work = bytearray(plain)
        _scrub_xmp(work, 0, len(work))
        scrubbed = bytes(work)
    else:
        scrubbed = _scrub_raw_profile(plain)
    if scrubbed == plain:
        return payload
    return keyword + b"\x00" + prefix + (zlib.compress(scrubbed) if compressed else scrubbed)


def _strip_webp(buf: bytearray) -> None:
    pos = 12
    end = min(len(buf), 8 + struct.unpack_from("<I", buf, 4)[0])
    while pos + 8 <= end:
        fourcc, size = struct.unpack_from("<4sI", buf, pos)
        start, stop = pos + 8, pos + 8 + size
        if stop > end:
            return
        if fourcc == b"EXIF":
            offset = 6 if buf[start : start + 5] == b"Exif\x00" else 0
            _scrub_tiff(buf, start + offset, stop)
        elif fourcc == b"XMP ":
            _scrub_xmp(buf, start, stop)
        pos = stop + (size & 1)


def _iter_boxes(buf: bytearray, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """ISO-BMFF boxes in ``buf[start:end]``: (type, payload start, box end)."""
    pos = start
    while pos + 8 <= end:
        size, btype = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size = struct.unpack_from(">Q", buf, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield btype, pos + header, pos + size
        pos += size


# (construction method, base offset, [(extent offset, extent length), ...])
_IlocEntry = tuple[int, int, list[tuple[int, int]]]


def _strip_heif(buf: bytearray) -> None:
    """Scrub the HEIF ``Exif`` items and XMP (``mime`` rdf+xml) items, found via iinf/iloc."""
    meta = next(((s, e) for t, s, e in _iter_boxes(buf, 0, len(buf)) if t == b"meta"), None)
    if meta is None:
        return
    item_types: dict[int, bytes] = {}
    locations: dict[int, list[_IlocEntry]] = {}
    idat: tuple[int, int] | None = None
    for btype, start, stop in _iter_boxes(buf, meta[0] + 4, meta[1]):
        if btype == b"iinf":
            version = buf[start]
            first = start + 4 + (2 if version == 0 else 4)
            for itype, istart, istop in _iter_boxes(buf, first, stop):
                if itype == b"infe" and buf[istart] >= 2:
                    id_size = 2 if buf[istart] == 2 else 4
                    item_id = int.from_bytes(buf[istart + 4 : istart + 4 + id_size], "big")
                    kind = bytes(buf[istart + 6 + id_size : istart + 10 + id_size])
                    if kind == b"mime":
                        name_end = buf.find(b"\x00", istart + 10 + id_size, istop)
                        content_end = buf.find(b"\x00", name_end + 1, istop)
                        if name_end != -1 and content_end != -1:
                            content = bytes(buf[name_end + 1 : content_end])
                            kind = b"xmp" if content == b"application/rdf+xml" else kind
                    item_types[item_id] = kind
        elif btype == b"iloc":
            locations = _parse_iloc(buf, start, stop)
        elif btype == b"idat":
            idat = (start, stop)
    for item_id, kind in item_types.items():
        if kind not in (b"Exif", b"xmp") or len(locations.get(item_id, ())) != 1:
            continue  # multi-extent items are left alone; the final check reports them
        method, base, extents = locations[item_id][0]
        if len(extents) != 1:
            continue
        offset, length = extents[0]
        if method == 0:  # offsets into the file
            origin, limit = 0, len(buf)
        elif method == 1 and idat is not None:  # offsets into the idat box
            origin, limit = idat
        else:
            continue
        begin = origin + base + offset
        finish = limit if length == 0 else begin + length
        if not origin <= begin < finish <= limit:
            continue
        if kind == b"Exif":
            tiff = begin + 4 + int.from_bytes(buf[begin : begin + 4], "big")
            _scrub_tiff(buf, tiff, finish)
        else:
            _scrub_xmp(buf, begin, finish)


def _parse_iloc(buf: bytearray, start: int, stop: int) -> dict[int, list[_IlocEntry]]:
    """item_ID -> [(construction method, base offset, [(extent offset, extent length)])]."""
    version = buf[start]
    pos = start + 4
    offset_size, length_size = buf[pos] >> 4, buf[pos] & 15
    base_size, index_size = buf[pos + 1] >> 4, (buf[pos + 1] & 15) if version in (1, 2) else 0
    pos += 2

    def read(size: int) -> int:
        nonlocal pos
        if pos + size > stop:
            raise IndexError("iloc box is truncated")
        value = int.from_bytes(buf[pos : pos + size], "big")
        pos += size
        return value

    out: dict[int, list[_IlocEntry]] = {}
    try:
        count = read(2 if version < 2 else 4)
        for _ in range(count):
            item_id = read(2 if version < 2 else 4)
            method = read(2) & 15 if version in (1, 2) else 0
            read(2)  # data_reference_index
            base = read(base_size)
            extents = []
            for _ in range(read(2)):
                read(index_size)
                extents.append((read(offset_size), read(length_size)))
            out.setdefault(item_id, []).append((method, base, extents))
    except IndexError:
        pass
    return out


def _strip_gif(buf: bytearray) -> None:
    """GIF XMP (application extension "XMP DataXMP") is raw text; blank its GPS fields."""
    pos = buf.find(b"\x21\xff\x0bXMP DataXMP")
    if pos != -1:
        end = buf.find(b"</x:xmpmeta>", pos)
        _scrub_xmp(buf, pos + 14, len(buf) if end == -1 else end)
