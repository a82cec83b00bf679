"""Patch overview: the course of repigmentation against weeks since treatment start.

A page script: ``st.navigation`` runs this file; importing it does nothing.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import pandas as pd
import streamlit as st

from repigment.clinical.summary import TOTAL_IN_REVIEW_NOTE, TOTAL_IN_REVIEW_NOTE_PATIENT, total_milestone_words
from repigment.store.analyses import PatchAnalysis
from repigment.webapp import charts, common, course_data
from repigment.webapp.shell import page


def render() -> None:
    ctx = common.context()
    w = ctx.words
    common.show_flash()
    if ctx.patch is None:
        st.title(w.course_page)
        common.no_patch_notice(ctx)
        return
    _header(ctx)
    visits = ctx.store.visits(ctx.patch.id)
    if not visits:
        st.info("No photos yet. Add the first visit: it becomes the baseline that later visits are compared with."
                if not ctx.patient_mode else "No photos yet. Add your first photo to start.",
                icon=":material/info:")
        st.page_link(page("add", w), label=w.add_page, icon=":material/add_a_photo:")
        return
    with common.guard("analysing the series"):
        result = common.patch_analysis(ctx)
        if result is not None:
            _course(ctx, visits, result)


def _header(ctx: common.Context) -> None:
    patch = ctx.patch
    if ctx.patient_mode:
        st.title(f"{ctx.words.course_page}: {patch.label}")
        return
    st.title(f"{patch.label}")
    start = patch.treatment_start.isoformat() if patch.treatment_start else "the baseline photo's date"
    st.caption(f"Patient **{ctx.patient.code}** · {patch.region_label} · {patch.regimen}; "
               f"week 0 = {start}" + (f"  \n{patch.notes}" if patch.notes else ""))


def _course(ctx: common.Context, visits, result: PatchAnalysis) -> None:
    w = ctx.words
    document = result.document
    if document is None:
        st.error(("The course cannot be measured: " + result.error) if not ctx.patient_mode else
                 "Your photos cannot be measured yet: " + course_data.plain_reason(result.error),
                 icon=":material/error:")
        st.caption("The earliest visit is the baseline. Replace its photo with a sharp, evenly lit photo of the "
                   "whole patch (see the photo guide), or delete that visit on the Review page.")
        _table(ctx, visits, result)
        return
    points = course_data.course_points(document)
    start = _dt.date.fromisoformat(document["treatment_start"])
    events = course_data.event_marks(ctx.patch, start)
    _summary(ctx, document, points)
    _failures(ctx, document)
    _clinical(ctx, document)
    _patient_totals(ctx)
    st.subheader("Repigmentation over time" if not ctx.patient_mode else "How much colour has come back")
    measured = [p for p in points if p.pct is not None]
    alt_text = (f"Line chart of {w.pct_axis.lower()} against weeks, {len(points)} visits"
                + (f"; latest {measured[-1].pct:.0f}% at {common.week_label(measured[-1].week)}" if measured else "")
                + (f"; {len(points) - len(measured)} not measured" if len(measured) < len(points) else ""))
    st.altair_chart(charts.course_chart(points, events=events, words=w), width="stretch", alt=alt_text)
    legend = ["Dashed lines: " + ", ".join(w.vasi_labels) + (" improvement from baseline" if not ctx.patient_mode
                                                               else " of the white area regained")]
    if sum(p.pct_interval is not None for p in points) > 1:
        legend.append(w.band_legend)
    if any(p.pct is None for p in points):
        legend.append("✕ on a dashed line, under the zero line: " + w.not_measured.lower() + " (hover for the reason)")
    if events:
        legend.append("purple ticks: treatment events")
    st.caption("; ".join(legend) + ".")
    area = charts.area_chart(points, events=events, words=w)
    if area is not None:
        st.subheader("Depigmented area" if not ctx.patient_mode else "Size of the white area")
        st.altair_chart(area, width="stretch")
    elif not ctx.patient_mode:
        st.caption("No scale marker in the baseline photo: areas are in pixels only (see the table).")
    if events:
        st.markdown("**Treatment events:** " + "; ".join(f"{e.date} ({common.week_label(e.week)}): {e.label}"
                                                         for e in events))
    _table(ctx, visits, result)
    if not ctx.patient_mode:
        _details(ctx, document, result)


def _summary(ctx: common.Context, document: dict[str, Any], points) -> None:
    measured = [p for p in points if p.pct is not None]
    if not measured:
        return
    last = measured[-1]
    first = measured[0]
    if ctx.patient_mode:
        day = _dt.date.fromisoformat(last.date)
        when = f"{day.day} {day:%B %Y}"
        if len(measured) == 1:
            st.markdown(f"Your first photo ({when}) is the starting point. Add a new photo every few weeks to "
                        "see how the patch changes.")
            return
        if last.pct >= 0:
            text = (f"At your last photo ({when}, {common.week_label(last.week)}), **{last.pct:.0f}%** of the "
                    "white area had regained colour compared with your first photo.")
        else:
            text = (f"At your last photo ({when}, {common.week_label(last.week)}), the white area was "
                    f"**{-last.pct:.0f}% larger** than in your first photo. Please tell your doctor.")
        st.markdown(text)
        if last.week < 24:
            st.caption("Colour comes back slowly: often first as small dots around hairs or at the edges, "
                       "between weeks 12 and 24. Week 24 is the first real check.")
        elif last.pct < 5:
            st.caption("If there is no improvement after 24 weeks of treatment, contact your healthcare provider.")
        return
    columns = st.columns(4)
    previous = measured[-2].pct if len(measured) > 1 else None
    columns[0].metric(
        f"Repigmentation, {common.week_label(last.week)}", f"{last.pct:.1f} %",
        delta=None if previous is None else f"{last.pct - previous:+.1f} points since previous",
        help="Improvement from baseline, (A₀ − Aₜ) / A₀ × 100, of the depigmented area in the baseline frame.",
    )
    last_entry = next(e for e in reversed(document["visits"]) if e["date"] == last.date)
    if last.area_cm2 is not None and first.area_cm2 is not None:
        # A change badge only once there is a change to show: with the baseline alone there is none.
        columns[1].metric("Depigmented area", f"{last.area_cm2:.2f} cm²",
                          delta=None if last is first else f"{last.area_cm2 - first.area_cm2:+.2f} cm² since baseline",
                          delta_color="inverse")
    else:
        columns[1].metric("Depigmented area", f"{last_entry['depigmented_area_px']:,} px",
                          help="No scale marker at baseline, so no cm².")
    columns[2].metric("VASI residual", f"{last_entry['vasi_residual_depigmentation']} %",
                      help="VASI residual depigmentation: the nearest VASI level (0, 10, 25, 50, 75, 90, 100 %) "
                           "to the share of the baseline footprint still depigmented.")
    stones = document["milestones"]

    def wk(value):
        return "–" if value is None else f"{value:.0f}"

    # Whole weeks, without "wk" each: three "wk 8.2857" do not fit a quarter of a laptop's page.
    columns[3].metric("VASI50 / 75 / 90, week", " / ".join(wk(stones[k]) for k in
                                                            ("vasi50_week", "vasi75_week", "vasi90_week")),
                      help="First week at which 50, 75 and 90 % improvement from baseline was measured "
                           "(to the nearest week; – not yet).")


_STATUS_BADGE = {
    "reached": ("green", ":material/check_circle:"),
    "borderline": ("orange", ":material/help:"),  # results written before one rule decided the status
    "not reached": ("orange", ":material/cancel:"),
    "no improvement": ("red", ":material/cancel:"),
    "pending": ("gray", ":material/schedule:"),
}


def _clinical(ctx: common.Context, document: dict[str, Any]) -> None:
    """VASI, pattern, spreading and the week-24/52 checkpoints from the clinical block."""
    overview = course_data.clinical_overview(document, patient_mode=ctx.patient_mode)
    with st.container(border=True, key="clinical_section"):
        if ctx.patient_mode:
            st.subheader("Checks at week 24 and week 52")
        else:
            st.subheader("Clinical assessment")
        if overview is None:
            st.caption("No clinical summary for this analysis. Re-analyse the patch (Method and calibration, below).")
            return
        if overview.spreading:
            st.warning(overview.spreading, icon=":material/warning:")
        if ctx.patient_mode:
            if overview.pattern:
                st.markdown(f"**At your latest photo:** {overview.pattern}")
        else:
            columns = st.columns([3, 2])
            with columns[0]:
                st.markdown(f"**{overview.vasi_name}**")
                if overview.vasi_value:
                    st.markdown(overview.vasi_value)
                else:
                    st.caption(f"Not scored: {overview.vasi_reason}. Set the patient's hand unit on the "
                               "Patients page.")
            with columns[1]:
                st.markdown("**Pattern, latest visit**")
                st.markdown(overview.pattern or "not assessed (no follow-up visit measured)")
        for title, status, message in overview.checkpoints:
            colour, icon = _STATUS_BADGE.get(status, ("gray", ":material/info:"))
            label = "not yet" if status == "pending" else status
            # The message names its week; the badge only says where the patch stands.
            st.markdown(f":{colour}-badge[{icon} {label}] {message}")
        if not ctx.patient_mode and overview.latest_message:
            st.caption(overview.latest_message)


def _patient_totals(ctx: common.Context) -> None:
    """The trials' endpoints: F-VASI and T-VASI of the whole patient, across every patch."""
    totals = course_data.patient_vasi(ctx.store, ctx.patient.id)
    title = ("F-VASI and T-VASI, all of this patient's patches" if not ctx.patient_mode
             else "All your patches together")
    with st.expander(title, icon=":material/functions:", expanded=bool(totals.totals)):
        if not totals.totals:
            st.caption("Not available: " + ("; ".join(totals.left_out) or "no patch is scored yet")
                       + ". VASI needs the scale marker and the patient's hand unit (Patients page).")
            return
        for index, series in totals.totals.items():
            latest = series.latest_improvement()
            figure = ("no improvement figure yet" if latest is None else
                      f"{latest[1]:.0f} % better than baseline at week {latest[0]:g}"
                      + ((TOTAL_IN_REVIEW_NOTE_PATIENT if ctx.patient_mode else TOTAL_IN_REVIEW_NOTE)
                         if latest[2] else ""))
            st.markdown(f"**{index}**: {figure} · {total_milestone_words(index, series.milestones)}")
        chart = charts.vasi_totals_chart(totals.totals)
        if chart is not None:
            st.altair_chart(chart, width="stretch")
        if totals.contributions:
            st.markdown("**Which patches carry the change** (VASI, baseline → latest):")
            st.markdown("\n".join(
                f"- {c['label']} ({c['index']}): {c['baseline']:.3f} → {c['latest']:.3f}"
                + ("" if c["change"] is None else f" ({c['change']:+.3f})")
                for c in sorted(totals.contributions, key=lambda c: c["change"] or 0.0)))
        if totals.left_out:
            st.caption("Not in the totals: " + "; ".join(totals.left_out) + ".")


def _failures(ctx: common.Context, document: dict[str, Any]) -> None:
    failed = [e for e in document["visits"] if not course_data.visit_status(e)[0]]
    if not failed:
        return
    if ctx.patient_mode:
        lines = [f"- {e['date']}: {course_data.plain_visit_reason(e)}" for e in failed]
        head = (f"**{len(failed)} photo{'s' if len(failed) > 1 else ''} could not be compared** with your first "
                "photo (✕ on the chart):")
    else:
        lines = [f"- {e['date']} ({common.week_label(e['weeks_since_start'])}, {e['image']}): {e.get('error')}"
                 for e in failed]
        head = (f"**{len(failed)} visit{'s' if len(failed) > 1 else ''} could not be measured** (✕ on a dashed "
                "line of the chart, under the zero line):")
    st.warning("\n".join([head, *lines]), icon=":material/warning:")


def _table(ctx: common.Context, visits, result: PatchAnalysis | None) -> None:
    st.subheader("Visits" if not ctx.patient_mode else "Your photos")
    rows = course_data.visits_table(visits, result, patient_mode=ctx.patient_mode)
    frame = pd.DataFrame(course_data.display_table(rows))
    config = {
        "Date": st.column_config.DateColumn("Date", format="YYYY-MM-DD"),
        "Week": st.column_config.TextColumn("Week", help="Weeks since treatment start"),
        "Pattern": st.column_config.TextColumn(help="Pattern of repigmentation against the baseline footprint"),
        "Patch VASI (level)": st.column_config.TextColumn(
            help="Baseline footprint in hand units × VASI residual level, plus spreading; "
                 "a dash without a hand unit"),
        "New depigmentation (px)": st.column_config.TextColumn(
            help="Depigmented skin outside the baseline footprint: spreading"),
        "Alignment score": st.column_config.TextColumn(help="Skin-texture agreement, 0-1"),
        "Reason": st.column_config.TextColumn(width="medium", help="Why the visit has no figures or needs review"),
        "What to do": st.column_config.TextColumn(width="large"),
        "Photo check": st.column_config.TextColumn(width="medium"),
    }
    st.dataframe(frame, hide_index=True, width="stretch", column_config=config, key="visits_table")
    advice = course_data.advice_lines(rows)
    if ctx.patient_mode and rows and rows[-1].get("What to do"):
        # The advice for the latest photo, in full (table cells cut long text).
        st.info(f"**For your next photo:** {rows[-1]['What to do'].removeprefix('Next time: ')}",
                icon=":material/lightbulb:")
    elif advice:
        st.markdown("**Reasons and advice, in full**")
        st.markdown("\n".join(f"- {line}" for line in advice))


def _details(ctx: common.Context, document: dict[str, Any], result: PatchAnalysis) -> None:
    with st.expander("Method and calibration"):
        scale = document["scale"]
        method = document["method"]
        lines = [
            f"- Baseline: {document['baseline']['image']} ({document['baseline']['date']}, "
            f"{document['baseline']['width']}×{document['baseline']['height']} px); treatment start "
            f"{document['treatment_start']}",
            "- Scale: " + (f"{scale['mm_per_px']:.4f} mm/px from ArUco marker id {scale['marker_id']} "
                           f"({scale['marker_mm']:g} mm)" if scale["mm_per_px"] else "no marker found at baseline"),
            f"- Region of interest: {document['roi'] if document['roi'] else 'whole photo'}",
            f"- Segmentation: `{method['segmentation']}`, threshold {method['threshold']}, baseline contrast "
            f"{method['baseline_contrast']}",
            f"- Registration: `{method['registration']}`; working size {method['working_size']} px",
            f"- repigment {document['repigment_version']}, analysed {document['created_utc']}"
            + (" (from the results cache)" if result.cache_hit else ""),
        ]
        st.markdown("\n".join(lines))
        if st.button("Re-analyse", key="reanalyse", help="Forget the cached result and compute it again."):
            ctx.store.delete_analysis(result.request.key)
            st.rerun()


if __name__ == "__main__":
    render()
