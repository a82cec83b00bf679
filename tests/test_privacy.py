"""Privacy: the analysis never talks to the network, and location data can be stripped.

Outbound connections are blocked (except loopback) and every attempt is
recorded: in this process by patching :mod:`socket`, and in a CLI subprocess by
a ``sitecustomize.py`` that installs the same guard and exits non-zero on a
violation.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import analyze_to
from PIL import Image

from repigment import io as rio
from repigment.synthetic import SeriesSpec, generate_series, write_series

GUARD = '''
import ipaddress, os, socket, sys

_attempts = []


def _is_loopback(address):
    if isinstance(address, (tuple, list)) and address:
        host = address[0]
    elif isinstance(address, (str, bytes)):
        return True  # AF_UNIX socket path: local by definition
    else:
        return False
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(what, address):
    _attempts.append((what, repr(address)))
    raise OSError(f"network blocked by test guard: {what} {address!r}")


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
_create_connection, _getaddrinfo = socket.create_connection, socket.getaddrinfo


def connect(self, address):
    if not _is_loopback(address):
        _refuse("connect", address)
    return _connect(self, address)


def connect_ex(self, address):
    if not _is_loopback(address):
        _refuse("connect_ex", address)
    return _connect_ex(self, address)


def create_connection(address, *args, **kwargs):
    if not _is_loopback(address):
        _refuse("create_connection", address)
    return _create_connection(address, *args, **kwargs)


def getaddrinfo(host, *args, **kwargs):
    if not _is_loopback((host,)):
        _refuse("getaddrinfo", host)
    return _getaddrinfo(host, *args, **kwargs)


def install():
    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    socket.create_connection, socket.getaddrinfo = create_connection, getaddrinfo
'''


def load_guard():
    namespace: dict = {}
    exec(compile(GUARD, "<network guard>", "exec"), namespace)
    return namespace


@pytest.fixture
def guard(monkeypatch):
    """Block non-loopback connections in this process; yields the list of attempts."""
    ns = load_guard()
    monkeypatch.setattr(socket.socket, "connect", ns["connect"])
    monkeypatch.setattr(socket.socket, "connect_ex", ns["connect_ex"])
    monkeypatch.setattr(socket, "create_connection", ns["create_connection"])
    monkeypatch.setattr(socket, "getaddrinfo", ns["getaddrinfo"])
    return ns["_attempts"]


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("privacy") / "series"
    spec = SeriesSpec(seed=1, skin_type="III", course="combined", weeks=(0, 12), image_size=(640, 480))
    return write_series(generate_series(spec), folder)


def test_the_guard_catches_outbound_connections(guard):
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("203.0.113.7", 443), timeout=1)
    with pytest.raises(OSError, match="blocked"):
        socket.getaddrinfo("example.org", 443)
    assert [what for what, _ in guard] == ["create_connection", "getaddrinfo"]
    guard.clear()


def test_analyze_series_makes_no_network_connection(guard, series, tmp_path):
    result = analyze_to(series, tmp_path / "out", working_size=256)
    assert all(v.error is None for v in result.visits)
    assert guard == []


@pytest.fixture
def guarded_env(tmp_path) -> dict:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(GUARD + textwrap.dedent('''
        import atexit
        install()

        def _report():
            if _attempts:
                sys.stderr.write(f"NETWORK ATTEMPTS: {_attempts}\\n")
                sys.stderr.flush()
                os._exit(97)

        atexit.register(_report)
    '''))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPIGMENT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    return env


def test_guard_in_a_subprocess_fails_the_process_on_a_violation(guarded_env):
    code = "import socket\ntry:\n    socket.create_connection(('198.51.100.1', 80), timeout=1)\nexcept OSError:\n    pass\n"
    proc = subprocess.run([sys.executable, "-c", code], env=guarded_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 97 and "NETWORK ATTEMPTS" in proc.stderr


def test_cli_analyze_makes_no_network_connection(guarded_env, series, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "repigment.cli", "analyze", str(series), "--out", str(out), "-q"],
                          env=guarded_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "NETWORK ATTEMPTS" not in proc.stderr
    assert json.loads((out / "results.json").read_text())["visits"]


def test_strip_location_removes_gps_and_keeps_the_capture_date():
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2026:01:05 10:00:00"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 24.0), "E", (2.0, 21.0, 3.0)
    buf = io.BytesIO()
    Image.new("RGB", (96, 96), (200, 160, 140)).save(buf, format="JPEG", exif=exif)
    data = buf.getvalue()
    assert rio.read_image_info(data).has_location

    stripped = rio.strip_location(data)

    with Image.open(io.BytesIO(stripped)) as im:
        kept = im.getexif()
        assert 0x8825 not in kept and kept.get_ifd(0x8825) == {}
        assert kept.get_ifd(0x8769).get(0x9003) == "2026:01:05 10:00:00"
    info = rio.read_image_info(stripped)
    assert not info.has_location and info.taken_at is not None and info.taken_at.year == 2026
