"""Altair charts of a patch's course, and the region-of-interest picker.

Colours are the Okabe-Ito palette of :mod:`repigment.core.visualize`, distinct for
colour-blind readers; failed visits are vermillion crosses on the zero line.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .wording import Words

__all__ = ["CoursePoint", "EventMark", "area_chart", "course_chart", "roi_chart", "vasi_totals_chart"]

_BLUE = "#0072B2"
_VERMILLION = "#D55E00"
_PURPLE = "#CC79A7"
_GREY = "#6b7280"


@dataclass(frozen=True)
class CoursePoint:
    """One visit on the chart; ``pct`` is ``None`` when it could not be measured."""

    week: float
    date: str
    pct: float | None
    area_cm2: float | None
    reason: str
    image: str
    pct_interval: tuple[float, float] | None = None  # plausible range of pct (segmentation threshold ± its step)


@dataclass(frozen=True)
class EventMark:
    week: float
    date: str
    label: str


def _x_domain(points: Sequence[CoursePoint], events: Sequence[EventMark]) -> list[float]:
    weeks = [p.week for p in points] + [e.week for e in events]
    low = min([0.0, *weeks])
    high = max([56.0, *(w + 4 for w in weeks)])
    return [float(np.floor(low)), float(np.ceil(high))]


def course_chart(
    points: Sequence[CoursePoint],
    *,
    events: Sequence[EventMark] = (),
    words: Words,
    height: int = 380,
) -> Any:
    """Repigmentation % against weeks since treatment start, with targets and markers.

    Returns
    -------
    altair.LayerChart
    """
    import altair as alt
    import pandas as pd

    measured = pd.DataFrame(
        [{"week": p.week, "date": p.date, "pct": round(p.pct, 1), "image": p.image,
          "status": words.measured} for p in points if p.pct is not None],
        columns=["week", "date", "pct", "image", "status"],
    )
    failed = pd.DataFrame(
        [{"week": p.week, "date": p.date, "pct": 0.0, "image": p.image, "reason": p.reason,
          "status": words.not_measured} for p in points if p.pct is None],
        columns=["week", "date", "pct", "image", "reason", "status"],
    )
    band = pd.DataFrame(
        [{"week": p.week, "low": round(p.pct_interval[0], 1), "high": round(p.pct_interval[1], 1)}
         for p in points if p.pct is not None and p.pct_interval is not None],
        columns=["week", "low", "high"],
    )
    values = [p.pct for p in points if p.pct is not None] + [float(v) for v in band["low"]]
    y_low = min([-10.0, *(v - 5 for v in values)])
    y_low = float(np.floor(y_low / 10) * 10)
    # A visit without figures is not a 0 % visit: its cross sits in the strip
    # under the zero line, on a dashed line through the whole chart.
    failed["pct"] = y_low / 2.0
    x_domain = _x_domain(points, events)
    x = alt.X("week:Q", title=words.weeks_axis, scale=alt.Scale(domain=x_domain, nice=False),
              axis=alt.Axis(values=list(range(0, int(x_domain[1]) + 1, 4)), grid=False))
    y_scale = alt.Scale(domain=[y_low, 100], nice=False)
    y = alt.Y("pct:Q", title=words.pct_axis, scale=y_scale,
              axis=alt.Axis(values=[v for v in range(-300, 101, 25) if v >= y_low]))
    statuses = [words.measured] + ([words.not_measured] if len(failed) else [])
    status_scale = alt.Scale(domain=statuses, range=[_BLUE, _VERMILLION][: len(statuses)])
    shape_scale = alt.Scale(domain=statuses, range=["circle", "cross"][: len(statuses)])
    # A legend only when there is something to tell apart.
    legend = alt.Legend(title=None, orient="bottom") if len(failed) else None

    # Target labels sit at the left, inside the plot, where the course starts near 0 %.
    targets = pd.DataFrame({"pct": [50, 75, 90], "label": list(words.vasi_labels), "week": x_domain[0]})
    target_rules = alt.Chart(targets).mark_rule(color=_GREY, strokeDash=[4, 4], opacity=0.7).encode(y="pct:Q")
    target_text = alt.Chart(targets).mark_text(align="left", dx=4, dy=-7, color=_GREY, fontSize=11).encode(
        x="week:Q", y="pct:Q", text="label:N"
    )
    zero = alt.Chart(pd.DataFrame({"pct": [0]})).mark_rule(color="#9ca3af").encode(y="pct:Q")
    milestones = pd.DataFrame({"week": [24, 52], "label": [words.week24, words.week52], "pct": 100})
    milestone_rules = alt.Chart(milestones).mark_rule(color=_GREY, strokeDash=[2, 3]).encode(x="week:Q")
    # Labels to the left of their rule: week 52 sits near the right edge.
    milestone_text = alt.Chart(milestones).mark_text(align="right", dx=-4, dy=8, color=_GREY, fontSize=11).encode(
        x="week:Q", y="pct:Q", text="label:N"
    )
    layers = [target_rules, target_text, zero, milestone_rules, milestone_text]
    if len(band) > 1:
        # Drawn first, under the line: how far the figure moves with the segmentation threshold.
        layers.insert(0, alt.Chart(band).mark_area(color=_BLUE, opacity=0.18).encode(
            x=x, y=alt.Y("low:Q", scale=y_scale), y2="high:Q",
            tooltip=[alt.Tooltip("week:Q", title="Week", format=".1f"),
                     alt.Tooltip("low:Q", title=words.band_low, format=".1f"),
                     alt.Tooltip("high:Q", title=words.band_high, format=".1f")],
        ))
    if len(measured):
        tooltip = [
            alt.Tooltip("date:N", title="Date"),
            alt.Tooltip("week:Q", title="Week", format=".1f"),
            alt.Tooltip("pct:Q", title=words.pct_column, format=".1f"),
            alt.Tooltip("image:N", title="Photo"),
        ]
        layers.append(alt.Chart(measured).mark_line(color=_BLUE, strokeWidth=2.5).encode(x=x, y=y))
        layers.append(
            alt.Chart(measured).mark_point(filled=True, size=90, opacity=1).encode(
                x=x, y=y, color=alt.Color("status:N", scale=status_scale, legend=legend),
                shape=alt.Shape("status:N", scale=shape_scale, legend=legend),
                tooltip=tooltip,
            )
        )
    if len(failed):
        layers.append(alt.Chart(failed).mark_rule(color=_VERMILLION, strokeDash=[3, 3], opacity=0.6).encode(x=x))
        layers.append(
            alt.Chart(failed).mark_point(filled=True, size=160, opacity=1, strokeWidth=1).encode(
                x=x, y=y, color=alt.Color("status:N", scale=status_scale, legend=legend),
                shape=alt.Shape("status:N", scale=shape_scale, legend=legend),
                tooltip=[alt.Tooltip("date:N", title="Date"), alt.Tooltip("week:Q", title="Week", format=".1f"),
                         alt.Tooltip("reason:N", title="Why not measured"), alt.Tooltip("image:N", title="Photo")],
            )
        )
    if events:
        frame = pd.DataFrame([{"week": e.week, "date": e.date, "label": e.label, "pct": y_low} for e in events])
        layers.append(
            alt.Chart(frame).mark_tick(color=_PURPLE, thickness=3, size=18, orient="vertical").encode(
                x=x, y=alt.Y("pct:Q"),
                tooltip=[alt.Tooltip("date:N", title="Date"), alt.Tooltip("label:N", title="Treatment event")],
            )
        )
    return alt.layer(*layers).properties(height=height, width="container").configure_view(stroke=None)


def area_chart(points: Sequence[CoursePoint], *, events: Sequence[EventMark] = (), words: Words,
               height: int = 240) -> Any | None:
    """Depigmented area in cm² against weeks, or ``None`` without a calibrated visit."""
    import altair as alt
    import pandas as pd

    rows = [{"week": p.week, "date": p.date, "cm2": round(p.area_cm2, 2), "image": p.image}
            for p in points if p.area_cm2 is not None and p.pct is not None]
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    x_domain = _x_domain(points, events)
    x = alt.X("week:Q", title=words.weeks_axis, scale=alt.Scale(domain=x_domain, nice=False),
              axis=alt.Axis(values=list(range(0, int(x_domain[1]) + 1, 4)), grid=False))
    y = alt.Y("cm2:Q", title=words.area_axis, scale=alt.Scale(zero=True))
    line = alt.Chart(frame).mark_line(color=_BLUE, strokeWidth=2, point=alt.OverlayMarkDef(filled=True, size=60))
    line = line.encode(x=x, y=y, tooltip=[
        alt.Tooltip("date:N", title="Date"), alt.Tooltip("week:Q", title="Week", format=".1f"),
        alt.Tooltip("cm2:Q", title=words.area_axis, format=".2f"), alt.Tooltip("image:N", title="Photo"),
    ])
    top = max(r["cm2"] for r in rows)
    milestones = pd.DataFrame({"week": [24, 52], "label": [words.week24, words.week52], "cm2": top})
    rules = alt.Chart(milestones).mark_rule(color=_GREY, strokeDash=[2, 3]).encode(x="week:Q")
    text = alt.Chart(milestones).mark_text(align="right", dx=-4, dy=-4, color=_GREY, fontSize=11).encode(
        x="week:Q", y="cm2:Q", text="label:N"
    )
    return alt.layer(rules, text, line).properties(height=height, width="container").configure_view(stroke=None)


def _data_url(rgb: np.ndarray, max_side: int = 900) -> tuple[str, float]:
    import cv2

    height, width = rgb.shape[:2]
    factor = min(1.0, max_side / max(height, width))
    small = cv2.resize(rgb, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 image
        raise ValueError("could not encode the image")
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii"), factor


def roi_chart(rgb: np.ndarray, full_size: tuple[int, int], roi: Sequence[float] | None, *,
              height: int = 460) -> Any:
    """The baseline photo to drag a rectangle on; coordinates in full-resolution pixels.

    The selection parameter is called ``roi``; Streamlit returns it as
    ``{"x": [x0, x1], "y": [y0, y1]}``.
    """
    import altair as alt
    import pandas as pd

    width, full_height = full_size
    url, _ = _data_url(rgb)
    aspect = width / full_height
    chart_width = int(round(height * aspect))
    image = alt.Chart(pd.DataFrame({"x": [0], "x2": [width], "y": [0], "y2": [full_height], "url": [url]}))
    x = alt.X("x:Q", scale=alt.Scale(domain=[0, width], nice=False), title="x (px)")
    y = alt.Y("y:Q", scale=alt.Scale(domain=[0, full_height], nice=False, reverse=True), title="y (px)")
    brush_args: dict[str, Any] = {"name": "roi", "encodings": ["x", "y"], "empty": True}
    if roi is not None:
        x0, y0, x1, y1 = roi
        brush_args["value"] = {"x": [x0, x1], "y": [y0, y1]}
    brush = alt.selection_interval(**brush_args, mark=alt.BrushConfig(fill="#F0E442", fillOpacity=0.15,
                                                                      stroke="#F0E442", strokeWidth=2))
    picture = image.mark_image(aspect=False).encode(x=x, y=y, x2="x2:Q", y2="y2:Q", url="url:N").add_params(brush)
    return picture.properties(width=chart_width, height=height).configure_view(stroke=None)


def vasi_totals_chart(totals: dict, *, height: int = 260) -> Any | None:
    """Improvement of the patient's F-VASI and T-VASI (%) against weeks, with the 50/75/90 % lines."""
    import altair as alt
    import pandas as pd

    rows = [{"week": week, "improvement": round(value, 1), "index": index}
            for index, series in totals.items()
            for week, value in zip(series.weeks, series.improvement_pct) if value is not None]
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    low = min(-10.0, float(np.floor(frame["improvement"].min() / 10) * 10))
    y = alt.Y("improvement:Q", title="Improvement from baseline (%)", scale=alt.Scale(domain=[low, 100], nice=False))
    colour = alt.Color("index:N", title=None, scale=alt.Scale(domain=["F-VASI", "T-VASI"], range=[_BLUE, _PURPLE]),
                       legend=alt.Legend(orient="bottom"))
    lines = alt.Chart(frame).mark_line(point=alt.OverlayMarkDef(filled=True, size=60), strokeWidth=2.5).encode(
        x=alt.X("week:Q", title="Weeks since treatment start"), y=y, color=colour,
        tooltip=[alt.Tooltip("index:N", title="Index"), alt.Tooltip("week:Q", title="Week", format=".1f"),
                 alt.Tooltip("improvement:Q", title="Improvement (%)", format=".1f")])
    levels = pd.DataFrame({"improvement": [50, 75, 90]})
    rules = alt.Chart(levels).mark_rule(color=_GREY, strokeDash=[4, 4], opacity=0.7).encode(y="improvement:Q")
    return alt.layer(rules, lines).properties(height=height, width="container").configure_view(stroke=None)
