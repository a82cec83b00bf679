"""Shared test fixtures and helpers: a sample photo series, an isolated data folder, the CLI.

Tests never touch the user's data: ``isolated_env`` points ``REPIGMENT_DATA``
at a temporary folder and clears the other ``REPIGMENT_*`` settings.

The store's tests run against SQLite and a real PostgreSQL server: ``db_url``
gives ``None`` (the SQLite default) or a fresh database on a private server
that :func:`postgres_server` starts on loopback for the session, from Debian's
``postgresql`` package (``make test`` installs it with
``scripts/ensure_test_tools.sh``).

Plain helpers (import them with ``from conftest import ...``): :func:`run_cli`,
:func:`assert_one_line_error`, :func:`png_chunk` and :func:`png_declaring`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import uuid
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _bundled_series() -> list[Path]:
    root = REPO / "sample_images"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "visits.csv").is_file()
                  and len(list(p.glob("*.jpg"))) >= 6)


@pytest.fixture(scope="session")
def samples_root(tmp_path_factory) -> Path:
    """A folder of sample series: the bundled ``sample_images/``, or a synthetic stand-in.

    The stand-in (one six-visit series with EXIF dates, made with
    :mod:`repigment.synthetic`) is used only while ``sample_images/`` is empty.
    """
    if _bundled_series():
        return REPO / "sample_images"
    from repigment.synthetic import SeriesSpec, generate_series, write_series

    root = tmp_path_factory.mktemp("samples")
    write_series(generate_series(SeriesSpec(seed=7, exif_dates=True)), root / "series_a")
    return root


@pytest.fixture(scope="session")
def sample_series(samples_root) -> Path:
    """The first sample series folder (``visits.csv`` and six JPEG visits)."""
    return sorted(p for p in samples_root.iterdir() if p.is_dir() and (p / "visits.csv").is_file())[0]


@pytest.fixture(scope="session")
def small_series(tmp_path_factory) -> Path:
    """A quick three-visit series at 480x360 px (for tests that run the pipeline)."""
    from repigment.synthetic import SeriesSpec, generate_series, write_series

    folder = tmp_path_factory.mktemp("small") / "series"
    spec = SeriesSpec(seed=3, weeks=(0, 12, 24), image_size=(480, 360), camera_variation=0.3,
                      lighting_variation=0.3, exif_dates=True)
    return write_series(generate_series(spec), folder)


@pytest.fixture
def isolated_env(tmp_path, monkeypatch) -> Path:
    """``REPIGMENT_DATA`` in a fresh temporary folder; no other repigment settings."""
    for name in ("REPIGMENT_DB_URL", "REPIGMENT_DEMO", "REPIGMENT_SAMPLES", "REPIGMENT_MODE"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    monkeypatch.setenv("REPIGMENT_DATA", str(data))
    return data


# -- helpers ----------------------------------------------------------------------


def cli_env(extra: dict[str, str] | None = None, *, clean: bool = False) -> dict[str, str]:
    """The environment for a CLI subprocess: this one without ``REPIGMENT_DEBUG`` (so errors stay one
    line), or with ``clean=True`` without any ``REPIGMENT_*`` setting; then ``extra`` on top."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("REPIGMENT_") if clean else k == "REPIGMENT_DEBUG")}
    env.update(extra or {})
    return env


def run_cli(*args, cwd=None, env: dict[str, str] | None = None, clean_env: bool = False,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m repigment.cli ARGS`` in a subprocess, output captured as text.

    ``env`` and ``clean_env`` are passed to :func:`cli_env`. A run that takes
    longer than ``timeout`` seconds fails the test.
    """
    try:
        return subprocess.run([sys.executable, "-m", "repigment.cli", *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, cwd=cwd, env=cli_env(env, clean=clean_env))
    except subprocess.TimeoutExpired:
        pytest.fail(f"repigment {' '.join(map(str, args))} timed out after {timeout} s")


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """The CLI failed with exit code 2 and one line on stderr holding every fragment, no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def png_chunk(ctype: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, payload and CRC."""
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def png_declaring(width: int, height: int) -> bytes:
    """A syntactically valid PNG whose IHDR claims width x height RGB pixels, with almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


# -- PostgreSQL ----------------------------------------------------------------------


def _postgres_bindir() -> Path | None:
    """Debian's PostgreSQL server programs (``/usr/lib/postgresql/<major>/bin``), newest first."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]), reverse=True)
    return Path(found[0]).parent if found else None


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL server for the test session, on 127.0.0.1 only; yields its base URL.

    It lives in a temporary folder (trust authentication, nothing else can
    reach it) and is stopped at the end. Runs the server as the ``postgres``
    system user when the tests run as root (PostgreSQL refuses root).
    """
    pytest.importorskip("psycopg", reason="the PostgreSQL driver (psycopg) is not installed")
    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL's server is not installed; `make test` installs Debian's postgresql package")
    # Not under pytest's own temporary folder: that one is private to the user running the tests.
    folder = Path(tempfile.mkdtemp(prefix="repigment-postgres-"))
    data = folder / "data"
    data.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("PostgreSQL refuses to run as root and there is no 'postgres' user to run it as")
        shutil.chown(folder, "postgres")
        shutil.chown(data, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c max_connections=200"
    for step in ([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "repigment", "--no-sync"],
                 [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(data / "server.log"), "-w",
                  "-t", "60", "start"]):
        done = subprocess.run([*prefix, *step], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = (data / "server.log").read_text() if (data / "server.log").exists() else ""
            pytest.fail(f"could not start the test PostgreSQL server ({Path(step[0]).name}): "
                        f"{(done.stderr or done.stdout).strip()} {log[-2000:]}")
    try:
        yield f"postgresql+psycopg://repigment@127.0.0.1:{port}"
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def new_postgres_database(base_url: str) -> str:
    """A new, empty database on the session's server; returns its URL."""
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:16]}"
    engine = sa.create_engine(f"{base_url}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return f"{base_url}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str | None:
    """``None`` (the store's SQLite default) or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return None
    return new_postgres_database(request.getfixturevalue("postgres_server"))


def analyze_to(series_dir, out_dir, **options):
    """:func:`repigment.analyze_series` with its files written as the CLI writes them.

    The full-resolution masks while the series runs, then ``results.json`` and
    ``results.csv`` into ``out_dir`` (without the CLI's clinical block); returns
    the result.
    """
    from repigment import analyze_series
    from repigment.series.results import MaskWriter, write_results

    result = analyze_series(series_dir, mask_writer=MaskWriter(out_dir), **options)
    write_results(result, out_dir)
    return result
