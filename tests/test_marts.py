"""Marts give exactly what the base queries give, and are used where they can be.

Every comparison runs the same call twice on the same index: once as the app does (marts when
a cube answers exactly) and once with the marts hidden (the base queries over every study), and
also checks which calls were served from a cube, so the comparison is not a tautology.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from dashboard import coverage as cov
from dashboard import gaps, sql
from dashboard.db import connect_readonly, connect_writable
from dashboard.filters import NO_FILTERS, Filters
from dashboard.ingest import writer
from dashboard.ingest.manifest import ingest_manifest
from dashboard.ingest.writer import build_marts, index_writer
from tests.conftest import TODAY

UNITS = ("patients", "studies", "images")
DIMS = [
    ("state",),
    ("modality",),
    ("sex", "age_band"),
    ("area_type",),
    ("facility_type",),
    ("state", "sex"),
    ("state", "condition"),
    ("modality", "condition"),
    ("modality", "manufacturer"),
    ("modality", "device_model"),
    ("month", "modality"),
    ("state", "sex", "age_band"),
    ("institution", "state"),
    ("institution", "state", "sex", "age_band"),
    ("body_part",),
    ("condition",),
    ("age_band", "area_type"),  # patients: no cube sums exactly
    ("body_part", "manufacturer"),  # no cube: always the base query
]


def filter_cases(con: duckdb.DuckDBPyConnection) -> dict[str, Filters]:
    """Filters of every kind the sidebar offers, with values present in the index."""
    first = con.sql("SELECT state, institution, modality FROM study_facts LIMIT 1").fetchall()[0]
    state, institution, modality = first
    second_state = con.sql(
        "SELECT state FROM study_facts WHERE state <> $s AND state IS NOT NULL LIMIT 1",
        params={"s": state},
    ).fetchall()[0][0]
    last = con.sql("SELECT max(study_date) FROM study").fetchall()[0][0]
    month_end = last.replace(day=1) - dt.timedelta(days=1)
    return {
        "none": NO_FILTERS,
        "state": Filters(states=(state,)),
        "states": Filters(states=(state, second_state)),
        "institution": Filters(institutions=(institution,)),
        "modality": Filters(modalities=(modality,)),
        "sexes": Filters(sexes=("F", "U")),
        "sex": Filters(sexes=("M",)),
        "area": Filters(area_types=("rural",)),
        "areas": Filters(area_types=("rural", "unknown")),
        "facility": Filters(facility_types=("district_hospital",)),
        "condition": Filters(conditions=("tuberculosis",)),
        "conditions": Filters(conditions=("tuberculosis", "normal")),
        "age": Filters(age_min=18, age_max=60),
        "to_month_end": Filters(date_to=month_end),
        "month": Filters(date_from=month_end.replace(day=1), date_to=month_end),
        "two_months": Filters(
            date_from=(month_end.replace(day=1) - dt.timedelta(days=1)).replace(day=1),
            date_to=month_end,
        ),
        "this_month": Filters(date_from=last.replace(day=1), date_to=last),
        "last_month_same_days": Filters(
            date_from=month_end.replace(day=1), date_to=month_end - dt.timedelta(days=3)
        ),
        "mid_month": Filters(date_from=dt.date(2025, 3, 15)),
        "state_and_institution": Filters(states=(state,), institutions=(institution,)),
        "state_to_month_end": Filters(states=(state,), date_to=month_end),
    }


def run_base(monkeypatch: pytest.MonkeyPatch, call, *args, **kwargs):
    with monkeypatch.context() as patch:
        patch.setattr(cov, "load_marts", lambda con: None)
        return call(*args, **kwargs)


def served(con: duckdb.DuckDBPyConnection, dims, unit: str, filters: Filters) -> bool:
    measure = unit
    return cov._serve(con, list(dims), filters, measure) is not None


def test_demo_coverage_from_marts_equals_base(
    demo_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    con = connect_readonly(demo_db)
    cases = filter_cases(con)
    used = 0
    calls = 0
    for i, dims in enumerate(DIMS):
        for j, unit in enumerate(UNITS):
            # every filter for every dims and unit would take a minute: each filter meets each
            # unit and a third of the dims (and every dims meets no filter and the institution)
            for k, filters in enumerate(cases.values()):
                if k > 1 and (i + j + k) % 3:
                    continue
                calls += 1
                got = cov.coverage(con, list(dims), unit, filters)
                want = run_base(monkeypatch, cov.coverage, con, list(dims), unit, filters)
                assert_frame_equal(got, want, check_exact=True)
                used += served(con, dims, unit, filters)
    # the cubes do the work for most calls, including filtered ones
    assert used > calls * 0.3
    assert served(con, ("state",), "patients", cases["states"])  # state is constant per patient
    assert served(con, ("state", "sex"), "patients", cases["institution"])
    assert served(con, ("state",), "patients", cases["to_month_end"])
    assert served(con, ("modality",), "studies", cases["two_months"])
    assert served(con, ("state",), "patients", cases["month"])
    assert served(con, ("state",), "patients", cases["this_month"])  # to the last study date
    assert not served(con, ("state",), "patients", cases["age"])
    assert not served(con, ("state",), "patients", cases["mid_month"])
    assert not served(con, ("state",), "patients", cases["two_months"])
    assert not served(con, ("state",), "patients", cases["conditions"])
    assert not served(con, ("age_band", "area_type"), "patients", NO_FILTERS)
    assert not served(con, ("body_part", "manufacturer"), "studies", NO_FILTERS)
    con.close()


NAMED = [
    ("index_totals", {"max_patient_key": 0}),
    ("partner_monthly", {}),
    ("dq_missing_by_institution", {}),
    *(
        ("accrual_by_institution", {"dims": dims, "unit": unit})
        for dims in (["state"], ["state", "sex"], ["modality"])
        for unit in UNITS
    ),
    *(
        ("monthly_accrual", {"dims": dims, "unit": unit})
        for dims in (["institution", "modality"], ["state", "sex", "age_band", "area_type"])
        for unit in UNITS
    ),
]


def test_demo_named_queries_from_marts_equal_base(demo_db: Path) -> None:
    con = connect_readonly(demo_db)
    shape = sql.query(con, "index_shape")
    cases = filter_cases(con)
    used = 0
    for i, (name, extra) in enumerate(NAMED):
        for k, filters in enumerate(cases.values()):
            if k > 1 and (i + k) % 2:
                continue
            params = dict(extra, **filters.params())
            if name == "index_totals":
                params["max_patient_key"] = int(shape["max_patient_key"][0])
            got = cov.read_query(con, name, **params)
            want = sql.query(con, name, **params)
            assert_frame_equal(got, want, check_exact=True)
            used += cov._SERVED[name](con, params) is not None
    assert used > len(NAMED) * len(cases) / 6
    assert_frame_equal(cov.read_query(con, "filter_options"), sql.query(con, "filter_options"))
    window = dict(
        cases["last_month_same_days"].params(), max_patient_key=int(shape["max_patient_key"][0])
    )
    assert cov._index_totals(con, window) is not None  # from mart_recent
    no_filter = NO_FILTERS.params()
    for name, extra in NAMED:
        params = dict(extra, **no_filter)
        if name == "index_totals":
            params["max_patient_key"] = int(shape["max_patient_key"][0])
        assert cov._SERVED[name](con, params) is not None, name
    con.close()


def test_plan_and_gap_table_unchanged_by_marts(
    demo_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    con = connect_readonly(demo_db)
    plan = gaps.plan_collection(con, ["state", "sex"], 2_000)
    table = gaps.gaps(con, ["state", "sex", "age_band"])
    with monkeypatch.context() as patch:
        patch.setattr(cov, "load_marts", lambda con: None)
        patch.setattr(cov, "read_query", lambda con, name, **p: sql.query(con, name, **p))
        patch.setattr(gaps, "read_query", lambda con, name, **p: sql.query(con, name, **p))
        base_plan = gaps.plan_collection(con, ["state", "sex"], 2_000)
        base_table = gaps.gaps(con, ["state", "sex", "age_band"])
    assert_frame_equal(plan.cells, base_plan.cells)
    assert_frame_equal(plan.partners, base_plan.partners)
    assert_frame_equal(table.table, base_table.table)
    con.close()


def test_index_without_marts_falls_back(demo_db: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.duckdb"
    shutil.copyfile(demo_db, old)
    con = duckdb.connect(str(old))
    con.execute("DROP TABLE mart_cell; DROP TABLE mart_cube; DROP TABLE mart_fact")
    con.close()
    with connect_readonly(old) as reader, connect_readonly(demo_db) as current:
        assert cov.load_marts(reader) is None
        assert cov.load_marts(current) is not None
        for dims, unit in ((("state",), "patients"), (("month", "modality"), "studies")):
            assert_frame_equal(
                cov.coverage(reader, list(dims), unit), cov.coverage(current, list(dims), unit)
            )
        params = {"dims": ["institution", "modality"], "unit": "patients", **NO_FILTERS.params()}
        assert_frame_equal(
            cov.read_query(reader, "monthly_accrual", **params),
            cov.read_query(current, "monthly_accrual", **params),
        )


def test_every_publish_rebuilds_the_marts(demo_db: Path, tmp_path: Path) -> None:
    """A write that changes the studies publishes marts of the new studies, and an index with
    an older mart layout gets the current one."""
    copy = tmp_path / "index.duckdb"
    shutil.copyfile(demo_db, copy)
    with index_writer(copy) as con:
        con.execute("ALTER TABLE mart_cell DROP COLUMN missing_sex")  # an older layout
        con.execute("DELETE FROM study WHERE sex = 'F' AND state = 'IN-KA'")
    with connect_readonly(copy) as reader:
        assert cov.load_marts(reader) is not None
        for dims, unit in ((("state", "sex"), "patients"), (("state",), "studies")):
            got = cov.coverage(reader, list(dims), unit)
            assert served(reader, dims, unit, NO_FILTERS)
            want = reader.sql(
                "SELECT state, sex, count(DISTINCT patient_key) AS patients, count(*) AS studies"
                " FROM study GROUP BY ALL"
            ).pl()
            if dims == ("state",):
                want = reader.sql("SELECT state, count(*) AS studies FROM study GROUP BY ALL").pl()
            expected = dict(
                zip(
                    want.select(list(dims)).rows(),
                    want[unit].to_list(),
                    strict=True,
                )
            )
            assert dict(zip(got.select(list(dims)).rows(), got["n"].to_list(), strict=True)) == (
                expected
            )
        pairs = cov.coverage(reader, ["state", "sex"], "studies").select("state", "sex").rows()
        assert ("IN-KA", "F") not in pairs
        assert cov.read_query(reader, "dq_missing_by_institution", **NO_FILTERS.params()).equals(
            sql.query(reader, "dq_missing_by_institution", **NO_FILTERS.params())
        )


# --------------------------------------------------------------------------- generated indexes

VALUES = {
    "institution": ["A", "B"],
    "state": ["IN-KA", "IN-MH", None],
    "sex": ["M", "F", "U"],
    "age_band": ["0-4", "60-64", None],
    "area_type": ["urban", "rural", "unknown"],
    "facility_type": ["district_hospital", None],
    "modality": ["CT", "MR"],
    "body_part": ["CHEST", None],
    "manufacturer": ["GE", None],
    "device_model": ["X1", None],
}
CONDITIONS = st.one_of(
    st.none(),
    st.lists(st.sampled_from(["tuberculosis", "normal", "stroke"]), max_size=2, unique=True),
    st.lists(st.sampled_from(["tuberculosis", "normal"]), min_size=2, max_size=2),
)


def _study(patient: int, day: int, conditions: list[str] | None, **values: str | None) -> dict:
    first = {k: v[0] for k, v in VALUES.items()}
    return (
        first
        | values
        | {
            "patient": patient,
            "day": day,
            "conditions": conditions,
            "n_images": 1,
            "demo": False,
        }
    )


# The cubes count a patient with a single study without a distinct (one cell, one month): single
# studies listing a condition twice, two conditions, none, an empty list, beside patients whose
# studies differ in state, sex, month and conditions.
SINGLE_AND_REPEATED = [
    _study(0, 1, ["tuberculosis", "tuberculosis"]),
    _study(1, 2, ["tuberculosis", "normal"]),
    _study(2, 3, None),
    _study(3, 4, []),
    _study(4, 5, ["normal"], institution="B"),
    _study(4, 40, ["stroke"], institution="B", state="IN-MH"),
    _study(5, 6, ["tuberculosis"], sex="F"),
    _study(5, 6, ["tuberculosis"], sex="U", modality="MR"),
    _study(5, 70, None, sex="F", state=None),
]
STUDY = st.fixed_dictionaries(
    {
        **{k: st.sampled_from(v) for k, v in VALUES.items()},
        "patient": st.integers(0, 5),
        "day": st.integers(0, 120),
        "conditions": CONDITIONS,
        "n_images": st.one_of(st.none(), st.integers(0, 5)),
        "demo": st.booleans(),
    }
)


def write_index(path: Path, studies: list[dict]) -> None:
    """A minimal index of the given studies, with marts built by the writer's own function."""
    con = connect_writable(path)
    rows = []
    for i, s in enumerate(studies):
        day = dt.date(2025, 1, 1) + dt.timedelta(days=s["day"])
        rows.append(
            {
                **{k: s[k] for k in VALUES},
                "institution_id": s["institution"],
                "study_uid": f"1.2.{i}",
                "patient_id": f"P{s['patient']}",
                "study_date": day,
                "study_month": day.replace(day=1),
                "age_years": None if s["age_band"] is None else 61.5,
                "conditions": s["conditions"],
                "n_images": s["n_images"],
                "source": "demo" if s["demo"] else "manifest",
            }
        )
    frame = pl.DataFrame(rows).drop("institution")
    keys = frame.select("institution_id", "patient_id").unique(maintain_order=True)
    keys = keys.with_row_index("patient_key").with_columns(pl.col("patient_key").cast(pl.UInt32))
    frame = frame.join(keys, on=["institution_id", "patient_id"])
    con.register("incoming", frame)
    con.execute("INSERT INTO patient BY NAME SELECT * FROM keys")
    con.execute("INSERT INTO study BY NAME SELECT *, now()::TIMESTAMP AS ingested_at FROM incoming")
    build_marts(con)
    con.close()


GENERATED_DIMS = [
    ("state",),
    ("sex", "age_band"),
    ("institution", "state", "sex"),
    ("modality", "condition"),
    ("month", "modality"),
    ("state", "condition"),
]
GENERATED_FILTERS = [
    NO_FILTERS,
    Filters(states=("IN-KA",)),
    Filters(states=("IN-KA", "IN-MH")),
    Filters(sexes=("F", "U")),
    Filters(conditions=("tuberculosis",)),
    Filters(date_to=dt.date(2025, 2, 28)),
    Filters(date_from=dt.date(2025, 2, 1), date_to=dt.date(2025, 3, 31)),
    Filters(modalities=("CT",), date_to=dt.date(2025, 3, 31)),
]


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(studies=st.lists(STUDY, min_size=1, max_size=40))
@example(studies=SINGLE_AND_REPEATED)
def test_generated_index_marts_equal_base(
    studies: list[dict], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Patients whose sex, state or age differ between studies, conditions listed or not,
    unknown values: the cubes still count exactly what the base queries count."""
    path = tmp_path_factory.mktemp("generated") / "index.duckdb"
    write_index(path, studies)
    con = connect_readonly(path)
    hidden = pytest.MonkeyPatch()
    try:
        for filters in GENERATED_FILTERS:
            for dims in GENERATED_DIMS:
                for unit in UNITS:
                    got = cov.coverage(con, list(dims), unit, filters)
                    hidden.setattr(cov, "load_marts", lambda con: None)
                    want = cov.coverage(con, list(dims), unit, filters)
                    hidden.undo()
                    assert_frame_equal(got, want, check_exact=True)
            for name, extra in NAMED:
                params = dict(extra, **filters.params())
                if name == "index_totals":
                    params["max_patient_key"] = int(
                        sql.query(con, "index_shape")["max_patient_key"][0]
                    )
                got = cov.read_query(con, name, **params)
                assert_frame_equal(got, sql.query(con, name, **params), check_exact=True)
    finally:
        hidden.undo()
        con.close()


# --------------------------------------------------------------------------- when marts exist


def _small_manifest(tmp_path: Path, studies: int, first: int = 0) -> Path:
    rows = "\n".join(
        f"1.9.{i},P{i % 7},TEST-KA-01,2025-0{1 + i % 9}-1{i % 10},CT,{'MF'[i % 2]},{i % 90},"
        f"Karnataka"
        for i in range(first, first + studies)
    )
    path = tmp_path / f"manifest-{first}.csv"
    path.write_text("study_uid,patient_id,site,study_date,modality,sex,age,state\n" + rows + "\n")
    return path


def test_marts_from_a_size_on_and_kept_after(
    registered_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small index has no marts (its pages run the base queries); one that reaches
    MART_MIN_STUDIES gets them, and keeps them up to date when it shrinks again."""
    monkeypatch.setattr(writer, "MART_MIN_STUDIES", 30)
    with index_writer(registered_db) as con:
        ingest_manifest(con, _small_manifest(tmp_path, 20), today=TODAY)
    with connect_readonly(registered_db) as reader:
        assert cov.load_marts(reader) is None
        small = cov.coverage(reader, ["sex"], "patients")
    assert small["n"].to_list() == [7, 7]  # P0–P6, each with studies of both sexes

    with index_writer(registered_db) as con:
        ingest_manifest(con, _small_manifest(tmp_path, 20, first=20), today=TODAY)
    with connect_readonly(registered_db) as reader:
        assert cov.load_marts(reader) is not None
        assert served(reader, ("sex",), "studies", NO_FILTERS)
        assert cov.coverage(reader, ["sex"], "studies")["n"].to_list() == [20, 20]

    with index_writer(registered_db) as con:
        con.execute("DELETE FROM study WHERE study_uid >= '1.9.2'")  # 1.9.0, 1.9.1, 1.9.10…
    with connect_readonly(registered_db) as reader:
        assert cov.load_marts(reader) is not None
        got = cov.coverage(reader, ["sex"], "studies")
        hidden = pytest.MonkeyPatch()
        hidden.setattr(cov, "load_marts", lambda con: None)
        want = cov.coverage(reader, ["sex"], "studies")
        hidden.undo()
    assert got["n"].sum() == 12  # 1.9.0, 1.9.1 and 1.9.10–1.9.19
    assert_frame_equal(got, want)
