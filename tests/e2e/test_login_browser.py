"""Login in real Chromium against oidc-provider-mock on loopback (spec LOGIN.md).

The provider runs in this process (werkzeug, a thread); the app is served with an ``[auth]``
section in its own secrets file, a users file and an audit log of its own, HOME isolated.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import oidc_provider_mock
import pytest
import werkzeug.serving
from playwright.sync_api import Page, expect

from dashboard import audit
from dashboard.db import connect_readonly
from tests.e2e.conftest import free_port, screenshot, serve_app, wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

PARTNER = "lead@partner.example"
STRANGER = "stranger@else.example"
SIDEBAR = "[data-testid='stSidebar']"


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """The mock OIDC provider on a free loopback port; its users carry an email claim (and
    the stranger a ``role: admin`` claim, which the app must ignore)."""
    app = oidc_provider_mock.app(
        user_claims=[
            oidc_provider_mock.User(sub="partner-lead", claims={"email": "Lead@Partner.example"}),
            oidc_provider_mock.User(
                sub="stranger", claims={"email": STRANGER, "role": "admin", "institution": "X"}
            ),
        ]
    )
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="module")
def institution(demo_db: Path) -> tuple[str, str]:
    """The demo's Delhi institution: (id, name), read from the index."""
    with connect_readonly(demo_db) as con:
        return con.sql(
            "SELECT institution_id, name FROM institution WHERE state = 'IN-DL' ORDER BY 1 LIMIT 1"
        ).fetchall()[0]


@contextlib.contextmanager
def auth_app(
    demo_db: Path, provider: str, users_csv: str, folder: Path, **env: str
) -> Iterator[tuple[str, Path]]:
    """The app with [auth] pointing at the mock provider; yields (URL, audit log path)."""
    port = free_port()
    secrets = folder / "secrets.toml"
    secrets.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        'cookie_secret = "e2e-cookie-secret-0123456789abcdef"\n'
        'client_id = "diversity-dashboard"\n'
        'client_secret = "e2e-client-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n',
        encoding="utf-8",
    )
    users = folder / "users.csv"
    users.write_text(users_csv, encoding="utf-8")
    log = folder / "audit.duckdb"
    env = {"DIVERSITY_USERS": str(users), audit.AUDIT_ENV: str(log), **env}
    with serve_app(
        demo_db, folder / "home", port=port, args=["--secrets.files", str(secrets)], env=env
    ) as url:
        yield url, log


@pytest.fixture(scope="module")
def login_app(
    demo_db: Path,
    provider: str,
    institution: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Path]]:
    """The app with login; the partner lead in the users file; unknown users get public."""
    users = f"email,role,institution\n{PARTNER},partner,{institution[0]}\n"
    with auth_app(demo_db, provider, users, tmp_path_factory.mktemp("login")) as served:
        yield served


def sidebar(page: Page) -> str:
    return page.locator(SIDEBAR).inner_text()


def log_in_as(page: Page, sub: str) -> None:
    """Click Log in, pick the provider's predefined user, come back to the app."""
    page.locator(SIDEBAR).get_by_role("button", name="Log in").click()
    page.wait_for_selector(f"button[name='sub'][value='{sub}']", timeout=30_000)
    page.locator(f"button[name='sub'][value='{sub}']").click()
    page.wait_for_url("http://127.0.0.1:*/**", timeout=30_000)
    wait_idle(page)


def test_partner_logs_in_sees_its_institution_and_logs_out(
    page: Page,
    login_app: tuple[str, Path],
    institution: tuple[str, str],
    tmp_path: Path,
    monkeypatch,
) -> None:
    url, log = login_app
    iid, name = institution
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    wait_idle(page)
    # anonymous: the public view with a Log in button, no local-mode banner, no Submit page
    assert "public view" in sidebar(page)
    assert not page.get_by_text("Local mode").count()
    assert not page.locator(SIDEBAR).get_by_role("link", name="Submit").count()
    screenshot(page, tmp_path, "login_1_public")

    log_in_as(page, "partner-lead")
    expect(page.locator(SIDEBAR)).to_contain_text(PARTNER, timeout=30_000)
    text = sidebar(page)
    assert f"Role: Partner — {name} ({iid})" in text
    assert "your institution in full" in text
    # a partner lands on its own Institution page (USERS.md path 4)
    expect(page.get_by_role("heading", name="Institution")).to_be_visible()
    screenshot(page, tmp_path, "login_2_partner")

    # the partner may submit, for its own institution only
    page.locator(SIDEBAR).get_by_role("link", name="Submit").click()
    wait_idle(page)
    assert page.get_by_text(f"Manifest for {name} ({iid}), your institution").is_visible()
    assert not page.get_by_text("Institution this manifest is for").count()
    screenshot(page, tmp_path, "login_3_partner_submit")

    monkeypatch.setenv(audit.AUDIT_ENV, str(log))
    logins = audit.entries(Path("unused.duckdb")).filter(actor=PARTNER)
    assert logins.select("role", "action", "what", "channel").rows() == [
        (f"partner:{iid}", "login", "login", "app")
    ]

    # Log out passes through the provider's End Session page, then back to the public view
    page.locator(SIDEBAR).get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="End session").click(timeout=30_000)
    page.wait_for_url(f"{url}/**", timeout=30_000)
    wait_idle(page)
    expect(page.locator(SIDEBAR).get_by_role("button", name="Log in")).to_be_visible()
    assert PARTNER not in sidebar(page)
    assert "public view" in sidebar(page)
    screenshot(page, tmp_path, "login_4_logged_out")
    assert not page.locator("[data-testid='stException']").count()
    assert errors == []


def test_unknown_user_gets_the_public_role_whatever_its_claims(
    page: Page, login_app: tuple[str, Path], tmp_path: Path, monkeypatch
) -> None:
    url, log = login_app
    page.goto(f"{url}/geography")
    wait_idle(page)
    log_in_as(page, "stranger")
    expect(page.locator(SIDEBAR)).to_contain_text(STRANGER, timeout=30_000)
    text = sidebar(page)
    assert "Role: Public" in text  # its "role: admin" claim is ignored
    assert "not on this dashboard's users list" in text
    assert not page.locator(SIDEBAR).get_by_role("link", name="Submit").count()
    assert not page.locator("[data-testid='stException']").count()
    screenshot(page, tmp_path, "login_5_unknown_public")
    monkeypatch.setenv(audit.AUDIT_ENV, str(log))
    logins = audit.entries(Path("unused.duckdb")).filter(actor=STRANGER)
    assert logins.select("role", "action").rows() == [("public", "login")]


def test_local_mode_shows_the_single_admin_banner_on_every_page(
    page: Page, app_url: str, tmp_path: Path
) -> None:
    for path in ("", "/geography", "/submit"):
        page.goto(f"{app_url}{path}")
        wait_idle(page)
        banner = page.locator("[data-testid='stMarkdown']").filter(has_text="Local mode:")
        expect(banner).to_be_visible()
        assert "you are the single admin" in banner.inner_text()
        assert not page.locator(SIDEBAR).get_by_role("button", name="Log in").count()
    assert page.get_by_text("Local single-admin mode").is_visible()  # Submit's own note
    screenshot(page, tmp_path, "login_0_local_mode")


def test_refuse_policy_opens_only_for_users_in_the_file(
    page: Page,
    demo_db: Path,
    provider: str,
    institution: tuple[str, str],
    tmp_path: Path,
    monkeypatch,
) -> None:
    users = f"email,role,institution\n{PARTNER},partner,{institution[0]}\n"
    with auth_app(demo_db, provider, users, tmp_path, DIVERSITY_UNKNOWN_USERS="refuse") as (
        url,
        log,
    ):
        page.goto(url)
        wait_idle(page)
        expect(page.get_by_role("heading", name="Log in to open the dashboard")).to_be_visible()
        assert not page.get_by_text("Synthetic demo data").count()  # no page ran
        assert not page.locator("[data-testid='stMetric']").count()
        screenshot(page, tmp_path, "login_6_refuse_anonymous")
        log_in_as(page, "stranger")
        expect(page.get_by_role("heading", name="Not on the users list")).to_be_visible()
        assert STRANGER in page.locator("[data-testid='stAlert']").inner_text()
        assert not page.locator("[data-testid='stMetric']").count()
        screenshot(page, tmp_path, "login_7_refuse_unknown")
        monkeypatch.setenv(audit.AUDIT_ENV, str(log))
        assert audit.entries(Path("unused.duckdb")).select("actor", "role", "action").rows() == [
            (STRANGER, "none", "login_refused")
        ]
