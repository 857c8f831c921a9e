"""The users file: known answers, the unknown-users policy, and clear errors for bad rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard import users
from dashboard.config import DEFAULT_USERS, REPO_ROOT, load_settings
from dashboard.db import connect_readonly
from dashboard.roles import Role
from dashboard.users import UsersFileError

GOOD = """email,role,institution
# the national office
admin@nmip.example,admin,
 Office@NMIP.example ,Programme,

lead@aiims.example,partner, AIIMS-DEL
viewer@else.example,public,
"""


def test_load_known_answers(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text(GOOD, encoding="utf-8")
    assert users.load(path) == {
        "admin@nmip.example": Role("admin"),
        "office@nmip.example": Role("programme"),
        "lead@aiims.example": Role("partner", "AIIMS-DEL"),
        "viewer@else.example": Role("public"),
    }


def test_columns_in_any_order_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_bytes(
        b"\xef\xbb\xbfRole,Institution,Email\r\npartner,KMC-MNP,a@kmc.example\r\n"
        b"admin,,b@nmip.example\r\n"
    )
    assert users.load(path) == {
        "a@kmc.example": Role("partner", "KMC-MNP"),
        "b@nmip.example": Role("admin"),
    }


def test_resolve_trims_and_lower_cases_and_unknown_is_none() -> None:
    known = users.parse(GOOD)
    assert users.resolve(known, "  OFFICE@nmip.EXAMPLE ") == Role("programme")
    assert users.resolve(known, "Lead@AIIMS.example") == Role("partner", "AIIMS-DEL")
    assert users.resolve(known, "nobody@nmip.example") is None
    assert users.resolve(known, "") is None
    assert users.resolve(known, None) is None


def test_role_for_applies_the_unknown_users_policy() -> None:
    known = users.parse(GOOD)
    assert users.role_for(known, "lead@aiims.example", "refuse") == Role("partner", "AIIMS-DEL")
    assert users.role_for(known, "nobody@x.example", "public") == Role("public")
    assert users.role_for(known, "nobody@x.example", "refuse") is None
    assert users.role_for(known, None, "public") == Role("public")
    with pytest.raises(ValueError, match="use public or refuse"):
        users.role_for(known, "a@b.example", "admin")


def test_unregistered_partners() -> None:
    known = users.parse(GOOD + "x@kmc.example,partner,KMC-MNP\n")
    assert users.unregistered(known, ["AIIMS-DEL"]) == {"x@kmc.example": "KMC-MNP"}
    assert users.unregistered(known, ["AIIMS-DEL", "KMC-MNP"]) == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "a@b.example,admn,\n",
            "users.csv, line 2, column role: 'admn' is not a role; "
            "use admin, programme, partner, public",
        ),
        (
            "a@b.example,partner,\n",
            "users.csv, line 2, column institution: '' is empty: a partner row names its "
            "institution id",
        ),
        (
            "a@b.example,programme,AIIMS-DEL\n",
            "users.csv, line 2, column institution: 'AIIMS-DEL' is set on a programme row; "
            "only partner rows take an institution",
        ),
        ("not-an-email,admin,\n", "users.csv, line 2, column email: 'not-an-email' is not an"),
        (
            "a@b.example,admin,\n\nA@B.example ,public,\n",
            "users.csv, line 4, column email: 'A@B.example' is listed twice (also on line 2)",
        ),
        (
            "a@b.example,partner,bad id!\n",
            "users.csv, line 2, column institution: 'bad id!' is refused",
        ),
        (
            "a@b.example,admin,,extra\n",
            "users.csv, line 2, column (extra): 'extra' is beyond the 3 columns",
        ),
    ],
)
def test_bad_rows_name_file_line_column_and_value(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "users.csv"
    path.write_text("email,role,institution\n" + body, encoding="utf-8")
    with pytest.raises(UsersFileError) as caught:
        users.load(path)
    assert str(caught.value).startswith(str(tmp_path / message.split(",")[0])), caught.value
    assert message.split(", ", 1)[1] in str(caught.value)


def test_a_bad_row_refuses_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text(GOOD + "late@x.example,superuser,\n", encoding="utf-8")
    with pytest.raises(UsersFileError, match="line 8, column role: 'superuser'"):
        users.load(path)


def test_bad_header_missing_file_empty_file_and_encoding(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text("mail,role\na@b.example,admin\n", encoding="utf-8")
    with pytest.raises(UsersFileError, match="line 1: the header is 'mail,role'; it must be"):
        users.load(path)
    with pytest.raises(UsersFileError, match=r"missing\.csv does not exist: create it"):
        users.load(tmp_path / "missing.csv")
    path.write_text("\n# nobody yet\n", encoding="utf-8")
    with pytest.raises(UsersFileError, match="is empty: it needs the header line"):
        users.load(path)
    path.write_bytes(b"email,role,institution\nj\xe9r\xf4me@b.example,admin,\n")
    with pytest.raises(UsersFileError, match=r"line 2: byte b'\\xe9' is not UTF-8"):
        users.load(path)


def test_header_only_file_has_no_users(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text("email,role,institution\n", encoding="utf-8")
    assert users.load(path) == {}


def test_settings_default_and_environment(monkeypatch) -> None:
    monkeypatch.delenv("DIVERSITY_USERS", raising=False)
    monkeypatch.delenv("DIVERSITY_UNKNOWN_USERS", raising=False)
    settings = load_settings()
    assert settings.users_path == DEFAULT_USERS == REPO_ROOT / "var" / "users.csv"
    assert settings.unknown_users == "public"
    monkeypatch.setenv("DIVERSITY_USERS", "/etc/diversity/users.csv")
    monkeypatch.setenv("DIVERSITY_UNKNOWN_USERS", " Refuse ")
    settings = load_settings()
    assert settings.users_path == Path("/etc/diversity/users.csv")
    assert settings.unknown_users == "refuse"
    monkeypatch.setenv("DIVERSITY_UNKNOWN_USERS", "admin")
    with pytest.raises(ValueError, match="DIVERSITY_UNKNOWN_USERS='admin': use public or refuse"):
        load_settings()


def test_check_command(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("DIVERSITY_DB", str(tmp_path / "no-index.duckdb"))
    path = tmp_path / "users.csv"
    path.write_text(GOOD, encoding="utf-8")
    assert users.main([str(path)]) == 0
    assert capsys.readouterr().out == (
        f"{path}: 4 users (1 admin, 1 programme, 1 partner, 1 public)\n"
    )
    path.write_text("email,role,institution\na@b.example,root,\n", encoding="utf-8")
    assert users.main([str(path)]) == 1
    assert "line 2, column role: 'root' is not a role" in capsys.readouterr().err


def test_check_command_warns_about_unregistered_institutions(
    tmp_path: Path, capsys, monkeypatch, registered_db: Path
) -> None:
    monkeypatch.setenv("DIVERSITY_DB", str(registered_db))
    with connect_readonly(registered_db) as con:
        known = con.sql("SELECT min(institution_id) FROM institution").fetchall()[0][0]
    path = tmp_path / "users.csv"
    path.write_text(
        f"email,role,institution\na@x.example,partner,{known}\nb@y.example,partner,NOPE-01\n",
        encoding="utf-8",
    )
    assert users.main([str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        f"warning: b@y.example: institution NOPE-01 is not registered in {registered_db}"
    ]
