"""Roles on the command line: --role suppresses what the role may not see, CSV is defused,
every read command is an audit-logged export.

Expected counts come from plain SQL on the index file; which cells hide is worked out by hand
from METRICS.md's rule (see tests/test_privacy.py for the rule's own tests).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from dashboard import audit
from dashboard.cli import app
from dashboard.db import connect_readonly
from dashboard.roles import LOCAL_ADMIN, Role, RoleError
from tests.conftest import REGISTRY_CSV
from tests.test_cli import MANIFEST
from tests.test_gaps import gaps_db

__all__ = ["gaps_db"]  # the fixture, imported for pytest

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

# Four partners with 3, 4, 15 and 30 patients: a partner of the first sees its 3; the 4 is
# small; the 15 is its complement (3 is known to that partner, so 4 alone would be the total
# minus what is shown); the 30 shows.
REGISTRY4 = (
    REGISTRY_CSV
    + "TEST-TN-01,Test Hospital Chennai (fictional),Tamil Nadu,Chennai,tertiary,public,"
    "2024-01-01\n"
    + "TEST-KA-02,Test Clinic Mysuru (fictional),Karnataka,Mysuru,private,private,2024-01-01\n"
)
PATIENTS = {"TEST-KA-01": 3, "TEST-OD-01": 4, "TEST-TN-01": 15, "TEST-KA-02": 30}
STATES = {
    "TEST-KA-01": "Karnataka",
    "TEST-OD-01": "Odisha",
    "TEST-TN-01": "Tamil Nadu",
    "TEST-KA-02": "Karnataka",
}
INJECTIONS = ['"=HYPERLINK(""http://x.test"",""y"")"', "+1+1", "-2+3", "@SUM(A1:A9)"]


def invoke(*args: object) -> tuple[int, str, str]:
    """Exit code, stdout and stderr (stderr's lines, wrapped by rich, joined again)."""
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"crashed: {result.exception!r}\n{result.output}")
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


def four_partner_manifest() -> str:
    rows = ["study_uid,patient_id,site,study_date,modality,sex,age,state,area_type,manufacturer"]
    uid = 0
    for site, patients in PATIENTS.items():
        for p in range(patients):
            uid += 1
            maker = INJECTIONS[uid % len(INJECTIONS)] if site == "TEST-KA-02" else "GE"
            rows.append(
                f"{uid},P{p},{site},2026-10-0{1 + p % 9},CT,{'MF'[p % 2]},40,{STATES[site]},"
                f"urban,{maker}"
            )
    return "\n".join(rows) + "\n"


@pytest.fixture
def small_db(tmp_path: Path, write_file) -> Path:
    """tests/test_cli.py's six-row manifest: every non-zero count is below 10."""
    db = tmp_path / "small.duckdb"
    assert invoke("ingest", "institutions", write_file("r.csv", REGISTRY_CSV), "--db", db)[0] == 0
    assert invoke("ingest", "manifest", write_file("m.csv", MANIFEST), "--db", db)[0] == 0
    return db


@pytest.fixture
def four_db(tmp_path: Path, write_file) -> Path:
    db = tmp_path / "four.duckdb"
    assert invoke("ingest", "institutions", write_file("r.csv", REGISTRY4), "--db", db)[0] == 0
    code, out, _ = invoke(
        "ingest", "manifest", write_file("m.csv", four_partner_manifest()), "--db", db, "--json"
    )
    assert code == 0 and json.loads(out)["quarantined"] == 0
    return db


def sql(db: Path, query: str) -> list[tuple]:
    with connect_readonly(db) as con:
        return con.sql(query).fetchall()


def patients_by(db: Path, column: str) -> dict:
    return dict(
        sql(
            db,
            f"SELECT {column}, count(DISTINCT (institution_id, patient_id)) FROM study "
            "GROUP BY ALL",
        )
    )


# --------------------------------------------------------------------------- the role model


def test_role_parsing() -> None:
    assert Role.parse("public") == Role("public")
    assert Role.parse(" Programme ") == Role("programme")
    assert Role.parse("partner:TEST-KA-01") == Role("partner", "TEST-KA-01")
    assert str(Role.parse("partner:TEST-KA-01")) == "partner:TEST-KA-01"
    assert Role.parse("admin") == LOCAL_ADMIN
    for bad, message in [
        ("root", "unknown role"),
        ("partner", "name the partner's institution"),
        ("partner:", "name the partner's institution"),
        ("public:X", "only a partner role"),
        ("partner:'; DROP TABLE study; --", "not an institution id"),
    ]:
        with pytest.raises(RoleError, match=message):
            Role.parse(bad)


def test_who_sees_everything() -> None:
    assert LOCAL_ADMIN.sees_all(export=True) and LOCAL_ADMIN.sees_all(export=False)
    programme = Role("programme")
    assert programme.sees_all(export=False) and not programme.sees_all(export=True)
    for role in (Role("public"), Role("partner", "TEST-KA-01")):
        assert not role.sees_all(export=False)


def test_partner_entitlement_per_cell() -> None:
    import polars as pl

    counts = pl.DataFrame({"institution": ["TEST-KA-01", "TEST-OD-01"], "n": [3, 4]})
    partner = Role("partner", "TEST-KA-01")
    assert partner.entitled(counts, ["institution"], export=True).to_list() == [True, False]
    by_state = pl.DataFrame({"state": ["IN-KA", "IN-OD"], "n": [3, 4]})
    assert partner.entitled(by_state, ["state"], export=False).to_list() == [False, False]
    # Rows restricted to its own institution are its own rows.
    own = partner.entitled(by_state, ["state"], export=False, scope=("TEST-KA-01",))
    assert own.to_list() == [True, True]
    both = partner.entitled(by_state, ["state"], export=False, scope=("TEST-KA-01", "TEST-OD-01"))
    assert both.to_list() == [False, False]
    assert Role("public").entitled(counts, ["institution"], export=False).to_list() == [
        False,
        False,
    ]


# --------------------------------------------------------------------------- suppression


def test_public_json_hides_every_small_count(small_db: Path) -> None:
    expected = patients_by(small_db, "state")
    assert all(0 < n < 10 for n in expected.values())  # the premise: everything is small
    code, out, err = invoke(
        "coverage", "--db", small_db, "--by", "state", "--format", "json", "--role", "public"
    )
    assert code == 0
    cells = json.loads(out)
    assert {c["state"] for c in cells} == set(expected)
    for cell in cells:
        assert cell == {
            "state": cell["state"],
            "n": None,
            "share": None,
            "suppressed": True,
            "suppression": "small",
        }
    assert "N and the count of unknowns are withheld" in err


def test_public_table_and_csv_show_below_k(small_db: Path) -> None:
    code, out, _ = invoke(
        "coverage", "--db", small_db, "--by", "modality", "--unit", "studies", "--format", "csv",
        "--role", "public",
    )  # fmt: skip
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["modality"], r["n"], r["share"]) for r in rows] == [
        ("CT", "< 10", ""),
        ("DX", "< 10", ""),
        ("MR", "< 10", ""),
    ]
    code, out, _ = invoke("coverage", "--db", small_db, "--by", "sex", "--role", "public")
    assert code == 0 and "< 10" in out
    assert not any(line.split("│")[2].strip().isdigit() for line in out.splitlines()[3:-1])


def test_admin_output_is_unchanged_and_programme_exports_are_suppressed(small_db: Path) -> None:
    _, admin, _ = invoke("coverage", "--db", small_db, "--by", "sex", "--format", "json")
    assert {c["sex"]: c["n"] for c in json.loads(admin)} == patients_by(small_db, "sex")
    assert all("suppressed" not in c for c in json.loads(admin))
    _, programme, _ = invoke(
        "coverage", "--db", small_db, "--by", "sex", "--format", "json", "--role", "programme"
    )
    _, public, _ = invoke(
        "coverage", "--db", small_db, "--by", "sex", "--format", "json", "--role", "public"
    )
    assert programme == public  # METRICS.md: every export outside the admin role
    assert all(c["n"] is None for c in json.loads(public))


def test_partner_sees_its_own_institution_in_full(four_db: Path) -> None:
    truth = patients_by(four_db, "institution_id")
    assert truth == PATIENTS
    total = sum(truth.values())
    code, out, _ = invoke(
        "coverage", "--db", four_db, "--by", "institution", "--format", "json",
        "--role", "partner:TEST-KA-01",
    )  # fmt: skip
    assert code == 0
    cells = {c["institution"]: c for c in json.loads(out)}
    assert cells["TEST-KA-01"] == {
        "institution": "TEST-KA-01",
        "n": 3,
        "share": pytest.approx(3 / total),
        "suppressed": False,
        "suppression": None,
    }
    assert cells["TEST-OD-01"]["n"] is None and cells["TEST-OD-01"]["suppression"] == "small"
    assert cells["TEST-TN-01"]["n"] is None and cells["TEST-TN-01"]["suppression"] == "secondary"
    assert cells["TEST-KA-02"]["n"] == 30 and cells["TEST-KA-02"]["share"] == pytest.approx(
        30 / total
    )
    # The same table for the other small partner: its own 4 in full, the 3 small and the 15
    # its complement (3 + 15 = 18 with the 15 at least 10 leaves the 3 anywhere in [1, 8]).
    _, out, _ = invoke(
        "coverage", "--db", four_db, "--by", "institution", "--format", "csv",
        "--role", "partner:TEST-OD-01",
    )  # fmt: skip
    rows = {r["institution"]: r["n"] for r in csv.DictReader(io.StringIO(out))}
    assert rows == {"TEST-KA-01": "< 10", "TEST-OD-01": "4", "TEST-TN-01": "withheld",
                    "TEST-KA-02": "30"}  # fmt: skip


def test_partner_sees_programme_aggregates_like_the_public(four_db: Path) -> None:
    args = ("coverage", "--db", four_db, "--by", "state", "--format", "json")
    _, partner, _ = invoke(*args, "--role", "partner:TEST-KA-01")
    _, public, _ = invoke(*args, "--role", "public")
    assert partner == public
    # Karnataka holds both the partner's own 3 and another partner's 30: not its own rows.
    cells = {c["state"]: c["n"] for c in json.loads(partner)}
    assert cells == {"IN-KA": 33, "IN-OD": None, "IN-TN": None}


def test_role_errors(four_db: Path) -> None:
    code, _, err = invoke("coverage", "--db", four_db, "--by", "state", "--role", "partner:NOPE")
    assert code == 1 and "no registered institution 'NOPE'" in err and "TEST-KA-01" in err
    code, _, err = invoke("coverage", "--db", four_db, "--by", "state", "--role", "root")
    assert code == 1 and "unknown role 'root'" in err


def test_gaps_by_sex_public_withholds_the_unknown_count(gaps_db: Path) -> None:
    truth = patients_by(gaps_db, "sex")
    assert truth == {"M": 407, "F": 100, "U": 5}
    code, out, err = invoke(
        "gaps", "--db", gaps_db, "--by", "sex", "--format", "json", "--role", "public"
    )
    assert code == 0
    rows = {r["sex"]: r for r in json.loads(out)}
    assert rows["F"]["n"] == 100 and rows["M"]["n"] == 407
    assert rows["F"]["share"] == pytest.approx(100 / 507) and not rows["F"]["suppressed"]
    # 5 of unknown sex = all − N: printed, it would be the hidden count itself.
    assert "N = 507 patients with known sex, withheld unknown left out;" in err
    assert "(1.0%)" not in err


def test_gaps_by_state_and_sex_public(gaps_db: Path) -> None:
    code, out, err = invoke(
        "gaps", "--db", gaps_db, "--by", "state,sex", "--format", "json", "--role", "public"
    )
    assert code == 0
    rows = json.loads(out)
    truth = {
        (s, x): n
        for s, x, n in sql(
            gaps_db,
            "SELECT state, sex, count(DISTINCT (institution_id, patient_id)) FROM study "
            "GROUP BY ALL",
        )
    }
    # Karnataka's 5 of unknown sex = Karnataka's total − its men and women, and N publishes
    # the known part: no pattern of cells hides it with N published, so N is withheld. Then
    # rows and columns remain: the 7 men of unknown state (a row too small to be published)
    # would be all men (407) − 300 − 100; the cheapest cycle through it runs through Odisha's
    # men and women and Karnataka's women (100 + 40 + 60 = 200 < Karnataka's 300 men).
    assert (truth[("IN-KA", "U")], truth[(None, "M")]) == (5, 7)
    pattern = {(r["state"], r["sex"]): (r["n"], r["suppression"]) for r in rows if r["n"] != 0}
    assert pattern == {
        ("IN-KA", "M"): (300, None),
        ("IN-KA", "F"): (None, "secondary"),
        ("IN-OD", "M"): (None, "secondary"),
        ("IN-OD", "F"): (None, "secondary"),
    }
    for row in rows:
        for column in ("share", "expected", "rr", "rr_low", "rr_high", "flag", "shortfall"):
            assert row[column] is None, (row, column)
    assert "N = withheld" in err and "withheld unknown" in err and "JSD withheld" in err


def test_plan_public_names_no_partner_and_partner_sees_itself(gaps_db: Path) -> None:
    args = ("plan", "--db", gaps_db, "--budget", 100, "--by", "sex", "--format", "json")
    code, out, err = invoke(*args, "--role", "public")
    assert code == 0
    rows = json.loads(out)
    assert {r["institution"] for r in rows} <= {"(other partners)", None}
    assert sum(r["allocated"] for r in rows) == 100
    code, out, _ = invoke(*args, "--role", "partner:TEST-KA-01")
    assert code == 0
    rows = json.loads(out)
    assert "TEST-KA-01" in {r["institution"] for r in rows}
    assert "TEST-OD-01" not in {r["institution"] for r in rows}
    _, admin, _ = invoke(*args)
    own = {
        (r["sex"], r["allocated"]) for r in json.loads(admin) if r["institution"] == "TEST-KA-01"
    }
    assert own == {(r["sex"], r["allocated"]) for r in rows if r["institution"] == "TEST-KA-01"}
    assert "JSD 0." in err  # rounded to two decimals for a role that does not see every cell


# --------------------------------------------------------------------------- CSV injection


def test_formula_payloads_come_out_defused(four_db: Path, tmp_path: Path, write_file) -> None:
    stored = {m for (m,) in sql(four_db, "SELECT DISTINCT manufacturer FROM study")}
    assert {'=HYPERLINK("http://x.test","y")', "+1+1", "-2+3", "@SUM(A1:A9)"} <= stored
    code, out, _ = invoke(
        "coverage", "--db", four_db, "--by", "manufacturer", "--unit", "studies",
        "--format", "csv",
    )  # fmt: skip
    assert code == 0
    cells = {r["manufacturer"]: r["n"] for r in csv.DictReader(io.StringIO(out))}
    assert set(cells) == {
        '\'=HYPERLINK("http://x.test","y")',
        "'+1+1",
        "'-2+3",
        "'@SUM(A1:A9)",
        "GE",
    }
    # A quarantined row keeps its text as submitted: its export is defused too.
    bad = write_file("bad.csv", "study_uid,patient_id,site,study_date,modality,sex,age,state\n"
                     "99,P9,TEST-KA-01,2026-10-01,CT,F,30,=cmd|' /C calc'!A0\n")  # fmt: skip
    invoke("ingest", "manifest", bad, "--db", four_db)
    _, out, _ = invoke("quarantine", "--db", four_db, "--format", "csv")
    row = next(csv.DictReader(io.StringIO(out)))
    assert row["state"] == "'=cmd|' /C calc'!A0"


# --------------------------------------------------------------------------- the audit log


def test_every_read_command_is_logged(gaps_db: Path) -> None:
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert invoke("coverage", "--db", gaps_db, "--by", "state", "--format", "csv",
                  "--role", "public")[0] == 0  # fmt: skip
    assert invoke("gaps", "--db", gaps_db, "--by", "sex", "--role", "partner:TEST-OD-01")[0] == 0
    assert invoke("plan", "--db", gaps_db, "--budget", 10, "--by", "sex")[0] == 0
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    log = audit.entries(gaps_db)
    assert log.height == 3
    assert log["what"].to_list() == [
        "coverage --by state --unit patients --format csv",
        "gaps --by sex --reference population --unit patients --format table",
        "plan --budget 10 --by sex --reference population --unit patients --format table",
    ]
    assert log["role"].to_list() == ["public", "partner:TEST-OD-01", "admin"]
    assert set(log["action"]) == {"export"} and set(log["channel"]) == {"cli"}
    assert set(log["actor"]) == {audit.current_user()}
    assert all(before <= t <= after for t in log["logged_at"])
    detail = json.loads(log["detail"][0])
    assert detail == {"rows": 3, "suppressed": 1}  # IN-KA, IN-OD and the 7 of unknown state
    assert audit.audit_path(gaps_db).name == "index.audit.duckdb"
    # The index itself is untouched: exports never republish it.
    assert sql(gaps_db, "SELECT count(*) FROM audit_log") == [(0,)]


def test_no_log_no_export(small_db: Path, tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv(audit.AUDIT_ENV, str(blocker / "audit.duckdb"))
    code, out, err = invoke("coverage", "--db", small_db, "--by", "sex", "--format", "csv")
    assert code == 1 and out == ""
    assert "cannot write the audit log" in err and "nothing was exported" in err


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    index = tmp_path / "x.duckdb"

    def write(worker: int) -> None:
        for i in range(10):
            audit.record(index, actor=f"w{worker}", role="public", action="export",
                         what=f"item {i}", channel="app")  # fmt: skip

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    process = subprocess.Popen(
        [sys.executable, "-c", "from pathlib import Path; from dashboard import audit\n"
         f"for i in range(10): audit.record(Path({str(index)!r}), actor='proc', role='admin', "
         "action='login', what='sign-in', channel='app')"],
        cwd=REPO,
    )  # fmt: skip
    for thread in threads:
        thread.join()
    assert process.wait(timeout=60) == 0
    log = audit.entries(index)
    assert log.height == 70
    assert log.group_by("actor").len().sort("actor").rows() == [
        ("proc", 10), *((f"w{w}", 10) for w in range(6))
    ]  # fmt: skip


def test_audit_refuses_unknown_actions(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record(tmp_path / "x.duckdb", actor="a", role="admin", action="peek", what="w",
                     channel="cli")  # fmt: skip
    assert audit.entries(tmp_path / "x.duckdb").height == 0


def test_quarantine_export_is_limited_to_own_rows_and_audited(tmp_path: Path, write_file) -> None:
    db = tmp_path / "q.duckdb"
    runner = CliRunner()
    runner.invoke(app, ["ingest", "institutions", str(write_file("r.csv", REGISTRY_CSV)),
                        "--db", str(db)])  # fmt: skip
    rows = (
        "study_uid,patient_id,site,study_date,modality,state\n"
        "1,P1,TEST-KA-01,2025-04-03,CT,Atlantis\n"
        "2,P2,TEST-OD-01,2025-04-03,CT,Narnia\n"
    )
    runner.invoke(app, ["ingest", "manifest", str(write_file("q.csv", rows)), "--db", str(db)])
    own = runner.invoke(app, ["quarantine", "--db", str(db), "--role", "partner:TEST-KA-01"])
    assert own.exit_code == 0
    assert "Atlantis" in own.stdout and "Narnia" not in own.stdout
    other = runner.invoke(app, ["quarantine", "--db", str(db), "--role", "partner:TEST-KA-01",
                                "--institution", "TEST-OD-01"])  # fmt: skip
    assert other.exit_code == 1 and "only its own rows" in other.stderr
    public = runner.invoke(app, ["quarantine", "--db", str(db), "--role", "public"])
    assert public.exit_code == 1 and "may not export submitted rows" in public.stderr
    everything = runner.invoke(app, ["quarantine", "--db", str(db)])
    assert "Atlantis" in everything.stdout and "Narnia" in everything.stdout
    # the two exports are in the audit log, with their roles; the refusals exported nothing
    exported = audit.entries(db).filter(pl.col("what").str.starts_with("quarantine"))
    assert sorted(exported["role"].to_list()) == ["admin", "partner:TEST-KA-01"]


# --------------------------------------------------------------------------- score and report


def test_score_public_hides_the_unknown_and_coarsens_the_distance(gaps_db: Path) -> None:
    assert patients_by(gaps_db, "sex") == {"M": 407, "F": 100, "U": 5}
    code, out, _ = invoke("score", "--db", gaps_db, "--by", "sex")
    assert code == 0
    admin = json.loads(out)
    assert (admin["n"], admin["unknown"]) == (507, 5) and "suppressed" not in admin
    code, out, err = invoke("score", "--db", gaps_db, "--by", "sex", "--role", "public")
    assert code == 0
    public = json.loads(out)
    # 5 of unknown sex = all − N: shown, it would be the hidden count; N itself is published.
    assert public["n"] == 507 and public["unknown"] is None and public["suppressed"] is True
    assert public["jsd"] == round(admin["jsd"], 2) != admin["jsd"]
    assert public["representativeness"] == round(admin["representativeness"], 2)
    assert "count of unknowns" in err
    code, out, _ = invoke(
        "score", "--db", gaps_db, "--by", "sex", "--role", "public", "--format", "csv"
    )
    assert code == 0
    (row,) = csv.DictReader(io.StringIO(out))
    assert (row["n"], row["unknown"]) == ("507", "withheld")


def test_score_public_with_n_withheld(gaps_db: Path) -> None:
    """state × sex: N itself would reveal Karnataka's 5 of unknown sex (see the gaps test)."""
    code, out, err = invoke("score", "--db", gaps_db, "--by", "state,sex", "--role", "public")
    assert code == 0
    assert json.loads(out) == {
        "jsd": None,
        "representativeness": None,
        "n": None,
        "unknown": None,
        "suppressed": True,
    }
    assert "N and the count of unknowns are withheld" in err


def test_score_partner_and_programme_are_exports(four_db: Path) -> None:
    """Every institution is small or a complement; the programme's output is an export too."""
    for role in ("programme", "partner:TEST-KA-01"):
        code, out, _ = invoke("score", "--db", four_db, "--by", "sex", "--role", role)
        assert code == 0
        score = json.loads(out)
        assert score["n"] == sum(PATIENTS.values())  # 52, well above k
        assert score["jsd"] == round(score["jsd"], 2)
    log = audit.entries(four_db)
    assert log["role"].to_list() == ["programme", "partner:TEST-KA-01"]
    assert (
        log["what"].to_list()
        == ["score --by sex --reference population --unit patients --format json"] * 2
    )


def test_report_for_every_role_is_written_and_audited(four_db: Path, tmp_path: Path) -> None:
    roles = ("public", "programme", "partner:TEST-KA-01")
    for role in roles:
        out = tmp_path / f"{role.replace(':', '_')}.html"
        code, _, err = invoke("report", "--db", four_db, "--out", out, "--role", role)
        assert code == 0, err
        made_for = out.read_text(encoding="utf-8").split('id="made-for">', 1)[1]
        assert made_for.startswith(("the programme role", "the public", "partner institution"))
        assert f"({role})" in made_for.split("</dd>", 1)[0]
    assert audit.entries(four_db)["role"].to_list()[-3:] == list(roles)
    code, _, err = invoke("report", "--db", four_db, "--out", tmp_path / "x.html", "--role", "x")
    assert code == 1 and "unknown role 'x'" in err
