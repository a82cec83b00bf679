"""Tests for repigment.io against synthetic images with known content."""

from __future__ import annotations

import io
import os
import struct
import time
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import png_chunk, png_declaring
from PIL import Image, ImageOps

from repigment import io as rio
from repigment.errors import (
    CorruptImageError,
    ImageLoadError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidParameterError,
    UnsupportedImageError,
)

pillow_heif = pytest.importorskip("pillow_heif")
pillow_heif.register_heif_opener()
HEIF_ENCODER = bool(pillow_heif.libheif_info().get("HEIF"))
needs_heif_encoder = pytest.mark.skipif(not HEIF_ENCODER, reason="libheif has no HEVC encoder")

DTO = datetime(2021, 5, 6, 7, 8, 9)
# Pillow's transpose that undoes each EXIF orientation (what a viewer applies).
UPRIGHT_OP = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# ...and the transpose that produces the stored image from the upright one.
STORE_OP = {**UPRIGHT_OP, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def asymmetric(width: int = 96, height: int = 72) -> Image.Image:
    """Smooth colour gradients plus one bright corner block: no symmetry at all."""
    y, x = np.mgrid[0:height, 0:width]
    arr = np.stack(
        [x * 255 // (width - 1), y * 255 // (height - 1), (x + 2 * y) * 255 // (width + 2 * height)], axis=-1
    ).astype(np.uint8)
    arr[: height // 4, : width // 4] = (255, 255, 255)
    return Image.fromarray(arr)


def encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        kwargs.setdefault("quality", 95)
    if fmt == "WEBP":
        kwargs.setdefault("lossless", True)
    if fmt == "HEIF":
        kwargs.setdefault("quality", 95)
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def make_exif(
    *, orientation: int | None = None, taken: object = "2021:05:06 07:08:09", gps: bool = False
) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if taken is not None:
        exif.get_ifd(0x8769)[36867] = taken
    if gps:
        gps_ifd = exif.get_ifd(0x8825)
        gps_ifd[0] = b"\x02\x02\x00\x00"
        gps_ifd[1] = "N"
        gps_ifd[2] = (51.0, 30.0, 12.5)
        gps_ifd[3] = "W"
        gps_ifd[4] = (0.0, 7.0, 40.0)
    return exif


def as_array(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --------------------------------------------------------------------------
# Formats and sources

LOSSLESS = ["PNG", "TIFF", "WEBP"]
FORMATS = ["JPEG", *LOSSLESS, pytest.param("HEIF", marks=needs_heif_encoder)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_each_format(tmp_path: Path, fmt: str) -> None:
    original = asymmetric()
    path = tmp_path / f"visit.{fmt.lower()}"
    path.write_bytes(encode(original, fmt))

    loaded = rio.load_image(path)

    assert loaded.rgb.shape == (72, 96, 3) and loaded.rgb.dtype == np.uint8
    assert loaded.rgb.flags.c_contiguous and loaded.rgb.flags.writeable
    assert loaded.info.format == fmt
    assert loaded.info.original_size == (96, 72)
    assert loaded.scale == 1.0
    assert loaded.name == path.name
    expected = np.asarray(original)
    if fmt in LOSSLESS:
        np.testing.assert_array_equal(loaded.rgb, expected)
    else:
        assert mean_abs_diff(loaded.rgb, expected) < 4


def test_bytes_file_object_and_path_inputs_agree(tmp_path: Path) -> None:
    data = encode(asymmetric(), "PNG")
    path = tmp_path / "IMG_0001.png"
    path.write_bytes(data)

    from_bytes = rio.load_image(data)
    from_bytearray = rio.load_image(bytearray(data))
    from_buffer = rio.load_image(io.BytesIO(data))
    with path.open("rb") as f:
        from_file = rio.load_image(f)
    from_str = rio.load_image(str(path))

    for loaded in (from_bytearray, from_buffer, from_file, from_str):
        np.testing.assert_array_equal(loaded.rgb, from_bytes.rgb)
    assert from_bytes.name == "" and from_buffer.name == ""
    assert from_file.name == from_str.name == "IMG_0001.png"
    assert rio.read_image_info(io.BytesIO(data)) == rio.read_image_info(path) == from_bytes.info


def test_unknown_source_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="path, bytes or a binary file"):
        rio.load_image(12345)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Orientation


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", [*LOSSLESS, "JPEG", pytest.param("HEIF", marks=needs_heif_encoder)])
def test_every_exif_orientation_loads_upright(fmt: str, orientation: int) -> None:
    upright = asymmetric(96, 64)
    stored = upright.transpose(STORE_OP[orientation]) if orientation != 1 else upright
    data = encode(stored, fmt, exif=make_exif(orientation=orientation).tobytes())

    loaded = rio.load_image(data)
    info = rio.read_image_info(data)

    assert loaded.info.original_size == info.original_size == (96, 64)
    assert loaded.rgb.shape == (64, 96, 3)
    if fmt == "HEIF":  # the rotation lives in the container (irot/imir)
        assert info.orientation in (1, orientation)
    else:
        assert loaded.info.orientation == info.orientation == orientation
    if fmt in LOSSLESS:
        np.testing.assert_array_equal(loaded.rgb, np.asarray(upright))
    else:
        assert mean_abs_diff(loaded.rgb, np.asarray(upright)) < 4
    if fmt == "PNG":  # same answer as Pillow's own exif_transpose
        with Image.open(io.BytesIO(data)) as im:
            np.testing.assert_array_equal(loaded.rgb, np.asarray(ImageOps.exif_transpose(im)))


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_rotated_jpeg_downscale_reports_upright_scale(orientation: int) -> None:
    upright = asymmetric(400, 200)
    stored = upright.transpose(STORE_OP[orientation])
    data = encode(stored, "JPEG", exif=make_exif(orientation=orientation).tobytes())

    loaded = rio.load_image(data, max_side=100)

    assert loaded.rgb.shape == (50, 100, 3)
    assert loaded.scale == pytest.approx(0.25)
    small = cv2.resize(np.asarray(upright), (100, 50), interpolation=cv2.INTER_AREA)
    assert mean_abs_diff(loaded.rgb, small) < 4


def test_invalid_orientation_value_is_ignored() -> None:
    upright = asymmetric()
    data = encode(upright, "PNG", exif=make_exif(orientation=9).tobytes())
    loaded = rio.load_image(data)
    assert loaded.info.orientation == 1
    np.testing.assert_array_equal(loaded.rgb, np.asarray(upright))


def test_png_exif_after_pixel_data_is_found() -> None:
    """eXIf may follow IDAT; the header-only reader must still see it."""
    stored = asymmetric(96, 64).transpose(STORE_OP[6])
    plain = encode(stored, "PNG")
    exif_chunk = png_chunk(b"eXIf", make_exif(orientation=6).tobytes())
    late = plain[:-12] + exif_chunk + plain[-12:]  # just before IEND

    info = rio.read_image_info(late)
    loaded = rio.load_image(late)

    assert info.orientation == loaded.info.orientation == 6
    assert info.original_size == loaded.info.original_size == (96, 64)
    assert info.taken_at == DTO
    np.testing.assert_array_equal(loaded.rgb, np.asarray(asymmetric(96, 64)))


# --------------------------------------------------------------------------
# Dates and location


def test_date_time_original_is_read() -> None:
    data = encode(asymmetric(), "JPEG", exif=make_exif())
    assert rio.read_image_info(data).taken_at == DTO
    assert rio.load_image(data).info.taken_at == DTO


def test_date_falls_back_to_ifd0_datetime() -> None:
    exif = make_exif(taken=None)
    exif[0x0132] = "2019:12:31 23:59:58"
    data = encode(asymmetric(), "JPEG", exif=exif)
    assert rio.read_image_info(data).taken_at == datetime(2019, 12, 31, 23, 59, 58)


@pytest.mark.parametrize(
    "garbage",
    ["garbage", "0000:00:00 00:00:00", "2021:13:45 99:99:99", "    :  :     :  :  ", "", "\x00\x00"],
)
def test_garbage_date_is_none(garbage: str) -> None:
    data = encode(asymmetric(), "JPEG", exif=make_exif(taken=garbage))
    assert rio.read_image_info(data).taken_at is None
    assert rio.load_image(data).info.taken_at is None


def test_no_exif_gives_defaults() -> None:
    info = rio.read_image_info(encode(asymmetric(), "PNG"))
    expected = rio.ImageInfo(
        original_size=(96, 72), taken_at=None, format="PNG", orientation=1, has_location=False
    )
    assert info == expected


def test_damaged_exif_block_is_tolerated() -> None:
    data = encode(asymmetric(), "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff\x00\x00")
    loaded = rio.load_image(data)
    assert loaded.info.taken_at is None and loaded.info.orientation == 1
    assert loaded.rgb.shape == (72, 96, 3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_has_location(fmt: str) -> None:
    with_gps = encode(asymmetric(), fmt, exif=make_exif(gps=True).tobytes())
    without = encode(asymmetric(), fmt, exif=make_exif().tobytes())
    assert rio.read_image_info(with_gps).has_location
    assert not rio.read_image_info(without).has_location


# --------------------------------------------------------------------------
# Pixel modes


def test_16bit_greyscale_png_from_opencv() -> None:
    values = np.tile((np.arange(96, dtype=np.uint32) * 65535 // 95).astype(np.uint16), (64, 1))
    ok, png = cv2.imencode(".png", values)
    assert ok

    loaded = rio.load_image(png.tobytes())

    expected = np.rint(values / 257).astype(np.uint8)
    np.testing.assert_array_equal(loaded.rgb, np.repeat(expected[..., None], 3, axis=2))
    assert loaded.rgb[0, -1].tolist() == [255, 255, 255] and loaded.rgb[0, 0].tolist() == [0, 0, 0]


def test_16bit_colour_png_from_opencv() -> None:
    ramp = (np.arange(96, dtype=np.uint32) * 65535 // 95).astype(np.uint16)
    full, empty = np.full((64, 96), 65535, np.uint16), np.zeros((64, 96), np.uint16)
    blue_green_red = np.stack([np.tile(ramp, (64, 1)), full, empty], -1)
    ok, png = cv2.imencode(".png", blue_green_red)
    assert ok

    rgb = rio.load_image(png.tobytes()).rgb.astype(int)

    assert np.abs(rgb[..., 2] - ramp / 257).max() <= 1  # blue ramp, 65535 -> 255
    assert (rgb[..., 1] == 255).all() and (rgb[..., 0] == 0).all()


def test_greyscale_png() -> None:
    grey = np.asarray(asymmetric().convert("L"))
    loaded = rio.load_image(encode(Image.fromarray(grey), "PNG"))
    np.testing.assert_array_equal(loaded.rgb, np.repeat(grey[..., None], 3, axis=2))


def test_bilevel_and_greyscale_alpha() -> None:
    bits = Image.new("1", (64, 64), 0)
    bits.paste(1, (0, 0, 32, 64))
    rgb = rio.load_image(encode(bits, "PNG")).rgb
    assert rgb[:, :32].min() == 255 and rgb[:, 32:].max() == 0

    la = Image.new("LA", (64, 64), (0, 0))  # fully transparent black -> white
    la.paste((50, 255), (0, 0, 32, 64))
    rgb = rio.load_image(encode(la, "PNG")).rgb
    assert (rgb[:, :32] == 50).all() and (rgb[:, 32:] == 255).all()


def test_palette_png_with_transparency_is_composited_over_white() -> None:
    index = np.zeros((64, 80), np.uint8)
    index[:, 40:] = 1
    index[:20, :] = 2
    im = Image.frombytes("P", (80, 64), index.tobytes())
    im.putpalette([0, 0, 0, 200, 30, 40, 10, 120, 250] + [0] * (256 * 3 - 9))
    data = encode(im, "PNG", transparency=0)

    rgb = rio.load_image(data).rgb

    assert rgb[30, 10].tolist() == [255, 255, 255]  # transparent index 0
    assert rgb[30, 60].tolist() == [200, 30, 40]
    assert rgb[5, 5].tolist() == [10, 120, 250]


def test_rgba_is_composited_over_white() -> None:
    rgba = np.zeros((64, 96, 4), np.uint8)
    rgba[..., :3] = (200, 40, 0)
    rgba[:, :32, 3] = 0
    rgba[:, 32:64, 3] = 128
    rgba[:, 64:, 3] = 255

    rgb = rio.load_image(encode(Image.fromarray(rgba), "PNG")).rgb

    assert rgb[0, 0].tolist() == [255, 255, 255]
    expected_half = [(c * 128 + 255 * 127 + 127) // 255 for c in (200, 40, 0)]
    assert rgb[0, 40].tolist() == expected_half
    assert rgb[0, 80].tolist() == [200, 40, 0]


def test_cmyk_jpeg_with_adobe_marker() -> None:
    cmyk = np.zeros((64, 160, 4), np.uint8)
    patches = {0: (255, 0, 0, 0), 1: (0, 255, 0, 0), 2: (0, 0, 255, 0), 3: (0, 0, 0, 255), 4: (0, 0, 0, 0)}
    for i, value in patches.items():
        cmyk[:, i * 32 : (i + 1) * 32] = value
    data = encode(Image.frombytes("CMYK", (160, 64), cmyk.tobytes()), "JPEG")
    assert b"Adobe" in data[:200]  # inverted CMYK as written by Photoshop

    rgb = rio.load_image(data).rgb.astype(int)

    expected = [(0, 255, 255), (255, 0, 255), (255, 255, 0), (0, 0, 0), (255, 255, 255)]
    for i, colour in enumerate(expected):
        assert np.abs(rgb[32, i * 32 + 16] - colour).max() <= 8, (i, rgb[32, i * 32 + 16])


def test_float_and_16bit_tiff() -> None:
    ramp = np.tile(np.linspace(0, 1, 96, dtype=np.float32), (64, 1))
    rgb = rio.load_image(encode(Image.fromarray(ramp), "TIFF")).rgb
    np.testing.assert_array_equal(rgb[..., 0], np.rint(ramp * 255).astype(np.uint8))

    ok, tiff = cv2.imencode(".tiff", (ramp * 65535).astype(np.uint16))
    assert ok
    rgb = rio.load_image(tiff.tobytes()).rgb
    assert np.abs(rgb[..., 1].astype(int) - ramp * 255).max() <= 1


def test_animated_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (64, 64), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    loaded = rio.load_image(data)
    assert loaded.info.format == "GIF"
    assert (loaded.rgb == (255, 0, 0)).all()


def test_animated_webp_uses_first_frame() -> None:
    frames = [Image.new("RGB", (64, 64), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100)
    with Image.open(io.BytesIO(data)) as im:
        assert im.n_frames == 3
    assert (rio.load_image(data).rgb == (255, 0, 0)).all()


def test_multipage_tiff_uses_first_page() -> None:
    pages = [Image.new("RGB", (64, 64), c) for c in ((10, 20, 30), (200, 0, 0))]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    assert (rio.load_image(data).rgb == (10, 20, 30)).all()


def test_malformed_mpo_warning_does_not_escape() -> None:
    """Pillow warns about this phone-style multi-picture JPEG; the loader must stay quiet."""
    first, second = Image.new("RGB", (96, 64), (10, 20, 30)), Image.new("RGB", (96, 64), (200, 0, 0))
    data = encode(first, "MPO", save_all=True, append_images=[second], exif=make_exif())
    loaded = rio.load_image(data)
    assert loaded.info.format == "JPEG"
    assert np.abs(loaded.rgb.astype(int) - (10, 20, 30)).max() <= 3


# --------------------------------------------------------------------------
# Downscaling


def spy_draft(monkeypatch: pytest.MonkeyPatch) -> list:
    from PIL import JpegImagePlugin

    calls: list = []
    original = JpegImagePlugin.JpegImageFile.draft

    def draft(self, mode, size):
        result = original(self, mode, size)
        calls.append((size, result))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", draft)
    return calls


def test_jpeg_max_side_uses_draft_and_matches_full_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    original = asymmetric(1600, 1200)
    data = encode(original, "JPEG")
    calls = spy_draft(monkeypatch)

    loaded = rio.load_image(data, max_side=400)

    assert loaded.rgb.shape == (300, 400, 3)
    assert loaded.scale == 0.25
    assert loaded.info.original_size == (1600, 1200)
    assert calls and calls[0][1] is not None  # decoded at a reduced DCT scale
    full = cv2.resize(as_array(data), (400, 300), interpolation=cv2.INTER_AREA)
    assert mean_abs_diff(loaded.rgb, full) < 2


def test_jpeg_max_side_with_non_integer_ratio(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = spy_draft(monkeypatch)
    loaded = rio.load_image(encode(asymmetric(600, 900), "JPEG"), max_side=333)
    assert loaded.rgb.shape == (333, 222, 3)
    assert loaded.scale == pytest.approx(222 / 600)
    assert calls[0][0][0] >= 222 and calls[0][0][1] >= 333


def test_png_max_side() -> None:
    original = asymmetric(500, 250)
    loaded = rio.load_image(encode(original, "PNG"), max_side=100)
    assert loaded.rgb.shape == (50, 100, 3)
    assert loaded.scale == pytest.approx(0.2)
    expected = cv2.resize(np.asarray(original), (100, 50), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(loaded.rgb, expected)


def test_max_side_never_upscales() -> None:
    loaded = rio.load_image(encode(asymmetric(), "JPEG"), max_side=4000)
    assert loaded.rgb.shape == (72, 96, 3) and loaded.scale == 1.0


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "100"])
def test_invalid_max_side(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match="max_side"):
        rio.load_image(encode(asymmetric(), "PNG"), max_side=bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Bad input


def test_truncated_jpeg_is_corrupt_but_header_still_reads(tmp_path: Path) -> None:
    data = encode(asymmetric(400, 300), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(CorruptImageError, match="cut.jpg"):
        rio.load_image(path)
    assert rio.read_image_info(path).original_size == (400, 300)


def test_truncated_png_is_corrupt() -> None:
    data = encode(asymmetric(400, 300), "PNG", compress_level=0)
    with pytest.raises(CorruptImageError):
        rio.load_image(data[: len(data) // 2])


def test_damaged_header_is_corrupt() -> None:
    data = encode(asymmetric(), "JPEG")
    with pytest.raises(CorruptImageError, match="header"):
        rio.load_image(data[:40])


@pytest.mark.parametrize(
    ("content", "hint"),
    [
        (b"Patient notes: lesion on left forearm.\n", "text"),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "web page"),
        (bytes(range(256)) * 4, "not an image"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
    ],
)
def test_non_images_are_unsupported(tmp_path: Path, content: bytes, hint: str) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(UnsupportedImageError, match=hint):
        rio.load_image(path)
    with pytest.raises(UnsupportedImageError):
        rio.read_image_info(path)


def test_unsupported_image_format_is_named() -> None:
    data = encode(asymmetric(), "BMP")
    with pytest.raises(UnsupportedImageError, match="BMP"):
        rio.load_image(data)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(UnsupportedImageError, match="empty"):
        rio.load_image(path)
    with pytest.raises(UnsupportedImageError, match="empty"):
        rio.load_image(b"")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="not found"):
        rio.load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="folder"):
        rio.load_image(tmp_path)


def test_decompression_bomb_png_is_rejected_quickly() -> None:
    bomb = png_declaring(100_000, 100_000)
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="REPIGMENT_MAX_PIXELS"):
        rio.load_image(bomb)
    with pytest.raises(ImageTooLargeError):
        rio.read_image_info(bomb)
    assert time.perf_counter() - start < 0.5
    # Above Pillow's own ceiling the message says which knob applies.
    with pytest.raises(ImageTooLargeError, match="MAX_IMAGE_PIXELS"):
        rio.read_image_info(bomb, max_pixels=10**11)


def test_pixel_limit_between_pillow_warning_and_error_stays_silent() -> None:
    """90 MP exceeds Pillow's warning threshold but not our default limit."""
    info = rio.read_image_info(png_declaring(10_000, 9_000))
    assert info.original_size == (10_000, 9_000)
    with pytest.raises(ImageTooLargeError, match="more than the limit of 80,000,000"):
        rio.read_image_info(png_declaring(10_000, 9_000), max_pixels=80_000_000)


def test_custom_pixel_and_byte_limits() -> None:
    data = encode(asymmetric(200, 200), "PNG")
    with pytest.raises(ImageTooLargeError, match="40,000 pixels"):
        rio.load_image(data, max_pixels=10_000)
    with pytest.raises(ImageTooLargeError, match="REPIGMENT_MAX_FILE_MB"):
        rio.load_image(data, max_file_bytes=100)
    with pytest.raises(ImageTooLargeError, match="REPIGMENT_MAX_FILE_MB"):
        rio.load_image(io.BytesIO(data), max_file_bytes=100)


@pytest.mark.parametrize("size", [(1, 1), (63, 500), (500, 10)])
def test_too_small(size: tuple[int, int]) -> None:
    with pytest.raises(ImageTooSmallError, match=f"{size[0]}x{size[1]}"):
        rio.load_image(encode(Image.new("RGB", size), "PNG"))


def test_min_side_is_allowed() -> None:
    assert rio.load_image(encode(Image.new("RGB", (64, 64)), "PNG")).rgb.shape == (64, 64, 3)


def test_error_messages_are_single_line_and_name_only_the_basename(tmp_path: Path) -> None:
    folder = tmp_path / "Patient Jane Doe"
    folder.mkdir()
    jpeg = encode(asymmetric(400, 300), "JPEG")
    cases = {
        "cut.jpg": jpeg[: len(jpeg) // 2],
        "notes.jpg": b"just\ntext\n",
        "empty.png": b"",
        "bomb.png": png_declaring(100_000, 100_000),
        "tiny.png": encode(Image.new("RGB", (1, 1)), "PNG"),
        "head.jpg": jpeg[:40],
    }
    for name, content in cases.items():
        path = folder / name
        path.write_bytes(content)
        with pytest.raises(ImageLoadError) as caught:
            rio.load_image(path)
        message = str(caught.value)
        assert "\n" not in message and name in message
        assert "Jane" not in message and str(tmp_path) not in message
    with pytest.raises(ImageLoadError) as caught:
        rio.load_image(folder / "missing.jpg")
    assert "\n" not in str(caught.value) and "Jane" not in str(caught.value)


# --------------------------------------------------------------------------
# strip_location

XMP = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
    b' xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
    b' exif:GPSLatitude="51,30.2N" xmp:CreatorTool="repigment-test">'
    b"<exif:GPSLongitude>0,7.6W</exif:GPSLongitude>"
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    b'<?xpacket end="w"?>'
)


def sos_payload(data: bytes) -> bytes:
    """Everything from the first SOS marker on: the compressed pixels."""
    pos = 2
    while data[pos + 1] != 0xDA:
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return data[pos:]


def assert_no_location_but_metadata_kept(data: bytes, orientation: int | None = 6) -> None:
    with Image.open(io.BytesIO(data)) as im:
        exif = im.getexif()
        assert exif.get_ifd(0x8825) == {}
        assert 0x8825 not in exif
        assert exif.get_ifd(0x8769).get(36867) == "2021:05:06 07:08:09"
        if orientation is not None:
            assert exif.get(0x0112) == orientation
    info = rio.read_image_info(data)
    assert not info.has_location and info.taken_at == DTO


def test_strip_location_jpeg_keeps_pixels_and_other_metadata() -> None:
    data = encode(asymmetric(), "JPEG", exif=make_exif(orientation=6, gps=True), xmp=XMP)
    assert rio.read_image_info(data).has_location

    stripped = rio.strip_location(data)

    assert_no_location_but_metadata_kept(stripped)
    assert len(stripped) == len(data)
    assert sos_payload(stripped) == sos_payload(data)
    np.testing.assert_array_equal(as_array(stripped), as_array(data))
    assert b"GPSLatitude" not in stripped and b"GPSLongitude" not in stripped
    assert b"51,30" not in stripped
    assert b'xmp:CreatorTool="repigment-test"' in stripped  # the rest of the XMP survives


def test_strip_location_xmp_only() -> None:
    data = encode(asymmetric(), "JPEG", exif=make_exif(), xmp=XMP)
    assert rio.read_image_info(data).has_location
    stripped = rio.strip_location(data)
    assert not rio.read_image_info(stripped).has_location
    assert sos_payload(stripped) == sos_payload(data)


def test_strip_location_reaches_appended_images() -> None:
    """A second JPEG after the first (MPO view, gain map) is cleaned too."""
    first = encode(asymmetric(), "JPEG", exif=make_exif(gps=True))
    second = encode(asymmetric(64, 64), "JPEG", exif=make_exif(gps=True))
    stripped = rio.strip_location(first + second)
    assert len(stripped) == len(first) + len(second)
    for part in (stripped[: len(first)], stripped[len(first) :]):
        assert_no_location_but_metadata_kept(part, orientation=None)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", pytest.param("HEIF", marks=needs_heif_encoder)])
def test_strip_location_other_formats(fmt: str) -> None:
    extra = {"xmp": XMP} if fmt in ("WEBP", "HEIF") else {}
    data = encode(asymmetric(), fmt, exif=make_exif(orientation=6, gps=True).tobytes(), **extra)
    assert rio.read_image_info(data).has_location

    stripped = rio.strip_location(data)

    assert b"GPSLatitude" not in stripped

    assert_no_location_but_metadata_kept(stripped, orientation=None if fmt == "HEIF" else 6)
    np.testing.assert_array_equal(rio.load_image(stripped).rgb, rio.load_image(data).rgb)
    if fmt != "PNG":  # edited in place; PNG only gets new chunk CRCs
        assert len(stripped) == len(data)


def test_strip_location_png_xmp_and_raw_profile() -> None:
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    meta.add_itxt("XML:com.adobe.xmp", XMP.decode(), zip=True)
    data = encode(asymmetric(), "PNG", pnginfo=meta, exif=make_exif(gps=True).tobytes())
    stripped = rio.strip_location(data)
    assert not rio.read_image_info(stripped).has_location
    assert rio.read_image_info(stripped).taken_at == DTO
    np.testing.assert_array_equal(as_array(stripped), as_array(data))

    raw = make_exif(gps=True).tobytes()
    text = f"\nexif\n{len(raw):8d}\n" + "\n".join(raw.hex()[i : i + 72] for i in range(0, len(raw) * 2, 72))
    meta = PngImagePlugin.PngInfo()
    meta.add_text("Raw profile type exif", text, zip=True)
    data = encode(asymmetric(), "PNG", pnginfo=meta)
    assert rio.read_image_info(data).has_location
    stripped = rio.strip_location(data)
    assert not rio.read_image_info(stripped).has_location
    assert rio.read_image_info(stripped).taken_at == DTO


def test_strip_location_without_location_returns_same_bytes() -> None:
    data = encode(asymmetric(), "JPEG", exif=make_exif(orientation=3))
    assert rio.strip_location(data) == data


def test_strip_location_rejects_non_images() -> None:
    with pytest.raises(UnsupportedImageError):
        rio.strip_location(b"hello world")
    with pytest.raises(UnsupportedImageError, match="empty"):
        rio.strip_location(b"")
    with pytest.raises(CorruptImageError):
        rio.strip_location(encode(asymmetric(), "JPEG")[:30])


# --------------------------------------------------------------------------
# write_image_atomic


def test_write_mask_and_rgb_atomically(tmp_path: Path) -> None:
    mask = np.zeros((70, 90), bool)
    mask[10:30, 20:60] = True
    target = tmp_path / "mask.png"
    target.write_bytes(b"old")

    rio.write_image_atomic(target, mask)

    with Image.open(target) as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im) > 127, mask)
    assert os.listdir(tmp_path) == ["mask.png"]

    rgb = np.asarray(asymmetric())
    rio.write_image_atomic(str(tmp_path / "overlay.png"), rgb)
    np.testing.assert_array_equal(rio.load_image(tmp_path / "overlay.png").rgb, rgb)

    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rio.write_image_atomic(tmp_path / "rgba.png", rgba)
    with Image.open(tmp_path / "rgba.png") as im:
        np.testing.assert_array_equal(np.asarray(im), rgba)

    depth = (np.arange(70 * 90, dtype=np.uint16).reshape(70, 90) * 9).astype(np.uint16)
    rio.write_image_atomic(tmp_path / "depth.png", depth)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "depth.png"), cv2.IMREAD_UNCHANGED), depth)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_write_image_atomic_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match=".png"):
        rio.write_image_atomic(tmp_path / "mask.jpg", np.zeros((4, 4), np.uint8))
    with pytest.raises(InvalidParameterError, match="dtype"):
        rio.write_image_atomic(tmp_path / "mask.png", np.zeros((4, 4), np.float32))
    with pytest.raises(InvalidParameterError, match="shape"):
        rio.write_image_atomic(tmp_path / "mask.png", np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(FileNotFoundError):
        rio.write_image_atomic(tmp_path / "no" / "mask.png", np.zeros((4, 4), np.uint8))
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------
# Robustness: damaged files only ever raise repigment's own errors

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SEEDS = {
    fmt: encode(asymmetric(80, 64), fmt, exif=make_exif(orientation=6, gps=True).tobytes())
    for fmt in ("JPEG", "PNG", "TIFF", "WEBP")
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(sorted(_SEEDS)),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
def test_damaged_files_raise_only_repigment_errors(fmt: str, edits: list, cut: float | None) -> None:
    data = bytearray(_SEEDS[fmt])
    for where, value in edits:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    for call in (rio.load_image, rio.read_image_info, rio.strip_location):
        try:
            result = call(bytes(data))
        except ImageLoadError as exc:
            assert "\n" not in str(exc)
            continue
        if call is rio.load_image:
            assert result.rgb.dtype == np.uint8 and result.rgb.ndim == 3 and result.rgb.shape[2] == 3
        if call is rio.strip_location:  # nothing left to strip
            assert rio.strip_location(result) == result



def test_threads_loading_at_once_leave_the_warning_filters_as_they_were():
    """The loader silences Pillow's warnings inside itself. When two threads
    load at once (the pipeline prefetches) and the first to start finishes
    first, an unguarded save-and-restore of the filters would leave the
    first one's filters installed for the whole process."""
    import threading
    import time
    import warnings

    from repigment.io.reading import _quiet_pillow

    before = list(warnings.filters)
    first_inside, release_first, release_second = threading.Event(), threading.Event(), threading.Event()

    def first():
        with _quiet_pillow():
            first_inside.set()
            release_first.wait(5)

    def second():
        first_inside.wait(5)
        with _quiet_pillow():
            release_second.wait(5)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    first_inside.wait(5)
    time.sleep(0.05)  # the second thread is now inside too, or waiting for the first
    release_first.set()
    threads[0].join(5)
    release_second.set()
    threads[1].join(5)
    assert warnings.filters == before
