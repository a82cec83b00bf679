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

This module does not print; the ``repigment batch`` command wraps it.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import hashlib
import io as _io
import json
import logging
import math
import os
import re
import secrets
import shutil
import signal
import threading
import time
import unicodedata
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from ..errors import RepigmentError, SeriesError
from ..series.discovery import parse_iso_date, resolve_inside

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

#: Required manifest columns; ``treatment_start`` and ``marker_mm`` are optional.
MANIFEST_COLUMNS = ("patient", "patch", "date", "image")
OPTIONAL_COLUMNS = ("treatment_start", "marker_mm")
SUMMARY_COLUMNS = ("patient", "patch", "image", "date", "variable", "value", "unit", "method")
FAILURE_COLUMNS = ("series", "image", "reason")
MAX_MANIFEST_BYTES = 64 * 1024**2
#: Layout version of each series' ``batch.json``.
BATCH_RECORD_VERSION = 1
BATCH_RECORD = "batch.json"
SUMMARY_FILE = "summary.csv"
FAILURES_FILE = "failures.csv"
_LOCK_FILE = ".repigment-batch.lock"
_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"
_DEFAULT_MARKER_MM = 20.0  # repigment.core.calibration.DEFAULT_MARKER_MM, without importing NumPy here
_ENV_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class BatchError(RepigmentError):
    """The batch cannot run: the output folder is in use, or the Dask cluster is unreachable."""


class BatchInterrupted(KeyboardInterrupt):
    """The run was stopped by SIGTERM; raised like Ctrl-C's KeyboardInterrupt."""


# ---------------------------------------------------------------------------------------------
# The manifest


@dataclass(frozen=True)
class ManifestVisit:
    """One manifest row.

    Attributes
    ----------
    image : str
        The path as written in the manifest (relative to its folder).
    path : Path
        The photo, resolved inside the manifest's folder.
    date : datetime.date
    line : int
        Line of the manifest it came from.
    """

    image: str
    path: Path
    date: _dt.date
    line: int


@dataclass(frozen=True)
class ManifestSeries:
    """The photos of one (patient, patch) pair.

    Attributes
    ----------
    patient, patch : str
        The ids as written in the manifest (surrounding spaces removed).
    folder : str
        Output folder name, see :func:`series_folder_name`.
    visits : tuple of ManifestVisit
        In manifest order.
    treatment_start : datetime.date or None
        ``None``: the baseline (earliest) visit date.
    marker_mm : float
        Printed side of the scale marker, mm.
    """

    patient: str
    patch: str
    folder: str
    visits: tuple[ManifestVisit, ...]
    treatment_start: _dt.date | None
    marker_mm: float


@dataclass(frozen=True)
class Manifest:
    """A validated manifest.

    Attributes
    ----------
    path : Path
    series : tuple of ManifestSeries
        In order of first appearance.
    """

    path: Path
    series: tuple[ManifestSeries, ...]

    @property
    def n_visits(self) -> int:
        return sum(len(s.visits) for s in self.series)


def _slug(text: str, limit: int = 40) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_text).strip("-")[:limit].strip("-")
    return slug or "x"


def series_folder_name(patient: str, patch: str) -> str:
    """A safe, unique output folder name for a (patient, patch) pair.

    Readable slugs of both ids (ASCII letters, digits and ``-`` only, so the
    name cannot leave ``OUT_DIR`` or hide as a dot file) and a hash of the exact
    ids, so ids that slug alike (``"A/B"``, ``"A-B"``, ``"a-b"``) still differ.

    Examples
    --------
    >>> series_folder_name("P-001", "left forearm")
    'P-001__left-forearm__16c77cdc8d'
    >>> series_folder_name("../../etc", "x").startswith("etc__x__")
    True
    """
    digest = hashlib.sha256(json.dumps([patient, patch]).encode("utf-8")).hexdigest()[:10]
    return f"{_slug(patient)}__{_slug(patch)}__{digest}"


def _decode_manifest(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise SeriesError(
                f"manifest {path.name} is larger than {MAX_MANIFEST_BYTES // 1024**2} MB; is it the right file?"
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SeriesError(f"manifest {str(path)!r} was not found; check the path") from None
    except IsADirectoryError:
        raise SeriesError(f"manifest {str(path)!r} is a folder; give the CSV file") from None
    except OSError as exc:
        raise SeriesError(f"cannot read manifest {path.name}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SeriesError(f"manifest {path.name} is not UTF-8 text; save it as UTF-8 CSV") from None


def _parse_marker_mm(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SeriesError(f"{where}: marker_mm {text!r} is not a number of millimetres") from None
    if not (math.isfinite(value) and 1.0 <= value <= 500.0):
        raise SeriesError(f"{where}: marker_mm must be between 1 and 500 mm, got {text}")
    return value


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read and validate a batch manifest.

    Parameters
    ----------
    path : str or os.PathLike
        UTF-8 CSV with a header row and columns ``patient,patch,date,image``
        and optionally ``treatment_start`` (ISO date) and ``marker_mm``; other
        columns are ignored. ``image`` is relative to the manifest's folder.
        Blank ``treatment_start``/``marker_mm`` cells take the series' value
        from its other rows (default: the baseline date, 20 mm).

    Returns
    -------
    Manifest

    Raises
    ------
    SeriesError
        With a one-line message naming the line, for an unreadable or non-UTF-8
        file, missing columns, empty ids, bad dates or marker sizes, image paths
        that are absolute or leave the manifest's folder, an image listed twice
        in a series (or two whose masks would share a name), and
        ``treatment_start``/``marker_mm`` values that disagree within a series.

    Notes
    -----
    Photos are not opened here: a missing or damaged photo is a failed visit
    of the run, not an unusable manifest.
    """
    path = Path(path)
    name = path.name
    text = _decode_manifest(path)
    folder = path.parent
    reader = csv.DictReader(_io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise SeriesError(f"manifest {name} line 1: {exc}") from None
    fields = [f.strip().lower() for f in header]
    missing = [c for c in MANIFEST_COLUMNS if c not in fields]
    if missing:
        raise SeriesError(
            f"manifest {name} needs a header row with columns {','.join(MANIFEST_COLUMNS)}; missing: {', '.join(missing)}"
        )
    duplicated = sorted({f for f in fields if f and fields.count(f) > 1})
    if duplicated:
        raise SeriesError(f"manifest {name} has the column(s) {', '.join(duplicated)} more than once")
    reader.fieldnames = fields

    rows: dict[tuple[str, str], list[tuple[int, dict[str, str]]]] = {}
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                raise SeriesError(f"manifest {name} line {line}: more fields than the header has columns")
            cells = {k: (v or "").strip() for k, v in row.items()}
            if not any(cells.get(c) for c in MANIFEST_COLUMNS + OPTIONAL_COLUMNS):
                continue  # blank line
            for column in MANIFEST_COLUMNS:
                if not cells.get(column):
                    raise SeriesError(f"manifest {name} line {line}: no {column}")
            rows.setdefault((cells["patient"], cells["patch"]), []).append((line, cells))
    except csv.Error as exc:
        raise SeriesError(f"manifest {name} line {reader.line_num}: {exc}") from None
    if not rows:
        raise SeriesError(f"manifest {name} lists no visits")

    series: list[ManifestSeries] = []
    folders: dict[str, tuple[str, str]] = {}
    for (patient, patch), entries in rows.items():
        visits: list[ManifestVisit] = []
        stems: dict[str, int] = {}
        option_seen: dict[str, tuple[str, int]] = {}
        for line, cells in entries:
            where = f"manifest {name} line {line}"
            date = parse_iso_date(cells["date"], what=f"{where}: date")
            try:
                resolved = resolve_inside(folder, cells["image"])
            except SeriesError as exc:
                message = str(exc).replace("the series folder", "the manifest's folder")
                raise SeriesError(f"{where}: {message}") from None
            # Masks are written as masks/<stem>.png, so stems must differ within a series.
            stem = resolved.stem.casefold()
            if stem in stems:
                raise SeriesError(
                    f"{where}: image {cells['image']!r} has the same file name as line {stems[stem]} of the same "
                    "series; rename one of them"
                )
            stems[stem] = line
            for column in OPTIONAL_COLUMNS:
                value = cells.get(column, "")
                if not value:
                    continue
                if column == "treatment_start":
                    parse_iso_date(value, what=f"{where}: treatment_start")
                else:
                    _parse_marker_mm(value, where)
                if column in option_seen and option_seen[column][0] != value:
                    first, first_line = option_seen[column]
                    raise SeriesError(
                        f"{where}: {column} {value} differs from {first} on line {first_line} for patient "
                        f"{patient!r} patch {patch!r}; give one value per series"
                    )
                option_seen.setdefault(column, (value, line))
            visits.append(ManifestVisit(image=cells["image"], path=resolved, date=date, line=line))
        start = option_seen.get("treatment_start")
        marker = option_seen.get("marker_mm")
        folder_name = series_folder_name(patient, patch)
        if folder_name in folders:  # a 40-bit hash collision together with equal slugs: refuse, never merge
            raise SeriesError(
                f"manifest {name}: patient {patient!r} patch {patch!r} and {folders[folder_name]!r} map to the same "
                "output folder; rename one of them"
            )
        folders[folder_name] = (patient, patch)
        series.append(
            ManifestSeries(
                patient=patient,
                patch=patch,
                folder=folder_name,
                visits=tuple(visits),
                treatment_start=None if start is None else parse_iso_date(start[0]),
                marker_mm=_DEFAULT_MARKER_MM if marker is None else _parse_marker_mm(marker[0], "marker_mm"),
            )
        )
    return Manifest(path=path, series=tuple(series))


# ---------------------------------------------------------------------------------------------
# What a complete series output looks like


def _working_size() -> int:
    from ..series.pipeline import DEFAULT_WORKING_SIZE

    return DEFAULT_WORKING_SIZE


def _expected_record(series: ManifestSeries, working_size: int) -> dict[str, Any]:
    """The ``batch.json`` a complete output of ``series`` must carry (minus the results hash).

    The photos' size and modification time are part of it, so replacing a photo
    (say, re-copying a damaged one) re-scores its series on the next run.
    """
    from .._version import __version__
    from ..series.pipeline import REGISTRATION_METHOD, SEGMENTATION_METHOD

    inputs = []
    for visit in series.visits:
        try:
            st = visit.path.stat()
            size, mtime_ns = st.st_size, st.st_mtime_ns
        except OSError:
            size = mtime_ns = None
        inputs.append({"image": visit.image, "date": visit.date.isoformat(), "size": size, "mtime_ns": mtime_ns})
    return {
        "batch_record_version": BATCH_RECORD_VERSION,
        "repigment_version": __version__,
        "patient": series.patient,
        "patch": series.patch,
        "options": {
            "treatment_start": None if series.treatment_start is None else series.treatment_start.isoformat(),
            "marker_mm": series.marker_mm,
            "working_size": working_size,
            "segmentation": SEGMENTATION_METHOD,
            "registration": REGISTRATION_METHOD,
        },
        "inputs": inputs,
    }


def _read_json(path: Path) -> Any:
    return json.loads(path.read_bytes().decode("utf-8"))


def _check_series_output(folder: Path, record: dict[str, Any]) -> str | None:
    """Why ``folder`` is not a complete, valid output for ``record``; ``None`` if it is."""
    from .._version import __version__
    from ..series.results import SCHEMA_VERSION

    if not folder.is_dir():
        return "no output yet"
    try:
        stored = _read_json(folder / BATCH_RECORD)
        results_bytes = (folder / "results.json").read_bytes()
        doc = json.loads(results_bytes.decode("utf-8"))
    except FileNotFoundError as exc:
        return f"{Path(exc.filename or '?').name} is missing"
    except (OSError, ValueError) as exc:
        return f"unreadable output ({type(exc).__name__})"
    if not isinstance(stored, dict) or not isinstance(doc, dict):
        return "unexpected JSON layout"
    if {k: v for k, v in stored.items() if k != "results_sha256"} != record:
        return "the manifest, the photos, the options or the version changed since it was scored"
    if stored.get("results_sha256") != hashlib.sha256(results_bytes).hexdigest():
        return "results.json was modified after it was written"
    options = record["options"]
    try:
        visits = doc["visits"]
        expected_visits = sorted((Path(v["image"]).name, v["date"]) for v in record["inputs"])
        expected_start = options["treatment_start"] or min(v["date"] for v in record["inputs"])
        checks = (
            (doc["schema_version"] == SCHEMA_VERSION, "schema_version"),
            (doc["repigment_version"] == __version__, "repigment_version"),
            (doc["method"]["segmentation"] == options["segmentation"], "segmentation method"),
            (doc["method"]["registration"] == options["registration"], "registration method"),
            (doc["method"]["working_size"] == options["working_size"], "working size"),
            (doc["scale"]["marker_mm"] == options["marker_mm"], "marker size"),
            (doc["treatment_start"] == expected_start, "treatment start"),
            (doc["roi"] is None, "region of interest"),
            (sorted((v["image"], v["date"]) for v in visits) == expected_visits, "visit list"),
        )
    except (KeyError, TypeError, AttributeError):
        return "results.json lacks expected fields"
    for ok, what in checks:
        if not ok:
            return f"{what} in results.json does not match"
    if not (folder / "results.csv").is_file():
        return "results.csv is missing"
    root = folder.resolve()
    for visit in visits:
        mask = visit.get("mask")
        if mask is None:
            continue
        mask_path = (root / str(mask)).resolve()
        if root not in mask_path.parents or not mask_path.is_file():
            return f"mask {mask!r} is missing"
    return None


# ---------------------------------------------------------------------------------------------
# Scoring one series (runs in a worker process)


@dataclass(frozen=True)
class _SeriesJob:
    series: ManifestSeries
    out_dir: str
    tmp_name: str
    record: dict[str, Any]
    threads: int = 1  # cores this worker may use (see _configure_worker)


@dataclass(frozen=True)
class _SeriesOutcome:
    folder: str
    status: Literal["scored", "failed"]
    reason: str | None = None


def _init_pool_worker(threads: int) -> None:
    # Ctrl-C reaches the whole process group; the parent stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Effective only before NumPy is imported, which is the case in a fresh spawned worker.
    for name in _ENV_ONE_THREAD:
        os.environ.setdefault(name, str(threads))


_configured_threads: int | None = None


def _configure_worker(threads: int) -> None:
    """Let this worker use ``threads`` cores.

    A batch runs in parallel across series: one worker per requested core,
    each single-threaded, because threads inside a worker would only compete
    with the other workers and cost CPU time of their own (measured: 15 % more
    CPU per series with OpenCV's thread pool). When fewer series than workers
    are left, each worker gets the idle cores' share.
    """
    global _configured_threads
    if _configured_threads != threads:
        import cv2

        cv2.setNumThreads(threads)
        _configured_threads = threads


def _commit(tmp: Path, final: Path) -> None:
    """Put the finished ``tmp`` folder in place of ``final``."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f"{_OLD_PREFIX}{final.name}-{secrets.token_hex(4)}")
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _score_series(job: _SeriesJob) -> _SeriesOutcome:
    """Score one series into a temporary folder and rename it into place."""
    _configure_worker(job.threads)
    from ..series.discovery import VisitPhoto
    from ..series.pipeline import analyze_photos
    from ..series.results import MaskWriter, atomic_write_bytes, write_results

    series = job.series
    out_dir = Path(job.out_dir)
    tmp = out_dir / job.tmp_name
    photos = [VisitPhoto(path=v.path, date=v.date, date_source="given") for v in series.visits]
    try:
        # Left by an earlier attempt of this very job whose worker died (the name is unique to the job).
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            result = analyze_photos(
                photos,
                treatment_start=series.treatment_start,
                marker_mm=series.marker_mm,
                working_size=job.record["options"]["working_size"],
                mask_writer=MaskWriter(tmp),
                prefetch=job.threads > 1,  # see _configure_worker
            )
        except RepigmentError as exc:  # the baseline is unusable: nothing to measure against
            return _SeriesOutcome(series.folder, "failed", _first_line(exc))
        folders = {v.path.parent for v in series.visits}
        if len(folders) == 1 and hasattr(result, "series_dir"):
            # As analyze records it: the folder in which the visits' file names are found.
            result.series_dir = str(folders.pop())
        write_results(result, tmp)
        del result
        digest = hashlib.sha256((tmp / "results.json").read_bytes()).hexdigest()
        record = dict(job.record, results_sha256=digest)
        atomic_write_bytes(tmp / BATCH_RECORD, json.dumps(record, indent=2).encode("utf-8"))
        # Checked before it goes in place, also so a folder removed under us is never committed.
        problem = _check_series_output(tmp, job.record)
        if problem is not None:
            raise RuntimeError(f"the output just written does not check out: {problem}")
        _commit(tmp, out_dir / series.folder)
        return _SeriesOutcome(series.folder, "scored")
    except Exception as exc:  # noqa: BLE001 - one series' failure must not stop the batch
        reason = f"could not score this series ({type(exc).__name__}: {_first_line(exc)})"
        return _SeriesOutcome(series.folder, "failed", reason)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when committed


# ---------------------------------------------------------------------------------------------
# Execution backends: run jobs, report each outcome as it arrives, stop cleanly on interrupt


_Report = Callable[[_SeriesJob, _SeriesOutcome], None]


class _ProcessPoolRunner:
    """Local worker processes (``concurrent.futures.ProcessPoolExecutor``, spawn context).

    At most ``workers`` series are in flight, so an interrupt has little to
    cancel. If a worker process dies (killed, out of memory) every series in
    flight is lost; they are retried one at a time, and a series that kills its
    worker on its own is reported as failed.
    """

    def __init__(self, workers: int, threads: int = 1):
        self.workers = workers
        self.threads = threads
        self._pool = None

    def _new_pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_pool_worker,
            initargs=(self.threads,),
        )

    def run(self, jobs: list[_SeriesJob], report: _Report) -> None:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        pending = deque(jobs)
        in_flight: dict[Any, _SeriesJob] = {}
        suspects: set[str] = set()  # in flight when a worker died: retried alone, once
        self._pool = self._new_pool()
        while pending or in_flight:
            broken = False
            limit = 1 if suspects else self.workers
            while pending and len(in_flight) < limit:
                job = pending.popleft()
                try:
                    in_flight[self._pool.submit(_score_series, job)] = job
                except BrokenProcessPool:
                    pending.appendleft(job)
                    broken = True
                    break
            done = wait(list(in_flight), return_when=FIRST_COMPLETED).done if in_flight else set()
            for future in done:
                job = in_flight.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    in_flight[future] = job  # handled with the others below
                    broken = True
                    continue
                except Exception as exc:  # noqa: BLE001 - e.g. a job that cannot be sent to the worker
                    outcome = _SeriesOutcome(job.series.folder, "failed", f"could not score this series ({exc})")
                suspects.discard(job.series.folder)
                report(job, outcome)
            if broken:
                # A dead worker breaks the whole pool: every series in flight is lost. Start afresh.
                wait(list(in_flight))
                lost = list(in_flight.values())
                in_flight.clear()
                self._pool.shutdown(wait=True)
                self._pool = self._new_pool()
                for job in reversed(lost):
                    if job.series.folder in suspects:  # it died alone: it is the cause
                        suspects.discard(job.series.folder)
                        report(job, _SeriesOutcome(
                            job.series.folder, "failed",
                            "the worker process died while scoring this series (out of memory, or killed)",
                        ))
                    else:
                        suspects.add(job.series.folder)
                        pending.appendleft(job)
        self._pool.shutdown(wait=True)
        self._pool = None

    def stop(self) -> None:
        """Cancel queued work and end the worker processes now (on interrupt)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
        if terminate is not None:
            terminate()
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=10)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class _DaskRunner:
    """A Dask distributed cluster: a new ``LocalCluster`` on loopback, or an existing scheduler."""

    def __init__(self, scheduler: str, workers: int):
        try:
            from distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - a declared dependency
            raise BatchError("--scheduler needs dask[distributed]; install it with pip") from None
        self._cluster = None
        self._futures: list[Any] = []
        try:
            if scheduler == "local":
                self._cluster = LocalCluster(
                    n_workers=workers,
                    # Warnings such as a worker's slow shutdown after an interrupt are noise here.
                    silence_logs=logging.ERROR,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
                self._client = Client(self._cluster)
            else:
                self._client = Client(scheduler)
        except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, RuntimeError("Nanny failed to start")...
            if self._cluster is not None:
                with contextlib.suppress(Exception):
                    self._cluster.close()
            where = "a local Dask cluster" if scheduler == "local" else f"the Dask scheduler at {scheduler}"
            raise BatchError(f"could not start or reach {where}: {_first_line(exc)}") from None

    def run(self, jobs: list[_SeriesJob], report: _Report) -> None:
        from distributed import as_completed

        by_key = {}
        for job in jobs:
            future = self._client.submit(
                _score_series, job, key=f"repigment-{job.series.folder}-{secrets.token_hex(4)}", pure=False
            )
            by_key[future.key] = job
            self._futures.append(future)
        for future in as_completed(self._futures):
            job = by_key[future.key]
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker, or a worker that cannot import repigment
                outcome = _SeriesOutcome(
                    job.series.folder, "failed", f"the Dask task failed ({type(exc).__name__}: {_first_line(exc)})"
                )
            future.release()
            report(job, outcome)
        self._futures = []

    def stop(self) -> None:
        if self._futures and self._cluster is None:
            # On a shared cluster, running tasks finish (and commit or clean up after themselves);
            # queued ones must not start. A LocalCluster of ours is simply shut down.
            with contextlib.suppress(Exception):
                self._client.cancel(self._futures)
        self._futures = []
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()
            self._cluster = None


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into :class:`BatchInterrupted` while scoring, so cleanup runs.

    Only from the main thread and only if nobody else handles SIGTERM. A second
    SIGTERM during the cleanup is ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        current = signal.getsignal(signal.SIGTERM)
    except (AttributeError, ValueError):  # pragma: no cover - platforms without SIGTERM
        current = None
    if current is not signal.SIG_DFL:
        yield
        return
    fired = False

    def handler(signum, frame):
        nonlocal fired
        if not fired:
            fired = True
            raise BatchInterrupted("terminated (SIGTERM)")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """Hold a lock on ``out_dir`` so that two runs never write into it at once."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locking
        yield
        return
    handle = open(out_dir / _LOCK_FILE, "a+b")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BatchError(f"another repigment batch run is writing to {str(out_dir)!r}; wait for it to end") from None
        yield
    finally:
        handle.close()


def _remove_leftovers(out_dir: Path) -> None:
    """Remove temporary folders left by a run that was killed outright."""
    for entry in out_dir.iterdir():
        if entry.name.startswith((_TMP_PREFIX, _OLD_PREFIX)) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The run


@dataclass(frozen=True)
class VisitFailure:
    """A visit without figures.

    Attributes
    ----------
    series : str
        Series output folder name.
    image : str
        The image as written in the manifest.
    reason : str
    """

    series: str
    image: str
    reason: str


@dataclass(frozen=True)
class SeriesStatus:
    """What happened to one series.

    Attributes
    ----------
    folder : str
        Output folder name, under ``BatchResult.out_dir``.
    patient, patch : str
    status : {"scored", "skipped", "failed"}
        ``skipped``: complete and valid results were already there.
        ``failed``: no results (the baseline photo is unusable, or the worker died).
    reason : str or None
        Why it failed.
    results_json : Path or None
        The series' ``results.json`` unless it failed.
    """

    folder: str
    patient: str
    patch: str
    status: Literal["scored", "skipped", "failed"]
    reason: str | None
    results_json: Path | None


@dataclass(frozen=True)
class BatchResult:
    """Result of :func:`score_manifest`.

    Attributes
    ----------
    out_dir : Path
    series : tuple of SeriesStatus
        In manifest order.
    failures : tuple of VisitFailure
        Every visit without figures, including those of series skipped as
        already scored (as listed in ``failures.csv``).
    summary_csv, failures_csv : Path
    seconds : float
        Wall time of the run.
    """

    out_dir: Path
    series: tuple[SeriesStatus, ...]
    failures: tuple[VisitFailure, ...]
    summary_csv: Path
    failures_csv: Path
    seconds: float

    def _count(self, status: str) -> int:
        return sum(1 for s in self.series if s.status == status)

    @property
    def scored(self) -> int:
        return self._count("scored")

    @property
    def skipped(self) -> int:
        return self._count("skipped")

    @property
    def failed(self) -> int:
        return self._count("failed")

    @property
    def ok(self) -> bool:
        """Every visit of every series has figures."""
        return not self.failures


def _default_workers() -> int:
    counter = getattr(os, "process_cpu_count", None)  # Python >= 3.13
    if counter is not None:
        return counter() or 1
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _check_options(workers: int | None, scheduler: str | None) -> int:
    from ..errors import InvalidParameterError

    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InvalidParameterError(f"workers must be a positive integer, got {workers!r}")
    if scheduler is not None:
        if not isinstance(scheduler, str) or not scheduler.strip():
            raise InvalidParameterError(
                f"scheduler must be 'local' or a Dask scheduler address like tcp://host:8786, got {scheduler!r}"
            )
        if scheduler != "local" and workers is not None:
            raise InvalidParameterError(
                "workers applies to local workers only; an existing Dask cluster runs on the workers it has"
            )
    return workers if workers is not None else _default_workers()


def _csv_bytes(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> bytes:
    from ..series.results import csv_text

    return csv_text(columns, rows).encode("utf-8")


def _series_rows(series: ManifestSeries, doc: dict[str, Any]) -> tuple[list[dict], list[VisitFailure]]:
    """Summary rows and failed visits of one series' results.json."""
    image_of = {v.path.name: v.image for v in series.visits}  # basenames are unique within a series
    date_of = {v["image"]: v["date"] for v in doc["visits"]}
    rows = [
        {
            "patient": series.patient,
            "patch": series.patch,
            "image": image_of.get(m["image"], m["image"]),
            "date": date_of.get(m["image"]),
            "variable": m["variable"],
            "value": m["value"],
            "unit": m["unit"],
            "method": m["method"],
        }
        for m in doc["measurements"]
    ]
    failures = [
        VisitFailure(series.folder, image_of.get(v["image"], v["image"]), v["error"])
        for v in doc["visits"]
        if v.get("error")
    ]
    return rows, failures


def score_manifest(
    manifest: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> BatchResult:
    """Score every series of a manifest, skipping those already scored.

    Parameters
    ----------
    manifest : str or os.PathLike
        The manifest CSV (see :func:`read_manifest`).
    out_dir : str or os.PathLike
        Output folder; created if missing. Gets one folder per series (named by
        :func:`series_folder_name`) holding ``results.json``, ``results.csv``,
        ``masks/`` and ``batch.json``, plus ``summary.csv`` and ``failures.csv``.
    workers : int, optional
        Local worker processes, or workers of the ``"local"`` Dask cluster
        (default: the CPU count). Not allowed with an existing cluster.
    scheduler : str, optional
        ``None``: local worker processes. ``"local"``: a Dask ``LocalCluster``
        on 127.0.0.1. Anything else: the address of a running Dask scheduler
        (``tcp://host:8786``); its workers must have repigment installed and see
        the photos and ``out_dir`` at the same paths.
    progress : callable, optional
        ``progress(done, total, series_folder)``: once with ``done=0`` before
        scoring starts, then after each series scored in this run (series
        skipped as already scored are not counted in ``total``).

    Returns
    -------
    BatchResult

    Raises
    ------
    SeriesError
        If the manifest is unusable (nothing is scored then).
    InvalidParameterError
        For a bad ``workers`` or ``scheduler`` value.
    BatchError
        If ``out_dir`` is in use by another run, or the cluster is unreachable.
    KeyboardInterrupt
        On Ctrl-C, or :class:`BatchInterrupted` on SIGTERM: pending work is
        cancelled, workers are stopped and unfinished series removed; series
        already finished stay in place.

    Notes
    -----
    A series is skipped when its folder holds a ``results.json`` whose hash is
    recorded in ``batch.json`` together with the manifest rows, photo sizes and
    modification times, options and repigment version it was made from, all
    equal to this run's, and every mask it references exists. A series whose
    baseline photo is unusable yields one failure per image and no folder; it
    is retried on every run.

    Examples
    --------
    >>> result = score_manifest("manifest.csv", "out", workers=2)  # doctest: +SKIP
    >>> result.scored, result.skipped, result.failed, len(result.failures)  # doctest: +SKIP
    (12, 0, 0, 1)
    """
    started = time.perf_counter()
    n_workers = _check_options(workers, scheduler)
    parsed = read_manifest(manifest)
    out = Path(out_dir).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(f"cannot create the output folder {str(out)!r}: {exc.strerror or exc}") from None
    working_size = _working_size()

    with _exclusive(out), _sigterm_interrupts():
        _remove_leftovers(out)
        records = {s.folder: _expected_record(s, working_size) for s in parsed.series}
        statuses: dict[str, SeriesStatus] = {}
        to_score: list[ManifestSeries] = []
        for s in parsed.series:
            if _check_series_output(out / s.folder, records[s.folder]) is None:
                statuses[s.folder] = SeriesStatus(
                    s.folder, s.patient, s.patch, "skipped", None, out / s.folder / "results.json"
                )
            else:
                to_score.append(s)
        requested = n_workers
        n_workers = min(n_workers, len(to_score))
        # Local workers share out the requested cores; Dask workers are sized by the cluster.
        threads = max(1, requested // max(n_workers, 1)) if scheduler is None else 1
        jobs = [
            _SeriesJob(
                series=s,
                out_dir=str(out),
                tmp_name=f"{_TMP_PREFIX}{s.folder}-{secrets.token_hex(6)}",
                record=records[s.folder],
                threads=threads,
            )
            for s in to_score
        ]
        done = 0

        def report(job: _SeriesJob, outcome: _SeriesOutcome) -> None:
            nonlocal done
            s = job.series
            status, reason = outcome.status, outcome.reason
            if status == "scored":
                # Checked here too: a remote worker may have written to a folder this machine cannot see.
                problem = _check_series_output(out / s.folder, records[s.folder])
                if problem is not None:
                    status, reason = "failed", (
                        f"the worker's output is not valid here ({problem}); OUT_DIR must be on a filesystem "
                        "shared with the workers, at the same path"
                    )
            path = out / s.folder / "results.json" if status == "scored" else None
            statuses[s.folder] = SeriesStatus(s.folder, s.patient, s.patch, status, reason, path)
            done += 1
            if progress is not None:
                progress(done, len(jobs), s.folder)

        if progress is not None:
            progress(0, len(jobs), "")
        if jobs:
            if scheduler is None:
                runner: _ProcessPoolRunner | _DaskRunner = _ProcessPoolRunner(n_workers, threads)
            else:
                runner = _DaskRunner(scheduler, n_workers)
            try:
                runner.run(jobs, report)
            except BaseException:
                runner.stop()
                raise
            finally:
                runner.close()
                for job in jobs:  # committed ones are gone already; the rest is debris of failures
                    shutil.rmtree(out / job.tmp_name, ignore_errors=True)

        from ..series.results import atomic_write_bytes

        # Rebuilt from every series' results.json, skipped ones included, in manifest order.
        summary: list[dict[str, Any]] = []
        failures: list[VisitFailure] = []
        for s in parsed.series:
            status = statuses[s.folder]
            if status.status == "failed":
                failures += [VisitFailure(s.folder, v.image, status.reason or "failed") for v in s.visits]
                continue
            rows, failed_visits = _series_rows(s, _read_json(out / s.folder / "results.json"))
            summary += rows
            failures += failed_visits
        summary_path = out / SUMMARY_FILE
        failures_path = out / FAILURES_FILE
        atomic_write_bytes(summary_path, _csv_bytes(SUMMARY_COLUMNS, summary))
        atomic_write_bytes(failures_path, _csv_bytes(FAILURE_COLUMNS, [f.__dict__ for f in failures]))
    return BatchResult(
        out_dir=out,
        series=tuple(statuses[s.folder] for s in parsed.series),
        failures=tuple(failures),
        summary_csv=summary_path,
        failures_csv=failures_path,
        seconds=time.perf_counter() - started,
    )

