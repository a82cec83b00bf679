"""Review: each visit registered onto the baseline, before/after, change map, region of interest.

A page script: ``st.navigation`` runs this file; importing it does nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from repigment.core import scoring, visualize
from repigment.io import encode_png
from repigment.store import StoreError
from repigment.store.analyses import PatchAnalysis
from repigment.webapp import caching, charts, common, course_data, strokes

_LEGEND = (
    (visualize.REPIGMENTED_RGB, "repigmented since baseline", "colour came back"),
    (visualize.STILL_DEPIGMENTED_RGB, "still depigmented", "still white"),
    (visualize.NEW_DEPIGMENTATION_RGB, "new depigmentation outside the baseline footprint (spreading)",
     "new white skin outside the first patch"),
)


def render() -> None:
    ctx = common.context()
    w = ctx.words
    st.title(w.review_page)
    common.show_flash()
    if ctx.patch is None:
        common.no_patch_notice(ctx)
        return
    with common.guard("preparing the review"):
        result = common.patch_analysis(ctx)
        if result is None:
            st.info("No photos yet.", icon=":material/info:")
            return
        if result.document is None:
            st.error("The series cannot be measured: " + (result.error or ""), icon=":material/error:")
            _manage_visits(ctx, result)
            return
        _review(ctx, result)


def _image(ctx: common.Context, sha: str | None, extension: str, *, mask: bool = False) -> np.ndarray | None:
    if sha is None:
        return None
    return caching.derived_image(str(ctx.store.data_dir), sha, extension, mask=mask)


def _review(ctx: common.Context, result: PatchAnalysis) -> None:
    document = result.document
    entries = document["visits"]
    base_files = result.files(0)
    baseline_rgb = _image(ctx, base_files.registered_sha256, ".jpg")
    baseline_mask = _image(ctx, base_files.mask_sha256, ".png", mask=True)
    options = list(range(len(entries)))

    def label(position: int) -> str:
        entry = entries[position]
        mark = "" if course_data.visit_status(entry)[0] else " ✕"
        return f"{entry['date']} · {common.week_label(entry['weeks_since_start'])}{mark}"

    position = st.select_slider("Visit", options=options, value=options[-1], format_func=label, key="review_visit",
                                help="✕: could not be measured") if len(options) > 1 else 0
    entry = entries[position]
    files = result.files(position)
    measured, status = course_data.visit_status(entry)
    registered = _image(ctx, files.registered_sha256, ".jpg") if files else None
    mask = _image(ctx, files.mask_sha256, ".png", mask=True) if files else None
    if not measured:
        reason = entry.get("error") or status
        plain = course_data.plain_visit_reason(entry) or course_data.plain_reason(status)
        st.warning((f"**{status}:** {reason}") if not ctx.patient_mode else plain, icon=":material/warning:")
    elif not ctx.patient_mode:
        if entry.get("own_strokes"):
            st.caption("This visit is judged by the strokes drawn on its own photo (Strokes tab), not by the "
                       "baseline's threshold.")
        cm2 = entry["depigmented_area_cm2"]
        st.markdown(
            f"**{entry['repigmentation_pct']:.1f} %** repigmentation since baseline · depigmented area "
            + (f"{cm2:.2f} cm² ({entry['depigmented_area_px']:,} px)" if cm2 is not None
               else f"{entry['depigmented_area_px']:,} px")
            + f" · VASI residual {entry['vasi_residual_depigmentation']} % · alignment score "
            f"{entry['registration']['score']:.2f}"
        )
    else:
        st.markdown(f"**{entry['repigmentation_pct']:.0f}%** of the white area has regained colour since your "
                    "first photo.")
    tabs = (["First and this photo", "What changed", "All my photos"] if ctx.patient_mode
            else ["Before / after", "Change map", "Two visits", "Every visit", "Region of interest", "Strokes"])
    # Keyed: a rerun that redraws what lies above them (a fresh analysis, a notice) must not
    # send the clinician back to the first tab while drawing strokes.
    shown = st.tabs(tabs, key="review_tabs_patient" if ctx.patient_mode else "review_tabs")
    with shown[0]:
        own = None
        if registered is None and position > 0:
            # Not placed onto the baseline: the visit's own photo answers "is this the same patch?".
            photo = result.request.photos[position]
            with common.guard("loading this visit's photo"):
                own = caching.stored_photo(str(ctx.store.data_dir), photo.sha256, photo.extension)
        _before_after(ctx, entry, baseline_rgb, baseline_mask, registered, mask, entries[0], own)
    with shown[1]:
        _change(ctx, entry, baseline_rgb, baseline_mask, mask, document)
    if ctx.patient_mode:
        with shown[2]:
            _every_visit(ctx, result, label)
    else:
        with shown[2]:
            _two_visits(ctx, result, options, label)
        with shown[3]:
            _every_visit(ctx, result, label)
        with shown[4]:
            _roi(ctx, document, baseline_rgb)
        with shown[5]:
            _strokes(ctx, result, baseline_rgb, position)
        _manage_visits(ctx, result, position)


def _outlined(ctx: common.Context, result: PatchAnalysis, position: int) -> np.ndarray | None:
    """A visit aligned onto the baseline with its outline, or ``None`` without a registered image."""
    files = result.files(position)
    if files is None:
        return None
    registered = _image(ctx, files.registered_sha256, ".jpg")
    mask = _image(ctx, files.mask_sha256, ".png", mask=True)
    if registered is None:
        return None
    return visualize.outline_overlay(registered, mask) if mask is not None else registered


def _two_visits(ctx: common.Context, result: PatchAnalysis, options: list[int], label) -> None:
    """Any two visits side by side, both aligned onto the baseline, with their outlines."""
    if len(options) < 2:
        st.caption("One visit so far: nothing to compare it with.")
        return
    columns = st.columns(2)
    chosen = [columns[0].selectbox("Left", options, index=max(0, len(options) - 2), format_func=label,
                                   key="compare_left"),
              columns[1].selectbox("Right", options, index=len(options) - 1, format_func=label,
                                   key="compare_right")]
    for column, position in zip(columns, chosen):
        entry = result.document["visits"][position]
        image = _outlined(ctx, result, position)
        if image is None:
            column.warning(f"{entry['date']}: not measured ({entry.get('error') or 'no aligned image'})",
                           icon=":material/warning:")
            continue
        figure = ("" if entry.get("repigmentation_pct") is None
                  else f" · {entry['repigmentation_pct']:.1f} % repigmentation")
        column.image(image, width="stretch", caption=f"{label(position)}{figure}, aligned onto the baseline")


def _every_visit(ctx: common.Context, result: PatchAnalysis, label) -> None:
    """Every visit at a glance, aligned onto the baseline, four to a row."""
    entries = result.document["visits"]
    per_row = 4
    for start in range(0, len(entries), per_row):
        columns = st.columns(per_row)
        for column, position in zip(columns, range(start, min(start + per_row, len(entries)))):
            entry = entries[position]
            image = _outlined(ctx, result, position)
            if image is None:
                column.caption(f"{label(position)}: " + ("could not be compared with your first photo"
                                                          if ctx.patient_mode else "not measured"))
                continue
            pct = entry.get("repigmentation_pct")
            column.image(image, width="stretch",
                         caption=label(position) + ("" if pct is None or position == 0 else f" · {pct:.0f} %"))


def _before_after(ctx, entry, baseline_rgb, baseline_mask, registered, mask, baseline_entry, own=None) -> None:
    if baseline_rgb is None:
        st.info("No baseline image is stored for this analysis; re-analyse the patch.")
        return
    left = visualize.outline_overlay(baseline_rgb, baseline_mask) if baseline_mask is not None else baseline_rgb
    if registered is None:
        first = "Your first photo" if ctx.patient_mode else "Baseline"
        if own is None:
            st.image(left, caption=f"{first} {baseline_entry['date']}", width="stretch")
        else:
            columns = st.columns(2)
            columns[0].image(left, width="stretch", caption=f"{first} · {baseline_entry['date']}")
            columns[1].image(own, width="stretch",
                             caption=f"This visit's own photo · {entry['date']} (not lined up)")
        reason = entry.get("error") or "it could not be placed onto the baseline"
        st.caption(("This photo could not be lined up with your first photo. "
                    if ctx.patient_mode else f"Not measured: {reason}. ")
                   + ("Is it the same patch, framed the same way?" if not ctx.patient_mode else ""))
        return
    right = visualize.outline_overlay(registered, mask) if mask is not None else registered
    if mask is None:
        # Not measured: a ghost shows how far off the alignment is.
        right = visualize.ghost_overlay(baseline_rgb, registered, alpha=0.35)
    first = "Your first photo" if ctx.patient_mode else "Baseline"
    onto = "lined up with your first photo" if ctx.patient_mode else "aligned onto the baseline"
    columns = st.columns(2)
    columns[0].image(left, width="stretch",
                     caption=f"{first} · {baseline_entry['date']} · week {baseline_entry['weeks_since_start']:.0f}")
    columns[1].image(right, width="stretch",
                     caption=f"{entry['date']} · {common.week_label(entry['weeks_since_start'])}, {onto}"
                             + ("" if mask is not None else f" ({first.lower()} shown faintly on top)"))
    st.caption("Yellow outline: depigmented skin found by the analysis." if not ctx.patient_mode else
               "The yellow line shows the edge of the white area the app measured.")


def _legend_html(patient_mode: bool) -> str:
    items = []
    for rgb, clinician, patient in _LEGEND:
        colour = "#%02x%02x%02x" % rgb
        items.append(f'<span style="display:inline-block;width:0.9em;height:0.9em;background:{colour};'
                     f'border-radius:2px;margin:0 0.35em -0.1em 0"></span>{patient if patient_mode else clinician}')
    return '<div style="font-size:0.9rem;line-height:1.8">' + " &nbsp;&nbsp; ".join(items) + "</div>"


def _change(ctx, entry, baseline_rgb, baseline_mask, mask, document) -> None:
    if baseline_mask is None or mask is None or baseline_rgb is None:
        st.info("No change map: this visit could not be measured." if not ctx.patient_mode else
                "This photo could not be compared with your first photo.")
        return
    st.image(visualize.change_map(baseline_mask, mask, background=baseline_rgb), width="stretch")
    st.html(_legend_html(ctx.patient_mode))
    if ctx.patient_mode or not baseline_mask.any():
        return
    score = scoring.score_visit(baseline_mask, mask)
    st.caption(
        f"In the baseline's working frame ({baseline_mask.shape[1]}×{baseline_mask.shape[0]} px): repigmented "
        f"{1 - score.residual_fraction:.0%} of the baseline footprint, still depigmented "
        f"{score.residual_fraction:.0%}; new depigmentation {score.new_depigmentation_px:,} px "
        f"({entry['new_depigmentation_px']:,} px at full resolution)."
    )


def _roi(ctx: common.Context, document: dict[str, Any], baseline_rgb: np.ndarray | None) -> None:
    if baseline_rgb is None:
        return
    width, height = document["baseline"]["width"], document["baseline"]["height"]
    current = ctx.patch.roi
    st.markdown("Drag a rectangle on the baseline photo around the patch to measure only inside it, then re-score. "
                "Fine-tune the corners below (baseline-photo pixels).")
    state = st.altair_chart(charts.roi_chart(baseline_rgb, (width, height), current), on_select="rerun",
                            selection_mode="roi", key="roi_chart", width="content")
    drawn = None
    selection = getattr(state, "selection", None) or {}
    box = selection.get("roi") if isinstance(selection, dict) else None
    if box and "x" in box and "y" in box:
        (x0, x1), (y0, y1) = sorted(box["x"]), sorted(box["y"])
        drawn = (x0, y0, x1, y1)
    keys = [f"roi_{ctx.patch.id}_{i}" for i in range(4)]
    start = current or (0.0, 0.0, float(width), float(height))
    if drawn is not None and drawn != st.session_state.get("_roi_drawn"):
        # A new rectangle was drawn: it replaces the numbers (which can then be fine-tuned).
        st.session_state["_roi_drawn"] = drawn
        start = drawn
        for key in keys:
            st.session_state.pop(key, None)
    columns = st.columns(4)
    names = ("x0 (left)", "y0 (top)", "x1 (right)", "y1 (bottom)")
    limits = (width, height, width, height)
    values = []
    for i, key in enumerate(keys):
        if key not in st.session_state:
            st.session_state[key] = int(min(max(round(start[i]), 0), limits[i]))
        values.append(columns[i].number_input(names[i], min_value=0, max_value=int(limits[i]), step=10, key=key))
    buttons = st.columns([1, 1, 3])
    if buttons[0].button("Re-score with this region", type="primary", key="roi_apply"):
        ctx.store.set_roi(ctx.patch.id, values)
        common.flash("Region of interest saved; the course is re-scored inside it.")
        st.rerun()
    if current is not None and buttons[1].button("Use the whole photo", key="roi_clear"):
        ctx.store.set_roi(ctx.patch.id, None)
        common.flash("Region of interest cleared.")
        st.rerun()
    st.caption("Current region: " + ("whole photo" if current is None else
                                     "x {:.0f}–{:.0f}, y {:.0f}–{:.0f} px".format(current[0], current[2],
                                                                                  current[1], current[3])))


def _strokes(ctx: common.Context, result: PatchAnalysis, baseline_rgb: np.ndarray | None, position: int) -> None:
    """Strokes on the baseline or on the selected visit's own photo.

    On the baseline they teach the segmentation this patient's colours for
    every visit; on a later visit's own photo they judge that visit alone.
    """
    if baseline_rgb is None:
        return
    photo = result.request.photos[position]
    on_visit = position > 0 and st.radio(
        "Draw on", ["the baseline photo", f"this visit's photo ({photo.date.isoformat()})"], horizontal=True,
        key="strokes_target", help="Choose a visit with the Visit slider above.") != "the baseline photo"
    if not on_visit:
        document = result.document
        size = (document["baseline"]["height"], document["baseline"]["width"])
        baseline = result.request.photos[0]
        stored = ctx.patch.labels_png if ctx.patch.labels_photo_sha256 == baseline.sha256 else None
        st.markdown("Where the outline misses, draw a few strokes on the baseline photo: across depigmented "
                    "skin, across normal skin nearby, and on what is not skin. The outline learned from them "
                    "shows at once; re-score to judge every visit by them.")

        def save(labels_png: bytes | None) -> str:
            ctx.store.set_labels(ctx.patch.id, labels_png, None if labels_png is None else baseline.sha256)
            return "with the patch"

        _draw_strokes(ctx, baseline, baseline_rgb, size, stored, save, saved_elsewhere=(
            ctx.patch.labels_png is not None and stored is None))
        return
    visit = next((v for v in ctx.store.visits(ctx.patch.id) if v.id == photo.visit_id), None)
    if visit is None or visit.primary is None or visit.primary.sha256 != photo.sha256:
        # Strokes drawn on one photo must not be kept with another.
        st.info("This visit was changed meanwhile; reload the page.", icon=":material/info:")
        return
    own_rgb = None
    with common.guard("loading this visit's photo"):
        own_rgb = caching.stored_photo(str(ctx.store.data_dir), photo.sha256, photo.extension)
    if own_rgb is None:
        return
    stored = ctx.store.photo_labels([visit.primary.id]).get(visit.primary.id)
    st.markdown("Where this visit's outline misses (a light far from the baseline's, a patch that changed "
                "shape), draw strokes on its own photo: this visit is then judged by them instead of the "
                "baseline's threshold, and a change of light is noted rather than flagged. The other visits "
                "are not changed.")

    def save_visit(labels_png: bytes | None) -> str:
        ctx.store.set_photo_labels(visit.primary.id, labels_png)
        return f"with the photo of {photo.date.isoformat()}"

    _draw_strokes(ctx, photo, own_rgb, (visit.primary.height, visit.primary.width), stored, save_visit)


def _draw_strokes(ctx: common.Context, photo, shown_rgb: np.ndarray, size: tuple[int, int], stored: bytes | None,
                  save, *, saved_elsewhere: bool = False) -> None:
    """A canvas over ``shown_rgb``, the outline its strokes give, and buttons that save or forget them.

    ``size`` is the photo's upright ``(H, W)``, at which strokes are kept;
    ``save(labels_png or None)`` keeps or forgets them and says where.
    """
    from PIL import Image
    from streamlit_drawable_canvas import st_canvas

    kind = st.radio("Stroke", list(strokes.STROKE_CLASSES), horizontal=True, key="stroke_kind")
    _, hex_colour, _ = strokes.STROKE_CLASSES[kind]
    scale = min(1.0, 640 / shown_rgb.shape[1])
    canvas_size = (max(1, round(shown_rgb.shape[1] * scale)), max(1, round(shown_rgb.shape[0] * scale)))
    background = np.asarray(Image.fromarray(shown_rgb).resize(canvas_size))
    saved = None
    stored_digest = None if stored is None else caching.digest(stored)
    if stored is not None:
        with common.guard("reading the saved strokes"):
            saved, saved_small = caching.saved_strokes(stored, background.shape[:2])
        if saved is not None and saved.shape == tuple(size):
            # The saved strokes show under the canvas, and new ones add to them.
            background = strokes.paint_strokes(background, saved_small)
        else:
            saved = None
    # The saved strokes name the canvas, so that saving or forgetting them starts a clean one.
    canvas = st_canvas(stroke_width=6, stroke_color=hex_colour, width=canvas_size[0], height=canvas_size[1],
                       background_image=Image.fromarray(background), drawing_mode="freedraw",
                       return_image_data=True, key=f"strokes_canvas_{ctx.patch.id}_{photo.sha256[:12]}_"
                                               f"{stored_digest[:8] if stored_digest else 'none'}")
    drawn = strokes.labels_from_canvas(canvas.image_data)
    labels_png = stored
    if drawn is not None and drawn.any():
        added = encode_png(strokes.add_strokes(saved, strokes.labels_at_size(drawn, size)))
        if added != stored:
            labels_png = added
    if saved is not None:
        st.caption("The saved strokes show on the photo; new strokes add to them. Forget them to start again.")
    elif stored is not None:
        st.warning("The saved strokes do not fit this photo and cannot be shown: strokes drawn now replace them.",
                   icon=":material/warning:")
    if labels_png is not None:
        outline, how = caching.strokes_outline(str(ctx.store.data_dir), photo.sha256, photo.extension,
                                               labels_png, shown_rgb.shape[:2])
        if outline is None:
            st.warning(how, icon=":material/warning:")
        else:
            st.image(visualize.outline_overlay(shown_rgb, outline), width="stretch",
                     caption=("Outline from your strokes" if labels_png is not stored else "Outline from the saved "
                              "strokes") + f" ({how})")
            if labels_png is not stored and st.button("Re-score with these strokes", type="primary",
                                                      key="strokes_apply"):
                where = save(labels_png)
                common.flash(f"Strokes saved {where}; the course is re-scored with them.")
                st.rerun()
    else:
        st.caption("Draw at least one stroke across depigmented skin to see the outline it gives.")
    if (stored is not None or saved_elsewhere) and st.button("Forget the saved strokes", key="strokes_clear"):
        save(None)
        common.flash("Strokes forgotten; the course is re-scored without them.")
        st.rerun()
    if saved_elsewhere:
        st.caption("The saved strokes were drawn on another baseline photo and are not used.")


def _manage_visits(ctx: common.Context, result: PatchAnalysis, position: int | None = None) -> None:
    """Correct a visit's date, delete a visit (e.g. a photo of the wrong place), or choose its measured photo."""
    visits = {v.id: v for v in ctx.store.visits(ctx.patch.id)}
    with st.expander("Manage visits", icon=":material/edit:"):
        ids = list(visits)
        default = ids.index(result.visit_id(position)) if position is not None else 0
        visit_id = st.selectbox("Visit", ids, index=default, key="manage_visit",
                                format_func=lambda i: f"{visits[i].date.isoformat()} · "
                                                      f"{len(visits[i].photos)} photo(s)")
        visit = visits[visit_id]
        if len(visit.photos) > 1:
            names = {p.id: p.display_name for p in visit.photos}
            chosen = st.radio("Photo measured for this visit", list(names), format_func=names.get,
                              key=f"primary_{visit_id}")
            if chosen != visit.photos[0].id and st.button("Measure this photo", key="set_primary"):
                ctx.store.update_visit(visit_id, primary_photo_id=chosen)
                st.rerun()
        columns = st.columns([2, 1])
        corrected = columns[0].date_input("Date of this visit", value=visit.date, format="YYYY-MM-DD",
                                          key=f"visit_date_{visit_id}",
                                          help="Correct a wrong date; the course is re-scored in weeks from it.")
        if corrected != visit.date and columns[1].button("Change the date", key="set_visit_date"):
            try:
                ctx.store.update_visit(visit_id, date=corrected)
            except StoreError as exc:
                st.error(str(exc), icon=":material/error:")
            else:
                common.flash(f"The visit of {visit.date.isoformat()} is now dated {corrected.isoformat()}.")
                st.rerun()
        confirm = st.checkbox(f"Yes, delete the visit of {visit.date.isoformat()} and its photos",
                              key=f"confirm_delete_{visit_id}")
        if st.button("Delete visit", disabled=not confirm, key="delete_visit", icon=":material/delete:"):
            ctx.store.delete_visit(visit_id)
            common.flash(f"Deleted the visit of {visit.date.isoformat()}.")
            st.rerun()


if __name__ == "__main__":
    render()
