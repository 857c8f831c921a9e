"""AppTest runs of the login: local mode, each role from the users file, unknown users, audit.

AppTest cannot drive st.login() (the browser test does, against a mock OIDC provider); it
configures [auth] through at.secrets and seeds st.user (tests/apptest.py, run_page).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import audit
from dashboard.db import connect_readonly
from dashboard.roles import LOCAL_ADMIN, Role
from dashboard.views.auth import AUDITED_KEY, LOCAL_MODE_BANNER, describe, may_submit, providers
from dashboard.views.common import CONTEXT_KEY
from dashboard.views.submit import INSTITUTION_KEY
from tests.apptest import APP, run_page

USERS = """email,role,institution
admin@nmip.example,admin,
office@nmip.example,programme,
Lead@Partner.example ,partner,{institution}
someone@public.example,public,
"""


@pytest.fixture
def audit_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh audit log per test (the demo index is shared by the whole session)."""
    path = tmp_path / "audit.duckdb"
    monkeypatch.setenv(audit.AUDIT_ENV, str(path))
    return path


@pytest.fixture(scope="module")
def institutions(demo_db: Path) -> list[tuple[str, str]]:
    """(id, name) of the demo's registered institutions, from the index itself."""
    with connect_readonly(demo_db) as con:
        return con.sql("SELECT institution_id, name FROM institution ORDER BY 1").fetchall()


def users_csv(institution: str) -> str:
    return USERS.format(institution=institution)


def role_of(at: AppTest) -> Role:
    return at.session_state[CONTEXT_KEY].role


def sidebar_text(at: AppTest) -> str:
    """Markdown, captions and plain text of the sidebar (the email is plain text)."""
    parts = [*at.sidebar.markdown, *at.sidebar.caption, *at.sidebar.text]
    return " ".join(part.value for part in parts)


def page_titles(at: AppTest) -> list[str]:
    """Titles of the pages registered in this run (what the sidebar navigation offers)."""
    return [info["page_name"] for info in at._registered_pages.values()]


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("admin@nmip.example", "admin"),
        ("office@nmip.example", "programme"),
        ("lead@partner.example", "partner"),
        ("someone@public.example", "public"),
    ],
)
def test_each_user_gets_the_role_of_the_users_file(
    demo_db: Path, monkeypatch, audit_db: Path, institutions, email: str, expected: str
) -> None:
    iid = institutions[0][0]
    at = run_page(demo_db, monkeypatch, user={"email": email}, users_csv=users_csv(iid))
    assert not at.exception
    role = role_of(at)
    assert role.name == expected
    assert role.institution == (iid if expected == "partner" else None)
    assert LOCAL_MODE_BANNER not in [m.value for m in at.markdown]
    assert [t.value for t in at.sidebar.text] == [email]  # plain text, not markdown
    assert at.sidebar.button(key="logout").label == "Log out"
    assert at.title[0].value == "Overview"


def test_local_mode_is_the_single_admin_with_a_banner_on_every_page(
    demo_db: Path, monkeypatch, audit_db: Path
) -> None:
    for page in ("overview", "geography", "submit"):
        at = run_page(demo_db, monkeypatch, page)
        assert not at.exception
        assert role_of(at) == LOCAL_ADMIN
        assert at.markdown[0].value == LOCAL_MODE_BANNER
        assert "Local mode" in at.markdown[0].value and "single admin" in at.markdown[0].value
        assert not at.sidebar.button  # no Log in / Log out without [auth]
    assert "Submit" in page_titles(at)
    assert not audit_db.exists()  # the local mode logs nobody in


def test_local_mode_with_url_filters_keeps_the_admin_role(demo_db: Path, monkeypatch) -> None:
    at = run_page(demo_db, monkeypatch, state="Karnataka", unit="studies")
    assert not at.exception
    assert role_of(at) == LOCAL_ADMIN
    assert at.multiselect(key="state").value == ["IN-KA"]


def test_partner_gets_its_institution_in_the_context_and_sidebar(
    demo_db: Path, monkeypatch, audit_db: Path, institutions
) -> None:
    iid, name = institutions[1]
    at = run_page(
        demo_db,
        monkeypatch,
        user={"email": "LEAD@partner.example", "name": "Imaging lead"},
        users_csv=users_csv(iid),
        state="Karnataka",
    )
    assert not at.exception
    assert role_of(at) == Role("partner", iid)
    assert f"Role: **Partner — {name} ({iid})**" in [m.value for m in at.sidebar.markdown]
    assert at.multiselect(key="state").value == ["IN-KA"]  # filters still work when logged in
    assert "Submit" in page_titles(at)


def test_a_role_claim_from_the_provider_is_never_trusted(
    demo_db: Path, monkeypatch, audit_db: Path, institutions
) -> None:
    claims = {"email": "intruder@else.example", "role": "admin", "institution": "X"}
    at = run_page(demo_db, monkeypatch, user=claims, users_csv=users_csv(institutions[0][0]))
    assert not at.exception
    assert role_of(at) == Role("public")
    # an email the provider did not verify is not matched against the users file either
    at = run_page(
        demo_db,
        monkeypatch,
        user={"email": "admin@nmip.example", "email_verified": False},
        users_csv=users_csv(institutions[0][0]),
    )
    assert not at.exception
    assert role_of(at) == Role("public")


def test_unknown_user_gets_public_by_default(
    demo_db: Path, monkeypatch, audit_db: Path, institutions
) -> None:
    at = run_page(
        demo_db,
        monkeypatch,
        user={"email": "stranger@else.example"},
        users_csv=users_csv(institutions[0][0]),
    )
    assert not at.exception
    assert role_of(at) == Role("public")
    assert "not on this dashboard's users list" in sidebar_text(at)
    assert "Submit" not in page_titles(at)
    assert at.title[0].value == "Overview"
    log = audit.entries(demo_db)
    assert log.select("actor", "role", "action", "what", "channel").rows() == [
        ("stranger@else.example", "public", "login", "login", "app")
    ]


def test_unknown_user_is_refused_under_the_refuse_policy(
    demo_db: Path, monkeypatch, audit_db: Path, institutions
) -> None:
    at = run_page(
        demo_db,
        monkeypatch,
        user={"email": "stranger@else.example"},
        users_csv=users_csv(institutions[0][0]),
        unknown_users="refuse",
    )
    assert not at.exception
    assert at.title[0].value == "Not on the users list"
    assert "stranger@else.example" in at.error[0].value
    assert not at.metric and not at.get("vega_lite_chart")  # no page ran
    assert at.sidebar.button(key="logout")
    log = audit.entries(demo_db)
    assert log.select("actor", "role", "action").rows() == [
        ("stranger@else.example", "none", "login_refused")
    ]
    # a known user still gets in under the same policy
    at = run_page(
        demo_db,
        monkeypatch,
        user={"email": "office@nmip.example"},
        users_csv=users_csv(institutions[0][0]),
        unknown_users="refuse",
    )
    assert not at.exception
    assert role_of(at) == Role("programme")


def test_anonymous_visitor_sees_the_public_view_with_a_login_button(
    demo_db: Path, monkeypatch, audit_db: Path, institutions
) -> None:
    at = run_page(demo_db, monkeypatch, users_csv=users_csv(institutions[0][0]))
    assert not at.exception
    assert role_of(at) == Role("public")
    assert at.sidebar.button(key="login_sidebar_default").label == "Log in"
    assert "public view" in sidebar_text(at)
    assert "counts below 10 shown as “< 10”" in sidebar_text(at)
    assert LOCAL_MODE_BANNER not in [m.value for m in at.markdown]
    assert "Submit" not in page_titles(at)
    assert not audit_db.exists()  # nobody logged in


def test_anonymous_visitor_must_log_in_under_the_refuse_policy(
    demo_db: Path, monkeypatch, audit_db: Path, institutions
) -> None:
    at = run_page(
        demo_db, monkeypatch, users_csv=users_csv(institutions[0][0]), unknown_users="refuse"
    )
    assert not at.exception
    assert at.title[0].value == "Log in to open the dashboard"
    assert at.button(key="login_main_default").label == "Log in"
    assert not at.metric and not at.get("vega_lite_chart")


def test_each_login_is_audited_once_per_session(
    demo_db: Path, monkeypatch, audit_db: Path, institutions
) -> None:
    iid = institutions[0][0]
    at = run_page(
        demo_db, monkeypatch, user={"email": "Lead@Partner.example"}, users_csv=users_csv(iid)
    )
    at.run()
    at.run()  # reruns of the same session (widget clicks) are not new logins
    assert not at.exception
    log = audit.entries(demo_db)
    assert log.height == 1
    row = log.row(0, named=True)
    assert (row["actor"], row["role"], row["action"], row["what"], row["channel"]) == (
        "lead@partner.example",
        f"partner:{iid}",
        "login",
        "login",
        "app",
    )
    assert '"known": true' in row["detail"]
    assert at.session_state[AUDITED_KEY] == ("lead@partner.example", f"partner:{iid}", "login")
    # a second session (another tab, or after the next login) is logged again
    run_page(demo_db, monkeypatch, user={"email": "lead@partner.example"}, users_csv=users_csv(iid))
    assert audit.entries(demo_db).height == 2


def test_login_does_not_open_when_the_audit_log_cannot_be_written(
    demo_db: Path, monkeypatch, tmp_path: Path, institutions
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv(audit.AUDIT_ENV, str(blocker / "audit.duckdb"))
    at = run_page(
        demo_db,
        monkeypatch,
        user={"email": "office@nmip.example"},
        users_csv=users_csv(institutions[0][0]),
    )
    assert not at.exception
    assert "could not be written to the audit log" in at.error[0].value
    assert not at.metric


def test_logout_returns_to_the_public_view(
    demo_db: Path, monkeypatch, audit_db: Path, institutions
) -> None:
    at = run_page(
        demo_db,
        monkeypatch,
        user={"email": "office@nmip.example"},
        users_csv=users_csv(institutions[0][0]),
    )
    assert role_of(at) == Role("programme")
    at.sidebar.button(key="logout").click().run()
    at.run()
    assert not at.exception
    assert role_of(at) == Role("public")
    assert at.sidebar.button(key="login_sidebar_default")


def test_a_bad_users_file_makes_everyone_unknown_and_says_so(
    demo_db: Path, monkeypatch, audit_db: Path
) -> None:
    bad = "email,role,institution\nadmin@nmip.example,admn,\n"
    at = run_page(demo_db, monkeypatch, user={"email": "admin@nmip.example"}, users_csv=bad)
    assert not at.exception
    assert role_of(at) == Role("public")
    assert "users file could not be read" in sidebar_text(at)
    assert "admn" not in sidebar_text(at)  # the detail goes to the log, not to every visitor


def test_submit_page_is_hidden_from_programme_and_public(
    demo_db: Path, monkeypatch, audit_db: Path, institutions
) -> None:
    for email in ("office@nmip.example", "someone@public.example"):
        at = run_page(
            demo_db,
            monkeypatch,
            "submit",
            user={"email": email},
            users_csv=users_csv(institutions[0][0]),
        )
        assert not at.exception
        assert "Submit" not in page_titles(at)
        assert at.title[0].value != "Submit a manifest"  # the URL falls back to the first page


def test_partner_submits_for_its_own_institution_without_a_picker(
    demo_db: Path, monkeypatch, audit_db: Path, institutions
) -> None:
    iid, name = institutions[2]
    at = run_page(
        demo_db,
        monkeypatch,
        "submit",
        user={"email": "lead@partner.example"},
        users_csv=users_csv(iid),
    )
    assert not at.exception
    assert at.title[0].value == "Submit a manifest"
    assert not [s for s in at.selectbox if s.key == INSTITUTION_KEY]
    assert any(f"**{name} ({iid})**, your institution" in m.value for m in at.markdown)
    assert not any("single-admin" in i.value for i in at.info)


def test_partner_of_an_unregistered_institution_is_told_so(
    demo_db: Path, monkeypatch, audit_db: Path
) -> None:
    at = run_page(
        demo_db,
        monkeypatch,
        "submit",
        user={"email": "lead@partner.example"},
        users_csv=users_csv("NOT-REGISTERED"),
    )
    assert not at.exception
    assert role_of(at) == Role("partner", "NOT-REGISTERED")
    assert "not registered in the index" in at.warning[-1].value
    assert "not registered in the index yet" in sidebar_text(at)


def test_logged_in_admin_picks_any_institution_on_submit(
    demo_db: Path, monkeypatch, audit_db: Path, institutions
) -> None:
    at = run_page(
        demo_db,
        monkeypatch,
        "submit",
        user={"email": "admin@nmip.example"},
        users_csv=users_csv(institutions[0][0]),
    )
    assert not at.exception
    assert role_of(at) == Role("admin")
    assert at.selectbox(key=INSTITUTION_KEY).options == [f"{i} — {n}" for i, n in institutions]
    assert any(i.value.startswith("**Admin:**") for i in at.info)


def test_providers_describe_and_may_submit() -> None:
    default = {"redirect_uri": "x", "cookie_secret": "y", "client_id": "c"}
    assert providers(default) == [None]
    named = {"redirect_uri": "x", "google": {"client_id": "g"}, "entra": {"client_id": "e"}}
    assert providers(named) == ["google", "entra"]
    assert providers({**default, "okta": {"client_id": "o"}}) == [None, "okta"]
    names = {"AIIMS-DEL": "AIIMS New Delhi"}
    assert describe(Role("partner", "AIIMS-DEL"), names) == "Partner — AIIMS New Delhi (AIIMS-DEL)"
    assert describe(Role("partner", "KMC-MNP"), names) == "Partner — KMC-MNP"
    assert describe(Role("programme")) == "Programme"
    assert [may_submit(Role(n)) for n in ("admin", "programme", "public")] == [True, False, False]
    assert may_submit(Role("partner", "KMC-MNP"))


def test_named_provider_gets_its_own_login_button(
    demo_db: Path, monkeypatch, audit_db: Path, institutions
) -> None:
    monkeypatch.setenv("DIVERSITY_DB", str(demo_db))
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets = {
        "auth": {
            "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
            "cookie_secret": "apptest-cookie-secret-0123456789",
            "keycloak": {
                "client_id": "c",
                "client_secret": "s",
                "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
            },
        }
    }
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception
    assert at.sidebar.button(key="login_sidebar_keycloak").label == "Log in with keycloak"


def test_admin_is_told_of_partners_of_unregistered_institutions(
    demo_db: Path, monkeypatch, audit_db: Path
) -> None:
    at = run_page(
        demo_db, monkeypatch, user={"email": "admin@nmip.example"}, users_csv=users_csv("NOPE-01")
    )
    assert not at.exception
    assert (
        "Users file: lead@partner.example is a partner of NOPE-01, not registered."
        in sidebar_text(at)
    )


def test_an_edited_users_file_applies_on_the_next_run(
    demo_db: Path, monkeypatch, audit_db: Path, institutions
) -> None:
    at = run_page(
        demo_db,
        monkeypatch,
        user={"email": "someone@public.example"},
        users_csv=users_csv(institutions[0][0]),
    )
    assert role_of(at) == Role("public")
    path = Path(os.environ["DIVERSITY_USERS"])
    path.write_text("email,role,institution\nsomeone@public.example,programme,\n")
    at.run()
    assert not at.exception
    assert role_of(at) == Role("programme")
    # the new role of the same session is logged too
    assert audit.entries(demo_db)["role"].to_list() == ["public", "programme"]


def test_a_login_without_an_email_is_public_and_logged_by_subject(
    demo_db: Path, monkeypatch, audit_db: Path, institutions
) -> None:
    at = run_page(
        demo_db, monkeypatch, user={"sub": "abc-123"}, users_csv=users_csv(institutions[0][0])
    )
    assert not at.exception
    assert role_of(at) == Role("public")
    assert [t.value for t in at.sidebar.text] == ["(no email from the provider)"]
    assert audit.entries(demo_db).select("actor", "role").rows() == [("sub:abc-123", "public")]


def test_a_partner_lands_on_its_institution_page_and_others_on_the_overview(
    demo_db: Path, monkeypatch, audit_db: Path, institutions
) -> None:
    """USERS.md path 4: the app's root URL opens a partner's own Institution page."""
    iid, name = institutions[1]
    partner = run_page(
        demo_db,
        monkeypatch,
        "",
        user={"email": "lead@partner.example"},
        users_csv=users_csv(iid),
    )
    assert not partner.exception
    assert [t.value for t in partner.title] == ["Institution"]
    texts = [
        e.value for kind in (partner.markdown, partner.subheader, partner.caption) for e in kind
    ]
    assert any(name in str(text) for text in texts)
    public = run_page(
        demo_db, monkeypatch, "", user={"email": "someone@else.example"}, users_csv=users_csv(iid)
    )
    assert [t.value for t in public.title] == ["Overview"]
    admin = run_page(demo_db, monkeypatch, "")
    assert [t.value for t in admin.title] == ["Overview"]
