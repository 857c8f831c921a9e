"""A publish rebuilds only the marts of the institutions whose studies changed, and the result
is the same, row for row, as rebuilding every mart from scratch.

Each test makes a sequence of writes through the real writer (index_writer), records what each
publish rebuilt, and after every write compares every mart table of the published index with
those of a copy whose marts were rebuilt whole (refresh_marts), sorted by every column.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from dashboard import coverage as cov
from dashboard.db import connect_readonly, connect_writable
from dashboard.ingest import writer
from dashboard.ingest.manifest import ingest_manifest
from dashboard.ingest.writer import MartUpdate, index_writer, refresh_marts
from tests.conftest import TODAY

MART_TABLES = ("mart_cell", "mart_cube", "mart_fact", "mart_recent", "mart_institution")


def mart_tables(path: Path) -> dict[str, pl.DataFrame]:
    """Every mart table of the index at ``path``, sorted by all its columns, without the rows
    of the month part (kept for incremental updates only: a full build leaves it out; a stale
    part row would show in the cube summed from it)."""
    with connect_readonly(path) as con:
        frames = {}
        for table in MART_TABLES:
            frame = con.sql(f"SELECT * FROM {table}").pl()
            if table == "mart_cell":
                frame = frame.filter(pl.col("cube") != writer.part_name("cells", writer.PART_MONTH))
            frames[table] = frame.sort(frame.columns, nulls_last=True)
        return frames


def assert_same_as_full_rebuild(path: Path, tmp_path: Path) -> None:
    """The marts at ``path`` equal those of a copy whose marts were rebuilt from scratch."""
    copy = tmp_path / "full.duckdb"
    shutil.copyfile(path, copy)
    update = refresh_marts(copy)
    assert update.full
    got, want = mart_tables(path), mart_tables(copy)
    for table in MART_TABLES:
        try:
            assert_frame_equal(got[table], want[table], check_exact=True)
        except AssertionError as error:
            raise AssertionError(f"{table} differs from a full rebuild: {error}") from error
    assert got["mart_cell"].height > 0
    copy.unlink()


@pytest.fixture(autouse=True)
def marts_at_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sequences below write small indexes too: give them marts whatever their size."""
    monkeypatch.setattr(writer, "MART_MIN_STUDIES", 0)


@pytest.fixture
def updates(monkeypatch: pytest.MonkeyPatch) -> list[MartUpdate]:
    """What each publish through index_writer did to the marts, in order (the full rebuilds
    of the comparison copies are not listed)."""
    seen: list[MartUpdate] = []
    build = writer.build_marts

    def spy(con: duckdb.DuckDBPyConnection, **kwargs: bool) -> MartUpdate:
        update = build(con, **kwargs)
        if not kwargs.get("full"):
            seen.append(update)
        return update

    monkeypatch.setattr(writer, "build_marts", spy)
    return seen


@pytest.fixture
def index(demo_db: Path, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "index.duckdb"
    shutil.copyfile(demo_db, path)
    yield path


def institutions(path: Path) -> list[str]:
    with connect_readonly(path) as con:
        rows = con.sql("SELECT DISTINCT institution_id FROM study ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def rows_of(path: Path, institution: str) -> pl.DataFrame:
    """The mart_cell rows of one institution (to check an untouched one is left as it was),
    without the month part (built for every institution by the first incremental update)."""
    with connect_readonly(path) as con:
        frame = con.sql(
            "SELECT * FROM mart_cell WHERE institution = $i AND cube <> $part",
            params={"i": institution, "part": writer.part_name("cells", writer.PART_MONTH)},
        ).pl()
    return frame.sort(frame.columns, nulls_last=True)


def publish(path: Path, statement: Callable[[duckdb.DuckDBPyConnection], object]) -> None:
    with index_writer(path) as con:
        statement(con)


def test_demo_sequence_of_writes_equals_full_rebuild(
    index: Path, tmp_path: Path, updates: list[MartUpdate]
) -> None:
    first, second, third, *_ = institutions(index)
    untouched = rows_of(index, third)

    # 1. a new institution with two patients, one of them seen in two months
    def new_institution(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            "INSERT INTO patient SELECT max(patient_key) + 1, 'NEW-01', 'N1' FROM patient;"
            "INSERT INTO patient SELECT max(patient_key) + 1, 'NEW-01', 'N2' FROM patient;"
        )
        con.execute(
            """
            INSERT INTO study BY NAME
            SELECT 'NEW-01' AS institution_id, 'u.' || i AS study_uid, p.patient_id,
                   p.patient_key, d AS study_date, date_trunc('month', d)::DATE AS study_month,
                   'CR' AS modality, 'F' AS sex, 34.0 AS age_years, '30-34' AS age_band,
                   'IN-KA' AS state, 'rural' AS area_type, ['tuberculosis'] AS conditions,
                   'CHEST' AS body_part, 'phc' AS facility_type, 3 AS n_images,
                   'manifest' AS source, now()::TIMESTAMP AS ingested_at
            FROM (VALUES (1, 'N1', DATE '2026-09-03'), (2, 'N1', DATE '2026-10-14'),
                         (3, 'N2', DATE '2026-10-14')) AS v(i, pid, d)
            JOIN patient AS p ON p.institution_id = 'NEW-01' AND p.patient_id = v.pid
            """
        )

    publish(index, new_institution)
    assert (updates[-1].full, updates[-1].changed) == (False, ("NEW-01",))
    assert_same_as_full_rebuild(index, tmp_path)

    # 2. studies of one institution updated (modality, images, diagnosis)
    publish(
        index,
        lambda con: con.execute(
            "UPDATE study SET modality = 'MR', n_images = coalesce(n_images, 0) + 1,"
            " conditions = ['stroke'] WHERE institution_id = $i AND study_uid IN"
            " (SELECT study_uid FROM study WHERE institution_id = $i ORDER BY 1 LIMIT 40)",
            {"i": first},
        ),
    )
    assert updates[-1].changed == (first,)
    assert_same_as_full_rebuild(index, tmp_path)

    # 3. nothing changed (a re-ingest of the same rows): nothing rebuilt
    publish(index, lambda con: None)
    assert (updates[-1].full, updates[-1].changed) == (False, ())
    assert_same_as_full_rebuild(index, tmp_path)

    # 4. patients change sex, state, age band and area between studies (two institutions)
    def patients_change(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            """
            UPDATE study SET sex = CASE sex WHEN 'M' THEN 'F' ELSE 'M' END, state = 'IN-OD',
                   age_band = NULL, age_years = NULL, area_type = 'unknown'
            WHERE institution_id IN ($a, $b) AND study_uid IN (
                SELECT arg_max(study_uid, study_date) FROM study
                WHERE institution_id IN ($a, $b)
                GROUP BY patient_key HAVING count(*) > 1
            )
            """,
            {"a": first, "b": second},
        )

    publish(index, patients_change)
    assert updates[-1].changed == tuple(sorted((first, second)))
    assert_same_as_full_rebuild(index, tmp_path)

    # 5. studies removed, and a study in a new month (the recent window moves)
    def remove_and_move(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("DELETE FROM study WHERE institution_id = 'NEW-01' AND study_uid = 'u.3'")
        con.execute(
            "UPDATE study SET study_date = DATE '2026-12-01', study_month = DATE '2026-12-01'"
            " WHERE institution_id = 'NEW-01' AND study_uid = 'u.2'"
        )

    publish(index, remove_and_move)
    assert updates[-1].changed == ("NEW-01",)
    assert_same_as_full_rebuild(index, tmp_path)

    # 6. every study of an institution removed
    publish(index, lambda con: con.execute("DELETE FROM study WHERE institution_id = 'NEW-01'"))
    assert updates[-1].changed == ("NEW-01",)
    assert_same_as_full_rebuild(index, tmp_path)
    with connect_readonly(index) as con:
        left = con.sql("SELECT count(*) FROM mart_cell WHERE institution = 'NEW-01'").fetchall()[0]
    assert left == (0,)

    # the untouched institution's rows were never rewritten differently
    assert_frame_equal(rows_of(index, third), untouched)
    assert not any(third in u.changed for u in updates)
    assert not any(u.full for u in updates)
    # and the reader still answers from the cubes, as the base queries do
    with connect_readonly(index) as con:
        got = cov.coverage(con, ["state", "sex"], "patients")
        want = con.sql(
            "SELECT state, sex, count(DISTINCT patient_key) AS n FROM study GROUP BY ALL"
        ).pl()
        assert cov._serve(con, ["state", "sex"], cov.NO_FILTERS, "patients") is not None
    assert dict(zip(got.select("state", "sex").rows(), got["n"], strict=True)) == dict(
        zip(want.select("state", "sex").rows(), want["n"], strict=True)
    )


def test_a_changed_layout_rebuilds_everything(
    index: Path, tmp_path: Path, updates: list[MartUpdate]
) -> None:
    publish(index, lambda con: con.execute("ALTER TABLE mart_cell DROP COLUMN missing_sex"))
    assert updates[-1].full
    assert_same_as_full_rebuild(index, tmp_path)
    publish(index, lambda con: con.execute("DROP TABLE mart_institution"))  # marts of old
    assert updates[-1].full
    assert_same_as_full_rebuild(index, tmp_path)


def test_a_changed_cube_list_rebuilds_everything(
    index: Path, tmp_path: Path, updates: list[MartUpdate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new release that adds a cube must build it for every institution, not only for the
    one whose studies changed in the first publish after the upgrade."""
    first = institutions(index)[0]
    cube = ("institution", "body_part", "sex")
    monkeypatch.setattr(writer, "CELL_CUBES", (*writer.CELL_CUBES, cube))
    publish(
        index,
        lambda con: con.execute(
            "UPDATE study SET n_images = n_images + 1 WHERE institution_id = $i", {"i": first}
        ),
    )
    assert updates[-1].full
    with connect_readonly(index) as con:
        built = con.sql(
            "SELECT count(DISTINCT institution) FROM mart_cell WHERE cube = $c",
            params={"c": writer.cube_name("cells", cube)},
        ).fetchall()[0][0]
    assert built == len(institutions(index))
    assert_same_as_full_rebuild(index, tmp_path)


REGISTRY = """institution_id,name,state,city,facility_type,sector,joined_date
TEST-KA-01,Test College Bengaluru (fictional),Karnataka,Bengaluru,medical college,public,2023-01-01
TEST-OD-01,Test District Hospital (fictional),Orissa,Cuttack,district hospital,public,2023-06-01
"""
HEADER = "StudyInstanceUID,PatientID,site,StudyDate,Modality,PatientSex,PatientAge,state,icd10"


def test_manifest_reingest_rebuilds_only_the_submitting_institution(
    registered_db: Path, tmp_path: Path, updates: list[MartUpdate]
) -> None:
    """Through the real ingestion: a new file, the same file again, then changed rows."""
    rows = [
        "1.1,P1,TEST-KA-01,2025-04-03,CT,M,45,Karnataka,C50.9",
        "1.2,P1,TEST-KA-01,2025-05-03,CR,M,45,Karnataka,A15.0",
        "1.3,P2,TEST-KA-01,2025-04-05,MR,F,30,Orissa,",
        "2.1,P9,TEST-OD-01,2025-04-05,MG,F,51,IN-OD,C50.9",
    ]
    path = tmp_path / "m.csv"

    def ingest(lines: list[str]) -> None:
        path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
        with index_writer(registered_db) as con:
            ingest_manifest(con, path, today=TODAY)

    ingest(rows)
    assert updates[-1].full  # every institution is new
    assert_same_as_full_rebuild(registered_db, tmp_path)
    ingest(rows)
    assert updates[-1].changed == ()
    ingest([rows[0], "1.2,P1,TEST-KA-01,2025-05-03,CR,F,46,Orissa,J18.9", rows[3]])
    assert (updates[-1].full, updates[-1].changed) == (False, ("TEST-KA-01",))
    assert_same_as_full_rebuild(registered_db, tmp_path)


# --------------------------------------------------------------------------- generated indexes

STUDY = st.fixed_dictionaries(
    {
        "institution": st.sampled_from(["A", "B", "C"]),
        "patient": st.integers(0, 3),
        "state": st.sampled_from(["IN-KA", "IN-MH", None]),
        "sex": st.sampled_from(["M", "F", "U"]),
        "age_band": st.sampled_from(["0-4", "60-64", None]),
        "area_type": st.sampled_from(["urban", "rural", "unknown"]),
        "modality": st.sampled_from(["CT", "MR"]),
        "day": st.integers(0, 90),
        "conditions": st.one_of(st.none(), st.lists(st.sampled_from(["tb", "normal"]), max_size=2)),
        "n_images": st.one_of(st.none(), st.integers(0, 3)),
    }
)


def insert_studies(con: duckdb.DuckDBPyConnection, studies: list[dict], batch: int) -> None:
    """Upsert generated studies (uid = batch position) as a write would."""
    rows = []
    for i, s in enumerate(studies):
        day = dt.date(2025, 1, 1) + dt.timedelta(days=s["day"])
        rows.append(
            {
                "institution_id": s["institution"],
                "study_uid": f"{batch}.{i % 7}",  # later batches replace some earlier studies
                "patient_id": f"P{s['patient']}",
                "study_date": day,
                "study_month": day.replace(day=1),
                "modality": s["modality"],
                "sex": s["sex"],
                "age_years": None if s["age_band"] is None else 61.5,
                "age_band": s["age_band"],
                "state": s["state"],
                "area_type": s["area_type"],
                "conditions": s["conditions"],
                "n_images": s["n_images"],
                "source": "manifest",
            }
        )
    frame = pl.DataFrame(rows, schema_overrides={"conditions": pl.List(pl.String)})
    frame = frame.unique(["institution_id", "study_uid"], keep="last", maintain_order=True)
    con.register("incoming", frame)
    con.execute(
        """
        INSERT INTO patient
        SELECT coalesce((SELECT max(patient_key) FROM patient), 0) + row_number() OVER (),
               institution_id, patient_id
        FROM (SELECT DISTINCT institution_id, patient_id FROM incoming
              WHERE (institution_id, patient_id) NOT IN
                    (SELECT (institution_id, patient_id) FROM patient));
        DELETE FROM study WHERE (institution_id, study_uid) IN
            (SELECT (institution_id, study_uid) FROM incoming);
        INSERT INTO study BY NAME
        SELECT i.*, p.patient_key, now()::TIMESTAMP AS ingested_at
        FROM incoming AS i JOIN patient AS p USING (institution_id, patient_id);
        """
    )
    con.unregister("incoming")


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=st.lists(st.lists(STUDY, min_size=1, max_size=12), min_size=2, max_size=4))
def test_generated_writes_equal_full_rebuild(
    batches: list[list[dict]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Random batches of studies, each replacing some earlier ones (patients changing sex,
    state, age or area between studies, conditions listed twice, unknowns): after each batch
    the incrementally updated marts equal a full rebuild."""
    tmp = tmp_path_factory.mktemp("incremental")
    path = tmp / "index.duckdb"
    connect_writable(path).close()
    for n, batch in enumerate(batches):
        with index_writer(path) as con:
            insert_studies(con, batch, n % 2)
        assert_same_as_full_rebuild(path, tmp)
