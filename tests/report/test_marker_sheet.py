"""The printable marker sheet, rasterised as a printer would, is read at its stated size."""

import io
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from repigment.core.calibration import detect_marker
from repigment.errors import InvalidParameterError
from repigment.report.marker_sheet import CHECK_LINE_MM, marker_sheet_pdf

DPI = 300
PX_PER_MM = DPI / 25.4


def _poppler(tool):
    """The path of poppler's ``tool``; a missing one fails the test, since ``make test`` installs it."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} (poppler-utils) is missing: run `bash scripts/ensure_test_tools.sh` "
                    "(or `make test`), which installs it", pytrace=False)
    return path


def _rasterise(pdf_path, tmp_path, dpi=DPI):
    prefix = tmp_path / "page"
    subprocess.run([_poppler("pdftoppm"), "-r", str(dpi), "-png", str(pdf_path), str(prefix)], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in pages]


def _all_markers(rgb):
    detector = cv2.aruco.ArucoDetector(
        cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), cv2.aruco.DetectorParameters()
    )
    corners, ids, _ = detector.detectMarkers(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    return {int(i): c.reshape(4, 2) for i, c in zip(np.asarray(ids).ravel(), corners)}


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sheet")
    pdf = tmp / "marker.pdf"
    marker_sheet_pdf(pdf)
    pages = _rasterise(pdf, tmp)
    return pdf, pages


def test_one_a4_page(sheet):
    _, pages = sheet
    assert len(pages) == 1
    height, width = pages[0].shape[:2]
    assert width == pytest.approx(210 * PX_PER_MM, abs=2)
    assert height == pytest.approx(297 * PX_PER_MM, abs=2)


def test_every_marker_detected_at_its_stated_size_within_2_percent(sheet):
    _, (page,) = sheet
    found = _all_markers(page)
    assert sorted(found) == [0, 1, 2, 3, 4, 5]
    expected_side = 20.0 * PX_PER_MM
    for marker_id, quad in found.items():
        x0, y0 = quad.min(axis=0).astype(int) - 80
        x1, y1 = quad.max(axis=0).astype(int) + 80
        crop = np.ascontiguousarray(page[max(y0, 0):y1, max(x0, 0):x1])
        detection = detect_marker(crop, marker_mm=20.0)
        assert detection is not None and detection.marker_id == marker_id
        assert detection.side_px == pytest.approx(expected_side, rel=0.02)
        assert detection.mm_per_px == pytest.approx(25.4 / DPI, rel=0.02)


def test_check_line_is_50_mm_long(sheet):
    _, (page,) = sheet
    dark = page.min(axis=2) < 128
    best = 0
    for row in dark:
        xs = np.flatnonzero(row)
        if xs.size == 0:
            continue
        # Longest run of consecutive dark pixels in this row.
        breaks = np.flatnonzero(np.diff(xs) > 1)
        starts = np.r_[xs[0], xs[breaks + 1]]
        ends = np.r_[xs[breaks], xs[-1]]
        best = max(best, int((ends - starts + 1).max()))
    assert best == pytest.approx(CHECK_LINE_MM * PX_PER_MM, rel=0.01)


def test_sheet_states_size_and_instructions(sheet):
    pdf, _ = sheet
    text = subprocess.run([_poppler("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "20 mm" in text
    assert "50 mm" in text
    assert "Actual size" in text
    assert "next to the patch" in text


def test_other_sizes_are_printed_at_their_size(tmp_path):
    pdf = tmp_path / "m30.pdf"
    data = marker_sheet_pdf(pdf, marker_mm=30, ids=(7, 8), paper="letter")
    assert pdf.read_bytes() == data
    (page,) = _rasterise(pdf, tmp_path, dpi=150)
    assert page.shape[1] == pytest.approx(215.9 * 150 / 25.4, abs=2)
    found = _all_markers(page)
    assert sorted(found) == [7, 8]
    side = np.sqrt(cv2.contourArea(found[7].astype(np.float32)))
    assert side == pytest.approx(30 * 150 / 25.4, rel=0.02)


def test_writes_to_a_buffer():
    buffer = io.BytesIO()
    data = marker_sheet_pdf(buffer, marker_mm=25)
    assert buffer.getvalue() == data and data.startswith(b"%PDF-")


@pytest.mark.parametrize("kwargs", [
    {"marker_mm": 0}, {"marker_mm": 5}, {"marker_mm": 500}, {"marker_mm": float("nan")}, {"marker_mm": "big"},
    {"ids": ()}, {"ids": (1, 1)}, {"ids": (50,)}, {"paper": "A3"}, {"marker_mm": 90, "ids": tuple(range(6))},
])
def test_unusable_options_are_refused(kwargs):
    with pytest.raises(InvalidParameterError):
        marker_sheet_pdf(**kwargs)
