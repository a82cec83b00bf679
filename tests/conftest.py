"""Shared test fixtures: a sample photo series and an isolated data folder.

Tests never touch the user's data: ``isolated_env`` points ``REPIGMENT_DATA``
at a temporary folder and clears the other ``REPIGMENT_*`` settings.
"""

from __future__ import annotations

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
