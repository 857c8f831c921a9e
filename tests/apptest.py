"""Running the app under Streamlit's AppTest, on any page, with a shared link's parameters."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")

# An [auth] section as a deployment would write it (see README, "Login and roles"). AppTest never
# contacts the provider: it cannot drive st.login(), it only seeds st.user (see run_page).
TEST_AUTH_SECRETS: dict[str, Any] = {
    "auth": {
        "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "apptest-cookie-secret-0123456789",
        "client_id": "diversity-dashboard",
        "client_secret": "apptest-client-secret",
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
    }
}
_USERS_DIR: tempfile.TemporaryDirectory[str] | None = None


def _users_file(contents: str) -> Path:
    """Write ``contents`` to a fresh users file (removed when the test process exits)."""
    global _USERS_DIR  # one temporary folder per test process
    if _USERS_DIR is None:
        _USERS_DIR = tempfile.TemporaryDirectory(prefix="apptest-users-")
    handle, name = tempfile.mkstemp(suffix=".csv", dir=_USERS_DIR.name)
    os.close(handle)
    Path(name).write_text(contents, encoding="utf-8")
    return Path(name)


def run_page(
    db: Path,
    monkeypatch: pytest.MonkeyPatch,
    page: str = "overview",
    *,
    user: dict[str, Any] | None = None,
    users_csv: str | None = None,
    unknown_users: str | None = None,
    **query_params: str | list[str],
) -> AppTest:
    """Run the app on one page of st.navigation over ``db``, as a browser opening a link would.

    AppTest.switch_page only finds file-based pages; a st.Page(callable) is identified by the
    hash of its url_path, which is what a browser asks for.

    Login (README, "Login and roles"): with ``user`` or ``users_csv`` given, ``[auth]`` is
    configured (through ``at.secrets``) and the run is signed in as ``user`` (its claims, e.g.
    ``{"email": "lead@aiims.example"}``; ``is_logged_in`` defaults to True, pass
    ``{"is_logged_in": False}`` for an anonymous visitor). ``users_csv``: the users file's
    contents (``email,role,institution`` lines), written to a temporary file named by
    ``DIVERSITY_USERS``; ``unknown_users``: ``public`` or ``refuse``
    (``DIVERSITY_UNKNOWN_USERS``). Neither given: local mode, the single admin.
    """
    monkeypatch.setenv("DIVERSITY_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=120)
    if user is not None or users_csv is not None:
        at.secrets = {name: dict(section) for name, section in TEST_AUTH_SECRETS.items()}
        at.user = {"is_logged_in": True, **user} if user is not None else {"is_logged_in": False}
        path = _users_file(users_csv if users_csv is not None else "email,role,institution\n")
        monkeypatch.setenv("DIVERSITY_USERS", str(path))
    if unknown_users is not None:
        monkeypatch.setenv("DIVERSITY_UNKNOWN_USERS", unknown_users)
    at._page_hash = calc_hash(page)
    for key, value in query_params.items():
        at.query_params[key] = value
    return at.run()


def metrics(at: AppTest) -> dict[str, str]:
    """Metric cards by label."""
    return {m.label: m.value for m in at.metric}
