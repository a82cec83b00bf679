"""Score many series from one manifest, on local worker processes or a Dask cluster.

A manifest is a UTF-8 CSV with a header row and the columns
``patient,patch,date,image`` (optionally ``treatment_start`` and ``marker_mm``);
image paths are relative to the manifest's folder. Every (patient, patch) pair
is one series, scored with :func:`repigment.series.pipeline.analyze_photos` and written
to its own folder ``OUT_DIR/<series>`` exactly as ``repigment analyze`` writes
it, plus ``batch.json`` recording what was scored. ``OUT_DIR/summary.csv`` (long
format, one row per visit and measure) and ``OUT_DIR/failures.csv`` are rebuilt
from every series' ``results.json`` at the end of each run.

Nothing is half-written: a series is scored into ``OUT_DIR/.tmp-<series>-<token>``
and renamed into place only once complete and checked, and the CSV files are
written to a temporary name and renamed. A re-run skips every series whose
output is complete and still matches the manifest, the photos and this version
of repigment.

The code is split by concern: :mod:`~repigment.batch.manifest` reads the
manifest, :mod:`~repigment.batch.outputs` checks earlier outputs and builds the
result records and CSV rows, :mod:`~repigment.batch.runners` runs the jobs on
local worker processes or a Dask cluster (with signal handling and locking),
and :mod:`~repigment.batch.scoring` holds :func:`score_manifest`. The names
below are re-exported here; importing the package loads no NumPy, OpenCV or
Dask.

This package does not print; the ``repigment batch`` command wraps it.
"""

from __future__ import annotations

from .manifest import MANIFEST_COLUMNS, Manifest, ManifestSeries, ManifestVisit, read_manifest, series_folder_name
from .outputs import FAILURE_COLUMNS, SUMMARY_COLUMNS, BatchResult, SeriesStatus, VisitFailure
from .runners import BatchError, BatchInterrupted
from .scoring import score_manifest

__all__ = [
    "MANIFEST_COLUMNS",
    "SUMMARY_COLUMNS",
    "FAILURE_COLUMNS",
    "BatchError",
    "BatchInterrupted",
    "ManifestVisit",
    "ManifestSeries",
    "Manifest",
    "VisitFailure",
    "SeriesStatus",
    "BatchResult",
    "read_manifest",
    "series_folder_name",
    "score_manifest",
]
