"""A PDF report of a scored series, to file and to show the patient.

A4 portrait pages, drawn with matplotlib:

1. **Summary**: patient code (never a name), patch, treatment and events, where
   things stand in plain words, the week-24 and week-52 checkpoints, and the
   timeline chart of repigmentation % against weeks since treatment start with
   its uncertainty band, the VASI50/75/90 levels and the week 24/52 markers.
2. **Photos**: the baseline and the latest photo side by side (the latest
   aligned onto the baseline) with the outlines of the depigmented skin, and
   the change map between them.
3. **The whole patient** (only when given, e.g. from the app with a hand
   unit): F-VASI and T-VASI over weeks across every patch, their milestones
   and which patches carry the change.
4. **Every visit**: each visit aligned onto the baseline and outlined, four
   to a row (a visit that could not be measured shown as taken); only when
   the photos are found.
5. **Visits and method**: the table of visits (area, repigmentation, VASI
   residual level, patch VASI, pattern, spreading), the milestones, and how the
   figures were made, with the software version.

The report reads an analysis folder written by ``repigment analyze``
(``results.json`` and ``masks/``) and the photos from the series folder named in
it (or given). Without the photos the report says so and renders the rest.
"""

from __future__ import annotations

import datetime as _dt
import io
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .._version import __version__
from ..clinical.summary import TOTAL_IN_REVIEW_NOTE as _REVIEW_NOTE
from ..clinical.summary import total_milestone_words
from ..errors import InvalidParameterError, RepigmentError
from ..series.results import read_results

__all__ = ["ReportEvent", "load_results", "report_pdf", "write_report"]

_PAGE_MM = (210.0, 297.0)
_MARGIN = 16.0
_PT_TO_MM = 25.4 / 72.0
_INK = "#1a1a1a"
_MUTED = "#555555"
_ACCENT = "#0072B2"  # Okabe-Ito blue
_BAND = "#56B4E9"
_WARN = "#D55E00"
_PHOTO_SIDE = 1000  # longest side at which photos are loaded for the report
_THUMB_SIDE = 480  # longest side of the photos of the every-visit page
_THUMBS_PER_PAGE = 16
_MAX_TABLE_ROWS = 22


def _status_words(record: dict) -> str:
    """A checkpoint's status in the words every view uses (older results hold only the status)."""
    return str(record.get("status_words") or record["status"])


@dataclass(frozen=True)
class ReportEvent:
    """Something that happened during treatment (phototherapy started, a pause...).

    Attributes
    ----------
    date : datetime.date
    text : str
    """

    date: _dt.date
    text: str


def _parse_events(events: Iterable) -> list[ReportEvent]:
    parsed = []
    for event in events:
        if isinstance(event, ReportEvent):
            parsed.append(event)
            continue
        if isinstance(event, dict):
            date, text = event.get("date"), event.get("text")
        elif isinstance(event, str):
            date, _, text = event.partition(":")
        else:
            try:
                date, text = event
            except (TypeError, ValueError):
                raise InvalidParameterError(f"an event must be (date, text) or 'YYYY-MM-DD: text', got {event!r}") from None
        if isinstance(date, str):
            try:
                date = _dt.date.fromisoformat(date.strip())
            except ValueError:
                raise InvalidParameterError(f"event date must be YYYY-MM-DD, got {date!r}") from None
        if not isinstance(date, _dt.date) or not str(text or "").strip():
            raise InvalidParameterError(f"an event needs a date and a text, got {event!r}")
        parsed.append(ReportEvent(date=date, text=" ".join(str(text).split())))
    return sorted(parsed, key=lambda e: e.date)


def load_results(out_dir: str | Path) -> dict:
    """The checked ``results.json`` document of an analysis folder (see
    :func:`repigment.series.results.read_results`, which raises ``SeriesError``
    with a one-line message when there is none)."""
    return read_results(out_dir).document


# --- drawing helpers -------------------------------------------------------------------------


class _Page:
    """An A4 page with a millimetre coordinate system (origin top left)."""

    def __init__(self, title: str, number: int, total: int, footer: str):
        from matplotlib.figure import Figure

        width, height = _PAGE_MM
        self.figure = Figure(figsize=(width / 25.4, height / 25.4))
        self.axes = self.figure.add_axes((0, 0, 1, 1))
        self.axes.set_xlim(0, width)
        self.axes.set_ylim(height, 0)
        self.axes.set_axis_off()
        self.y = _MARGIN
        self.text(title, size=17, weight="bold")
        self.y += 1.5
        self.axes.plot([_MARGIN, width - _MARGIN], [self.y, self.y], color=_ACCENT, linewidth=1.2)
        self.y += 5.0
        self.axes.text(_MARGIN, height - 9.0, footer, fontsize=7, color=_MUTED, va="baseline")
        self.axes.text(width - _MARGIN, height - 9.0, f"page {number} of {total}", fontsize=7, color=_MUTED,
                       ha="right", va="baseline")

    def text(self, s: str, *, size: float = 9.5, weight: str = "normal", color: str = _INK, x: float = _MARGIN,
             width_chars: int | None = None, gap: float = 1.0) -> None:
        """Write wrapped text and move down."""
        line_mm = size * _PT_TO_MM * 1.35
        if width_chars is None:
            usable = _PAGE_MM[0] - x - _MARGIN
            width_chars = max(20, int(usable / (size * _PT_TO_MM * 0.56)))
        for paragraph in s.split("\n"):
            lines = textwrap.wrap(paragraph, width=width_chars) or [""]
            for line in lines:
                self.y += line_mm
                self.axes.text(x, self.y, line, fontsize=size, weight=weight, color=color, va="baseline")
        self.y += gap

    def pairs(self, rows: Sequence[tuple[str, str]], *, size: float = 9.0, key_width: float = 38.0) -> None:
        """Label: value rows."""
        for key, value in rows:
            start = self.y
            self.text(key, size=size, weight="bold", color=_MUTED, width_chars=30, gap=0)
            self.y = start
            self.text(value, size=size, x=_MARGIN + key_width, gap=0.6)

    def heading(self, s: str) -> None:
        self.y += 2.0
        self.text(s, size=12, weight="bold", color=_ACCENT, gap=1.5)

    def add_axes(self, x: float, y: float, w: float, h: float):
        width, height = _PAGE_MM
        return self.figure.add_axes((x / width, 1 - (y + h) / height, w / width, h / height))


def _interval(pair, digits: int = 1) -> str:
    return "" if not pair else f" [{pair[0]:.{digits}f}, {pair[1]:.{digits}f}]"


def _scored(visits: Sequence[dict]) -> list[int]:
    return [k for k, v in enumerate(visits) if v.get("repigmentation_pct") is not None]


# --- photos ---------------------------------------------------------------------------------


@dataclass
class _Photos:
    baseline: np.ndarray | None
    latest: np.ndarray | None  # aligned onto the baseline frame
    base_mask: np.ndarray | None
    latest_mask: np.ndarray | None
    latest_index: int | None
    problem: str | None


def _load_photos(document: dict, out_dir: Path, series_dir: Path | None) -> _Photos:
    import cv2

    from ..io import load_image, read_mask

    visits = document["visits"]
    scored = [k for k in _scored(visits) if k > 0]
    latest = scored[-1] if scored else None
    width, height = document["baseline"]["width"], document["baseline"]["height"]
    factor = min(1.0, _PHOTO_SIDE / max(width, height))
    shape = (max(1, int(round(height * factor))), max(1, int(round(width * factor))))
    masks = [None, None]
    for slot, k in enumerate((0, latest)):
        if k is not None and visits[k].get("mask"):
            masks[slot] = read_mask(out_dir / visits[k]["mask"], shape)
    base_rgb = latest_rgb = None
    folder, problem = _series_folder(document, out_dir, series_dir)
    if folder is not None:
        try:
            loaded = load_image(Path(folder) / visits[0]["image"], max_side=_PHOTO_SIDE)
            base_rgb = cv2.resize(loaded.rgb, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
            if latest is not None and visits[latest]["registration"].get("homography") is not None:
                moving = load_image(Path(folder) / visits[latest]["image"], max_side=_PHOTO_SIDE)
                to_small = np.diag([shape[1] / width, shape[0] / height, 1.0])
                from_moving = np.diag([1.0 / moving.scale, 1.0 / moving.scale, 1.0])
                homography = to_small @ np.asarray(visits[latest]["registration"]["homography"]) @ from_moving
                latest_rgb = cv2.warpPerspective(moving.rgb, homography, (shape[1], shape[0]),
                                                 flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255))
        except (RepigmentError, OSError) as exc:
            problem = f"The photos are not shown: {str(exc).splitlines()[0]}"
            base_rgb = latest_rgb = None
    return _Photos(base_rgb, latest_rgb, masks[0], masks[1], latest, problem)


def _series_folder(document: dict, out_dir: Path, series_dir: Path | None) -> tuple[Path | None, str | None]:
    """The folder of the photos, or ``None`` and why the photos cannot be shown."""
    folder = series_dir
    if folder is None and (document.get("source") or {}).get("series_dir"):
        folder = Path(document["source"]["series_dir"])
        if not folder.is_absolute() and not folder.exists():
            folder = out_dir / folder
    if folder is None:
        return None, "The photos are not shown: results.json does not name the series folder (give it with --series)."
    if not Path(folder).is_dir():
        return None, f"The photos are not shown: the series folder {folder} was not found (give it with --series)."
    return Path(folder), None


def _visit_thumbnails(document: dict, out_dir: Path, folder: Path | None) -> list[tuple[np.ndarray, str, bool]]:
    """Every visit as a small picture: ``(image, caption, measured)``, in visit order.

    A measured visit is aligned onto the baseline and cropped around the
    patch, with its outline; a visit without figures shows its own photo.
    Photos are loaded one at a time at thumbnail size.
    """
    import cv2

    from ..core.visualize import OUTLINE_RGB, outline_overlay
    from ..io import load_image, read_mask

    if folder is None:
        return []
    visits = document["visits"]
    width, height = document["baseline"]["width"], document["baseline"]["height"]
    factor = min(1.0, _THUMB_SIDE / max(width, height))
    shape = (max(1, int(round(height * factor))), max(1, int(round(width * factor))))
    base_mask = read_mask(out_dir / visits[0]["mask"], shape) if visits[0].get("mask") else None
    top, bottom, left, right = _crop_box([base_mask], shape)
    thumbnails = []
    for k, visit in enumerate(visits):
        when = f"{visit['date']} · wk {visit['weeks_since_start']:.0f}"
        try:
            photo = load_image(folder / visit["image"], max_side=_THUMB_SIDE)
        except (RepigmentError, OSError):
            continue
        homography = (visit.get("registration") or {}).get("homography")
        measured = visit.get("repigmentation_pct") is not None
        if k == 0 or (measured and homography is not None):
            if k == 0:
                image = cv2.resize(photo.rgb, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
            else:
                to_small = np.diag([shape[1] / width, shape[0] / height, 1.0])
                from_moving = np.diag([1.0 / photo.scale, 1.0 / photo.scale, 1.0])
                image = cv2.warpPerspective(photo.rgb, to_small @ np.asarray(homography) @ from_moving,
                                            (shape[1], shape[0]), flags=cv2.INTER_AREA, borderValue=(255, 255, 255))
            if visit.get("mask"):
                image = outline_overlay(image, read_mask(out_dir / visit["mask"], shape), color=OUTLINE_RGB)
            caption = f"{when} · {visit['repigmentation_pct']:.0f} %" if k else f"{when} · baseline"
            if visit.get("needs_review"):
                caption += " · review"
            thumbnails.append((image[top:bottom, left:right], caption, True))
        else:
            thumbnails.append((photo.rgb, f"{when} · not measured", False))
        del photo
    return thumbnails


def _crop_box(masks: Sequence[np.ndarray | None], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Rows and columns around the patch (with context), at least 45 % of the frame."""
    present = [m for m in masks if m is not None and m.any()]
    height, width = shape
    if not present:
        return 0, height, 0, width
    union = np.logical_or.reduce(present)
    ys, xs = np.nonzero(union)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    pad = 0.35 * max(y1 - y0, x1 - x0)
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    half_h = max((y1 - y0) / 2 + pad, 0.225 * height)
    half_w = max((x1 - x0) / 2 + pad, 0.225 * width)
    top, bottom = int(max(0, cy - half_h)), int(min(height, cy + half_h))
    left, right = int(max(0, cx - half_w)), int(min(width, cx + half_w))
    return top, bottom, left, right


# --- the pages ------------------------------------------------------------------------------


def _timeline_chart(ax, document: dict, clinical: dict, events: Sequence[ReportEvent], start: _dt.date) -> None:
    visits = document["visits"]
    scored = _scored(visits)
    weeks = np.array([visits[k]["weeks_since_start"] for k in scored], float)
    values = np.array([visits[k]["repigmentation_pct"] for k in scored], float)
    bands = [visits[k].get("intervals", {}).get("repigmentation_pct") for k in scored]
    low = np.array([b[0] if b else v for b, v in zip(bands, values)], float)
    high = np.array([b[1] if b else v for b, v in zip(bands, values)], float)
    last_week = float(weeks.max()) if weeks.size else 0.0
    right = max(last_week, 24.0) * 1.06 + 2.0
    ax.fill_between(weeks, low, high, color=_BAND, alpha=0.35, linewidth=0, label="plausible range")
    ax.plot(weeks, values, color=_ACCENT, marker="o", markersize=4, linewidth=1.6, label="repigmentation")
    for level in (50, 75, 90):
        ax.axhline(level, color="#999999", linewidth=0.8, linestyle=(0, (5, 3)))
        ax.text(right, level, f" VASI{level}", fontsize=7.5, color=_MUTED, va="center", ha="left", clip_on=False)
    if clinical.get("body_region") not in (None, "face"):
        ax.axhline(25, color="#bbbbbb", linewidth=0.8, linestyle=":")
        ax.text(right, 25, " 25% body", fontsize=7.5, color=_MUTED, va="center", ha="left", clip_on=False)
    lowest = min(0.0, float(low.min()) if low.size else 0.0)
    top = 100.0
    for week in (24, 52):
        if week <= right:
            ax.axvline(week, color=_WARN, linewidth=1.0, linestyle=(0, (2, 2)))
            ax.text(week, top + 2, f"week {week}", fontsize=7.5, color=_WARN, ha="center", va="bottom")
    for event in events:
        week = (event.date - start).days / 7.0
        if 0 <= week <= right:
            ax.axvline(week, color="#009E73", linewidth=1.0)
            ax.text(week + 0.4, top - 3, event.text[:40], fontsize=7, color="#009E73", ha="left", va="top",
                    rotation=90)
    ax.set_xlim(0, right)
    ax.set_ylim(lowest - 5, top)
    ax.set_xlabel("weeks since treatment start", fontsize=8.5)
    ax.set_ylabel("repigmentation since baseline (%)", fontsize=8.5)
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#eeeeee", linewidth=0.6)
    ax.axhline(0, color="#777777", linewidth=0.7)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, fontsize=7.5, frameon=False)


def _summary_page(page: _Page, document: dict, clinical: dict, info: dict, events: Sequence[ReportEvent]) -> None:
    visits = document["visits"]
    scored = _scored(visits)
    latest = visits[scored[-1]] if scored else None
    scale = document.get("scale") or {}
    unit = clinical.get("hand_unit")
    region = clinical.get("body_region")
    rows = [
        ("Patient code", info["patient_code"]),
        ("Patch", info["patch"] + (f" ({region}, scored in {clinical.get('vasi_index')})" if region else
                                   " (body region not given)")),
        ("Treatment", info["treatment"]),
        ("Treatment start", document["treatment_start"]),
        ("Baseline photo", f"{document['baseline']['date']}  ({len(visits)} visits, "
                           f"{len(scored)} with figures)"),
        ("Latest visit", "—" if latest is None else f"{latest['date']} (week {latest['weeks_since_start']:.1f})"),
        ("Scale", f"{scale['marker_mm']:g} mm marker, {scale['mm_per_px']:.3f} mm per pixel"
         if scale.get("mm_per_px") else "no scale marker: areas in pixels only, no VASI"),
        ("Hand unit", "not given" if unit is None else f"{unit['cm2']:.0f} cm² ({unit['detail'] or unit['source']})"),
    ]
    page.pairs(rows)
    if events:
        page.pairs([("Events", "; ".join(f"{e.date.isoformat()}: {e.text}" for e in events))])

    latest_summary = clinical.get("latest")
    page.heading("Where things stand")
    if latest_summary is None:
        page.text("Only the baseline photo has figures so far.")
    else:
        page.text(latest_summary["patient_message"], size=10.5)
        page.text(latest_summary["clinician_message"], size=8.5, color=_MUTED)

    page.heading("Checkpoints")
    for key, week in (("week24", 24), ("week52", 52)):
        record = (clinical.get("checkpoints") or {}).get(key)
        if record is None:
            page.text(f"Week {week}: not yet — judged at the first visit at or after week {week}.", size=9)
            continue
        colour = _WARN if record["status"] in ("no improvement",) or record.get("spreading") else _INK
        page.text(f"Week {week}: {_status_words(record)}", size=10, weight="bold", color=colour, gap=0.3)
        page.text("In plain words: " + record["patient_message"], size=9, gap=0.3)
        page.text(record["clinician_message"], size=8, color=_MUTED)

    page.heading("Timeline")
    chart_top = page.y + 4
    height = max(55.0, _PAGE_MM[1] - 22.0 - chart_top - 12.0)
    ax = page.add_axes(_MARGIN + 12, chart_top, _PAGE_MM[0] - 2 * _MARGIN - 28, min(height, 95.0))
    start = _dt.date.fromisoformat(document["treatment_start"])
    _timeline_chart(ax, document, clinical, events, start)


def _photos_page(page: _Page, document: dict, clinical: dict, photos: _Photos) -> None:
    from matplotlib.patches import Patch

    from ..core.visualize import (
        NEW_DEPIGMENTATION_RGB,
        OUTLINE_RGB,
        REPIGMENTED_RGB,
        STILL_DEPIGMENTED_RGB,
        change_map,
        outline_overlay,
    )

    visits = document["visits"]
    latest = photos.latest_index
    if photos.problem:
        page.text(photos.problem, size=9.5, color=_WARN)
    if latest is None:
        page.text("There is no later visit with figures to compare with the baseline yet.")
    shape = photos.base_mask.shape if photos.base_mask is not None else None
    box = _crop_box([photos.base_mask, photos.latest_mask], shape) if shape else None

    def crop(image):
        top, bottom, left, right = box
        return image[top:bottom, left:right]

    width = _PAGE_MM[0] - 2 * _MARGIN
    if photos.baseline is not None and shape is not None:
        page.heading("Baseline and latest photo")
        page.text("Outlined in yellow: skin measured as depigmented. The latest photo is aligned onto the baseline, "
                  "so the same skin is at the same place in both.", size=8.5, color=_MUTED)
        panels = [(outline_overlay(photos.baseline, photos.base_mask, color=OUTLINE_RGB),
                   f"Baseline, {visits[0]['date']} (week 0)")]
        if photos.latest is not None and photos.latest_mask is not None:
            v = visits[latest]
            panels.append((outline_overlay(photos.latest, photos.latest_mask, color=OUTLINE_RGB),
                           f"{v['date']} (week {v['weeks_since_start']:.0f}), aligned"))
        panel_w = (width - 6) / 2
        sample = crop(panels[0][0])
        panel_h = min(75.0, panel_w * sample.shape[0] / sample.shape[1])
        top = page.y + 6
        for k, (image, title) in enumerate(panels):
            ax = page.add_axes(_MARGIN + k * (panel_w + 6), top, panel_w, panel_h)
            ax.imshow(crop(image), interpolation="lanczos")
            ax.set_title(title, fontsize=8.5, pad=3)
            ax.set_axis_off()
        page.y = top + panel_h + 4
    if latest is not None and photos.base_mask is not None and photos.latest_mask is not None:
        page.heading("Change since baseline")
        record = (clinical.get("visits") or [{}] * len(visits))[latest]
        pattern = (record.get("pattern") or {})
        spread = record.get("spreading") or {}
        v = visits[latest]
        page.text(
            f"Week {v['weeks_since_start']:.0f}: repigmentation {v['repigmentation_pct']:.1f}%"
            f"{_interval(v.get('intervals', {}).get('repigmentation_pct'))}. Pattern: "
            f"{pattern.get('pattern', 'not assessed')}" + (f" — {pattern['reason']}." if pattern.get("reason") else "."),
            size=9,
        )
        if spread:
            page.text(spread.get("description", "") + ".", size=9, color=_WARN if spread.get("flagged") else _INK)
        image = change_map(photos.base_mask, photos.latest_mask, background=photos.baseline)
        image = crop(image)
        room = _PAGE_MM[1] - 24.0 - page.y - 14.0
        map_w = width * 0.72
        map_h = min(room, map_w * image.shape[0] / image.shape[1])
        map_w = map_h * image.shape[1] / image.shape[0]
        ax = page.add_axes(_MARGIN, page.y + 3, map_w, map_h)
        ax.imshow(image, interpolation="lanczos")
        ax.set_axis_off()
        for region in (spread.get("regions") or []) if spread.get("flagged") else []:
            # Regions are in full-resolution baseline pixels; the map is scaled and cropped.
            scale_x = photos.base_mask.shape[1] / document["baseline"]["width"]
            x, y, w, h = (c * scale_x for c in region["bbox_xywh"])
            from matplotlib.patches import Rectangle

            ax.add_patch(Rectangle((x - box[2] - 4, y - box[0] - 4), w + 8, h + 8, fill=False,
                                   edgecolor=np.array(NEW_DEPIGMENTATION_RGB) / 255, linewidth=1.2))
        legend_ax = page.add_axes(_MARGIN + map_w + 4, page.y + 3, width - map_w - 4, 30)
        legend_ax.set_axis_off()
        handles = [
            Patch(color=np.array(REPIGMENTED_RGB) / 255, label="repigmented since baseline"),
            Patch(color=np.array(STILL_DEPIGMENTED_RGB) / 255, label="still depigmented"),
            Patch(color=np.array(NEW_DEPIGMENTATION_RGB) / 255, label="new depigmentation\n(outside the baseline)"),
        ]
        legend_ax.legend(handles=handles, loc="upper left", fontsize=7.5, frameon=False)
        legend_ax.text(0.02, 0.0, "\n".join(textwrap.wrap(
            f"Baseline ({visits[0]['date']}) against week {v['weeks_since_start']:.0f} ({v['date']}), drawn on the "
            "baseline photo." + (" Boxes: new depigmentation." if spread.get("flagged") else ""), 34)),
            fontsize=7.5, color=_MUTED, va="top", transform=legend_ax.transAxes)


def _thumbnails_page(page: _Page, thumbnails: Sequence[tuple[np.ndarray, str, bool]]) -> None:
    """A grid of every visit: the course at a glance, and which photos were not measured."""
    page.text("Each visit aligned onto the baseline and outlined in yellow where skin was measured as "
              "depigmented; a photo that could not be measured is shown as it was taken.", size=8.5, color=_MUTED)
    width = _PAGE_MM[0] - 2 * _MARGIN
    columns = 4
    cell_w = (width - (columns - 1) * 4) / columns
    sample = next((image for image, _, measured in thumbnails if measured), thumbnails[0][0])
    cell_h = min(cell_w * sample.shape[0] / sample.shape[1], 52.0)
    top = page.y + 4
    for n, (image, caption, measured) in enumerate(thumbnails):
        row, column = divmod(n, columns)
        ax = page.add_axes(_MARGIN + column * (cell_w + 4), top + row * (cell_h + 9), cell_w, cell_h)
        ax.imshow(image, interpolation="lanczos")
        ax.set_title(caption, fontsize=7.5, pad=2, color=_INK if measured else _WARN)
        ax.set_axis_off()
    page.y = top + ((len(thumbnails) + columns - 1) // columns) * (cell_h + 9)


def _patient_page(page: _Page, totals: dict, contributions: Sequence[dict], left_out: Sequence[str]) -> None:
    """The trials' endpoints for the whole patient: F-VASI and T-VASI over weeks, across every patch."""
    page.text("The ruxolitinib trials judged the whole patient: F-VASI for the face and T-VASI for the body, "
              "the sum of every patch's VASI. Improvement is from each index's first visit.", size=8.5,
              color=_MUTED)
    colours = {"F-VASI": _ACCENT, "T-VASI": "#CC79A7"}
    for index, series in totals.items():
        latest = series.latest_improvement()
        figure = ("no improvement figure yet" if latest is None else
                  f"{latest[1]:.0f}% better than its first visit at week {latest[0]:g}"
                  + (_REVIEW_NOTE if latest[2] else ""))
        page.text(f"{index}: {figure}. {total_milestone_words(index, series.milestones)}.", size=10, weight="bold")
    width = _PAGE_MM[0] - 2 * _MARGIN
    ax = page.add_axes(_MARGIN + 12, page.y + 4, width - 16, 70)
    for index, series in totals.items():
        points = [(w, v) for w, v in zip(series.weeks, series.improvement_pct) if v is not None]
        if points:
            ax.plot(*zip(*points), marker="o", color=colours.get(index, _INK), label=index, linewidth=2)
    for level in (50, 75, 90):
        ax.axhline(level, color=_MUTED, linestyle="--", linewidth=0.8)
        ax.text(0.0, level + 1.5, f"VASI{level}", fontsize=7, color=_MUTED)
    ax.set_ylim(min(-10.0, ax.get_ylim()[0]), 100)
    ax.set_xlabel("Weeks since treatment start", fontsize=8)
    ax.set_ylabel("Improvement (%)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    page.y += 4 + 70 + 10
    if contributions:
        page.heading("Which patches carry the change")
        for c in sorted(contributions, key=lambda c: c["change"] or 0.0):
            change = "" if c["change"] is None else f" ({c['change']:+.3f})"
            page.text(f"{c['label']} ({c['index']}): VASI {c['baseline']:.3f} at the first visit, "
                      f"{c['latest']:.3f} at the latest{change}", size=9)
    if left_out:
        page.text("Not in the totals: " + "; ".join(left_out) + ".", size=8.5, color=_MUTED)


def _table_page(page: _Page, document: dict, clinical: dict, rows: Sequence[int], *, last: bool) -> None:
    visits = document["visits"]
    records = clinical.get("visits") or [{}] * len(visits)
    calibrated = any(v.get("depigmented_area_cm2") is not None for v in visits)
    index = clinical.get("vasi_index") or "VASI"
    header = ["date", "week", "area " + ("cm²" if calibrated else "px"), "repigmentation %", "VASI\nresidual",
              f"patch {index}", "pattern", "spreading", "checkpoint"]
    checkpoints = {}
    for record in (clinical.get("checkpoints") or {}).values():
        if record is not None and record.get("visit"):
            short = {"no improvement": "none"}.get(record["status"], _status_words(record))
            checkpoints.setdefault(record["visit"], []).append(f"{record['target_week']}: {short}")
    cells, notes = [], []
    for k in rows:
        v, r = visits[k], records[k] if k < len(records) else {}
        if v.get("repigmentation_pct") is None:
            notes.append(f"{v['date']}: {v.get('error') or 'no figures'}")
            cells.append([v["date"], f"{v['weeks_since_start']:.1f}", "not scored*", "—", "—", "—", "—", "—", "—"])
            continue
        intervals = v.get("intervals") or {}
        if calibrated and v.get("depigmented_area_cm2") is not None:
            area = f"{v['depigmented_area_cm2']:.2f}{_interval(intervals.get('depigmented_area_cm2'), 2)}"
        else:
            area = f"{v['depigmented_area_px']}"
        vasi = "—" if r.get("patch_vasi") is None else f"{r['patch_vasi']:.3f}{_interval(r.get('patch_vasi_interval'), 3)}"
        spread = r.get("spreading") or {}
        cells.append([
            v["date"], f"{v['weeks_since_start']:.1f}", area,
            f"{v['repigmentation_pct']:.1f}{_interval(intervals.get('repigmentation_pct'))}",
            f"{v.get('vasi_residual_depigmentation')}%",
            vasi,
            "baseline" if k == 0 else ((r.get("pattern") or {}).get("pattern") or "—"),
            "—" if k == 0 or not spread else ("YES" if spread.get("flagged") else "no"),
            "; ".join(checkpoints.get(v["image"], [])) or "",
        ])
    page.heading("Visits")
    table_h = 7.0 * (len(cells) + 1)
    ax = page.add_axes(_MARGIN, page.y + 1, _PAGE_MM[0] - 2 * _MARGIN, table_h)
    ax.set_axis_off()
    table = ax.table(cellText=cells, colLabels=header, loc="upper center", cellLoc="center",
                     colWidths=[0.1, 0.05, 0.15, 0.15, 0.065, 0.155, 0.12, 0.08, 0.13], bbox=(0, 0, 1, 1))
    table.auto_set_font_size(False)
    table.set_fontsize(7.0)
    for (row, col), cell in table.get_celld().items():
        cell.set_edgecolor("#cccccc")
        cell.set_linewidth(0.5)
        if row == 0:
            cell.set_facecolor("#e8f1f8")
            cell.set_text_props(weight="bold")
        elif cells[row - 1][7] == "YES" and col == 7:
            cell.set_text_props(color=_WARN, weight="bold")
    page.y += table_h + 4
    for note in notes:
        page.text(f"* not scored, {note}", size=7.5, color=_WARN, gap=0.3)
    page.text("Intervals in brackets are the plausible range of each figure (the segmentation's decision range and "
              "the registration error). VASI residual: the VASI level nearest to the share of the baseline patch still "
              "depigmented. Checkpoint: the week-24 or week-52 judgement made at that visit (none = no measurable "
              "improvement).", size=7.5, color=_MUTED)
    if not last:
        page.text("The table continues on the next page.", size=8, color=_MUTED)
        return

    vasi = clinical.get("vasi") or {}
    page.heading("Milestones")
    milestones = vasi.get("milestones") or document.get("milestones") or {}

    def first(week) -> str:
        return "not reached" if week is None else f"week {week:.0f}"

    page.text("First visit with at least 50 / 75 / 90 % improvement (VASI50 / VASI75 / VASI90): "
              + ", ".join(f"VASI{n} {first(milestones.get(f'vasi{n}_week'))}" for n in (50, 75, 90)) + ".", size=9)
    if vasi.get("milestones_level"):
        level = vasi["milestones_level"]
        page.text("On the level-based score (as a human scorer would fill in the form): "
                  + ", ".join(f"VASI{n} {first(level.get(f'vasi{n}_week'))}" for n in (50, 75, 90)) + ".", size=8.5,
                  color=_MUTED)
    if not vasi.get("available", False):
        page.text(f"VASI not scored: {vasi.get('reason') or 'no clinical summary in results.json'}.", size=8.5,
                  color=_MUTED)

    from ..core.segmentation import LEVEL_RATIO_WORDS

    method = document.get("method") or {}
    page.heading("Method")
    unit = clinical.get("hand_unit")
    lines = [
        ("Segmentation", f"{method.get('segmentation')}; threshold {method.get('threshold')} at baseline"
                         + (f", each visit's scaled by its own level of full depigmentation ({LEVEL_RATIO_WORDS})"
                            if method.get("threshold_per_visit") else "")
                         + f", baseline contrast {method.get('baseline_contrast')}, working size "
                         f"{method.get('working_size')} px"),
        ("Registration", str(method.get("registration"))),
        ("Areas", f"{method.get('area_frame')}; cm² from the marker's plane (perspective corrected)"),
        ("Intervals", str(method.get("intervals"))),
        ("VASI", vasi.get("definition", "not computed")),
        ("Hand unit", "not given" if unit is None else f"{unit['cm2']:.1f} cm², {unit['detail'] or unit['source']}"),
        ("Pattern", "from where pigment returns relative to the baseline footprint (islands inside it, the border "
                    "advancing, or the whole patch fading); spreading is depigmentation outside the slightly grown "
                    f"footprint above 3 % of its area; judged on {clinical.get('pattern_basis', 'saved masks')}"),
        ("Software", f"repigment {document.get('repigment_version')} (analysis {document.get('created_utc')}), "
                     f"report by repigment {__version__}, {clinical.get('method', 'clinical summary')}"),
    ]
    page.pairs(lines, size=7.8, key_width=26.0)
    page.y += 2
    page.text("These figures measure photographs; they are an aid to the clinician, not a diagnosis. "
              "Decisions about treatment belong with the healthcare provider.", size=8, color=_MUTED)


def report_pdf(
    out_dir: str | Path,
    *,
    patient_code: str | None = None,
    patch_label: str | None = None,
    treatment: str | None = None,
    events: Iterable = (),
    series_dir: str | Path | None = None,
    body_region: str | None = None,
    hand_unit=None,
    patient_totals: dict | None = None,
    patient_patches: Sequence[dict] = (),
    left_out: Sequence[str] = (),
) -> bytes:
    """Render the report of an analysis folder as PDF bytes (for a download).

    Parameters are those of :func:`write_report`, and, for a page on the whole
    patient: ``patient_totals`` (:func:`repigment.clinical.vasi.patient_totals` of every
    patch), ``patient_patches`` (each patch's ``label``, ``index``,
    ``baseline``, ``latest`` and ``change`` of VASI) and ``left_out`` (patches
    not in the totals, with the reason).
    """
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages

    from ..clinical.summary import clinical_summary_from_results

    out = Path(out_dir)
    document = load_results(out)
    info = {
        "patient_code": _clean(patient_code, "patient code") or "not given",
        "patch": _clean(patch_label, "patch label") or "not given",
        "treatment": _clean(treatment, "treatment") or "not given",
    }
    parsed_events = _parse_events(events)
    clinical = document.get("clinical")
    if clinical is None or body_region is not None or hand_unit is not None:
        region = body_region if body_region is not None else (clinical or {}).get("body_region")
        clinical = clinical_summary_from_results(document, out, body_region=region, hand_unit=hand_unit)
    photos = _load_photos(document, out, Path(series_dir) if series_dir is not None else None)
    folder, _ = _series_folder(document, out, Path(series_dir) if series_dir is not None else None)
    thumbnails = _visit_thumbnails(document, out, folder)
    strips = [thumbnails[i:i + _THUMBS_PER_PAGE] for i in range(0, len(thumbnails), _THUMBS_PER_PAGE)]
    visits = document["visits"]
    chunks = [list(range(i, min(i + _MAX_TABLE_ROWS, len(visits)))) for i in range(0, len(visits), _MAX_TABLE_ROWS)]
    whole_patient = 1 if patient_totals else 0
    total = 2 + whole_patient + len(strips) + len(chunks)
    footer = (f"Patient code: {info['patient_code']}  ·  patch: {info['patch']}  ·  repigment {__version__}  ·  "
              f"generated {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    buffer = io.BytesIO()
    with matplotlib.rc_context({"pdf.fonttype": 42, "font.family": "DejaVu Sans", "axes.titlesize": 9}):
        with PdfPages(buffer, metadata={"Title": f"Vitiligo repigmentation report, patient {info['patient_code']}",
                                        "Creator": f"repigment {__version__}"}) as pdf:
            page = _Page("Vitiligo repigmentation report", 1, total, footer)
            _summary_page(page, document, clinical, info, parsed_events)
            pdf.savefig(page.figure)
            page = _Page("Photos and change", 2, total, footer)
            _photos_page(page, document, clinical, photos)
            pdf.savefig(page.figure)
            if whole_patient:
                page = _Page("The whole patient: F-VASI and T-VASI", 3, total, footer)
                _patient_page(page, patient_totals, patient_patches, left_out)
                pdf.savefig(page.figure)
            for n, strip in enumerate(strips):
                page = _Page("Every visit" if n == 0 else "Every visit (continued)", 3 + whole_patient + n, total,
                             footer)
                _thumbnails_page(page, strip)
                pdf.savefig(page.figure)
            for n, rows in enumerate(chunks):
                page = _Page("Visits and method" if n == 0 else "Visits (continued)",
                             3 + whole_patient + len(strips) + n, total, footer)
                _table_page(page, document, clinical, rows, last=n == len(chunks) - 1)
                pdf.savefig(page.figure)
    return buffer.getvalue()


def _clean(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    if len(text) > 80:
        raise InvalidParameterError(f"the {what} must be at most 80 characters, got {len(text)}")
    return text or None


def write_report(
    out_dir: str | Path,
    pdf_path: str | Path,
    *,
    patient_code: str | None = None,
    patch_label: str | None = None,
    treatment: str | None = None,
    events: Iterable = (),
    series_dir: str | Path | None = None,
    body_region: str | None = None,
    hand_unit=None,
) -> Path:
    """Write the PDF report of an analysis folder.

    Parameters
    ----------
    out_dir : str or Path
        Folder written by ``repigment analyze`` (``results.json``, ``masks/``).
    pdf_path : str or Path
        The PDF to write (atomically: a temporary file, then renamed).
    patient_code : str, optional
        A pseudonymous code (never a name); "not given" by default.
    patch_label : str, optional
        Which patch, for example "left cheek".
    treatment : str, optional
        For example "ruxolitinib 1.5 % cream twice daily".
    events : iterable, optional
        ``(date, text)`` pairs, ``{"date", "text"}`` dicts, ``"YYYY-MM-DD: text"``
        strings or :class:`ReportEvent` (phototherapy started, a pause ...).
    series_dir : str or Path, optional
        Folder of the photos, when not the one recorded in ``results.json``.
    body_region : str, optional
        Override or supply the patch's body region (re-scores the clinical
        summary from the saved masks).
    hand_unit : HandUnit or float, optional
        Supply a hand unit (re-scores VASI).

    Returns
    -------
    Path
        The PDF written.

    Raises
    ------
    SeriesError
        If ``out_dir`` has no usable ``results.json``.
    InvalidParameterError
        If an option is malformed.
    """
    from ..series.results import atomic_write_bytes

    data = report_pdf(out_dir, patient_code=patient_code, patch_label=patch_label, treatment=treatment,
                      events=events, series_dir=series_dir, body_region=body_region, hand_unit=hand_unit)
    atomic_write_bytes(pdf_path, data)
    return Path(pdf_path)

