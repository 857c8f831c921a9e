"""Roles: who may see which counts in full (issue "Who sees what", METRICS.md "Privacy").

Four roles, written as in ``--role`` and in the users file:

- ``admin``: everything, on screen and in exports. The local mode (no ``[auth]`` configured,
  and the CLI unless ``--role`` says otherwise) is a single admin.
- ``programme``: every aggregate in full on screen; its exports are suppressed, because
  METRICS.md suppresses "every export outside the admin role".
- ``partner:ID``: its own institution's cells in full; every other count only as a suppressed
  aggregate. A count over several institutions (coverage by state, say) rests on other
  institutions' rows, so the partner sees it suppressed exactly as the public does, unless the
  rows were restricted to its own institution (an institution filter of exactly its id).
- ``public``: suppressed aggregates only.

"In full" is per cell: :meth:`Role.entitled` flags the cells of a counts frame the role may see
unsuppressed; :func:`dashboard.privacy.protect` hides the rest.

Every read command of the CLI counts as an export (what it prints leaves the product the
moment it is printed, whatever the format), so ``--role programme`` there gets the suppressed
view; see ``CLI_OUTPUT_IS_EXPORT``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import polars as pl

from dashboard import privacy

ROLE_NAMES: tuple[str, ...] = ("admin", "programme", "partner", "public")
CLI_OUTPUT_IS_EXPORT = True
"""The CLI's read commands are exports: logged, and suppressed for every role but admin."""
_INSTITUTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class RoleError(ValueError):
    """A role that is not one of admin, programme, partner:ID or public."""


@dataclass(frozen=True)
class Role:
    """One viewer's role; partners carry their institution id."""

    name: str
    institution: str | None = None

    def __post_init__(self) -> None:
        if self.name not in ROLE_NAMES:
            raise RoleError(
                f"unknown role {self.name!r}; use admin, programme, partner:INSTITUTION_ID "
                "or public"
            )
        if (self.name == "partner") != (self.institution is not None):
            raise RoleError("a partner role names its institution (partner:ID), no other does")
        if self.institution is not None and not _INSTITUTION_ID.match(self.institution):
            raise RoleError(f"{self.institution!r} is not an institution id")

    @classmethod
    def parse(cls, text: str) -> Role:
        """``admin``, ``programme``, ``public`` or ``partner:ID`` (case of the name ignored)."""
        name, sep, institution = text.strip().partition(":")
        name = name.strip().lower()
        if name == "partner" and not (sep and institution.strip()):
            raise RoleError("name the partner's institution: partner:INSTITUTION_ID")
        if name != "partner" and sep:
            raise RoleError(f"only a partner role takes an institution, not {name!r}")
        return cls(name, institution.strip() if name == "partner" else None)

    def __str__(self) -> str:
        return f"partner:{self.institution}" if self.institution else self.name

    def sees_all(self, *, export: bool) -> bool:
        """True when nothing is hidden from this role (admin always; programme on screen)."""
        return self.name == "admin" or (self.name == "programme" and not export)

    def entitled(
        self,
        counts: pl.DataFrame,
        dims: Sequence[str],
        *,
        export: bool,
        scope: Collection[str] = (),
    ) -> pl.Series:
        """Per row of ``counts`` (cells of ``dims``): may this role see the cell in full?

        ``scope``: the institutions the counted rows were restricted to (the institution
        filter; empty = all). A partner is entitled to its own institution's cells when
        ``institution`` is a dimension, and to every cell when the scope is its own alone.
        """
        if self.sees_all(export=export):
            return pl.Series("entitled", [True] * counts.height, dtype=pl.Boolean)
        if self.institution is not None:
            if set(scope) == {self.institution}:
                return pl.Series("entitled", [True] * counts.height, dtype=pl.Boolean)
            if "institution" in dims:
                return (
                    (counts["institution"] == self.institution).fill_null(False).alias("entitled")
                )
        return pl.Series("entitled", [False] * counts.height, dtype=pl.Boolean)

    def institutions_shown(self) -> frozenset[str]:
        """Institutions whose own figures (e.g. a partner's accrual) this role may see."""
        return frozenset({self.institution}) if self.institution else frozenset()


LOCAL_ADMIN = Role("admin")
"""The role of the local mode and the CLI's default."""


def suppression_for(
    role: Role,
    counts: pl.DataFrame,
    dims: Sequence[str],
    *,
    k: int,
    export: bool,
    scope: Collection[str] = (),
) -> privacy.Suppression | None:
    """What ``role`` may not see of ``counts`` (the coverage frame of ``dims``, unknown cells
    included), or None when it may see everything. Apply it with :func:`privacy.apply`.

    ``export``: the table leaves the product (a download, CLI output); ``scope``: the
    institution filter the counts were read under.
    """
    if role.sees_all(export=export):
        return None
    entitled = role.entitled(counts, dims, export=export, scope=scope)
    return privacy.protect(counts, dims, k=k, entitled=entitled)
