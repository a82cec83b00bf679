"""Durability of the store: a save killed at any moment, and two sessions saving at once.

Both on SQLite and on a PostgreSQL server. A writer subprocess saves visits
with photos in a loop and is SIGKILLed at random moments; after each kill the
database must be intact (SQLite: ``PRAGMA integrity_check``) and every visit in
it must be whole (its photo rows exist,
and each photo file exists and hashes to its name). Leftovers may only be
hidden temporary files that nothing refers to.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from repigment.store import NewPhoto, NewVisit, Store

REPO = Path(__file__).resolve().parents[2]
PHOTO_NAME = re.compile(r"([0-9a-f]{64})(\.[a-z]+)")
HIDDEN_TEMP = re.compile(r"\..+\.tmp")

WRITER = textwrap.dedent('''
    import datetime as dt, io, sys
    import numpy as np
    from PIL import Image
    from repigment.store import NewPhoto, NewVisit, Store

    data_dir, round_no = sys.argv[1], int(sys.argv[2])
    url = sys.argv[3] if len(sys.argv) > 3 else None
    rng = np.random.default_rng(round_no)

    def jpeg():
        pixels = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()

    store = Store(data_dir, url=url)
    patient = store.patient_by_code("P-0001") or store.create_patient("P-0001")
    patches = store.patches(patient.id)
    patch = patches[0] if patches else store.create_patch(patient.id, "left forearm", "upper_limbs")
    base = dt.date(2000, 1, 1) + dt.timedelta(days=2000 * round_no)
    print("ready", flush=True)
    for i in range(100000):
        photos = [NewPhoto(jpeg(), f"v{i}_{k}.jpg") for k in range(2)]
        store.add_visits(patch.id, [NewVisit(base + dt.timedelta(days=i), photos, notes=f"round {round_no}")])
''')


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def check_consistent(data: Path, url: str | None = None) -> tuple[int, int]:
    """Assert the data folder and its database are whole; returns (visits, photos).

    SQLite gets its own integrity and foreign-key checks; PostgreSQL enforces
    foreign keys on every commit, so only the rows are read.
    """
    if url is None:
        connection = sqlite3.connect(data / "repigment.sqlite3", timeout=10)
        try:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
            visits = connection.execute("SELECT id FROM visits").fetchall()
            photos = connection.execute("SELECT visit_id, sha256, extension, size_bytes FROM photos").fetchall()
        finally:
            connection.close()
    else:
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                visits = [tuple(r) for r in conn.execute(sa.text("SELECT id FROM visits"))]
                photos = [tuple(r) for r in conn.execute(
                    sa.text("SELECT visit_id, sha256, extension, size_bytes FROM photos"))]
        finally:
            engine.dispose()
    by_visit: dict[int, int] = {}
    referenced = set()
    for visit_id, sha, ext, size in photos:
        by_visit[visit_id] = by_visit.get(visit_id, 0) + 1
        path = data / "photos" / sha[:2] / f"{sha}{ext}"
        assert path.is_file(), f"photo row without its file: {path}"
        content = path.read_bytes()
        assert len(content) == size and hashlib.sha256(content).hexdigest() == sha, f"corrupt photo file {path}"
        referenced.add(path.name)
    # Every visit was saved with two photos: all of them or none.
    assert {vid for (vid,) in visits} == set(by_visit)
    assert all(n == 2 for n in by_visit.values()), by_visit
    for path in (data / "photos").rglob("*"):
        if path.is_file():
            match = PHOTO_NAME.fullmatch(path.name)
            if match:
                # An unreferenced but complete file (written before the row's commit) is allowed.
                assert hashlib.sha256(path.read_bytes()).hexdigest() == match.group(1), path
            else:
                assert HIDDEN_TEMP.fullmatch(path.name), f"unexpected leftover {path}"
                assert path.name not in referenced
    return len(visits), len(photos)


@pytest.mark.slow
def test_a_save_killed_at_any_moment_leaves_old_or_new_state(tmp_path, db_url):
    data = tmp_path / "data"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPIGMENT_")}
    rng = random.Random(1234)
    started = time.monotonic()
    seen_visits = []
    for round_no in range(5):
        arguments = [sys.executable, str(script), str(data), str(round_no), *([db_url] if db_url else [])]
        process = subprocess.Popen(arguments, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        watchdog = threading.Timer(60, process.kill)  # bounds the wait for "ready"
        watchdog.start()
        try:
            line = process.stdout.readline()
            assert line.strip() == "ready", process.stderr.read() if process.poll() is not None else line
            time.sleep(rng.uniform(0.05, 1.2))
            assert process.poll() is None, process.stderr.read()  # still saving when killed
            process.send_signal(signal.SIGKILL)
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            process.stdout.close()
            process.stderr.close()
        assert process.returncode == -signal.SIGKILL
        visits, _ = check_consistent(data, db_url)
        seen_visits.append(visits)
        with Store(data, url=db_url) as store:  # the app can open it again
            [patient] = store.patients()
            [patch] = store.patches(patient.id)
            assert len(store.visits(patch.id)) == visits
    print(f"visits after each kill: {seen_visits}")
    assert seen_visits == sorted(seen_visits) and seen_visits[-1] > 0  # saves were made, none lost
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "two-stores"])
def test_two_sessions_saving_at_once_lose_nothing(tmp_path, shared, db_url):
    data = tmp_path / "data"
    with Store(data, url=db_url) as setup:
        patient = setup.create_patient("P-0001")
        patch = setup.create_patch(patient.id, "left forearm", "upper_limbs")
    stores = [Store(data, url=db_url)] * 2 if shared else [Store(data, url=db_url), Store(data, url=db_url)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)
    photos = {(w, i): jpeg(100 * w + i) for w in range(2) for i in range(10)}

    def session(worker: int) -> None:
        try:
            barrier.wait(timeout=30)
            for i in range(10):
                date = dt.date(2026, 1, 1) + dt.timedelta(days=2 * i + worker)
                stores[worker].add_visits(patch.id, [NewVisit(date, [NewPhoto(photos[worker, i], f"{worker}-{i}.jpg")],
                                                              notes=f"session {worker}")])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(w,)) for w in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        visits = stores[0].visits(patch.id)
        assert len(visits) == 20
        assert sorted(v.date for v in visits) == [dt.date(2026, 1, 1) + dt.timedelta(days=d) for d in range(20)]
        assert all(len(v.photos) == 1 for v in visits)
    finally:
        for s in set(map(id, stores)):
            next(x for x in stores if id(x) == s).close()
    if db_url is None:
        connection = sqlite3.connect(data / "repigment.sqlite3")
        try:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            connection.close()
