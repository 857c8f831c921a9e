"""The catalogue of named SQL queries in queries/: load, check and run them.

Every statement the product runs lives in one file with a header::

    -- name: coverage
    -- description: counts and shares by the chosen dimensions
    -- params: dims, unit

and takes values only as ``$named`` parameters. Running a query with a parameter missing or
extra is an error, so a page cannot silently ignore a filter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dashboard.config import QUERIES_DIR

_HEADER = re.compile(r"^--\s*(name|description|params):\s*(.*?)\s*$")
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_STRING_OR_COMMENT = re.compile(r"'(?:[^']|'')*'|--[^\n]*")


class QueryError(ValueError):
    """A query file is malformed or was called with the wrong parameters."""


@dataclass(frozen=True)
class NamedQuery:
    """One SQL file of the catalogue."""

    name: str
    description: str
    params: frozenset[str]
    sql: str
    path: Path

    def check_params(self, given: dict[str, Any]) -> None:
        """Refuse a call whose parameters differ from the declared ones."""
        missing = self.params - given.keys()
        extra = given.keys() - self.params
        if missing or extra:
            raise QueryError(
                f"query {self.name!r}: missing params {sorted(missing)}, unexpected {sorted(extra)}"
            )


def parse_query_file(path: Path) -> NamedQuery:
    """Read one query file and check that its header declares exactly the params it uses."""
    text = path.read_text(encoding="utf-8")
    header: dict[str, str] = {}
    for line in text.splitlines():
        match = _HEADER.match(line)
        if match:
            header[match.group(1)] = match.group(2)
        elif line.strip() and not line.startswith("--"):
            break
    for key in ("name", "description", "params"):
        if not header.get(key):
            raise QueryError(f"{path}: header line '-- {key}:' is missing or empty")
    declared = (
        frozenset()
        if header["params"] == "none"
        else frozenset(p.strip() for p in header["params"].split(","))
    )
    used = frozenset(_PARAM.findall(_STRING_OR_COMMENT.sub("", text)))
    if declared != used:
        raise QueryError(
            f"{path}: header declares params {sorted(declared)} but the SQL uses {sorted(used)}"
        )
    return NamedQuery(header["name"], header["description"], declared, text, path)


@cache
def catalogue(root: Path = QUERIES_DIR) -> dict[str, NamedQuery]:
    """Every query under ``root``, by name; names must be unique."""
    queries: dict[str, NamedQuery] = {}
    for path in sorted(root.rglob("*.sql")):
        query = parse_query_file(path)
        if query.name in queries:
            raise QueryError(f"{path}: name {query.name!r} also used by {queries[query.name].path}")
        queries[query.name] = query
    return queries


def schema_queries(root: Path = QUERIES_DIR) -> list[NamedQuery]:
    """The DDL files under queries/schema, in file-name order."""
    return [parse_query_file(p) for p in sorted((root / "schema").glob("*.sql"))]


def query(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> pl.DataFrame:
    """Run a named read query and return its result as a polars frame."""
    named = catalogue()[name]
    named.check_params(params)
    return con.sql(named.sql, params=params).pl()


def execute(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> int:
    """Run a named write statement; returns the number of rows it changed (0 for DDL)."""
    named = catalogue()[name]
    named.check_params(params)
    result = con.execute(named.sql, params) if params else con.execute(named.sql)
    rows = result.fetchall()
    return int(rows[0][0]) if rows and rows[0] and isinstance(rows[0][0], int) else 0
