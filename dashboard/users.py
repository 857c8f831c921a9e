"""The users file: who may log in to the app as which role (README, "Login and roles").

The admin keeps a CSV file (``$DIVERSITY_USERS``, default ``var/users.csv``)::

    email,role,institution
    lead@aiims.example,partner,AIIMS-DEL
    office@nmip.example,programme,
    admin@nmip.example,admin,

``role`` is ``admin``, ``programme``, ``partner`` or ``public``; ``institution`` is the
partner's institution id (as in the index's registry) and must be empty on other rows. Emails
are compared trimmed and lower-cased. Blank lines and lines starting with ``#`` are skipped.
Any problem (bad role, a partner without an institution, the same email twice, ...) refuses
the whole file with a :class:`UsersFileError` naming the file, line, column and value: a
half-read file could give someone the wrong role.

The role comes from this file only. Claims the identity provider sends (a ``role`` or
``groups`` claim, say) are never read: the admin did not configure them. The policy for
signed-in users who are not in the file (``$DIVERSITY_UNKNOWN_USERS``: ``public`` or
``refuse``) is applied by :func:`role_for`.

Check a file before deploying it with ``python -m dashboard.users [FILE]`` (it also warns about
partners whose institution is not registered in the index).
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Collection, Mapping
from pathlib import Path

from dashboard import sql
from dashboard.config import UNKNOWN_USER_POLICIES, load_settings
from dashboard.db import connect_readonly
from dashboard.roles import ROLE_NAMES, Role, RoleError

COLUMNS: tuple[str, ...] = ("email", "role", "institution")
PUBLIC = Role("public")
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")

Users = Mapping[str, Role]
"""Lower-cased email -> role, as read from the users file."""


class UsersFileError(ValueError):
    """The users file cannot be used; the message names file, line, column and value."""


def normalise_email(email: str) -> str:
    """The form emails are compared in: trimmed, lower-case."""
    return email.strip().lower()


def _problem(source: str, line: int, column: str, value: str, why: str) -> UsersFileError:
    return UsersFileError(f"{source}, line {line}, column {column}: {value!r} {why}")


def parse(text: str, source: str = "users file") -> dict[str, Role]:
    """The users in ``text`` (the CSV's contents); ``source`` names it in error messages."""
    rows = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    users: dict[str, Role] = {}
    first_line: dict[str, int] = {}
    for cells in rows:
        line = rows.line_num
        if not cells or all(not cell.strip() for cell in cells) or cells[0].startswith("#"):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in cells]
            if sorted(header) != sorted(COLUMNS):
                raise UsersFileError(
                    f"{source}, line {line}: the header is {','.join(cells)!r}; it must be "
                    f"{','.join(COLUMNS)!r} (one column each, any order)"
                )
            continue
        if len(cells) > len(header):
            raise _problem(
                source, line, "(extra)", ",".join(cells[len(header) :]),
                f"is beyond the {len(header)} columns {','.join(header)}",
            )  # fmt: skip
        row = dict(zip(header, [c.strip() for c in cells] + [""] * len(header), strict=False))
        email = normalise_email(row["email"])
        if not _EMAIL.match(email):
            raise _problem(source, line, "email", row["email"], "is not an email address")
        if email in users:
            raise _problem(
                source, line, "email", row["email"],
                f"is listed twice (also on line {first_line[email]}); keep one line per user",
            )  # fmt: skip
        name = row["role"].lower()
        if name not in ROLE_NAMES:
            raise _problem(
                source, line, "role", row["role"], f"is not a role; use {', '.join(ROLE_NAMES)}"
            )
        institution = row["institution"]
        if name == "partner" and not institution:
            raise _problem(
                source, line, "institution", institution,
                "is empty: a partner row names its institution id",
            )  # fmt: skip
        if name != "partner" and institution:
            raise _problem(
                source, line, "institution", institution,
                f"is set on a {name} row; only partner rows take an institution",
            )  # fmt: skip
        try:
            role = Role(name, institution or None)
        except RoleError as err:
            raise _problem(source, line, "institution", institution, f"is refused: {err}") from None
        users[email] = role
        first_line[email] = line
    if header is None:
        raise UsersFileError(f"{source} is empty: it needs the header line {','.join(COLUMNS)}")
    return users


def load(path: Path) -> dict[str, Role]:
    """The users of the file at ``path`` (UTF-8, a byte-order mark is fine)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise UsersFileError(
            f"{path} does not exist: create it with the header line {','.join(COLUMNS)} and one "
            "line per user (README, 'Login and roles')"
        ) from None
    except OSError as err:
        raise UsersFileError(f"{path} cannot be read ({type(err).__name__}: {err})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise UsersFileError(
            f"{path}, line {line}: byte {raw[err.start : err.start + 1]!r} is not UTF-8; "
            "save the file as UTF-8"
        ) from None
    return parse(text, source=str(path))


def resolve(users: Users, email: str | None) -> Role | None:
    """The role the admin gave ``email``, or None when it is not in the users file."""
    if not email:
        return None
    return users.get(normalise_email(email))


def role_for(users: Users, email: str | None, policy: str) -> Role | None:
    """The role of a signed-in ``email`` under the unknown-users ``policy``; None: refused."""
    if policy not in UNKNOWN_USER_POLICIES:
        raise ValueError(
            f"unknown-users policy {policy!r}; use {' or '.join(UNKNOWN_USER_POLICIES)}"
        )
    role = resolve(users, email)
    if role is not None:
        return role
    return PUBLIC if policy == "public" else None


def unregistered(users: Users, registered: Collection[str]) -> dict[str, str]:
    """Partner users whose institution is not in ``registered`` (email -> institution id)."""
    known = set(registered)
    return {
        email: role.institution
        for email, role in users.items()
        if role.institution is not None and role.institution not in known
    }


def main(argv: list[str]) -> int:
    """``python -m dashboard.users [FILE]``: check a users file, print who has which role."""
    path = Path(argv[0]) if argv else load_settings().users_path
    try:
        users = load(path)
    except UsersFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    counts = {name: sum(r.name == name for r in users.values()) for name in ROLE_NAMES}
    print(f"{path}: {len(users)} users (" + ", ".join(f"{n} {k}" for k, n in counts.items()) + ")")
    db = load_settings().db_path
    if db.exists():
        with connect_readonly(db) as con:
            registered = sql.query(con, "partner_registry")["institution_id"].to_list()
        for email, institution in unregistered(users, registered).items():
            print(f"warning: {email}: institution {institution} is not registered in {db}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
