"""Safety of the app: no outbound network while it runs, and hostile input gets a message.

1. ``streamlit run app.py`` runs with a ``sitecustomize.py`` network guard (the
   one of ``tests/test_privacy.py``) that refuses and records every
   non-loopback connection or name lookup to a file; Chromium loads the page
   and the demo course chart, and nothing may have been recorded.
2. Hostile uploads and hostile text, driven with AppTest: one visible line
   each, never a traceback; SQL and ``<script>`` text is kept literally.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import png_declaring
from PIL import Image
from streamlit.testing.v1 import AppTest
from test_privacy import GUARD  # the same guard as the CLI privacy test

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "app.py"
VIEWS = "src/repigment/webapp/views"
CHROMIUM = Path("/usr/bin/chromium")
WAIT_MS = 120_000
ANALYSIS_WAIT_MS = 300_000  # the demo's six photos are analysed on first load
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]
SQL = "x'); DROP TABLE visits; --"
SCRIPT = "<script>alert('xss')</script>"
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


# -- 1. no outbound network ---------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _guard_site(folder: Path, record: Path) -> Path:
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(GUARD + textwrap.dedent(f'''
        _RECORD = {str(record)!r}


        def _refuse(what, address):
            _attempts.append((what, repr(address)))
            with open(_RECORD, "a", encoding="utf-8") as f:
                f.write(f"{{os.getpid()}} {{what}} {{address!r}}\\n")
            raise OSError(f"network blocked by test guard: {{what}} {{address!r}}")


        install()
    '''))
    return folder


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium (/usr/bin/chromium) is not installed")
def test_the_app_makes_no_outbound_connection(tmp_path):
    from playwright.sync_api import sync_playwright

    record = tmp_path / "network_attempts.txt"
    site = _guard_site(tmp_path / "site", record)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPIGMENT_")}
    env.update(REPIGMENT_DATA=str(tmp_path / "data"),
               PYTHONPATH=os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])]))
    # The guard must really be active in the server's interpreter.
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.getaddrinfo('example.org', 443)"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0 and "blocked by test guard" in probe.stderr
    record.unlink()

    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.headless", "true", "--server.address", "localhost"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        url = f"http://localhost:{port}"
        browser_requests: list[str] = []
        try:
            deadline = time.monotonic() + WAIT_MS / 1000
            while True:
                assert process.poll() is None, f"streamlit exited early:\n{log_path.read_text()}"
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                        if response.read().strip() == b"ok":
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "streamlit did not start within the time limit"
                time.sleep(0.3)

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1400})
                    page.set_default_timeout(WAIT_MS)
                    page.on("request", lambda request: browser_requests.append(request.url))
                    page.goto(url)
                    page.locator(".vega-embed").first.wait_for(state="visible", timeout=ANALYSIS_WAIT_MS)
                finally:
                    browser.close()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)

    attempts = record.read_text() if record.exists() else ""
    assert attempts == "", f"outbound network attempts from the app:\n{attempts}"
    outside = [u for u in browser_requests
               if urllib.parse.urlsplit(u).scheme in ("http", "https", "ws", "wss")
               and urllib.parse.urlsplit(u).hostname not in LOOPBACK_HOSTS]
    assert outside == [], f"the page fetched from outside this computer: {outside}"
    assert "blocked by test guard" not in log_path.read_text()


# -- 2. hostile input -----------------------------------------------------------


def _jpeg(seed: int = 0, size=(320, 240)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


HOSTILE_FILES = {
    "empty.jpg": b"",
    "notes.jpg": b"these are my notes, renamed to .jpg\n",
    "truncated.jpg": _jpeg(1)[:1500],
    "gigapixel.png": png_declaring(100_000, 100_000),
}


@pytest.fixture
def hostile_env(isolated_env, monkeypatch) -> tuple[Path, int]:
    """An empty store (no demo) with one patient and a patch whose label and notes are hostile text."""
    from repigment.store import Store

    monkeypatch.setenv("REPIGMENT_DEMO", "0")
    with Store(isolated_env) as store:
        patient = store.create_patient("P-0001", notes=f"{SQL} {SCRIPT}")
        patch = store.create_patch(patient.id, f"{SCRIPT} {SQL}", "hands", notes=f"{SCRIPT}\n{SQL}")
    return isolated_env, patch.id


def open_app(page: str = "course") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["mode"] = "Clinician"
    at.run()
    if page != "course":
        at.switch_page(f"{VIEWS}/{page}.py").run()
    return at


def one_liners(elements) -> list[str]:
    messages = [e.value for e in elements]
    assert all("\n" not in m and "Traceback" not in m for m in messages), messages
    return messages


def assert_database_intact(data: Path) -> None:
    connection = sqlite3.connect(data / "repigment.sqlite3")
    try:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"patients", "patches", "visits", "photos"} <= tables
    finally:
        connection.close()


@pytest.mark.parametrize("name", list(HOSTILE_FILES))
def test_a_hostile_upload_gets_one_line_not_a_traceback(hostile_env, name):
    data, patch_id = hostile_env
    at = open_app("add_visit")
    assert not at.exception and not at.error
    at.file_uploader[0].set_value([(name, HOSTILE_FILES[name], "image/jpeg")]).run()
    assert not at.exception, [e.value for e in at.exception]
    messages = one_liners(at.error)
    assert len(messages) == 1 and name in messages[0] and "cannot be used" in messages[0]
    assert not [b for b in at.button if b.label == "Save and analyse"]  # nothing to save
    assert_database_intact(data)


def test_hostile_uploads_together_with_a_good_photo(hostile_env):
    data, patch_id = hostile_env
    at = open_app("add_visit")
    files = [(name, content, "image/jpeg") for name, content in HOSTILE_FILES.items()]
    at.file_uploader[0].set_value([*files, ("good.jpg", _jpeg(7), "image/jpeg")]).run()
    assert not at.exception, [e.value for e in at.exception]
    messages = one_liners(at.error)
    assert len(messages) == len(HOSTILE_FILES)
    assert all(any(name in m for m in messages) for name in HOSTILE_FILES)
    assert [b for b in at.button if b.label == "Save and analyse"]  # the good one can still be saved
    assert_database_intact(data)


@pytest.mark.parametrize("code", [SQL, SCRIPT, "P-1' OR '1'='1"])
def test_a_hostile_patient_code_is_refused_in_one_line(hostile_env, code):
    from repigment.store import Store

    data, _ = hostile_env
    at = open_app("patients")
    [field] = [t for t in at.text_input if t.label == "Patient code"]
    field.set_value(code)
    next(b for b in at.button if b.label == "Create patient").click().run()
    assert not at.exception, [e.value for e in at.exception]
    messages = one_liners(at.error)
    assert len(messages) == 1 and "pseudonym" in messages[0]
    assert_database_intact(data)
    with Store(data) as store:
        assert [p.code for p in store.patients()] == ["P-0001"]


def test_hostile_text_is_stored_and_shown_literally(hostile_env):
    from repigment.store import Store

    data, patch_id = hostile_env
    at = open_app("patients")
    [field] = [t for t in at.text_input if t.label == "Patient code"]
    field.set_value("P-0002")
    [notes] = [t for t in at.text_area if t.label == "Notes (optional)" and t.placeholder.startswith("No names")]
    notes.set_value(f"{SQL}\n{SCRIPT}")
    next(b for b in at.button if b.label == "Create patient").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    at = open_app("course")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.title[0].value == f"{SCRIPT} {SQL}"  # the patch label, as typed
    caption = next(c.value for c in at.caption if "week 0" in c.value)
    assert SCRIPT in caption and SQL in caption
    assert not any(getattr(m, "allow_html", False) and "<script" in m.value for m in at.markdown)

    assert_database_intact(data)
    with Store(data) as store:
        patients = {p.code: p for p in store.patients()}
        assert patients["P-0001"].notes == f"{SQL} {SCRIPT}"
        assert patients["P-0002"].notes == f"{SQL}\n{SCRIPT}"
        patch = store.patch(patch_id)
        assert (patch.label, patch.notes) == (f"{SCRIPT} {SQL}", f"{SCRIPT}\n{SQL}")
