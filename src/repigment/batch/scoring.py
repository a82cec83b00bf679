"""Score every series of a manifest: :func:`score_manifest`, the batch's entry point.

It reads the manifest, locks the output folder, skips the series whose output
is complete and still valid, hands the rest as jobs to local worker processes
or a Dask cluster, records each outcome as it arrives, and rebuilds
``summary.csv`` and ``failures.csv`` from every series' ``results.json``. The
manifest, output and runner pieces live in :mod:`repigment.batch.manifest`,
:mod:`repigment.batch.outputs` and :mod:`repigment.batch.runners`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from .manifest import ManifestSeries, read_manifest
from .outputs import (
    FAILURE_COLUMNS,
    FAILURES_FILE,
    SUMMARY_COLUMNS,
    SUMMARY_FILE,
    BatchResult,
    SeriesStatus,
    VisitFailure,
    _check_series_output,
    _csv_bytes,
    _expected_record,
    _read_json,
    _series_rows,
    _working_size,
)
from .runners import (
    _TMP_PREFIX,
    BatchError,
    _DaskRunner,
    _exclusive,
    _ProcessPoolRunner,
    _remove_leftovers,
    _SeriesJob,
    _SeriesOutcome,
    _sigterm_interrupts,
)

# ---------------------------------------------------------------------------------------------
# The run


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
