"""The store: records, photo files, transactions, migrations and the results cache."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
import sys

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from repigment.errors import ImageLoadError, InvalidParameterError
from repigment.io import read_image_info
from repigment.store import (
    DEFAULT_REGIMEN,
    MIGRATIONS,
    SCHEMA_VERSION,
    Base,
    NewPhoto,
    NewVisit,
    Store,
    StoreError,
    default_data_dir,
    demo,
    migrate,
    schema_version,
)
from repigment.store import analyses as analysis


def jpeg(seed: int = 0, *, gps: bool = False, size=(320, 240)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0132] = "2026:01:05 10:00:00"
    if gps:
        gps_ifd = exif.get_ifd(0x8825)
        gps_ifd[1] = "N"
        gps_ifd[2] = (52.0, 22.0, 5.0)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif, quality=90)
    return buffer.getvalue()


@pytest.fixture
def store(tmp_path, db_url):
    """A store on SQLite (the default) and on a PostgreSQL server: every test using it runs on both."""
    with Store(tmp_path / "data", url=db_url) as opened:
        yield opened


def _engine(tmp_path, db_url, name="repigment.sqlite3"):
    return sa.create_engine(db_url or f"sqlite:///{tmp_path / name}")


@pytest.fixture
def patch(store):
    patient = store.create_patient("P-0001")
    return store.create_patch(patient.id, "left forearm", "upper_limbs")


# -- records -----------------------------------------------------------------


def test_patient_and_patch_defaults(store):
    patient = store.create_patient(" P-0001 ", "referred by GP")
    patch = store.create_patch(patient.id, "  back of   left hand ", "hands")
    assert patient.code == "P-0001"
    assert patch.label == "back of left hand"
    assert patch.regimen == DEFAULT_REGIMEN
    assert patch.treatment_start is None and patch.roi is None and patch.marker_mm == 20.0
    assert store.patches(patient.id) == [patch]
    assert store.next_patient_code() == "P-0002"


@pytest.mark.parametrize("code", ["", "Jane Doe", "a" * 41, "-x", "P/1"])
def test_patient_codes_are_pseudonyms(store, code):
    with pytest.raises(InvalidParameterError, match="pseudonym"):
        store.create_patient(code)


def test_duplicates_and_bad_values_are_refused(store, patch):
    with pytest.raises(StoreError, match="already a patient"):
        store.create_patient("P-0001")
    with pytest.raises(StoreError, match="already has a patch"):
        store.create_patch(patch.patient_id, "left forearm", "trunk")
    with pytest.raises(InvalidParameterError, match="body region"):
        store.create_patch(patch.patient_id, "scalp", "head")
    with pytest.raises(InvalidParameterError, match="marker"):
        store.create_patch(patch.patient_id, "knee", "lower_limbs", marker_mm=0)
    with pytest.raises(StoreError, match="no patient"):
        store.create_patch(999, "knee", "lower_limbs")


def test_treatment_start_events_and_roi(store, patch):
    start = dt.date(2026, 1, 5)
    updated = store.update_patch(patch.id, treatment_start=start, regimen="ruxolitinib + NB-UVB")
    assert updated.treatment_start == start and updated.regimen == "ruxolitinib + NB-UVB"
    assert store.update_patch(patch.id, notes="x").treatment_start == start  # left out: kept
    assert store.update_patch(patch.id, treatment_start=None).treatment_start is None
    event = store.add_event(patch.id, dt.date(2026, 3, 1), "phototherapy", "NB-UVB twice weekly")
    assert store.patch(patch.id).events == (event,)
    assert event.kind_label == "Phototherapy (NB-UVB)"
    with pytest.raises(InvalidParameterError, match="event kind"):
        store.add_event(patch.id, dt.date(2026, 3, 1), "surgery")
    store.delete_event(event.id)
    assert store.patch(patch.id).events == ()
    assert store.set_roi(patch.id, (10, 20, 300, 200)).roi == (10.0, 20.0, 300.0, 200.0)
    with pytest.raises(InvalidParameterError, match="x1 > x0"):
        store.set_roi(patch.id, (300, 20, 10, 200))
    assert store.set_roi(patch.id, None).roi is None


# -- photos and visits --------------------------------------------------------


def test_photos_are_stored_by_hash_with_location_removed(store, patch):
    data = jpeg(1, gps=True)
    assert read_image_info(data).has_location
    [visit] = store.add_visits(patch.id, [
        NewVisit(dt.date(2026, 1, 5), [NewPhoto(data, "../../etc/IMG_0001.JPG", "exif")], notes="baseline"),
    ])
    photo = visit.primary
    path = store.photo_path(photo)
    stored = path.read_bytes()
    assert photo.sha256 == hashlib.sha256(stored).hexdigest()
    assert path == store.data_dir / "photos" / photo.sha256[:2] / f"{photo.sha256}.jpg"
    assert photo.display_name == "IMG_0001.JPG"  # display only, never a path
    assert not read_image_info(stored).has_location and photo.location_removed
    assert read_image_info(stored).taken_at == dt.datetime(2026, 1, 5, 10, 0)  # other metadata kept
    assert not list(store.data_dir.rglob("IMG_0001*"))
    assert not list((store.data_dir / "photos").rglob("*.tmp"))


def test_same_date_joins_the_visit_and_known_photos_are_skipped(store, patch):
    first = jpeg(1)
    store.add_visits(patch.id, [NewVisit(dt.date(2026, 1, 5), [NewPhoto(first, "a.jpg")])])
    [visit] = store.add_visits(patch.id, [
        NewVisit(dt.date(2026, 1, 5), [NewPhoto(first, "again.jpg"), NewPhoto(jpeg(2), "b.jpg")], notes="retake"),
    ])
    assert [p.display_name for p in visit.photos] == ["a.jpg", "b.jpg"]
    assert visit.primary.display_name == "a.jpg" and visit.notes == "retake"
    assert store.patch_holds(patch.id, visit.photos[1].sha256) == dt.date(2026, 1, 5)
    chosen = store.update_visit(visit.id, primary_photo_id=visit.photos[1].id)
    assert chosen.primary.display_name == "b.jpg"
    assert len(store.visits(patch.id)) == 1


def test_a_bad_photo_saves_nothing(store, patch):
    visits = [
        NewVisit(dt.date(2026, 1, 5), [NewPhoto(jpeg(1), "good.jpg")]),
        NewVisit(dt.date(2026, 2, 5), [NewPhoto(b"<html>not a photo</html>", "bad.jpg")]),
    ]
    with pytest.raises(ImageLoadError, match="bad.jpg"):
        store.add_visits(patch.id, visits)
    truncated = jpeg(3)[:2000]
    with pytest.raises(ImageLoadError, match="cut.jpg"):
        store.add_visits(patch.id, [NewVisit(dt.date(2026, 1, 5), [NewPhoto(jpeg(1), "good.jpg"),
                                                                    NewPhoto(truncated, "cut.jpg")])])
    assert store.visits(patch.id) == []
    assert not [p for p in (store.data_dir / "photos").rglob("*") if p.is_file()]


def test_visits_need_distinct_dates(store, patch):
    with pytest.raises(InvalidParameterError, match="same date"):
        store.add_visits(patch.id, [NewVisit(dt.date(2026, 1, 5), [NewPhoto(jpeg(1), "a.jpg")]),
                                    NewVisit(dt.date(2026, 1, 5), [NewPhoto(jpeg(2), "b.jpg")])])


def test_a_visit_date_can_be_corrected_but_not_onto_another_visit(store, patch):
    first, second = store.add_visits(patch.id, [NewVisit(dt.date(2026, 1, 5), [NewPhoto(jpeg(1), "a.jpg")]),
                                                NewVisit(dt.date(2026, 2, 5), [NewPhoto(jpeg(2), "b.jpg")])])
    moved = store.update_visit(second.id, date=dt.date(2026, 2, 9))
    assert moved.date == dt.date(2026, 2, 9) and moved.photos == second.photos
    assert [v.date for v in store.visits(patch.id)] == [dt.date(2026, 1, 5), dt.date(2026, 2, 9)]
    with pytest.raises(StoreError, match="already has a visit on 2026-01-05"):
        store.update_visit(second.id, date=dt.date(2026, 1, 5))
    with pytest.raises(InvalidParameterError, match="calendar date"):
        store.update_visit(second.id, date=dt.datetime(2026, 3, 1, 10, 0))
    assert store.visits(patch.id)[1].date == dt.date(2026, 2, 9)  # nothing half-changed


def test_deleting_a_patient_deletes_its_records(store, patch):
    store.add_visits(patch.id, [NewVisit(dt.date(2026, 1, 5), [NewPhoto(jpeg(1), "a.jpg")])])
    store.add_event(patch.id, dt.date(2026, 1, 5), "other")
    store.delete_patient(patch.patient_id)
    with store.engine.connect() as conn:
        for table in ("patches", "treatments", "treatment_events", "visits", "photos"):
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 0
    assert len(store.unused_files()) == 1


# -- database and schema --------------------------------------------------------


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    with Store(tmp_path) as store, store.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1


def test_migrations_are_recorded_and_run_once(tmp_path, db_url):
    with Store(tmp_path, url=db_url) as store:
        assert schema_version(store.engine) == SCHEMA_VERSION == len(MIGRATIONS)
        store.create_patient("P-0001")
    with Store(tmp_path, url=db_url) as store:  # reopening applies nothing again and keeps the data
        assert [p.code for p in store.patients()] == ["P-0001"]
        with store.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT version FROM schema_migrations")).scalars().all()
        assert rows == list(range(1, SCHEMA_VERSION + 1))


def test_a_later_migration_runs_after_the_earlier_ones(tmp_path, db_url):
    engine = _engine(tmp_path, db_url, "db.sqlite3")
    applied = []

    def add_column(conn):
        applied.append("2")
        conn.execute(sa.text("ALTER TABLE patients ADD COLUMN year_of_birth INTEGER"))

    assert migrate(engine, MIGRATIONS) == len(MIGRATIONS)
    assert migrate(engine, (*MIGRATIONS, add_column)) == len(MIGRATIONS) + 1
    assert migrate(engine, (*MIGRATIONS, add_column)) == len(MIGRATIONS) + 1
    assert applied == ["2"]
    assert "year_of_birth" in {c["name"] for c in sa.inspect(engine).get_columns("patients")}
    engine.dispose()


def test_migration_2_adds_the_hand_unit_and_keeps_schema_1_data(tmp_path, db_url):
    # A database written by the first release (schema 1), filled with its own columns only.
    engine = _engine(tmp_path, db_url)
    assert migrate(engine, MIGRATIONS[:1]) == 1
    now = dt.datetime(2026, 1, 5, 9, 0)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO patients (id, code, notes, created_at) VALUES (1, 'P-0007', "
                             "'first release', :now)"), {"now": now})
        conn.execute(sa.text("INSERT INTO patches (id, patient_id, label, body_region, notes, marker_mm, roi, "
                             "created_at) VALUES (1, 1, 'left shin', 'lower_limbs', '', 20.0, NULL, :now)"),
                     {"now": now})
        conn.execute(sa.text("INSERT INTO treatments (patch_id, regimen, start_date, notes) VALUES "
                             "(1, 'ruxolitinib', '2026-01-05', '')"))
    assert "hand_unit_cm2" not in {c["name"] for c in sa.inspect(engine).get_columns("patients")}
    engine.dispose()
    with Store(tmp_path, url=db_url) as store:
        assert schema_version(store.engine) == SCHEMA_VERSION == 6
        [kept] = store.patients()
        assert (kept.code, kept.notes, kept.hand_unit_cm2, kept.hand_unit_source) == ("P-0007", "first release",
                                                                                     None, None)
        [kept_patch] = store.patches(kept.id)
        # Stored as "lower_limbs" by the first release; migration 6 gives it the one spelling.
        assert (kept_patch.label, kept_patch.body_region, kept_patch.regimen) == ("left shin", "lower-limbs",
                                                                                  "ruxolitinib")
        assert kept_patch.treatment_start == dt.date(2026, 1, 5)
        updated = store.set_hand_unit(kept.id, 182.5, source="photo", detail="from a palm photo",
                                      interval_cm2=(170.0, 195.0))
        assert updated.hand_unit_interval == (170.0, 195.0)
    with Store(tmp_path, url=db_url) as reopened:
        again = reopened.patient(kept.id)
        assert (again.hand_unit_cm2, again.hand_unit_source, again.hand_unit_detail) == (182.5, "photo",
                                                                                        "from a palm photo")
        assert reopened.set_hand_unit(kept.id, None).hand_unit_cm2 is None


def test_set_hand_unit_checks_its_value(store):
    patient = store.create_patient("P-0001")
    with pytest.raises(InvalidParameterError):
        store.set_hand_unit(patient.id, -3.0, source="entered")
    with pytest.raises(InvalidParameterError):
        store.set_hand_unit(patient.id, 180.0)
    with pytest.raises(StoreError):
        store.set_hand_unit(patient.id + 99, 180.0, source="entered")


def test_the_hand_unit_and_region_are_part_of_the_analysis_key(store, patch):
    store.add_visits(patch.id, [NewVisit(date=dt.date(2026, 1, 5), photos=[NewPhoto(jpeg(1), "a.jpg")])])
    before = analysis.request_for_patch(store, store.patch(patch.id))
    assert before.body_region == analysis.vasi_region(patch.body_region) and before.hand_unit is None
    store.set_hand_unit(patch.patient_id, 180.0, source="entered")
    with_unit = analysis.request_for_patch(store, store.patch(patch.id))
    assert with_unit.hand_unit.cm2 == 180.0 and with_unit.key != before.key
    store.update_patch(patch.id, body_region="face")
    moved = analysis.request_for_patch(store, store.patch(patch.id))
    assert moved.body_region == "face" and moved.key != with_unit.key


def test_a_database_from_a_newer_version_is_refused(tmp_path, db_url):
    engine = _engine(tmp_path, db_url)
    migrate(engine, (*MIGRATIONS, lambda conn: None))
    engine.dispose()
    with pytest.raises(StoreError, match="newer|reads up to"):
        Store(tmp_path, url=db_url)


def test_the_models_match_the_migrated_schema(store):
    inspector = sa.inspect(store.engine)
    for table in Base.metadata.sorted_tables:
        migrated = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(migrated) == {c.name for c in table.columns}, table.name
        for column in table.columns:
            assert migrated[column.name]["nullable"] == column.nullable, f"{table.name}.{column.name}"


def test_data_folder_and_database_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("REPIGMENT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("REPIGMENT_DB_URL", f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}")
    with Store() as store:
        store.create_patient("P-0001")
        assert store.data_dir == (tmp_path / "data").resolve()
    assert (tmp_path / "elsewhere.sqlite3").is_file()
    assert not (tmp_path / "data" / "repigment.sqlite3").exists()
    if sys.platform in ("win32", "darwin"):
        pytest.skip("XDG_DATA_HOME applies only on Linux and other XDG platforms")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "repigment"


def test_an_unusable_database_url_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="cannot open the database"):
        Store(tmp_path, url="nosuchdialect://user:secret@host/db")


# -- results cache ----------------------------------------------------------------


class CountingAnalyzer:
    """The real pipeline, counting its calls."""

    def __init__(self):
        from repigment.series.pipeline import analyze_photos

        self.calls = 0
        self._analyze = analyze_photos

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._analyze(*args, **kwargs)


@pytest.fixture
def imported(store, small_series):
    patient = store.create_patient("P-0001")
    return demo.import_series(store, patient.id, small_series, label="forearm")


def test_second_request_is_a_cache_hit(store, imported, tmp_path):
    counter = CountingAnalyzer()
    request = analysis.request_for_patch(store, imported)
    first = analysis.get_or_analyse(store, request, analyze=counter)
    assert counter.calls == 1 and not first.cache_hit
    assert first.error is None and len(first.document["visits"]) == 3
    second = analysis.get_or_analyse(store, analysis.request_for_patch(store, imported), analyze=counter)
    assert counter.calls == 1 and second.cache_hit
    assert second.document == first.document
    # ... also after a restart (a new Store on the same folder).
    store.close()
    with Store(store.data_dir, url=store.url) as reopened:
        third = analysis.get_or_analyse(reopened, analysis.request_for_patch(reopened, imported), analyze=counter)
        assert counter.calls == 1 and third.cache_hit
        files = third.files(2)
        mask = analysis.decode_image(reopened.derived_path(files.mask_sha256, ".png").read_bytes(), mask=True)
        registered = analysis.decode_image(reopened.derived_path(files.registered_sha256, ".jpg").read_bytes())
        assert mask.dtype == bool and mask.shape == registered.shape[:2]
        assert reopened.derived_path(files.full_mask_sha256, ".png").is_file()
        assert third.document["visits"][2]["mask"] == f"masks/{third.document['visits'][2]['image'][:-4]}.png"


def test_anything_the_figures_depend_on_changes_the_key(store, imported):
    base = analysis.request_for_patch(store, imported)
    store.update_patch(imported.id, treatment_start=dt.date(2025, 12, 1))
    later_start = analysis.request_for_patch(store, store.patch(imported.id))
    store.set_roi(imported.id, (0, 0, 300, 200))
    with_roi = analysis.request_for_patch(store, store.patch(imported.id))
    assert len({base.key, later_start.key, with_roi.key}) == 3
    assert analysis.request_for_patch(store, store.patch(imported.id)).key == with_roi.key
    # Strokes on a later visit's own photo.
    later = store.visits(imported.id)[1]
    store.set_photo_labels(later.primary.id, b"\x89PNG\r\n\x1a\n" + b"strokes")
    with_strokes = analysis.request_for_patch(store, store.patch(imported.id))
    assert with_strokes.key != with_roi.key
    assert [image for image, _ in with_strokes.visit_labels] == [with_strokes.photos[1].image]


def test_strokes_on_a_later_visit_reach_its_analysis(store, imported, small_series):
    import cv2

    from repigment.io import encode_png

    later = store.visits(imported.id)[1]
    request = analysis.request_for_patch(store, imported)
    truth = json.loads((small_series / "truth.json").read_text())
    [entry] = [v for v in truth["visits"] if v["date"] == later.date.isoformat()]
    own = cv2.imread(str(small_series / entry["truth_mask_photo"]), cv2.IMREAD_GRAYSCALE) > 127
    labels = np.zeros(own.shape, np.uint8)
    labels[cv2.erode(own.view(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)] = 1
    labels[~cv2.dilate(own.view(np.uint8), np.ones((31, 31), np.uint8)).astype(bool)] = 2
    store.set_photo_labels(later.primary.id, encode_png(labels))
    with_strokes = analysis.get_or_analyse(store, analysis.request_for_patch(store, store.patch(imported.id)))
    assert with_strokes.request.key != request.key and with_strokes.error is None
    notes = with_strokes.document["visits"][1]["notes"]
    assert any("strokes on this photo" in note for note in notes), notes


def test_results_name_the_uploaded_photos(store, imported, small_series):
    request = analysis.request_for_patch(store, imported)
    assert [p.image for p in request.photos] == sorted(p.name for p in small_series.glob("*.jpg"))


def test_an_unusable_series_is_cached_with_its_reason(store, patch):
    grey = np.full((300, 400, 3), 128, np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    store.add_visits(patch.id, [NewVisit(dt.date(2026, 1, 5), [NewPhoto(buffer.getvalue(), "grey.png")])])
    counter = CountingAnalyzer()
    request = analysis.request_for_patch(store, store.patch(patch.id))
    first = analysis.get_or_analyse(store, request, analyze=counter)
    assert first.document is None and "baseline" in first.error
    assert analysis.get_or_analyse(store, request, analyze=counter).cache_hit and counter.calls == 1
    store.delete_analysis(request.key)
    assert analysis.cached_analysis(store, request) is None


# -- demo patient ---------------------------------------------------------------------


def test_demo_patient_is_imported_once(store, small_series, tmp_path):
    samples = tmp_path / "samples"
    shutil.copytree(small_series, samples / "series_a")
    patient = demo.ensure_demo(store, samples)
    assert patient.code == demo.DEMO_CODE
    assert demo.ensure_demo(store, samples) == patient
    [patch] = store.patches(patient.id)
    assert patch.label == "Sample series A" and len(store.visits(patch.id)) == 3
    assert patch.treatment_start == dt.date(2026, 1, 5)  # from truth.json
    assert len(store.patients()) == 1


def test_no_demo_in_a_store_with_patients(store, small_series, tmp_path):
    store.create_patient("P-0001")
    samples = tmp_path / "samples"
    shutil.copytree(small_series, samples / "series_a")
    assert demo.ensure_demo(store, samples) is None
    assert [p.code for p in store.patients()] == ["P-0001"]


def test_migration_3_adds_patch_strokes_and_keeps_schema_2_data(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'repigment.sqlite3'}")
    assert migrate(engine, MIGRATIONS[:2]) == 2
    now = dt.datetime(2026, 1, 5, 9, 0)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO patients (id, code, notes, created_at) VALUES (1, 'P-0008', '', :now)"),
                     {"now": now})
        conn.execute(sa.text("INSERT INTO patches (id, patient_id, label, body_region, notes, marker_mm, roi, "
                             "created_at) VALUES (1, 1, 'left hand', 'hands', '', 20.0, NULL, :now)"), {"now": now})
    engine.dispose()
    with Store(tmp_path) as store:
        assert schema_version(store.engine) == SCHEMA_VERSION
        [patch] = store.patches(1)
        assert patch.labels_png is None and patch.labels_photo_sha256 is None
        png = b"\x89PNG\r\n\x1a\n" + b"strokes"
        kept = store.set_labels(patch.id, png, "ab" * 32)
        assert (kept.labels_png, kept.labels_photo_sha256) == (png, "ab" * 32)
        assert store.patch(patch.id).labels_png == png
        with pytest.raises(InvalidParameterError):
            store.set_labels(patch.id, b"not a png", "ab" * 32)
        with pytest.raises(InvalidParameterError):
            store.set_labels(patch.id, png, "not a hash")
        assert store.set_labels(patch.id, None).labels_png is None


def test_strokes_on_a_visit_photo_are_kept_with_it_and_go_with_it(store, patch):
    [visit] = store.add_visits(patch.id, [NewVisit(dt.date(2026, 2, 5), [NewPhoto(jpeg(1), "a.jpg")])])
    photo = visit.primary
    assert store.photo_labels([photo.id]) == {}
    png = b"\x89PNG\r\n\x1a\n" + b"strokes"
    store.set_photo_labels(photo.id, png)
    assert store.photo_labels([photo.id, photo.id + 1000]) == {photo.id: png}
    with pytest.raises(InvalidParameterError, match="PNG"):
        store.set_photo_labels(photo.id, b"not a png")
    store.set_photo_labels(photo.id, None)
    assert store.photo_labels([photo.id]) == {}
    store.set_photo_labels(photo.id, png)
    store.delete_visit(visit.id)
    assert store.photo_labels([photo.id]) == {}


def test_migration_6_rewrites_body_regions_to_one_spelling(tmp_path, db_url):
    # A database written before schema 6 kept the underscore spelling.
    engine = _engine(tmp_path, db_url)
    assert migrate(engine, MIGRATIONS[:5]) == 5
    now = dt.datetime(2026, 1, 5, 9, 0)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO patients (id, code, notes, created_at) VALUES (1, 'P-0009', '', :now)"),
                     {"now": now})
        for key, (label, region) in enumerate([("forearm", "upper_limbs"), ("shin", "lower_limbs"),
                                               ("cheek", "face")], start=1):
            conn.execute(sa.text("INSERT INTO patches (id, patient_id, label, body_region, notes, marker_mm, "
                                 "created_at) VALUES (:id, 1, :label, :region, '', 20.0, :now)"),
                         {"id": key, "label": label, "region": region, "now": now})
    engine.dispose()
    with Store(tmp_path, url=db_url) as store:
        assert schema_version(store.engine) == SCHEMA_VERSION
        patches = store.patches(1)
        assert [p.body_region for p in patches] == ["upper-limbs", "lower-limbs", "face"]
        assert [p.region_label for p in patches] == ["Upper limbs", "Lower limbs", "Face"]


def test_the_store_reads_either_region_spelling_and_keeps_one(store, patch):
    assert (patch.body_region, patch.region_label) == ("upper-limbs", "Upper limbs")  # created as "upper_limbs"
    assert store.update_patch(patch.id, body_region="lower_limbs").body_region == "lower-limbs"
    assert store.patch(patch.id).body_region == "lower-limbs"
    with pytest.raises(InvalidParameterError, match="body region must be one of face, hands, upper-limbs"):
        store.update_patch(patch.id, body_region="elbow")
