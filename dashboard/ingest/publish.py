"""Publish a new index snapshot without blocking readers.

A process holding the DuckDB file, even read-only, blocks any writer. So a writer copies the
live file, writes into the copy, checkpoints it and atomically renames it over the live path.
Readers that hold the old file keep reading the old snapshot; the app keys its connection by
the file's identity (see db.snapshot_key) and picks up the new one on its next run. A crash at
any point before the rename leaves the live index exactly as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb

from dashboard.db import connect_writable


def _discard(tmp: Path) -> None:
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def publishing(live: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield a writable connection to a private copy of ``live``; publish it on success.

    Writers are serialised by an exclusive lock beside the index, so two ingests never publish
    over each other's work.
    """
    live = Path(live)
    live.parent.mkdir(parents=True, exist_ok=True)
    with live.with_name(live.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Holding the lock, no other writer is alive: copies left by a killed one are stale.
        for stale in live.parent.glob(f".{live.name}.*.tmp"):
            _discard(stale)
        tmp = live.with_name(f".{live.name}.{os.getpid()}.tmp")
        if live.exists():
            shutil.copyfile(live, tmp)
        con = connect_writable(tmp)
        try:
            yield con
            con.execute("CHECKPOINT")
            con.close()
            tmp.replace(live)
        except BaseException:
            con.close()
            _discard(tmp)
            raise
