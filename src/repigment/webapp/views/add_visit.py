"""Add visit: upload photos, check each one at once, confirm dates, save and analyse.

A page script: ``st.navigation`` runs this file; importing it does nothing.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import streamlit as st

from repigment.series.intake import AlignmentCheck, UploadCheck
from repigment.store import NewPhoto, NewVisit
from repigment.webapp import caching, common, course_data, wording
from repigment.webapp.shell import page

UPLOAD_TYPES = ["jpg", "jpeg", "png", "heic", "heif", "tif", "tiff", "webp"]
_NONCE = "upload_nonce"
_DATE_SOURCES = {
    "exif": "Date from the photo",
    "filename": "Date from the file name",
    None: "No date in the photo: please check",
}


@dataclass
class _Camera:
    """A photo taken with the camera, handled like an uploaded file."""

    name: str
    data: bytes

    def getvalue(self) -> bytes:
        return self.data


def ghost_css(rgb) -> str:
    """CSS that lays ``rgb`` faintly over the live camera view (a data URL; nothing is fetched)."""
    import base64

    import cv2

    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 70])
    if not ok:
        return ""
    url = "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")
    box = '[data-testid="stCameraInputWebcamComponent"]'
    return (f"{box} {{ position: relative; }} "
            f'{box}::after {{ content: ""; position: absolute; inset: 0; pointer-events: none; '
            f"background: url({url}) center / contain no-repeat; opacity: 0.35; }}")


@dataclass
class _Upload:
    name: str
    data: bytes
    check: UploadCheck


def render() -> None:
    ctx = common.context()
    w = ctx.words
    st.title(w.add_page)
    if ctx.patch is None:
        common.no_patch_notice(ctx)
        return
    st.caption(f"Patch: **{ctx.patch.label}**" if ctx.patient_mode else
               f"Patient **{ctx.patient.code}** · patch **{ctx.patch.label}** · marker {ctx.patch.marker_mm:g} mm")
    with common.guard("checking the photos"):
        _page(ctx)


def checklist(expanded: bool) -> None:
    with st.expander("Before you take the photo: checklist", expanded=expanded, icon=":material/checklist:"):
        st.markdown("\n".join(f"{i}. **{title}.** {text}"
                              for i, (title, text) in enumerate(wording.CAPTURE_CHECKLIST, start=1)))


def _page(ctx: common.Context) -> None:
    w = ctx.words
    store, patch = ctx.store, ctx.patch
    visits = store.visits(patch.id)
    baseline = visits[0] if visits else None
    nonce = st.session_state.setdefault(_NONCE, 0)
    baseline_rgb = None
    if baseline is not None and baseline.primary is not None:
        baseline_rgb = caching.stored_photo(str(store.data_dir), baseline.primary.sha256, baseline.primary.extension,
                                            max_side=640)
    take, upload_tab = st.tabs(["Take a photo now" if ctx.patient_mode else "Camera", "Upload photos"])
    with take:
        if baseline_rgb is not None:
            # The first photo shown faintly over the live view, to line the new one up with.
            st.html(f"<style>{ghost_css(baseline_rgb)}</style>")
            st.caption("Your first photo is shown faintly over the camera: line the patch up with it."
                       if ctx.patient_mode else "The baseline is shown faintly over the camera: line the patch up.")
        shot = st.camera_input("Take the photo", key=f"camera-{nonce}",
                               help="Allow the camera when the browser asks; on a phone, switch to the back camera.")
    with upload_tab:
        files = st.file_uploader(
            w.upload_label, type=UPLOAD_TYPES, accept_multiple_files=True, key=f"upload-{nonce}",
            help="Up to 50 MB a photo. Each photo's date is read from the photo and can be changed below. "
                 "Location data is removed before saving.",
        )
    files = list(files or [])
    if shot is not None:
        files.append(_Camera(f"camera-{_dt.date.today().isoformat()}.jpg", shot.getvalue()))
    checklist(expanded=ctx.patient_mode and not files)
    if not files:
        if baseline is not None and baseline.primary is not None:
            st.markdown("**Line your new photo up with the first one:**" if ctx.patient_mode else
                        f"**Baseline ({baseline.date.isoformat()})**: frame new photos like this one.")
            st.image(baseline_rgb, width=420)
        return

    uploads: list[_Upload] = []
    for file in files:
        data = file.getvalue()
        uploads.append(_Upload(file.name, data, caching.photo_check(caching.digest(data), data, file.name)))
    for upload in uploads:
        if not upload.check.usable:
            st.error(f"**{upload.name}** cannot be used: {upload.check.error}", icon=":material/block:")
    fresh: list[_Upload] = []
    seen: set[str] = set()
    for upload in uploads:
        if not upload.check.usable:
            continue
        if upload.check.sha256 in seen:
            st.info(f"**{upload.name}** is the same photo as another one in this upload; it is used once.")
            continue
        seen.add(upload.check.sha256)
        held = store.patch_holds(patch.id, upload.check.sha256)
        if held is not None:
            st.info(f"**{upload.name}** is already saved (visit of {held.isoformat()}); it is skipped.",
                    icon=":material/info:")
            continue
        fresh.append(upload)
    if not fresh:
        return

    reference = None
    if baseline is not None and baseline.primary is not None:
        with st.spinner("Lining the photos up with the baseline…" if not ctx.patient_mode else
                        "Comparing with your first photo…"):
            reference = caching.baseline_reference(str(store.data_dir), baseline.primary.sha256,
                                                   baseline.primary.extension, patch.marker_mm)
    fresh.sort(key=lambda u: (u.check.date or _dt.date.max, u.name))
    existing = {v.date for v in visits}
    dates = _cards(ctx, fresh, reference, baseline.primary.sha256 if reference is not None else None, existing)
    notes = st.text_area("Notes for this visit (optional)" if len(set(dates)) == 1 else
                         "Notes for these visits (optional)", key=f"notes-{nonce}",
                         placeholder="e.g. started phototherapy, missed doses, new patch nearby")
    groups: dict[_dt.date, list[NewPhoto]] = {}
    for upload, date in zip(fresh, dates):
        source = upload.check.date_source if date == upload.check.date else "given"
        groups.setdefault(date, []).append(NewPhoto(
            data=upload.data, display_name=upload.name, date_source=source or "given",
            quality=upload.check.quality_records,
        ))
    n_new = sum(1 for d in groups if d not in existing)
    summary = f"{len(fresh)} photo{'s' if len(fresh) != 1 else ''}: {n_new} new visit{'s' if n_new != 1 else ''}"
    if len(groups) > n_new:
        summary += f", {len(groups) - n_new} added to existing visits"
    st.caption(summary + ".")
    if st.button(w.save_button, type="primary", key="save_visits", icon=":material/save:"):
        new_visits = [NewVisit(date=d, photos=photos, notes=notes) for d, photos in sorted(groups.items())]
        with st.spinner("Saving…"):
            store.add_visits(patch.id, new_visits)
        st.session_state[_NONCE] = nonce + 1
        result = common.patch_analysis(ctx)
        message = f"Saved {summary}."
        if result is not None and result.error:
            message += " The series could not be measured; see below."
        common.flash(message)
        # Bound URL parameters (mode, patient, patch) cannot be cleared, which switch_page does by
        # default; an empty mapping keeps them (Streamlit 1.67).
        st.switch_page(page("course", w), query_params={})


def _cards(ctx: common.Context, fresh: list[_Upload], reference, baseline_sha: str | None,
           existing: set[_dt.date]) -> list[_dt.date]:
    """One card per photo: picture (with the baseline ghost), date, advice. Returns the dates."""
    dates: list[_dt.date] = []
    columns = st.columns(3 if len(fresh) > 1 else [1, 1, 1])
    for index, upload in enumerate(fresh):
        check = upload.check
        alignment: AlignmentCheck | None = None
        if reference is not None:
            alignment = caching.alignment_check(baseline_sha, check.sha256, reference, upload.data, upload.name)
        with columns[index % 3].container(border=True):
            st.markdown(f"**{check.name}**")
            if alignment is not None and alignment.ghost is not None:
                st.image(alignment.ghost, caption="Faint overlay: the baseline photo (ghost)" if not ctx.patient_mode
                         else "Your first photo shown faintly on top: the patch should line up",
                         width="stretch")
            elif check.preview is not None:
                st.image(check.preview, width="stretch")
            default = check.date or _dt.date.today()
            date = st.date_input("Visit date", value=default, key=f"date-{check.sha256}", format="YYYY-MM-DD",
                                 min_value=_dt.date(1990, 1, 1), max_value=_dt.date(2100, 12, 31))
            dates.append(date)
            notes = [_DATE_SOURCES.get(check.date_source if date == check.date else "given",
                                       "Date set by hand")]
            if date in existing:
                notes.append("adds this photo to the visit of that date")
            if date > _dt.date.today():
                notes.append("this date is in the future: please check")
            st.caption("; ".join(notes) + ".")
            _advice(ctx, check, alignment)
    if reference is None and fresh:
        first = min(range(len(fresh)), key=lambda i: dates[i])
        st.caption(f"The earliest photo, **{fresh[first].name}** ({dates[first].isoformat()}), becomes the "
                   "baseline: later visits are measured against it." if not ctx.patient_mode else
                   f"Your earliest photo, **{fresh[first].name}**, is the starting point for comparisons.")
    return dates


def _advice(ctx: common.Context, check: UploadCheck, alignment: AlignmentCheck | None) -> None:
    problems = [i for i in check.issues if i.code != "no_marker"]
    for issue in problems:
        st.warning(issue.message, icon=":material/warning:")
    if not check.marker_found:
        st.info(next(i.message for i in check.issues if i.code == "no_marker"), icon=":material/straighten:")
    if alignment is not None:
        if not alignment.ok:
            reason = alignment.reason or "it does not line up with the baseline"
            st.error(("Does not line up with the baseline: " + reason) if not ctx.patient_mode else
                     "This photo does not line up with your first photo. Retake it from the same distance and "
                     "angle, using the ghost to line it up.", icon=":material/error:")
        elif alignment.advice:
            st.warning(course_data.plain_reason(alignment.advice) if ctx.patient_mode else alignment.advice,
                       icon=":material/crop_free:")
        else:
            st.success("Lines up with the baseline." if not ctx.patient_mode else "Lines up with your first photo.",
                       icon=":material/check:")
    elif not problems and check.marker_found:
        st.success("Photo looks usable." if not ctx.patient_mode else "This photo looks good.",
                   icon=":material/check:")
    if check.has_location:
        st.caption("GPS location found in the photo: it will be removed before saving.")


if __name__ == "__main__":
    render()
