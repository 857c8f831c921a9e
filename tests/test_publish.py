"""Publishing a new snapshot while readers hold the old one, and surviving a killed writer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dashboard.db import connect_readonly, connect_writable, schema_digest, snapshot_key
from dashboard.ingest.publish import publishing
from dashboard.ingest.writer import index_writer, reference_digest
from dashboard.reference import load_reference

REPO = Path(__file__).resolve().parents[1]


def count(db: Path) -> int:
    with connect_readonly(db) as con:
        return con.sql("SELECT count(*) FROM institution").fetchall()[0][0]


def test_writer_publishes_while_a_reader_is_open(registered_db: Path) -> None:
    reader = connect_readonly(registered_db)
    old_key = snapshot_key(registered_db)
    with index_writer(registered_db) as con:
        con.execute(
            "INSERT INTO institution (institution_id, name) VALUES ('TEST-TN-01', 'T (fictional)')"
        )
    # the open reader still sees its snapshot, undisturbed; a new one sees the new data
    assert reader.sql("SELECT count(*) FROM institution").fetchall() == [(2,)]
    assert count(registered_db) == 3
    assert snapshot_key(registered_db) != old_key
    reader.close()


def test_exception_leaves_live_file_and_no_leftovers(registered_db: Path) -> None:
    before = registered_db.read_bytes()
    try:
        with publishing(registered_db) as con:
            con.execute("DELETE FROM institution")
            raise RuntimeError("crash")
    except RuntimeError:
        pass
    assert registered_db.read_bytes() == before
    assert sorted(p.name for p in registered_db.parent.iterdir() if p.name.startswith(".")) == []


def test_killed_ingest_leaves_index_unchanged(registered_db: Path, tmp_path: Path) -> None:
    """SIGKILL a real ingest of a large manifest half-way: the live index must be as before."""
    rows = "\n".join(
        f"9.{i},P{i % 5000},TEST-KA-01,2025-0{1 + i % 9}-1{i % 10},CT,M,{i % 90},Karnataka,,1"
        for i in range(400_000)
    )
    manifest = tmp_path / "big.csv"
    manifest.write_text(
        "study_uid,patient_id,site,study_date,modality,sex,age,state,icd10,n_images\n" + rows
    )
    before = registered_db.read_bytes()
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dashboard",
            "ingest",
            "manifest",
            str(manifest),
            "--db",
            str(registered_db),
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".index.duckdb.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # let it get into the file
    assert proc.poll() is None, "the ingest finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert registered_db.read_bytes() == before
    assert count(registered_db) == 2


def test_reference_tables_are_loaded_with_the_index(registered_db: Path) -> None:
    with connect_readonly(registered_db) as con:
        counts = con.sql(
            "SELECT (SELECT count(*) FROM ref_state), (SELECT count(*) FROM ref_state_alias), "
            "(SELECT count(*) FROM ref_age_sex), (SELECT count(*) FROM ref_condition), "
            "(SELECT count(*) FROM ref_state_boundary), "
            "(SELECT sum(census2011_total) FROM ref_state), "
            "(SELECT count(*) FROM ref_state_boundary b JOIN ref_state s USING (iso_code))"
        ).fetchall()[0]
        assam = con.sql(
            "SELECT geometry_geojson FROM ref_state_boundary WHERE iso_code = 'IN-AS'"
        ).fetchall()[0][0]
    # 36 units, 1,332 age-sex rows, 15 conditions, Census 2011 India total, boundaries joined
    assert counts[0] == 36 and counts[2] == 1332 and counts[3] == 15
    assert counts[1] == load_reference().aliases.height  # 221 aliases + names + codes, by key
    assert counts[4] == 36 and counts[6] == 36
    assert counts[5] == 1_210_854_977
    assert json.loads(assam)["type"] in {"Polygon", "MultiPolygon"}


def test_reference_tables_reload_only_when_their_sources_change(registered_db: Path) -> None:
    """A publish leaves reference tables loaded from the same files and code as they are; an
    index loaded by another version (another digest, or none) gets them reloaded."""

    def states() -> int:
        with connect_readonly(registered_db) as con:
            return con.sql("SELECT count(*) FROM ref_state").fetchall()[0][0]

    with index_writer(registered_db) as con:
        con.execute("DELETE FROM ref_state WHERE iso_code = 'IN-KA'")
    assert states() == 35  # same digest: not reloaded by this publish
    with index_writer(registered_db) as con:
        con.execute(
            "UPDATE index_digest SET digest = 'loaded by an older version' "
            "WHERE subject = 'reference'"
        )
    assert states() == 35  # the digest is read when the publish starts
    with index_writer(registered_db):
        pass
    assert states() == 36
    with connect_readonly(registered_db) as con:
        stored = con.sql("SELECT digest FROM index_digest WHERE subject = 'reference'").fetchall()
        assert stored == [(reference_digest(),)]


def test_schema_runs_again_only_for_other_schema_files(registered_db: Path) -> None:
    """A writer opening an index made with the same schema files does not run them again (a
    view dropped by hand stays dropped); one recorded with other files gets them run."""

    def has_view() -> bool:
        with connect_readonly(registered_db) as con:
            return bool(
                con.sql(
                    "SELECT count(*) FROM duckdb_views() WHERE view_name = 'study_facts'"
                ).fetchall()[0][0]
            )

    con = connect_writable(registered_db)
    con.execute("DROP VIEW study_facts")
    con.close()
    connect_writable(registered_db).close()
    assert not has_view()
    con = connect_writable(registered_db)
    con.execute(
        "UPDATE index_digest SET digest = 'made by an older version' WHERE subject = 'schema'"
    )
    con.close()
    con = connect_writable(registered_db)
    stored = con.sql("SELECT digest FROM index_digest WHERE subject = 'schema'").fetchall()
    assert stored == [(schema_digest(),)]
    con.close()
    assert has_view()
