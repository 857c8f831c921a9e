"""Scale the DICOM header scan out on a Dask distributed cluster (``--engine dask``).

The same scan as :func:`dashboard.ingest.dicom.scan_files`, with the reading done by Dask
workers instead of a local process pool:

1. the client walks the roots with :func:`~dashboard.ingest.dicom.iter_files` (sorted, as the
   local scan does) and cuts the file list into chunks;
2. each chunk is one Dask task, :func:`read_shard`, which runs
   :func:`~dashboard.ingest.dicom.read_chunk` (the very function the local worker processes
   run) and writes the outcomes, one row per file in chunk order, as a Parquet shard;
3. the client reads the shards back in chunk order and hands ``(path, outcome)`` pairs, walk
   errors first as in the local scan, to :func:`~dashboard.ingest.dicom.aggregate`.

So the :class:`~dashboard.ingest.dicom.ScanResult`, and the index written from it by
:func:`~dashboard.ingest.dicom_index.index_scan`, are those of a local scan of the same files.

Shards hold the outcome of each file (the :class:`~dashboard.ingest.dicom.Instance` fields,
or the skip reason) and no path: the client knows each chunk's paths, and folder names can
carry names. Like an ``Instance``, a shard holds no identifying header value. Shards are written
to a run folder under ``shard_root``, which the workers and the client must both reach (a
shared filesystem on a real cluster), and removed once read unless ``keep_shards``.

Without a scheduler address a :class:`distributed.LocalCluster` of worker *processes* (one
thread each: the readers hold the GIL) is started for the scan and closed after it. The
cluster is reached and checked before the walk; its failures (scheduler unreachable, no
worker, a scheduler or worker that cannot import this package, a worker lost) raise
:class:`DaskEngineError` with a message saying what to check, never a Dask traceback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import os
import shutil
import tempfile
import typing
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from dashboard.ingest import dicom
from dashboard.ingest.dicom import Instance, Progress, ScanResult

ENGINES: tuple[str, ...] = ("local", "dask")
SHARD_FOLDER = "dask-shards"  # default home of the run folders, beside the index
MAX_CHUNK = 1024  # files per task: big enough that task overhead is small, small for progress


class DaskEngineError(ValueError):
    """The Dask cluster could not run the scan; the message says what to check."""


# --- shards -----------------------------------------------------------------------------------


def _polars_type(hint: Any) -> pl.DataType:
    """The Parquet column type of an Instance field (text, flag, count or keyword tuple)."""
    args = set(typing.get_args(hint)) - {type(None)}
    base = args.pop() if len(args) == 1 else hint
    if base is bool:
        return pl.Boolean()
    if base is int:
        return pl.Int64()
    if base is str:
        return pl.String()
    if typing.get_origin(base) is tuple:
        return pl.List(pl.String)
    raise TypeError(f"no shard column type for Instance field type {hint!r}")


REASON = "reason"  # the skip reason; null for an indexed file
SHARD_SCHEMA: dict[str, pl.DataType] = {REASON: pl.String()} | {
    name: _polars_type(hint) for name, hint in typing.get_type_hints(Instance).items()
}
_LIST_FIELDS = frozenset(n for n, t in SHARD_SCHEMA.items() if isinstance(t, pl.List))


def outcomes_frame(outcomes: list[Instance | str]) -> pl.DataFrame:
    """One row per file outcome, in order: the skip reason, or the instance's fields."""
    empty = dict.fromkeys(Instance._fields)
    rows = [
        {REASON: o, **empty} if isinstance(o, str) else {REASON: None, **o._asdict()}
        for o in outcomes
    ]
    return pl.DataFrame(rows, schema=SHARD_SCHEMA, orient="row")


def frame_outcomes(frame: pl.DataFrame) -> Iterator[Instance | str]:
    """The outcomes :func:`outcomes_frame` stored, as read_chunk returned them."""
    for row in frame.iter_rows(named=True):
        reason = row.pop(REASON)
        if reason is not None:
            yield reason
            continue
        for name in _LIST_FIELDS:
            row[name] = tuple(row[name] or ())
        yield Instance(**row)


def read_shard(paths: list[str], shard: str, read_options: dict[str, Any]) -> int:
    """The Dask task: read a chunk's headers (as a local worker does) and write its shard.

    The shard is written beside its final name and renamed, so a shard that exists is whole.
    Returns the number of files read.
    """
    outcomes = dicom.read_chunk(paths, **read_options)
    Path(shard).parent.mkdir(parents=True, exist_ok=True)
    partial = f"{shard}.{os.getpid()}.partial"
    outcomes_frame(outcomes).write_parquet(partial)
    Path(partial).replace(shard)
    return len(outcomes)


def _load_shard(shard: Path, expected: int) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(shard)
    except Exception as problem:  # polars raises several types for a missing or cut file
        raise DaskEngineError(
            f"shard {shard} could not be read ({type(problem).__name__}); the shard folder "
            "must be on storage that the workers and this machine both reach"
        ) from None
    if frame.height != expected:
        raise DaskEngineError(f"shard {shard} has {frame.height:,} rows for {expected:,} files")
    return frame


# --- the cluster ------------------------------------------------------------------------------


@contextlib.contextmanager
def _client(
    scheduler: str | None, workers: int, memory_limit: str | None, timeout: float | None
) -> Iterator[Any]:
    """A connected distributed.Client: to `scheduler`, or to a LocalCluster of processes."""
    from distributed import Client, LocalCluster

    if scheduler is None:
        with contextlib.ExitStack() as stack:
            try:
                cluster = stack.enter_context(
                    LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",  # this machine only
                        memory_limit=memory_limit or "auto",
                        dashboard_address=":0",  # no fixed port (8787 may be taken)
                        silence_logs=logging.CRITICAL,  # failures reach us as exceptions
                    )
                )
                client = stack.enter_context(Client(cluster))
            except Exception as problem:
                raise DaskEngineError(
                    f"could not start a local Dask cluster of {workers} worker processes "
                    f"({type(problem).__name__}: {problem}); try fewer --workers"
                ) from None
            yield client
        return
    if timeout is None:
        from dask import config
        from dask.utils import parse_timedelta

        timeout = parse_timedelta(config.get("distributed.comm.timeouts.connect"), "s")
    try:
        client = Client(scheduler, timeout=timeout)
    except (ValueError, TypeError) as problem:
        raise DaskEngineError(
            f"{scheduler!r} is not a Dask scheduler address ({type(problem).__name__}); give "
            "one like tcp://host:8786"
        ) from None
    except Exception as problem:  # OSError: refused, unknown host, TimeoutError; and others
        raise DaskEngineError(
            f"cannot reach the Dask scheduler at {scheduler!r} within {timeout:g} s "
            f"({type(problem).__name__}); check the address (e.g. tcp://host:8786) and that "
            "the scheduler is running and reachable from this machine (a slow one: set "
            "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=60s)"
        ) from None
    with client:
        yield client


def _wait_for_a_worker(client: Any, timeout: float) -> None:
    """A scheduler with no worker (jobs still queued, or all gone) would leave the scan waiting."""
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise DaskEngineError(
            f"the Dask scheduler has no worker (waited {timeout:g} s); start workers or scale "
            "the cluster, then run the command again"
        ) from None


_PROBE = f"import {__name__}"  # what the scheduler and each worker must be able to run


def _check_environment(client: Any) -> None:
    """Refuse, before any task, a scheduler or worker that cannot import this module.

    Without the check, a worker that cannot unpickle a task drops its connection and the scan
    waits for ever; the scheduler unpickles the task graph too. The probe is the builtin
    ``exec`` of an import statement, which any Python process can unpickle.
    """
    for where, run in (("scheduler", client.run_on_scheduler), ("workers", client.run)):
        try:
            run(exec, _PROBE, {})
        except ImportError as problem:
            raise DaskEngineError(
                f"the Dask {where} cannot import {problem.name or 'dashboard'!r}: run the "
                "scheduler and the workers in this project's environment (pip install -r "
                "requirements.txt, the repository on PYTHONPATH)"
            ) from None


def _task_error(problem: BaseException) -> DaskEngineError:
    """A worker-side failure as a message that says what to check."""
    name = type(problem).__name__
    if isinstance(problem, ModuleNotFoundError):
        return DaskEngineError(
            f"the Dask workers cannot import {problem.name!r}: run them in an environment "
            "with this project installed (pip install -r requirements.txt, the repository on "
            "PYTHONPATH)"
        )
    if name == "KilledWorker":
        return DaskEngineError(
            "a Dask worker died while reading headers (out of memory, or killed); give the "
            "workers more memory or retry"
        )
    if "deserializ" in str(problem):
        return DaskEngineError(
            "the Dask scheduler or workers could not load the task (different environments?): "
            "run them in this project's environment (pip install -r requirements.txt, the "
            "repository on PYTHONPATH)"
        )
    if name in ("CancelledError", "FutureCancelledError"):
        return DaskEngineError("the Dask scheduler cancelled the scan (lost connection?)")
    return DaskEngineError(f"a Dask task failed: {name}: {problem}")


@dataclass
class DaskScanner:
    """Scan files on a Dask cluster; called like :func:`~dashboard.ingest.dicom.scan_files`.

    ``scheduler``: the address of a running scheduler (``tcp://host:8786``); None starts a
    LocalCluster of ``workers`` processes. ``shard_root``: where the run folder of Parquet
    shards is made (default: a temporary folder, fine for a LocalCluster only).
    """

    scheduler: str | None = None
    shard_root: Path | None = None
    keep_shards: bool = False
    memory_limit: str | None = None  # per LocalCluster worker, e.g. "1GiB"; "auto" when None
    connect_timeout: float | None = None  # seconds; None: Dask's connect timeout (30 s)
    chunk_size: int | None = None
    worker_timeout: float = 120.0  # seconds to wait for a first worker (queued batch jobs)
    read_options: dict[str, Any] = field(default_factory=dict)  # for read_chunk (reader=…)
    last_shards: Path | None = field(default=None, init=False)
    _made_root: bool = field(default=False, init=False, repr=False)

    def __call__(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        workers: int = 1,
        progress: Progress | None = None,
        **read_options: Any,
    ) -> ScanResult:
        """Connect, walk, read on the cluster, aggregate; extra options go to ``read_chunk``.

        The cluster is reached (and checked) before the walk, so a bad address fails at once.
        """
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        options = self.read_options | read_options
        run = self._run_folder()
        try:
            with _client(
                self.scheduler, workers, self.memory_limit, self.connect_timeout
            ) as client:
                _wait_for_a_worker(client, self.worker_timeout)
                _check_environment(client)
                walk_errors: list[tuple[str, str]] = []
                files: list[str] = []
                for path, reason in dicom.iter_files(paths):
                    if reason is None:
                        files.append(path)
                    else:
                        walk_errors.append((path, reason))
                chunks = self._read_on_cluster(client, files, run, workers, progress, options)
            outcomes = (
                (path, outcome)
                for chunk, shard in chunks
                for path, outcome in zip(
                    chunk, frame_outcomes(_load_shard(shard, len(chunk))), strict=True
                )
            )
            result = dicom.aggregate(itertools.chain(walk_errors, outcomes))
        finally:
            if not self.keep_shards:
                shutil.rmtree(run, ignore_errors=True)
                if self._made_root:  # the folder this run made for its shards, if now empty
                    with contextlib.suppress(OSError):
                        run.parent.rmdir()
        self.last_shards = run if self.keep_shards else None
        return result

    def _run_folder(self) -> Path:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"run-{stamp}-{uuid.uuid4().hex[:8]}"
        if self.shard_root is None:
            return Path(tempfile.mkdtemp(prefix=f"dicom-shards-{name}-"))
        root = Path(self.shard_root).resolve()
        self._made_root = not root.exists()
        run = root / name
        run.mkdir(parents=True)
        return run

    def _read_on_cluster(
        self,
        client: Any,
        files: list[str],
        run: Path,
        workers: int,
        progress: Progress | None,
        read_options: dict[str, Any],
    ) -> list[tuple[list[str], Path]]:
        """Run one read_shard task per chunk; the chunks with their shards, in file order."""
        from distributed import as_completed

        total = len(files)
        slots = sum(client.nthreads().values()) or workers
        size = self.chunk_size or max(1, min(MAX_CHUNK, -(-total // (slots * 8))))
        chunks = [files[i : i + size] for i in range(0, total, size)]
        shards = [run / f"shard-{i:06d}.parquet" for i in range(len(chunks))]
        if progress is not None:
            progress(0, total)
        futures = [
            client.submit(
                read_shard,
                [os.path.abspath(p) for p in chunk],  # noqa: PTH100 (workers' cwd differs)
                str(shard),
                read_options,
                key=f"dicom-read-{run.name}-{i:06d}",
                pure=False,
            )
            for i, (chunk, shard) in enumerate(zip(chunks, shards, strict=True))
        ]
        done = 0
        try:
            for future in as_completed(futures):
                done += future.result()
                if progress is not None:
                    progress(done, total)
        except Exception as problem:
            client.cancel(futures)
            raise _task_error(problem) from None
        return list(zip(chunks, shards, strict=True))


def make_scanner(
    engine: str,
    *,
    scheduler: str | None = None,
    shard_root: Path | None = None,
    keep_shards: bool = False,
    reader: str | None = None,
) -> DaskScanner | None:
    """The scanner for ``--engine``: None for the local process pool, else a DaskScanner.

    ``--scheduler`` needs ``--engine dask``; refused otherwise rather than silently ignored.
    ``reader`` (one of ``dicom.READERS``) is what the workers read headers with.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; use {' or '.join(ENGINES)}")
    if engine == "local":
        if scheduler is not None or keep_shards:
            raise ValueError("--scheduler and --keep-shards need --engine dask")
        return None
    readers: tuple[str, ...] = getattr(dicom, "READERS", ())
    if reader is not None and reader not in readers:
        raise ValueError(f"unknown reader {reader!r}; use {' or '.join(readers)}")
    return DaskScanner(
        scheduler=scheduler,
        shard_root=shard_root,
        keep_shards=keep_shards,
        read_options={} if reader is None else {"reader": reader},
    )
