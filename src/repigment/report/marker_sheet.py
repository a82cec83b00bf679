"""A printable sheet of ArUco scale markers, drawn at exact physical size.

The sheet is a vector PDF: the page is the paper size, the drawing is in
millimetres with no margins added by the PDF writer, and every marker cell is a
filled rectangle, so a printer at 100 % ("actual size") reproduces the stated
side exactly. A 50 mm check line lets the user verify that the printer did not
scale the page.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Sequence

import numpy as np

from .._version import __version__
from ..errors import InvalidParameterError
from ..vocabulary import DEFAULT_MARKER_MM

__all__ = [
    "PAPER_SIZES_MM",
    "CHECK_LINE_MM",
    "marker_sheet_pdf",
    "marker_cells",
]

#: Paper sizes (width, height) in mm, portrait.
PAPER_SIZES_MM = {"A4": (210.0, 297.0), "letter": (215.9, 279.4)}
#: Length of the printed check line, mm.
CHECK_LINE_MM = 50.0
#: Range of printable marker sides, mm.
MARKER_MM_RANGE = (10.0, 100.0)

_MARGIN_MM = 15.0
_GAP_MM = 8.0
_LABEL_MM = 8.0
_CUT_GREY = "0.55"


def marker_cells(marker_id: int) -> np.ndarray:
    """The 6 x 6 cells of a ``DICT_4X4_50`` marker, True where black.

    Examples
    --------
    >>> cells = marker_cells(0)
    >>> cells.shape, bool(cells[0].all() and cells[:, 0].all())   # black border
    ((6, 6), True)
    """
    import cv2

    if not (isinstance(marker_id, (int, np.integer)) and 0 <= int(marker_id) < 50):
        raise InvalidParameterError(f"marker ids must be integers 0-49 (DICT_4X4_50), got {marker_id!r}")
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
    image = cv2.aruco.generateImageMarker(dictionary, int(marker_id), 6)
    return image < 128


def _quiet_zone_mm(marker_mm: float) -> float:
    # At least one and a half cells of white all round (the detector needs one).
    return max(4.0, marker_mm / 4.0)


def _layout(marker_mm: float, count: int, page: tuple[float, float]) -> list[tuple[float, float]]:
    """Top-left corners (mm) of the markers' black squares."""
    width, height = page
    quiet = _quiet_zone_mm(marker_mm)
    cell_w = marker_mm + 2 * quiet
    cell_h = cell_w + _LABEL_MM
    top = 42.0
    bottom_reserved = 105.0  # check line and instructions
    columns = int((width - 2 * _MARGIN_MM + _GAP_MM) // (cell_w + _GAP_MM))
    rows = int((height - top - bottom_reserved + _GAP_MM) // (cell_h + _GAP_MM))
    if columns < 1 or rows < 1:
        raise InvalidParameterError(f"a {marker_mm:g} mm marker does not fit on the page with its instructions")
    if count > columns * rows:
        raise InvalidParameterError(
            f"at most {columns * rows} markers of {marker_mm:g} mm fit on one page, asked for {count}"
        )
    # Balanced rows: six markers as 3 + 3 rather than 4 + 2.
    rows_needed = -(-count // columns)
    used_columns = -(-count // rows_needed)
    block_w = used_columns * cell_w + (used_columns - 1) * _GAP_MM
    left = (width - block_w) / 2.0
    corners = []
    for k in range(count):
        row, col = divmod(k, used_columns)
        x = left + col * (cell_w + _GAP_MM) + quiet
        y = top + row * (cell_h + _GAP_MM) + quiet
        corners.append((x, y))
    return corners


def _marker_patches(x: float, y: float, side: float, cells: np.ndarray):
    """The black square and one compound path of its white cells (no seams)."""
    from matplotlib.patches import PathPatch, Rectangle
    from matplotlib.path import Path

    black = Rectangle((x, y), side, side, facecolor="black", edgecolor="none", linewidth=0, antialiased=True)
    step = side / cells.shape[0]
    vertices, codes = [], []
    for row in range(cells.shape[0]):
        for col in range(cells.shape[1]):
            if cells[row, col]:
                continue
            x0, y0 = x + col * step, y + row * step
            vertices += [(x0, y0), (x0 + step, y0), (x0 + step, y0 + step), (x0, y0 + step), (x0, y0)]
            codes += [Path.MOVETO, Path.LINETO, Path.LINETO, Path.LINETO, Path.CLOSEPOLY]
    patches = [black]
    if vertices:
        patches.append(PathPatch(Path(vertices, codes), facecolor="white", edgecolor="none", linewidth=0))
    return patches


def marker_sheet_pdf(
    path_or_buffer: str | os.PathLike | BinaryIO | None = None,
    *,
    marker_mm: float = DEFAULT_MARKER_MM,
    ids: Sequence[int] = (0, 1, 2, 3, 4, 5),
    paper: str = "A4",
) -> bytes:
    """Draw a sheet of scale markers as a PDF at exact physical size.

    Parameters
    ----------
    path_or_buffer : path or binary file-like, optional
        Where to write the PDF (a path is written atomically). The bytes are
        returned either way.
    marker_mm : float, optional
        Printed side of each marker, outer black edge to outer black edge, mm
        (10-100).
    ids : sequence of int, optional
        ``DICT_4X4_50`` ids to print, each 0-49, no repeats.
    paper : {"A4", "letter"}, optional

    Returns
    -------
    bytes
        The PDF.

    Raises
    ------
    InvalidParameterError
        If the size, ids or paper are not usable, or the markers do not fit.

    Notes
    -----
    Each marker sits in a white quiet zone of at least 1.5 cells (dashed cut
    line around it) with its side and id printed underneath. The page also
    carries a 50 mm check line with end ticks and short instructions.

    Examples
    --------
    >>> pdf = marker_sheet_pdf(marker_mm=20)
    >>> pdf[:5]
    b'%PDF-'
    """
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    try:
        side = float(marker_mm)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"marker size must be a number of mm, got {marker_mm!r}") from None
    low, high = MARKER_MM_RANGE
    if not (np.isfinite(side) and low <= side <= high):
        raise InvalidParameterError(f"marker size must be {low:g}-{high:g} mm, got {marker_mm!r}")
    if paper not in PAPER_SIZES_MM:
        raise InvalidParameterError(f"paper must be one of {', '.join(PAPER_SIZES_MM)}, got {paper!r}")
    ids = list(ids)
    if not ids:
        raise InvalidParameterError("give at least one marker id")
    if len(set(int(i) for i in ids)) != len(ids):
        raise InvalidParameterError(f"marker ids must not repeat, got {ids}")
    cells = [marker_cells(i) for i in ids]
    width, height = PAPER_SIZES_MM[paper]
    corners = _layout(side, len(ids), (width, height))
    quiet = _quiet_zone_mm(side)
    size_text = f"{side:g} mm"

    with matplotlib.rc_context({"pdf.fonttype": 42, "font.family": "DejaVu Sans"}):
        figure = Figure(figsize=(width / 25.4, height / 25.4))
        axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
        axes.set_xlim(0.0, width)
        axes.set_ylim(height, 0.0)
        axes.set_axis_off()
        text = dict(transform=axes.transData, color="black")
        axes.text(_MARGIN_MM, 20.0, "Scale markers for repigment", fontsize=18, weight="bold", va="baseline", **text)
        axes.text(
            _MARGIN_MM, 28.0,
            f"Each black square is {size_text} wide (outer black edge to outer black edge). "
            "ArUco dictionary DICT_4X4_50.",
            fontsize=9.5, va="baseline", **text,
        )
        for (x, y), marker_id, marker in zip(corners, ids, cells):
            for patch in _marker_patches(x, y, side, marker):
                axes.add_patch(patch)
            axes.add_patch(Rectangle(
                (x - quiet, y - quiet), side + 2 * quiet, side + 2 * quiet, fill=False,
                edgecolor=_CUT_GREY, linewidth=0.6, linestyle=(0, (4, 3)),
            ))
            axes.text(x + side / 2, y + side + quiet + 5.0, f"side {size_text}  ·  id {marker_id}",
                      fontsize=8.5, ha="center", va="baseline", **text)

        # The check line: a bar exactly CHECK_LINE_MM long, with end ticks inside its length.
        last_row_bottom = max(y for _, y in corners) + side + quiet + _LABEL_MM
        line_y = min(last_row_bottom + 22.0, height - 100.0)
        line_x = _MARGIN_MM
        thick = 0.4
        axes.add_patch(Rectangle((line_x, line_y - thick / 2), CHECK_LINE_MM, thick, facecolor="black",
                                 edgecolor="none", linewidth=0))
        for x0 in (line_x, line_x + CHECK_LINE_MM - thick):
            axes.add_patch(Rectangle((x0, line_y - 4.0), thick, 8.0, facecolor="black", edgecolor="none", linewidth=0))
        axes.text(line_x + CHECK_LINE_MM + 6.0, line_y - 1.0, f"Check line: it must measure {CHECK_LINE_MM:g} mm "
                  "from tick to tick.", fontsize=10, weight="bold", va="baseline", **text)
        axes.text(line_x + CHECK_LINE_MM + 6.0, line_y + 4.0, "If it does not, the printer scaled the page: "
                  "print again.", fontsize=9, va="baseline", **text)

        steps = [
            "1.  Print this page at 100 % (\"Actual size\"); turn off \"Fit to page\" or \"Scale to fit\".",
            "     Use plain white matte paper.",
            f"2.  Measure the check line with a ruler: it must be {CHECK_LINE_MM:g} mm, and each black square "
            f"{size_text}. If not, print again.",
            "3.  Cut out one marker along the dashed line, keeping the white border all round it.",
            "4.  Stick it flat on the skin next to the patch, in the same plane as the patch, never covering it,",
            "     and keep the whole marker in the photo. Use a fresh one when it gets creased or dirty.",
            f"5.  Tell repigment the printed size: {size_text} (the default is 20 mm).",
        ]
        axes.text(_MARGIN_MM, line_y + 16.0, "How to use", fontsize=11, weight="bold", va="baseline", **text)
        for k, line in enumerate(steps):
            axes.text(_MARGIN_MM, line_y + 23.0 + 6.0 * k, line, fontsize=9, va="baseline", **text)
        axes.text(
            _MARGIN_MM, height - 10.0,
            f"repigment {__version__}  ·  markers DICT_4X4_50 ids {', '.join(str(i) for i in ids)}  ·  "
            f"{paper} paper", fontsize=7, color="0.35", va="baseline", transform=axes.transData,
        )
        buffer = io.BytesIO()
        figure.savefig(buffer, format="pdf", metadata={"Title": f"repigment scale markers {size_text}",
                                                       "Creator": f"repigment {__version__}"})
    data = buffer.getvalue()
    if path_or_buffer is not None:
        if hasattr(path_or_buffer, "write"):
            path_or_buffer.write(data)
        else:
            from ..series.results import atomic_write_bytes

            atomic_write_bytes(path_or_buffer, data)
    return data
