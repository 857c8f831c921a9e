"""The audit log: every export and every login, with who, when, what and as which role.

Where it lives: its own DuckDB file beside the index, ``<index>.audit.duckdb``
(``var/diversity.audit.duckdb`` by default; ``$DIVERSITY_AUDIT_DB`` overrides it), not the
index. The index is published by copying the whole file and renaming the copy over it
(ingest/publish.py): a multi-gigabyte copy per export would be absurd, and an export logged in
a snapshot that a concurrent ingest then replaces would be lost. The log needs no snapshots:
it only grows, so each entry is one small transaction on the file itself.

How it is written: DuckDB lets one process hold a file for writing and refuses any other
process meanwhile, so every write takes an exclusive ``flock`` on ``<audit>.lock``, opens the
file, appends, and closes it (a few milliseconds); readers take a shared lock and read a
read-only attachment. Writers in threads of one process (Streamlit sessions) are serialised by
the same lock, since each call opens its own lock file descriptor.

Failing closed: a caller logs before it hands the data over, and :class:`AuditError` stops the
export, so nothing leaves the product unlogged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dashboard import sql
from dashboard.db import DUCKDB_CONFIG

AUDIT_ENV = "DIVERSITY_AUDIT_DB"
ACTIONS = ("export", "login", "login_refused")
CHANNELS = ("cli", "app")
COLUMNS: dict[str, pl.DataType] = {
    "logged_at": pl.Datetime("us"),
    "actor": pl.String(),
    "role": pl.String(),
    "action": pl.String(),
    "what": pl.String(),
    "channel": pl.String(),
    "detail": pl.String(),
}


class AuditError(RuntimeError):
    """The audit log could not be written: the export or login must not go ahead."""


def audit_path(index: Path) -> Path:
    """The audit file of the index at ``index``: $DIVERSITY_AUDIT_DB, else beside it."""
    override = os.environ.get(AUDIT_ENV)
    if override:
        return Path(override)
    index = Path(index)
    return index.with_name(f"{index.stem}.audit.duckdb")


def current_user() -> str:
    """The operating-system user running the CLI (who, for entries without a signed-in user)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in a container
        return f"uid:{os.getuid()}"


@contextlib.contextmanager
def _locked(path: Path, mode: int) -> Iterator[None]:
    with path.with_name(path.name + ".lock").open("a") as lock:
        fcntl.flock(lock, mode)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def record(
    index: Path,
    *,
    actor: str,
    role: str,
    action: str,
    what: str,
    channel: str,
    detail: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Append one entry to the audit log of ``index``; raises :class:`AuditError` on failure."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; use {', '.join(ACTIONS)}")
    if channel not in CHANNELS:
        raise ValueError(f"unknown audit channel {channel!r}; use {', '.join(CHANNELS)}")
    path = audit_path(index)
    at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path, fcntl.LOCK_EX):
            con = duckdb.connect(str(path), config=DUCKDB_CONFIG)
            try:
                sql.execute(con, "schema_audit")
                sql.execute(
                    con,
                    "insert_audit",
                    now=at,
                    actor=actor,
                    role=role,
                    action=action,
                    what=what,
                    channel=channel,
                    detail=None if detail is None else json.dumps(dict(detail), default=str),
                )
            finally:
                con.close()
    except (OSError, duckdb.Error) as problem:
        raise AuditError(
            f"cannot write the audit log {path} ({type(problem).__name__}: {problem})"
        ) from None


def entries(index: Path) -> pl.DataFrame:
    """Every entry of the audit log of ``index``, oldest first (empty when nothing is logged)."""
    path = audit_path(index)
    if not path.exists():
        return pl.DataFrame(schema=COLUMNS)
    with _locked(path, fcntl.LOCK_SH):
        con = duckdb.connect(":memory:", config=DUCKDB_CONFIG)
        try:
            con.execute("ATTACH $path AS audit (READ_ONLY)", {"path": str(path)})
            con.execute("USE audit")
            return sql.query(con, "audit_entries")
        finally:
            con.close()
