"""Run the series jobs: the worker-side job, local worker processes or a Dask cluster, signals, locking.

A :class:`_SeriesJob` is pickled to a worker (a spawned process of
:class:`_ProcessPoolRunner`, or a task of :class:`_DaskRunner`), which runs
:func:`_score_series` on it: the series is scored into a temporary folder,
checked and renamed into place, and a :class:`_SeriesOutcome` comes back. Both
runners report each outcome as it arrives and stop cleanly on interrupt;
:func:`_sigterm_interrupts` turns SIGTERM into :class:`BatchInterrupted`, and
:func:`_exclusive` locks the output folder against a second run
(:class:`BatchError`). OpenCV, the pipeline and Dask are imported only inside
the functions that need them, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from ..errors import BatchError, BatchInterrupted, RepigmentError
from .manifest import ManifestSeries
from .outputs import BATCH_RECORD, _check_series_output

_LOCK_FILE = ".repigment-batch.lock"
_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"
_ENV_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


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
    # As analyze records it: the folder in which the visits' file names are found.
    folders = {v.path.parent for v in series.visits}
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
                series_dir=str(next(iter(folders))) if len(folders) == 1 else None,
            )
        except RepigmentError as exc:  # the baseline is unusable: nothing to measure against
            return _SeriesOutcome(series.folder, "failed", _first_line(exc))
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

