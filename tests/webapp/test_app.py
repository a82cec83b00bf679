"""The Streamlit app, driven headless with AppTest: every page, both modes, the upload path."""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "app.py"
VIEWS = "src/repigment/webapp/views"
PAGES = ["course", "add_visit", "review", "export", "patients", "guide"]
CHART = "vega_lite_chart"


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory, samples_root) -> Path:
    """A data folder with the demo patient imported and its first patch analysed (built once per run)."""
    from repigment.series import intake as checks
    from repigment.store import Store, demo
    from repigment.store import analyses as analysis

    folder = tmp_path_factory.mktemp("demo") / "data"
    with Store(folder) as store:
        patient = demo.ensure_demo(store, samples_root,
                                   check=lambda data, name: checks.check_photo(data, name).quality_records)
        first = store.patches(patient.id)[0]  # the one the first screen shows
        analysis.get_or_analyse(store, analysis.request_for_patch(store, first))
    return folder


@pytest.fixture
def app_env(isolated_env, demo_data, samples_root, monkeypatch) -> Path:
    """A private copy of the demo data folder for one test."""
    shutil.copytree(demo_data, isolated_env)
    monkeypatch.setenv("REPIGMENT_SAMPLES", str(samples_root))
    return isolated_env


def open_app(page: str = "course", *, mode: str = "Clinician") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["mode"] = mode
    at.run()
    if page != "course":
        at.switch_page(f"{VIEWS}/{page}.py").run()
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


@pytest.mark.parametrize("mode", ["Clinician", "Patient"])
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(app_env, page, mode):
    at = open_app(page, mode=mode)
    assert_clean(at)
    assert at.title and at.title[0].value


def test_first_screen_shows_the_demo_course(app_env):
    at = open_app()
    assert_clean(at)
    assert at.sidebar.selectbox(key="patient").value is not None
    assert len(at.get(CHART)) >= 1
    [table] = at.dataframe
    assert len(table.value) == 6
    assert table.value["Status"].str.startswith("✓").sum() >= 5
    assert at.metric[0].value.endswith("%")
    # Three weeks short enough for a quarter of a laptop's page ("wk 52 / wk 52 / –" was cut off).
    [milestones] = [m for m in at.metric if m.label.startswith("VASI50 / 75 / 90")]
    assert re.fullmatch(r"(\d+|–) / (\d+|–) / (\d+|–)", milestones.value), milestones.value


def test_patient_mode_uses_plain_words(app_env):
    at = open_app()
    at.sidebar.radio(key="mode").set_value("Patient").run()
    assert_clean(at)
    assert at.title[0].value.startswith("My progress")
    table = at.dataframe[0].value
    assert "Colour regained (%)" in table.columns and "Alignment score" not in table.columns
    assert any("regained colour" in m.value or "starting point" in m.value for m in at.markdown)


def test_uploading_a_series_gives_a_chart_and_a_visits_table(app_env, sample_series):
    at = open_app("patients")
    button(at, "Create patient").click().run()
    assert_clean(at)
    [label] = [t for t in at.text_input if t.label == "Where is the patch?"]
    label.set_value("back of left hand")
    # The body region has no default: it sets the VASI weights and the week-24 level.
    button(at, "Create patch").click().run()
    assert not at.exception and not at.success
    assert any("Choose the body region" in e.value for e in at.error)
    at.selectbox(key="new_patch_region").set_value("hands")
    button(at, "Create patch").click().run()
    assert_clean(at)
    assert "Created patch" in at.success[0].value

    at.switch_page(f"{VIEWS}/add_visit.py").run()
    photos = sorted(sample_series.glob("*.jpg"))
    at.file_uploader[0].set_value([(p.name, p.read_bytes(), "image/jpeg") for p in photos]).run()
    assert_clean(at)
    assert len(at.date_input) == len(photos) == 6
    button(at, "Save and analyse").click().run(timeout=300)
    assert_clean(at)
    assert at.title[0].value == "back of left hand"  # the course page of the new patch
    assert "Hands" in at.caption[0].value
    assert "Saved 6 photos: 6 new visits" in at.success[0].value
    assert len(at.get(CHART)) >= 1
    assert len(at.dataframe[0].value) == 6


def test_tables_show_no_raw_none_and_reasons_in_full(app_env):
    at = open_app()
    assert_clean(at)
    table = at.dataframe[0].value
    assert not table.isna().any().any()
    assert not table.astype(str).isin(["None", "nan", "NaN"]).any().any()


def test_a_baseline_alone_has_no_change_badge(app_env, sample_series):
    at = open_app("patients")
    button(at, "Create patient").click().run()
    [label] = [t for t in at.text_input if t.label == "Where is the patch?"]
    label.set_value("left forearm")
    at.selectbox(key="new_patch_region").set_value("upper_limbs")
    button(at, "Create patch").click().run()
    at.switch_page(f"{VIEWS}/add_visit.py").run()
    first = sorted(sample_series.glob("*.jpg"))[0]
    at.file_uploader[0].set_value([(first.name, first.read_bytes(), "image/jpeg")]).run()
    button(at, "Save and analyse").click().run(timeout=300)
    assert_clean(at)
    area = [m for m in at.metric if m.label == "Depigmented area"]
    assert area and not area[0].delta  # no "+0.00 cm² since baseline" with only a baseline


def test_unusable_files_get_a_message_not_a_traceback(app_env, sample_series):
    at = open_app("add_visit")
    good = sorted(sample_series.glob("*.jpg"))[0]
    at.file_uploader[0].set_value([
        ("notes.jpg", b"these are my notes, not a photo", "image/jpeg"),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "image/png"),
        (good.name, good.read_bytes(), "image/jpeg"),
    ]).run()
    assert not at.exception
    messages = [e.value for e in at.error]
    assert any("notes.jpg" in m for m in messages) and any("broken.png" in m for m in messages)
    assert all("Traceback" not in m for m in messages)
    assert any("already saved" in i.value for i in at.info)  # the good one is in the demo patch


def test_review_shows_a_visit_and_a_change_map(app_env):
    at = open_app("review")
    assert_clean(at)
    assert at.select_slider(key="review_visit").value == len(at.select_slider(key="review_visit").options) - 1
    # before/after, change map, two visits, every visit, region of interest, strokes
    assert [t.label for t in at.tabs] == ["Before / after", "Change map", "Two visits", "Every visit",
                                          "Region of interest", "Strokes"]
    at.select_slider(key="review_visit").set_value(1).run()
    assert_clean(at)
    captions = [caption for image in at.get("image") for caption in image.captions]
    # Two visits side by side (the last two by default) and a grid of all six, each aligned and outlined.
    assert sum("aligned onto the baseline" in c and "repigmentation" in c for c in captions) == 2
    entries = at.select_slider(key="review_visit").options
    assert all(any(c.startswith(option) for c in captions) for option in entries)
    at.selectbox(key="compare_left").set_value(0).run()
    assert_clean(at)


def test_a_failed_visit_shows_its_own_photo_and_its_date_can_be_corrected(app_env):
    from repigment.store import NewPhoto, NewVisit, Store

    noise = np.random.default_rng(3).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="JPEG", quality=90)
    with Store(app_env) as store:
        patch = store.patches(store.patients()[0].id)[0]
        [visit] = store.add_visits(patch.id, [NewVisit(dt.date(2027, 3, 1), [NewPhoto(buffer.getvalue(), "x.jpg")])])
    at = open_app("review")
    assert_clean(at)
    # The review opens on the latest visit: the one that could not be placed.
    assert any("not aligned" in w.value or "could not" in w.value for w in at.warning)
    assert any("Not measured" in c.value and "same patch" in c.value for c in at.caption)
    captions = [caption for image in at.get("image") for caption in image.captions]
    assert any("own photo" in c for c in captions), captions  # beside the baseline, to compare
    at.date_input(key=f"visit_date_{visit.id}").set_value(dt.date(2027, 3, 8)).run()
    button(at, "Change the date").click().run(timeout=300)
    assert not at.exception
    with Store(app_env) as store:
        assert store.visits(patch.id)[-1].date == dt.date(2027, 3, 8)


def test_region_of_interest_rescores(app_env):
    at = open_app("review")
    patch_id = at.session_state["patch"]
    for index, value in enumerate((100, 50, 1100, 850)):
        at.number_input(key=f"roi_{patch_id}_{index}").set_value(value)
    button(at, "Re-score with this region").click().run(timeout=300)
    assert_clean(at)
    assert "Region of interest saved" in at.success[0].value
    assert any("x 100–1100, y 50–850" in c.value for c in at.caption)
    # The store keeps corners; the analysis gets x, y, width, height (it was given the corners as a size).
    from repigment.store import Store
    from repigment.store import analyses as analysis

    with Store(app_env) as store:
        patch = store.patch(at.session_state["patch"])
        request = analysis.request_for_patch(store, patch)
        assert request.roi == (100.0, 50.0, 1000.0, 800.0)
        assert analysis.cached_analysis(store, request).document["roi"] == [100.0, 50.0, 1000.0, 800.0]


def test_strokes_for_another_baseline_photo_are_not_used(app_env):
    from repigment.store import Store
    from repigment.store import analyses as analysis

    with Store(app_env) as store:
        patient = store.patients()[0]
        patch = store.patches(patient.id)[0]
        request = analysis.request_for_patch(store, patch)
        png = b"\x89PNG\r\n\x1a\n" + b"strokes"
        drawn_here = analysis.request_for_patch(store, store.set_labels(patch.id, png, request.photos[0].sha256))
        assert drawn_here.labels_png == png and drawn_here.key != request.key
        elsewhere = analysis.request_for_patch(store, store.set_labels(patch.id, png, "0" * 64))
        assert elsewhere.labels_png is None and elsewhere.key == request.key


def test_export_offers_csv_and_json_in_the_cli_schema(app_env):
    from repigment.series.results import CSV_COLUMNS

    at = open_app("export")
    assert_clean(at)
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download PDF report", "Download CSV", "Download JSON", "Download ZIP with masks",
                      "Download marker sheet (20 mm)"]
    assert list(at.dataframe[0].value.columns) == list(CSV_COLUMNS)


def test_the_report_and_marker_sheet_are_pdfs_named_by_code_only(app_env):
    from repigment.store import Store
    from repigment.store import analyses as analysis
    from repigment.webapp import downloads

    with Store(app_env) as store:
        [patient] = store.patients()
        patch = store.patches(patient.id)[0]
        store.add_event(patch.id, patch.treatment_start or dt.date(2026, 1, 5), "phototherapy", "NB-UVB")
        patch = store.patch(patch.id)
        result = analysis.get_or_analyse(store, analysis.request_for_patch(store, patch))
        assert result.cache_hit and result.document["clinical"]["checkpoints"]["week24"] is not None
        report = downloads.report_pdf_bytes(store, patient, patch, result)
    assert report.startswith(b"%PDF") and len(report) > 10_000
    assert downloads.report_name(patient) == "report-DEMO-001.pdf"
    assert downloads.marker_sheet(20).startswith(b"%PDF")
    assert downloads.marker_sheet_name(None) == downloads.marker_sheet_name(20.0) == "repigment-markers-20mm.pdf"


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils (make test installs it)")
def test_the_report_has_a_whole_patient_page_with_a_hand_unit(app_env, tmp_path):
    import subprocess

    from repigment.store import Store
    from repigment.store import analyses as analysis
    from repigment.webapp import downloads

    with Store(app_env) as store:
        [patient] = store.patients()
        without = downloads.report_pdf_bytes(store, patient, store.patches(patient.id)[0], analysis.get_or_analyse(
            store, analysis.request_for_patch(store, store.patches(patient.id)[0])))
        store.set_hand_unit(patient.id, 180.0, source="entered")
        patient = store.patient(patient.id)
        patch = store.patches(patient.id)[0]
        result = analysis.get_or_analyse(store, analysis.request_for_patch(store, patch))
        report = downloads.report_pdf_bytes(store, patient, patch, result)
    texts = []
    for name, data in (("without", without), ("with", report)):
        (tmp_path / f"{name}.pdf").write_bytes(data)
        texts.append(" ".join(subprocess.run(["pdftotext", str(tmp_path / f"{name}.pdf"), "-"], capture_output=True,
                                              text=True, check=True).stdout.split()))
    assert "The whole patient" not in texts[0]  # no VASI without a hand unit
    pct = result.document["visits"][-1]["repigmentation_pct"]
    assert "The whole patient: F-VASI and T-VASI" in texts[1]
    assert f"T-VASI: {pct:.0f}% better than its first visit at week 52" in texts[1]  # one patch: its own figure
    assert "Which patches carry the change" in texts[1] and "Not in the totals" in texts[1]


@pytest.mark.parametrize("mode", ["Clinician", "Patient"])
def test_course_page_shows_vasi_pattern_and_checkpoints(app_env, mode):
    at = open_app(mode=mode)
    assert_clean(at)
    texts = [m.value for m in at.markdown]
    assert any("badge[" in t and "eek 24" in t for t in texts) and any("badge[" in t and "eek 52" in t for t in texts)
    if mode == "Clinician":
        assert any("Clinical assessment" in h.value for h in at.subheader)
        assert any("T-VASI contribution" in t for t in texts)
        assert any("Not scored: no hand unit" in c.value for c in at.caption)  # the demo has none yet
        assert any("improvement" in t and "[" in t for t in texts)  # clinician_message with its interval
        assert "Pattern" in at.dataframe[0].value.columns
    else:
        assert any("regained colour" in t and "likely between" in t for t in texts)  # patient_message
        assert not any("T-VASI" in t for t in texts)


def test_a_typed_hand_unit_is_kept_and_gives_vasi(app_env):
    from repigment.store import Store

    at = open_app("patients")
    at.number_input(key="hand_unit_cm2").set_value(180.0)
    button(at, "Save hand unit").click().run()
    assert_clean(at)
    assert "Hand unit saved" in at.success[0].value
    assert any("180 cm²" in m.value and "typed in" in m.value for m in at.markdown)
    with Store(app_env) as store:
        [patient] = store.patients()
        assert (patient.hand_unit_cm2, patient.hand_unit_source) == (180.0, "entered")
    at.switch_page(f"{VIEWS}/course.py").run(timeout=300)  # a new clinical block: re-analysed once
    assert_clean(at)
    vasi = [m.value for m in at.markdown if "at week" in m.value and "level-based" in m.value]
    assert vasi and "(" in vasi[0]  # the value with its interval
    # The whole patient's T-VASI: with one scored patch it is that patch's own improvement.
    document_pct = at.metric[0].value.removesuffix(" %")
    total = [m.value for m in at.markdown if m.value.startswith("**T-VASI**")]
    assert total and f"{float(document_pct):.0f} % better than baseline at week 52" in total[0], total
    assert "T-VASI50 at week" in total[0]
    assert any("Which patches carry the change" in m.value for m in at.markdown)


def test_an_implausible_hand_unit_gets_one_line(app_env):
    at = open_app("patients")
    at.number_input(key="hand_unit_cm2").set_value(3.0)
    button(at, "Save hand unit").click().run()
    assert not at.exception
    assert at.error and "\n" not in at.error[0].value


def test_an_empty_store_asks_for_a_patient(isolated_env, monkeypatch):
    monkeypatch.setenv("REPIGMENT_DEMO", "0")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert_clean(at)
    assert "No patient yet" in at.info[0].value
    assert not at.get(CHART)


def test_patients_page_adds_treatment_events(app_env):
    at = open_app("patients")
    [details] = [t for t in at.text_input if t.label == "Details"]
    details.set_value("NB-UVB twice weekly")
    button(at, "Add event").click().run()
    assert_clean(at)
    at.switch_page(f"{VIEWS}/course.py").run()
    assert_clean(at)
    assert any("NB-UVB twice weekly" in m.value for m in at.markdown)


def test_patient_mode_can_be_the_default(app_env, monkeypatch):
    monkeypatch.setenv("REPIGMENT_MODE", "patient")
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert_clean(at)
    assert at.sidebar.radio(key="mode").value == "Patient"
    assert at.title[0].value.startswith("My progress")


def test_a_palm_photo_without_a_marker_gets_one_line(app_env):
    from hand_photos import synthetic_hand_photo

    photo, _ = synthetic_hand_photo(5)
    image = np.array(Image.open(io.BytesIO(photo)))
    image[int(190 * 4):, int(165 * 4):] = 25  # cover the marker with background (as in test_hand_units)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    at = open_app("patients")
    at.file_uploader(key="hand_photo").set_value([("palm.png", buffer.getvalue(), "image/png")])
    button(at, "Measure hand unit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1, [e.value for e in at.error]
    message = at.error[0].value
    assert "\n" not in message and "Traceback" not in message
    assert "no scale marker found" in message  # the HandPhotoError itself, not the generic fallback
    assert not at.success


def test_a_cut_off_palm_photo_gets_one_line(app_env, sample_series):
    at = open_app("patients")
    not_a_hand = sorted(sample_series.glob("*.jpg"))[0].read_bytes()[:2000]  # a cut-off JPEG
    at.file_uploader(key="hand_photo").set_value([("palm.jpg", not_a_hand, "image/jpeg")])
    button(at, "Measure hand unit").click().run()
    assert not at.exception
    assert at.error and all("\n" not in e.value and "Traceback" not in e.value for e in at.error)


def test_a_visit_without_figures_is_drawn_apart_from_the_zero_line():
    from repigment.webapp.charts import CoursePoint, course_chart
    from repigment.webapp.wording import words

    points = [CoursePoint(0, "2026-01-05", 0.0, None, "", "a.jpg"),
              CoursePoint(4, "2026-02-02", None, None, "too blurred", "b.jpg"),
              CoursePoint(8, "2026-03-02", 6.0, None, "", "c.jpg")]
    spec = course_chart(points, words=words(False)).to_dict()
    layers = [layer for layer in spec["layer"] if layer.get("data", {}).get("values") is not None]
    failed = [row for layer in layers for row in layer["data"]["values"] if row.get("reason") == "too blurred"]
    datasets = spec.get("datasets", {})
    if not failed:  # Altair may move inline data to top-level datasets
        failed = [row for rows in datasets.values() for row in rows if row.get("reason") == "too blurred"]
    assert failed and all(row["pct"] < -2 for row in failed)  # under the zero line, not on it
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["layer"]]
    assert "rule" in marks
