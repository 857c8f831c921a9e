"""One settings object for the whole product: database path and metric thresholds.

Every value has a documented default (README, "Configuration") and an environment override,
so the CLI, the app and the tests agree on the same numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
QUERIES_DIR = REPO_ROOT / "queries"
DEFAULT_DB = REPO_ROOT / "var" / "diversity.duckdb"
DEFAULT_USERS = REPO_ROOT / "var" / "users.csv"
UNKNOWN_USER_POLICIES: tuple[str, ...] = ("public", "refuse")
"""What a visitor who is not in the users file gets: the public role, or no access at all."""


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


@dataclass(frozen=True)
class Settings:
    """Product-wide settings; build with :func:`load_settings` to apply environment overrides."""

    db_path: Path = DEFAULT_DB
    small_cell_k: int = 10
    tau: float = 0.8
    n_min: int = 50
    population_reference: str = "proj2026"
    users_path: Path = DEFAULT_USERS
    unknown_users: str = "public"


def _unknown_users() -> str:
    raw = (os.environ.get("DIVERSITY_UNKNOWN_USERS") or "public").strip().lower()
    if raw not in UNKNOWN_USER_POLICIES:
        raise ValueError(
            f"DIVERSITY_UNKNOWN_USERS={raw!r}: use {' or '.join(UNKNOWN_USER_POLICIES)}"
        )
    return raw


def load_settings() -> Settings:
    """Settings from the environment: DIVERSITY_DB, DIVERSITY_K, DIVERSITY_TAU, DIVERSITY_N_MIN,
    DIVERSITY_USERS (the users file of the app's login) and DIVERSITY_UNKNOWN_USERS."""
    return Settings(
        db_path=Path(os.environ.get("DIVERSITY_DB") or DEFAULT_DB),
        small_cell_k=_env_int("DIVERSITY_K", 10),
        tau=_env_float("DIVERSITY_TAU", 0.8),
        n_min=_env_int("DIVERSITY_N_MIN", 50),
        users_path=Path(os.environ.get("DIVERSITY_USERS") or DEFAULT_USERS),
        unknown_users=_unknown_users(),
    )
