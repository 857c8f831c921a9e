"""Who is looking: Streamlit's OIDC login, the users file, and the local single-admin mode.

- No ``[auth]`` section in the secrets: **local mode**. The viewer is the single admin
  (:data:`dashboard.roles.LOCAL_ADMIN`) and every page says so in a banner, so ``make run``
  works out of the box and nobody mistakes it for a shared deployment.
- ``[auth]`` configured: a visitor who has not logged in sees a Log in button in the sidebar
  and the public view, or only the button when unknown users are refused
  (``DIVERSITY_UNKNOWN_USERS=refuse``: there, the dashboard opens only for users in the users
  file). A logged-in visitor gets the role the users file gives their email
  (:mod:`dashboard.users`); someone not in it gets the public role or a refusal page. The
  sidebar shows the email, the role and a Log out button.

The provider's claims are used for the email only, never for the role; an email the provider
says is not verified (``email_verified`` false) is treated as unknown. Each session of a
logged-in user is written to the audit log once (action ``login``, or ``login_refused``), and
the dashboard does not open when that write fails (:class:`dashboard.audit.AuditError`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard import audit, users
from dashboard.config import load_settings
from dashboard.roles import LOCAL_ADMIN, Role
from dashboard.views.common import SnapshotKey, cached_query

LOGGER = logging.getLogger(__name__)
AUDITED_KEY = "_login_audited"
LOCAL_MODE_BANNER = (
    ":orange-background[:material/admin_panel_settings: **Local mode:** no login is configured; "
    "you are the single admin and see every count in full (README, “Login and roles”).]"
)
ROLE_TITLES = {
    "admin": "Admin",
    "programme": "Programme",
    "partner": "Partner",
    "public": "Public",
}
ROLE_SEES = {
    "admin": "every count in full, on screen and in downloads",
    "programme": "every aggregate in full; downloads have small cells hidden",
    "partner": "your institution in full; others only as aggregates with small cells hidden",
    "public": "aggregates only; counts below {k} are shown as “< {k}”",
}


def _secrets_auth() -> Mapping[str, Any] | None:
    """The ``[auth]`` section of the secrets, or None when there is none (or no secrets)."""
    try:
        if "auth" not in st.secrets:
            return None
        section = st.secrets["auth"]
    except FileNotFoundError:  # no secrets file at all: StreamlitSecretNotFoundError
        return None
    return section if isinstance(section, Mapping) else None


def login_configured() -> bool:
    """True when ``[auth]`` is configured: logins and roles, not the local mode."""
    return _secrets_auth() is not None


def providers(auth: Mapping[str, Any]) -> list[str | None]:
    """The providers of an ``[auth]`` section: None for the default one (``client_id`` right
    in ``[auth]``), then each named ``[auth.NAME]`` section, for ``st.login(NAME)``."""
    names: list[str | None] = [None] if "client_id" in auth else []
    names += [
        name for name, value in auth.items() if isinstance(value, Mapping) and "client_id" in value
    ]
    return names or [None]


def may_submit(role: Role) -> bool:
    """Only the admin and partners submit manifests (a partner for its own institution)."""
    return role.name == "admin" or role.institution is not None


@st.cache_data(max_entries=4, show_spinner=False)
def _users(path: str, stamp: tuple[int, int]) -> tuple[dict[str, Role], str | None]:
    """The users file, or its error; ``stamp`` (modification time, size) is part of the cache
    key, so an edited file is read again on the next run."""
    del stamp
    try:
        return users.load(Path(path)), None
    except users.UsersFileError as err:
        LOGGER.error("users file refused, everyone is an unknown user: %s", err)
        return {}, str(err)


def _load_users(path: Path) -> tuple[dict[str, Role], str | None]:
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = (0, -1)
    return _users(str(path), stamp)


def _institution_names(key: SnapshotKey | None) -> dict[str, str]:
    if key is None:
        return {}
    registry = cached_query(key, "partner_registry")
    return dict(zip(registry["institution_id"], registry["name"], strict=True))


def describe(role: Role, names: Mapping[str, str] | None = None) -> str:
    """``Partner — AIIMS New Delhi (AIIMS-DEL)``, ``Programme``, ..."""
    title = ROLE_TITLES[role.name]
    if role.institution is None:
        return title
    name = (names or {}).get(role.institution)
    return f"{title} — {name} ({role.institution})" if name else f"{title} — {role.institution}"


def _audit_once(email: str, role: Role | None, action: str, detail: dict[str, Any]) -> None:
    """Write this session's login to the audit log once; stop the run if that fails."""
    entry = (email, str(role), action)
    if st.session_state.get(AUDITED_KEY) == entry:
        return
    try:
        audit.record(
            load_settings().db_path,
            actor=email,
            role=str(role) if role is not None else "none",
            action=action,
            what="login",
            channel="app",
            detail=detail,
        )
    except audit.AuditError as err:
        LOGGER.error("login not recorded: %s", err)
        st.error(
            "Your login could not be written to the audit log, so the dashboard does not open. "
            "Try again in a minute; if it persists, tell the programme office.",
            icon=":material/error:",
        )
        st.stop()
    st.session_state[AUDITED_KEY] = entry


def _login_buttons(auth: Mapping[str, Any], *, primary: bool, where: str) -> None:
    for provider in providers(auth):
        label = "Log in" if provider is None else f"Log in with {provider}"
        if st.button(
            label,
            icon=":material/login:",
            type="primary" if primary else "secondary",
            key=f"login_{where}_{provider or 'default'}",
        ):
            if provider is None:
                st.login()
            else:
                st.login(provider)


def _logout_button() -> None:
    if st.button("Log out", icon=":material/logout:", key="logout"):
        st.logout()


def viewer_role(key: SnapshotKey | None = None) -> Role:
    """The role this run shows the dashboard as; draws the login box (or the local banner).

    Call it once per run, before the pages. On a refusal it draws the reason and stops the run.
    ``key``: the published snapshot, for institution names.
    """
    auth = _secrets_auth()
    if auth is None:
        st.markdown(LOCAL_MODE_BANNER)
        return LOCAL_ADMIN
    settings = load_settings()
    policy = settings.unknown_users
    known, problem = _load_users(settings.users_path)
    user = st.user
    if not user.get("is_logged_in"):
        return _anonymous(auth, policy)
    email = users.normalise_email(str(user.get("email") or ""))
    verified = user.get("email_verified") is not False
    role = users.role_for(known, email if verified else None, policy)
    in_file = verified and users.resolve(known, email) is not None
    names = _institution_names(key)
    with st.sidebar:
        st.caption(":material/account_circle: Signed in as")
        st.text(email or "(no email from the provider)")  # plain text: a claim is not markdown
        if role is not None:
            st.markdown(f"Role: **{describe(role, names)}**")
            st.caption(f"You see {ROLE_SEES[role.name].format(k=settings.small_cell_k)}.")
            if not in_file:
                st.caption("Your email is not on this dashboard's users list: public view.")
            if role.institution is not None and names and role.institution not in names:
                st.caption(
                    f"Institution {role.institution} is not registered in the index yet, so "
                    "no rows are yours; ask the programme office."
                )
        if role is not None and role.name == "admin" and names:
            for who, institution in users.unregistered(known, names).items():
                st.caption(f"Users file: {who} is a partner of {institution}, not registered.")
        if problem is not None:
            st.caption(
                ":red[The users file could not be read, so every login is an unknown user. "
                "Administrators: run `python -m dashboard.users` to see the problem.]"
            )
        _logout_button()
    detail = {"known": in_file, "policy": policy, "email_verified": verified}
    actor = email or f"sub:{user.get('sub') or 'unknown'}"  # a provider that sends no email
    if role is None:
        _audit_once(actor, None, "login_refused", detail)
        st.title("Not on the users list")
        shown = f"`{email.replace('`', '')}`" if email else "This account"
        st.error(
            f"{shown} is not on this dashboard's users list, so it cannot "
            "open it. Ask the programme office to add you, or log out and log in with another "
            "account.",
            icon=":material/block:",
        )
        st.stop()
    _audit_once(actor, role, "login", detail)
    return role


def _anonymous(auth: Mapping[str, Any], policy: str) -> Role:
    """A visitor who has not logged in: the public view, or only a login when refused."""
    with st.sidebar:
        if policy != "refuse":
            k = load_settings().small_cell_k
            st.caption(
                f"You see the **public view**: aggregates only, counts below {k} shown as "
                f"“< {k}”. Partners and programme staff: log in to see more."
            )
        _login_buttons(auth, primary=False, where="sidebar")
    if policy == "refuse":
        st.title("Log in to open the dashboard")
        st.info(
            "This dashboard is open to registered users only. Log in with the button in the "
            "sidebar; if your account is not on the users list, ask the programme office.",
            icon=":material/lock:",
        )
        _login_buttons(auth, primary=True, where="main")
        st.stop()
    return users.PUBLIC
