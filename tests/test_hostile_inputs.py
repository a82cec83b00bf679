"""Hostile input, for the library and the CLI alike.

Every case ends in either a specific one-line error (library: a
:class:`repigment.errors.RepigmentError` subclass; CLI: exit code 2 and exactly
one stderr line, no traceback) or a correct result. Nothing may hang: CLI runs
have a timeout. The CLI runs of all cases are started together, a few at a
time, when the module's fixtures are built, so the slow process start-ups
overlap; each test then checks its own run.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
from conftest import analyze_to, assert_one_line_error, png_declaring, run_cli
from PIL import Image

from repigment import errors
from repigment.limits import Limits
from repigment.series.pipeline import analyze_series, segment_image
from repigment.synthetic import SeriesSpec, generate_series, write_series

pillow_heif = pytest.importorskip("pillow_heif")
HEIF_ENCODER = bool(pillow_heif.libheif_info().get("HEIF"))

CLI_TIMEOUT = 120
# Smallest allowed working size: the library cases only need to be correct, not precise.
FAST = 256

BASE_DATE, VISIT_DATE = "2026-01-05", "2026-03-30"


# --------------------------------------------------------------------------
# Builders


def encode(arr_or_im, fmt: str, **kwargs) -> bytes:
    im = arr_or_im if isinstance(arr_or_im, Image.Image) else Image.fromarray(arr_or_im)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def blue_cloth(width: int = 640, height: int = 480) -> np.ndarray:
    """Woven blue fabric: texture, but no skin anywhere."""
    y, x = np.mgrid[0:height, 0:width]
    weave = (((x // 3) + (y // 3)) % 2) * 18
    rgb = np.stack([25 + weave, 55 + weave, 150 + weave], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def rotated_with_exif(rgb: np.ndarray, orientation: int) -> bytes:
    """A lossless PNG storing ``rgb`` turned so that EXIF ``orientation`` turns it upright again."""
    store = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(rgb).transpose(store[orientation]), "PNG", exif=exif.tobytes())


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def one_line(message: str) -> bool:
    return bool(message.strip()) and "\n" not in message and "\r" not in message


# --------------------------------------------------------------------------
# Shared data


@dataclass
class Photo:
    rgb: np.ndarray  # upright skin photo with a depigmented patch
    jpeg: bytes  # the same photo as written by repigment.synthetic
    mask: np.ndarray  # segment_image's mask of the lossless PNG of `rgb`


@pytest.fixture(scope="module")
def source_series(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("source") / "series"
    spec = SeriesSpec(seed=1, skin_type="III", course="combined", weeks=(0, 12), image_size=(640, 480))
    return write_series(generate_series(spec), folder)


@pytest.fixture(scope="module")
def photo(source_series) -> Photo:
    jpeg = (source_series / f"visit_00_{BASE_DATE}.jpg").read_bytes()
    rgb = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).copy()
    mask = segment_image(encode(rgb, "PNG"), working_size=FAST).mask
    assert mask.any(), "the reference photo must show a patch"
    return Photo(rgb=rgb, jpeg=jpeg, mask=mask)


# --------------------------------------------------------------------------
# Single photos: segment_image and `repigment segment`


@dataclass(frozen=True)
class ImageCase:
    make: Callable[[Path, Photo], Path]  # writes the hostile file into a folder, returns its path
    error: type[errors.RepigmentError] | None = None  # expected error, or None for a result
    check: Callable[[np.ndarray, Photo], None] | None = None  # checks the full-size mask of a result
    needs: str | None = None  # skip reason when a codec is missing


def write(name: str, data: bytes | Callable[[Photo], bytes]) -> Callable[[Path, Photo], Path]:
    def make(folder: Path, p: Photo) -> Path:
        path = folder / name
        path.write_bytes(data(p) if callable(data) else data)
        return path

    return make


def make_directory(folder: Path, p: Photo) -> Path:
    path = folder / "x.jpg"
    path.mkdir()
    return path


def animated(fmt: str) -> Callable[[Photo], bytes]:
    def make(p: Photo) -> bytes:
        first = Image.fromarray(p.rgb)
        second = Image.fromarray(blue_cloth())
        kwargs = {"lossless": True} if fmt == "WEBP" else {}
        return encode(first, fmt, save_all=True, append_images=[second], duration=200, loop=0, **kwargs)

    return make


def png16(p: Photo) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(p.rgb, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    assert ok
    return data.tobytes()


def heic(p: Photo) -> bytes:
    pillow_heif.register_heif_opener()
    return encode(p.rgb, "HEIF", quality=95)


def empty_mask(mask: np.ndarray, p: Photo) -> None:
    assert mask.shape == (480, 640) and not mask.any()


def like_reference(min_dice: float) -> Callable[[np.ndarray, Photo], None]:
    def check(mask: np.ndarray, p: Photo) -> None:
        assert mask.shape == p.mask.shape, "the mask must come back upright, at the photo's size"
        assert dice(mask, p.mask) >= min_dice

    return check


def some_patch(mask: np.ndarray, p: Photo) -> None:
    # A 256-colour GIF loses the subtle skin tones; only the frame and the sanity of the mask are certain.
    assert mask.shape == p.mask.shape and mask.dtype == bool
    assert mask.sum() < 0.5 * mask.size


IMAGE_CASES = {
    "empty-file": ImageCase(write("empty.jpg", b""), errors.UnsupportedImageError),
    "truncated-jpeg": ImageCase(write("cut.jpg", lambda p: p.jpeg[: len(p.jpeg) // 2]), errors.CorruptImageError),
    "text-as-jpg": ImageCase(write("notes.jpg", b"patient notes: left cheek\n"), errors.UnsupportedImageError),
    "html-as-png": ImageCase(
        write("page.png", b"<!DOCTYPE html><html><body>403 Forbidden</body></html>\n"), errors.UnsupportedImageError
    ),
    "gigapixel-png": ImageCase(write("bomb.png", png_declaring(100_000, 100_000)), errors.ImageTooLargeError),
    "one-pixel": ImageCase(write("dot.png", encode(np.zeros((1, 1, 3), np.uint8), "PNG")), errors.ImageTooSmallError),
    "directory-named-jpg": ImageCase(make_directory, errors.ImageLoadError),
    "all-white": ImageCase(write("white.png", encode(np.full((480, 640, 3), 255, np.uint8), "PNG")), check=empty_mask),
    "no-skin-blue-cloth": ImageCase(write("cloth.png", encode(blue_cloth(), "PNG")), check=empty_mask),
    "16-bit-png": ImageCase(write("deep.png", png16), check=like_reference(0.99)),
    "cmyk-jpeg": ImageCase(
        write("cmyk.jpg", lambda p: encode(Image.fromarray(p.rgb).convert("CMYK"), "JPEG", quality=95)),
        check=like_reference(0.85),
    ),
    "animated-gif": ImageCase(write("anim.gif", animated("GIF")), check=some_patch),
    "animated-webp": ImageCase(write("anim.webp", animated("WEBP")), check=like_reference(0.99)),
    "heic": ImageCase(
        write("phone.heic", heic), check=like_reference(0.85), needs=None if HEIF_ENCODER else "no HEVC encoder"
    ),
    "exif-rotated-90cw": ImageCase(write("rot6.png", lambda p: rotated_with_exif(p.rgb, 6)), check=like_reference(0.97)),
    "exif-rotated-180": ImageCase(write("rot3.png", lambda p: rotated_with_exif(p.rgb, 3)), check=like_reference(0.97)),
    "exif-rotated-90ccw": ImageCase(write("rot8.png", lambda p: rotated_with_exif(p.rgb, 8)), check=like_reference(0.97)),
}


# --------------------------------------------------------------------------
# Series folders: analyze_series and `repigment analyze`


@dataclass(frozen=True)
class SeriesCase:
    make: Callable[[Path, Path, Photo], None]  # fills the folder (source series and photo given)
    error: type[errors.RepigmentError] | None = None
    fragment: str = ""  # expected in the one-line message
    env: dict[str, str] = field(default_factory=dict)  # for the CLI; the library gets Limits.from_env(env)
    treatment_start: str | None = None
    check: Callable[[object, Path], None] | None = None  # (SeriesResult or results.json dict, folder)


def copy_photos(src: Path, dst: Path, names: dict[str, str] | None = None) -> None:
    """Copy the two source photos as ``{new name: source name}`` (default: same names)."""
    names = names or {f"visit_00_{BASE_DATE}.jpg": f"visit_00_{BASE_DATE}.jpg",
                      f"visit_01_{VISIT_DATE}.jpg": f"visit_01_{VISIT_DATE}.jpg"}
    for new, old in names.items():
        shutil.copyfile(src / old, dst / new)


def visits(text: str | bytes, copy: bool = True) -> Callable[[Path, Path, Photo], None]:
    def make(folder: Path, src: Path, p: Photo) -> None:
        if copy:
            copy_photos(src, folder)
        (folder / "visits.csv").write_bytes(text.encode() if isinstance(text, str) else text)

    return make


def same_date(folder: Path, src: Path, p: Photo) -> None:
    copy_photos(src, folder, {"z_base.jpg": f"visit_00_{BASE_DATE}.jpg", "a_later.jpg": f"visit_01_{VISIT_DATE}.jpg"})
    # Listed first, so the baseline, although its name sorts last.
    (folder / "visits.csv").write_text(f"date,image\n{BASE_DATE},z_base.jpg\n{BASE_DATE},a_later.jpg\n")


def check_same_date(result, folder: Path) -> None:
    records = visit_records(result)
    assert [r["image"] for r in records] == ["z_base.jpg", "a_later.jpg"]
    assert baseline_name(result) == "z_base.jpg"
    assert all(r["error"] is None for r in records), records
    assert records[0]["pct"] == pytest.approx(0.0)
    assert records[1]["pct"] > 30
    assert [r["weeks"] for r in records] == [0.0, 0.0]


def check_before_start(result, folder: Path) -> None:
    records = visit_records(result)
    assert all(r["error"] is None for r in records), records
    assert all(r["weeks"] < 0 for r in records)
    assert records[0]["pct"] == pytest.approx(0.0) and records[1]["pct"] > 30


def symlink_in_csv(folder: Path, src: Path, p: Photo) -> None:
    copy_photos(src, folder)
    outside = folder.parent / "outside.jpg"
    outside.write_bytes(p.jpeg)
    (folder / "elsewhere.jpg").symlink_to(outside)
    (folder / "visits.csv").write_text(f"date,image\n{BASE_DATE},visit_00_{BASE_DATE}.jpg\n{VISIT_DATE},elsewhere.jpg\n")


def symlink_discovered(folder: Path, src: Path, p: Photo) -> None:
    copy_photos(src, folder)
    outside = folder.parent / "private" / f"{VISIT_DATE}.jpg"
    outside.parent.mkdir()
    outside.write_bytes(p.jpeg)
    (folder / f"visit_02_{VISIT_DATE}.jpg").symlink_to(outside)


def check_link_read_through(name: str):
    """A photo stored as a link (git-annex, DataLad) is read through it and scored."""

    def check(result, folder: Path) -> None:
        assert (folder / name).is_symlink()
        scored = [r["image"] for r in visit_records(result) if r["error"] is None]
        assert name in scored, visit_records(result)

    return check


def linked_folder_in_csv(folder: Path, src: Path, p: Photo) -> None:
    copy_photos(src, folder)
    outside = folder.parent / "elsewhere"
    outside.mkdir()
    (outside / "visit.jpg").write_bytes(p.jpeg)
    (folder / "sub").symlink_to(outside)
    (folder / "visits.csv").write_text(f"date,image\n{BASE_DATE},visit_00_{BASE_DATE}.jpg\n{VISIT_DATE},sub/visit.jpg\n")


def absolute_existing(folder: Path, src: Path, p: Photo) -> None:
    copy_photos(src, folder)
    outside = folder.parent / "abs_outside.jpg"
    outside.write_bytes(p.jpeg)
    (folder / "visits.csv").write_text(f"date,image\n{BASE_DATE},visit_00_{BASE_DATE}.jpg\n{VISIT_DATE},{outside}\n")


def baseline_no_skin(folder: Path, src: Path, p: Photo) -> None:
    (folder / "cloth.png").write_bytes(encode(blue_cloth(), "PNG"))
    shutil.copyfile(src / f"visit_01_{VISIT_DATE}.jpg", folder / "visit.jpg")
    (folder / "visits.csv").write_text(f"date,image\n{BASE_DATE},cloth.png\n{VISIT_DATE},visit.jpg\n")


def only_non_images(folder: Path, src: Path, p: Photo) -> None:
    (folder / "notes.txt").write_text("left cheek, week 12\n")
    (folder / "export.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    (folder / "2026-01-05.json").write_text("{}")
    (folder / "thumbs.db").write_bytes(b"\0" * 64)


def huge_csv(folder: Path, src: Path, p: Photo) -> None:
    copy_photos(src, folder)
    row = f"{BASE_DATE},visit_00_{BASE_DATE}.jpg\n"
    (folder / "visits.csv").write_text("date,image\n" + row * (6 * 1024**2 // len(row)))


def ten_thousand_rows(folder: Path, src: Path, p: Photo) -> None:
    copy_photos(src, folder)
    rows = "".join(f"{BASE_DATE},visit_00_{BASE_DATE}.jpg\n" for _ in range(10_000))
    (folder / "visits.csv").write_text("date,image\n" + rows)


BAD_VISITS = {  # name -> bytes (or None for a directory) of photos that are unusable but not the baseline
    "2026-02-01_empty.jpg": b"",
    "2026-02-02_text.jpg": b"not a photo\n",
    "2026-02-03_html.png": b"<html><body>login</body></html>",
    "2026-02-04_cut.jpg": "truncated",
    "2026-02-05_bomb.png": png_declaring(100_000, 100_000),
    "2026-02-06_dot.png": encode(np.zeros((1, 1, 3), np.uint8), "PNG"),
    "2026-02-07_folder.jpg": None,
    "2026-02-08_cloth.png": encode(blue_cloth(), "PNG"),
    "2026-02-09_missing.jpg": "missing",
}


def bad_visits(folder: Path, src: Path, p: Photo) -> None:
    copy_photos(src, folder)
    rows = [f"{BASE_DATE},visit_00_{BASE_DATE}.jpg"]
    for name, data in BAD_VISITS.items():
        rows.append(f"{name[:10]},{name}")
        if data is None:
            (folder / name).mkdir()
        elif data == "truncated":
            (folder / name).write_bytes(p.jpeg[: len(p.jpeg) // 3])
        elif data != "missing":
            (folder / name).write_bytes(data)
    rows.append(f"{VISIT_DATE},visit_01_{VISIT_DATE}.jpg")
    (folder / "visits.csv").write_text("date,image\n" + "\n".join(rows) + "\n")


def check_bad_visits(result, folder: Path) -> None:
    records = {r["image"]: r for r in visit_records(result)}
    assert records[f"visit_00_{BASE_DATE}.jpg"]["error"] is None
    assert records[f"visit_01_{VISIT_DATE}.jpg"]["error"] is None
    assert records[f"visit_01_{VISIT_DATE}.jpg"]["pct"] > 30
    for name in BAD_VISITS:
        error = records[name]["error"]
        assert error and one_line(error), (name, error)
        assert records[name]["pct"] is None


def newline_name(folder: Path, src: Path, p: Photo) -> None:
    copy_photos(src, folder, {"base\nline.jpg": f"visit_00_{BASE_DATE}.jpg", "v.jpg": f"visit_01_{VISIT_DATE}.jpg"})
    (folder / "base\nline.jpg").write_bytes(b"not a photo")
    (folder / "visits.csv").write_text(f'date,image\n{BASE_DATE},"base\nline.jpg"\n{VISIT_DATE},v.jpg\n')


def env_case(variable: str, value: str) -> SeriesCase:
    return SeriesCase(lambda folder, src, p: copy_photos(src, folder), errors.InvalidParameterError, variable,
                      env={variable: value})


SERIES_CASES = {
    "same-date-first-listed-is-baseline": SeriesCase(same_date, check=check_same_date),
    "visits-before-treatment-start": SeriesCase(
        lambda folder, src, p: copy_photos(src, folder), treatment_start="2026-06-01", check=check_before_start
    ),
    "unusable-visits-are-visit-errors": SeriesCase(bad_visits, check=check_bad_visits),
    "csv-missing-image-column": SeriesCase(visits(f"date\n{BASE_DATE}\n"), errors.SeriesError, "missing: image"),
    "csv-missing-both-columns": SeriesCase(visits("photo;when\na.jpg;2026-01-05\n"), errors.SeriesError, "date, image"),
    "csv-header-only": SeriesCase(visits("date,image\n"), errors.SeriesError, "no visits"),
    "csv-row-without-image": SeriesCase(visits(f"date,image\n{BASE_DATE},\n"), errors.SeriesError, "no image"),
    "csv-impossible-month": SeriesCase(
        visits(f"date,image\n2026-13-45,visit_00_{BASE_DATE}.jpg\n"), errors.SeriesError, "not a real calendar date"
    ),
    "csv-feb-29-non-leap": SeriesCase(
        visits(f"date,image\n2025-02-29,visit_00_{BASE_DATE}.jpg\n"), errors.SeriesError, "not a real calendar date"
    ),
    "csv-date-with-time": SeriesCase(
        visits(f"date,image\n2026-01-05T10:00,visit_00_{BASE_DATE}.jpg\n"), errors.SeriesError, "ISO date"
    ),
    "csv-utf16": SeriesCase(
        visits(f"date,image\n{BASE_DATE},visit_00_{BASE_DATE}.jpg\n".encode("utf-16")), errors.SeriesError, "UTF-8"
    ),
    "csv-binary-garbage": SeriesCase(
        visits(bytes(range(256)) * 4), errors.SeriesError, "UTF-8"
    ),
    "csv-nul-in-name": SeriesCase(visits(f"date,image\n{BASE_DATE},a\0.jpg\n"), errors.SeriesError, "control characters"),
    "csv-nested-dotdot": SeriesCase(
        visits(f"date,image\n{BASE_DATE},sub/../../visit_00_{BASE_DATE}.jpg\n"), errors.SeriesError,
        "inside the series folder",
    ),
    "csv-absolute-existing-file": SeriesCase(absolute_existing, errors.SeriesError, "inside the series folder"),
    "csv-annexed-photo-link": SeriesCase(symlink_in_csv, check=check_link_read_through("elsewhere.jpg")),
    "discovered-annexed-photo-link": SeriesCase(
        symlink_discovered, check=check_link_read_through(f"visit_02_{VISIT_DATE}.jpg")),
    "csv-linked-folder-outside": SeriesCase(linked_folder_in_csv, errors.SeriesError, "outside the series folder"),
    "baseline-without-skin": SeriesCase(baseline_no_skin, errors.SeriesError, "baseline photo cloth.png"),
    "only-non-image-files": SeriesCase(only_non_images, errors.SeriesError, "no photos"),
    "huge-visits-csv": SeriesCase(huge_csv, errors.SeriesError, "larger than"),
    "10k-visits-over-limit": SeriesCase(
        ten_thousand_rows, errors.SeriesError, "REPIGMENT_MAX_VISITS", env={"REPIGMENT_MAX_VISITS": "50"}
    ),
    "csv-lists-a-directory-as-baseline": SeriesCase(
        lambda folder, src, p: (folder / "x.jpg").mkdir() or copy_photos(src, folder)
        or (folder / "visits.csv").write_text(f"date,image\n{BASE_DATE},x.jpg\n{VISIT_DATE},visit_01_{VISIT_DATE}.jpg\n"),
        errors.SeriesError, "x.jpg",
    ),
    # Either fix (reject control characters in visits.csv names, or quote the name) passes: no fragment required.
    "newline-in-baseline-name": SeriesCase(newline_name, errors.SeriesError, ""),
    "env-pixels-text": env_case("REPIGMENT_MAX_PIXELS", "lots"),
    "env-pixels-negative": env_case("REPIGMENT_MAX_PIXELS", "-5"),
    "env-file-mb-nan": env_case("REPIGMENT_MAX_FILE_MB", "nan"),
    "env-file-mb-inf": env_case("REPIGMENT_MAX_FILE_MB", "inf"),
    "env-file-mb-tiny": env_case("REPIGMENT_MAX_FILE_MB", "1e-12"),
    "env-visits-zero": env_case("REPIGMENT_MAX_VISITS", "0"),
    "env-visits-float": env_case("REPIGMENT_MAX_VISITS", "2.5"),
    "env-seconds-garbage": env_case("REPIGMENT_MAX_SECONDS_PER_PHOTO", "\x1b[31mred"),
    "env-seconds-hex": env_case("REPIGMENT_MAX_SECONDS_PER_PHOTO", "0x10"),
}


def visit_records(result) -> list[dict]:
    """Visits of a SeriesResult or of a results.json document, in one shape."""
    if isinstance(result, dict):
        return [{"image": v["image"], "error": v["error"], "pct": v["repigmentation_pct"],
                 "weeks": v["weeks_since_start"]} for v in result["visits"]]
    return [{"image": v.image, "error": v.error, "pct": None if v.score is None else v.score.repigmentation_pct,
             "weeks": v.weeks_since_start} for v in result.visits]


def baseline_name(result) -> str:
    if isinstance(result, dict):
        baseline = result["baseline"]
        return baseline["image"] if isinstance(baseline, dict) else baseline
    return result.baseline


# --------------------------------------------------------------------------
# Building every case once, and running the CLI on all of them


@pytest.fixture(scope="module")
def built(tmp_path_factory, source_series, photo) -> dict:
    """Every case's input, built once: ("image" | "series", name) -> path."""
    root = tmp_path_factory.mktemp("hostile")
    inputs = {}
    for name, case in IMAGE_CASES.items():
        if not case.needs:
            folder = root / "images" / name
            folder.mkdir(parents=True)
            inputs[("image", name)] = case.make(folder, photo)
    for name, case in SERIES_CASES.items():
        folder = root / "series" / name / "photos"
        folder.mkdir(parents=True)
        case.make(folder, source_series, photo)
        inputs[("series", name)] = folder
    return inputs


@dataclass
class CliRun:
    returncode: int
    stderr: str


@pytest.fixture
def cli(monkeypatch):
    """The CLI run in this process (the same app and error handling as ``python -m repigment.cli``).

    Analyses run at the smallest working size to keep the suite fast; the CLI
    shell around them is unchanged. A handful of real subprocess runs are in
    ``test_cli_subprocess``.
    """
    import functools

    from typer.testing import CliRunner

    from repigment import cli as cli_module
    from repigment.series import pipeline

    monkeypatch.setattr(pipeline, "analyze_series", functools.partial(analyze_series, working_size=FAST))
    monkeypatch.setattr(pipeline, "segment_image", functools.partial(segment_image, working_size=FAST))
    monkeypatch.delenv("REPIGMENT_DEBUG", raising=False)

    def invoke(args: list, env: dict[str, str] | None = None) -> CliRun:
        for name in [k for k in os.environ if k.startswith("REPIGMENT_MAX_")]:
            monkeypatch.delenv(name)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(cli_module.app, [str(a) for a in args])
        # Anything but a clean exit is a crash the CLI failed to turn into a message.
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        return CliRun(result.exit_code, result.stderr)

    return invoke


def case_params(cases: dict, kind: str) -> list:
    params = []
    for name, case in cases.items():
        marks = []
        if getattr(case, "needs", None):
            marks.append(pytest.mark.skip(reason=case.needs))
        params.append(pytest.param(name, id=name, marks=marks))
    return params


# --------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("name", case_params(IMAGE_CASES, "library"))
def test_segment_image_library(built, photo, name):
    case = IMAGE_CASES[name]
    path = built[("image", name)]
    if case.error is not None:
        with pytest.raises(errors.RepigmentError) as caught:
            segment_image(path, working_size=FAST)
        assert isinstance(caught.value, case.error), repr(caught.value)
        assert one_line(str(caught.value)) and path.name in str(caught.value)
        return
    result = segment_image(path, working_size=FAST)
    assert result.mask.dtype == bool and result.area_px == int(result.mask.sum())
    case.check(result.mask, photo)


@pytest.mark.parametrize("name", case_params(IMAGE_CASES, "cli"))
def test_segment_cli(built, photo, cli, name):
    case = IMAGE_CASES[name]
    path = built[("image", name)]
    out = path.parent / "mask.png"
    proc = cli(["segment", path, "--out", out])
    if case.error is not None:
        assert_one_line_error(proc, path.name)
        assert not out.exists()
        return
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    mask = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(mask)) <= {0, 255}
    case.check(mask > 0, photo)


@pytest.mark.parametrize("name", case_params(SERIES_CASES, "library"))
def test_analyze_series_library(built, name, tmp_path):
    case = SERIES_CASES[name]
    folder = built[("series", name)]

    def run():
        limits = Limits.from_env(case.env)
        return analyze_to(folder, tmp_path / "out", treatment_start=case.treatment_start, limits=limits,
                              working_size=FAST)

    if case.error is not None:
        with pytest.raises(errors.RepigmentError) as caught:
            run()
        assert isinstance(caught.value, case.error), repr(caught.value)
        assert one_line(str(caught.value)), repr(str(caught.value))
        assert case.fragment in str(caught.value)
        assert not (tmp_path / "out" / "results.json").exists()
        return
    result = run()
    case.check(result, folder)
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    case.check(document, folder)


@pytest.mark.parametrize("name", case_params(SERIES_CASES, "cli"))
def test_analyze_cli(built, cli, name, tmp_path):
    case = SERIES_CASES[name]
    folder = built[("series", name)]
    results = tmp_path / "out" / "results.json"
    args = ["analyze", folder, "--out", results.parent, "-q"]
    if case.treatment_start:
        args += ["--treatment-start", case.treatment_start]
    proc = cli(args, case.env)
    if case.error is not None:
        assert_one_line_error(proc, case.fragment)
        assert not results.exists()
        return
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    case.check(json.loads(results.read_text()), folder)


# A few real processes: the interpreter start, the entry point and stderr as a user sees them.
SUBPROCESS_CASES = [
    pytest.param(("image", "html-as-png"), {}, id="segment-html-as-png"),
    pytest.param(("series", "10k-visits-over-limit"), {"REPIGMENT_MAX_VISITS": "50"}, id="analyze-10k-visits"),
    pytest.param(("series", "env-pixels-text"), {"REPIGMENT_MAX_PIXELS": "lots"}, id="analyze-env-garbage"),
]


@pytest.mark.parametrize("key, env", SUBPROCESS_CASES)
def test_cli_subprocess(built, key, env, tmp_path):
    path = built[key]
    args = ["segment", path, "--out", tmp_path / "m.png"] if key[0] == "image" else ["analyze", path, "--out", tmp_path]
    proc = run_cli(*args, env=env, clean_env=True, timeout=CLI_TIMEOUT)
    assert_one_line_error(proc)
