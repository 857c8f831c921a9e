"""DuckDB connections: read-only for the app and the read commands, writable only for ingest.

The spatial and other extensions would try to download at run time and fail offline, so
automatic extension install and load are switched off for every connection.

Readers ATTACH the file to a fresh in-memory database instead of ``duckdb.connect(path)``:
DuckDB caches one database instance per path in a process, so while any connection to the old
snapshot is open, connecting to the same path again returns the OLD snapshot even after a
publish replaced the file. An ATTACH always opens the file that is at the path now.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import duckdb

from dashboard import sql

DUCKDB_CONFIG: dict[str, str | bool] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


class IndexMissingError(FileNotFoundError):
    """The index file does not exist yet."""


READ_ALIAS = "idx"


def connect_readonly(path: Path) -> duckdb.DuckDBPyConnection:
    """Open the published index for reading; a missing file is a clear error, not a new file."""
    if not Path(path).exists():
        raise IndexMissingError(
            f"no index at {path}: build one with `python -m dashboard demo --db {path}` "
            "or ingest a manifest"
        )
    con = duckdb.connect(":memory:", config=DUCKDB_CONFIG)
    con.execute(f"ATTACH $path AS {READ_ALIAS} (READ_ONLY)", {"path": str(path)})
    con.execute(f"USE {READ_ALIAS}")
    return con


def reader_cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor of a read connection, pointed at the index (cursors do not inherit USE)."""
    cursor = con.cursor()
    cursor.execute(f"USE {READ_ALIAS}")
    return cursor


def connect_writable(path: Path) -> duckdb.DuckDBPyConnection:
    """Open (or create) a database file for writing and make sure the schema exists: the
    schema files run unless the index records that it was brought up to date with them."""
    con = duckdb.connect(str(path), config=DUCKDB_CONFIG)
    digest = schema_digest()
    try:
        current = sql.query(con, "stored_digest", subject="schema")["digest"][0]
    except duckdb.CatalogException:  # a new file, or one from before schema digests
        current = None
    if current != digest:
        for named in sql.schema_queries():
            con.execute(named.sql)
        sql.execute(con, "record_digest", subject="schema", digest=digest)
    return con


@functools.cache
def schema_digest() -> str:
    """A digest of every schema file under queries/schema, in the order they run."""
    digest = hashlib.sha256()
    for named in sql.schema_queries():
        digest.update(named.sql.encode())
    return digest.hexdigest()


def snapshot_key(path: Path) -> tuple[str, int, int]:
    """Identity of the published snapshot; a publish replaces the file: new inode and mtime."""
    stat = Path(path).stat()
    return (str(path), stat.st_ino, stat.st_mtime_ns)
