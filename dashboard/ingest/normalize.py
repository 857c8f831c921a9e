"""Normalise submitted study and registry rows to the data contract (DATA_CONTRACT.md).

Input is a frame of text columns named by contract column (absent values null) plus ``_row``.
Output keeps every row in order, typed as the ``study`` / ``institution`` tables, with a
``_problems`` list naming each value that is present but unusable: the column, the value as
submitted and a reason that suggests the likely intended value when one is close. Such a value
is null in the typed columns; an absent value means unknown (null, or "U" / "unknown" for sex
and area_type). What to do with a row that has problems (quarantine it) is the caller's call.

Speed: a manifest repeats the same few values over and over, so each column is normalised once
per *distinct* value, in a small lookup table, and mapped back to the rows by position.
Problems are built only for the rows that have them. Nothing runs Python per row; Python
(difflib) runs only on the distinct values that failed.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice

import polars as pl

from dashboard import contract
from dashboard.reference import ReferenceData, alias_key

PROBLEM_DTYPE = pl.Struct({"column": pl.String, "value": pl.String, "reason": pl.String})
PROBLEMS_DTYPE = pl.List(PROBLEM_DTYPE)

STUDY_SCHEMA: dict[str, pl.DataType] = {
    "_row": pl.Int64(),
    "study_uid": pl.String(),
    "patient_id": pl.String(),
    "institution_id": pl.String(),
    "study_date": pl.Date(),
    "modality": pl.String(),
    "sex": pl.String(),
    "age_years": pl.Float64(),
    "age_band": pl.String(),
    "state": pl.String(),
    "district": pl.String(),
    "area_type": pl.String(),
    "diagnosis_icd10": pl.List(pl.String),
    "conditions": pl.List(pl.String),
    "body_part": pl.String(),
    "facility_type": pl.String(),
    "manufacturer": pl.String(),
    "device_model": pl.String(),
    "n_images": pl.Int64(),
    "annotation_status": pl.String(),
    "consent": pl.String(),
    "fitzpatrick": pl.Int8(),
    "_problems": PROBLEMS_DTYPE,
}
INSTITUTION_SCHEMA: dict[str, pl.DataType] = {
    "_row": pl.Int64(),
    "institution_id": pl.String(),
    "name": pl.String(),
    "state": pl.String(),
    "city": pl.String(),
    "facility_type": pl.String(),
    "sector": pl.String(),
    "joined_date": pl.Date(),
    "_problems": PROBLEMS_DTYPE,
}
INSTITUTION_REQUIRED: tuple[str, ...] = ("institution_id", "name")

DATE_FORMATS_TEXT = "YYYY-MM-DD, YYYYMMDD, DD/MM/YYYY, DD-MM-YYYY"
_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%d/%m/%Y", "%d-%m-%Y")
# The shape check keeps e.g. "03/04/25" from parsing as the year 25.
_DATE_SHAPE = r"^(?:\d{4}-\d{1,2}-\d{1,2}|\d{8}|\d{1,2}/\d{1,2}/\d{4}|\d{1,2}-\d{1,2}-\d{4})$"
_MONTH_FIRST_SHAPE = r"^\d{1,2}[/-]\d{1,2}[/-]\d{4}$"
_NUMBER = r"^-?\d+(?:\.\d+)?$"
_AGE_STRING = r"^(?<n>\d{1,3})\s*(?<unit>[DWMYdwmy])$"
_AGE_UNIT_YEARS = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}
_AGE_HELP = "e.g. 45, 45.5 or DICOM 045Y, 006M, 003W, 010D"
# A code: category (letter, 2 digits), then optionally a dot and 1–4 characters (C50.9, E11.319).
_ICD10 = r"(?P<cat>[A-Z]\d{2})(?:\.?(?P<sub>[0-9A-Z]{1,4}))?"
_ICD10_HELP = (
    "expected a letter, 2 digits and optionally a dot and 1–4 letters or digits, e.g. C50.9"
)
_DIGIT_LOOKALIKES = str.maketrans("OIL", "011")
_ICD10_RANGE = re.compile(r"([A-Z]\d{2}(?:\.[0-9A-Z]{1,4})?)(?:-([A-Z]\d{2}(?:\.[0-9A-Z]{1,4})?))?")
_DIABETIC_RETINOPATHY = "diabetic_retinopathy"
_FITZPATRICK = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6} | {
    str(n): n for n in range(1, 7)
}
_FACILITY_HELP = "PHC, CHC, district hospital, medical college, tertiary, private, mobile/camp"

# Only this many distinct failed values per column get a difflib search, so that a file of
# garbage still finishes quickly; the rest get the reason without a suggestion.
_MAX_SUGGESTED = 500
_SUGGEST_CUTOFF = 0.8


# -- public API ---------------------------------------------------------------------------------


def normalize_studies(
    raw: pl.DataFrame,
    ref: ReferenceData,
    *,
    today: dt.date,
    registered_institutions: Collection[str] | None = None,
) -> pl.DataFrame:
    """Type and validate manifest rows: columns as :data:`STUDY_SCHEMA`, rows in input order.

    A study_date after ``today`` is a problem; so is an institution_id outside
    ``registered_institutions`` when that is given.
    """
    frame = _prepare(raw, contract.MANIFEST_COLUMNS, _STUDY_LOOKUP_COLUMNS)
    lookups = _study_lookups(
        _distinct(frame, _STUDY_LOOKUP_COLUMNS), ref, today, registered_institutions
    )
    work = frame.with_columns(lookup.index(column) for column, lookup in lookups.items())
    value = {column: lookup.field(column) for column, lookup in lookups.items()}
    from_birth = _age_from_birth_year(lookups, value)
    age_years = value["age"]
    if from_birth is not None:
        age_years = pl.coalesce(age_years, pl.when(_age_in_range(from_birth)).then(from_birth))
    out = work.select(
        "_row",
        "study_uid",
        "patient_id",
        value["institution_id"],
        value["study_date"],
        value["modality"],
        value["sex"],
        age_years.alias("age_years"),
        age_band(age_years).alias("age_band"),
        value["state"],
        "district",
        value["area_type"],
        value["diagnosis_icd10"],
        lookups["diagnosis_icd10"].field("diagnosis_icd10", "conditions").alias("conditions"),
        value["body_part"],
        value["facility_type"],
        "manufacturer",
        "device_model",
        value["n_images"],
        value["annotation_status"],
        value["consent"],
        value["fitzpatrick"],
    )
    checks = _study_checks(lookups, from_birth, value["study_date"])
    return out.with_columns(_problems=_problems(work, checks)).cast(STUDY_SCHEMA)


def normalize_institutions(raw: pl.DataFrame, ref: ReferenceData) -> pl.DataFrame:
    """Type and validate registry rows: columns as :data:`INSTITUTION_SCHEMA`, input order.

    institution_id and name are required; state, facility_type and sector are checked as for a
    study; joined_date may be any valid date in an accepted format.
    """
    lookup_columns = ("institution_id", "state", "facility_type", "sector", "joined_date")
    frame = _prepare(raw, contract.REGISTRY_COLUMNS, lookup_columns)
    distinct = _distinct(frame, lookup_columns)
    lookups = {
        "institution_id": _institution_lookup(distinct["institution_id"], None),
        "state": _state_lookup(distinct["state"], ref),
        "facility_type": _facility_lookup(distinct["facility_type"]),
        "sector": _enum_lookup(
            distinct["sector"],
            "sector",
            {s: s for s in contract.SECTORS},
            "one of " + ", ".join(contract.SECTORS),
        ),
        "joined_date": _date_lookup(distinct["joined_date"], "joined_date"),
    }
    work = frame.with_columns(lookup.index(column) for column, lookup in lookups.items())
    out = work.select(
        lookups[c].field(c) if c in lookups else pl.col(c)
        for c in INSTITUTION_SCHEMA
        if c != "_problems"
    )
    checks: list[_Check] = []
    for column in contract.REGISTRY_COLUMNS:
        if column in INSTITUTION_REQUIRED:
            checks.append(_required_check(column, lookups))
        if column in lookups:
            checks.extend(lookups[column].checks(column))
    return out.with_columns(_problems=_problems(work, checks)).cast(INSTITUTION_SCHEMA)


def age_band(years: pl.Expr) -> pl.Expr:
    """The Census five-year band label (contract.AGE_BANDS) of an age in years; null stays null."""
    bands = pl.Series(contract.AGE_BANDS, dtype=pl.String)
    position = (years // 5).cast(pl.UInt32).clip(0, len(bands) - 1)
    return pl.lit(bands).gather(position)


ConditionRule = tuple[str, Callable[[str], bool]]


def condition_rules(conditions: pl.DataFrame) -> list[ConditionRule]:
    """(condition, test) per conditions.csv row, in file order; a test takes a normalised code.

    ``icd10_range`` is read as codes and ranges separated by ';' or ',' (``C00-C97``, ``C50``,
    ``U07.1``); a code is covered when it starts within the range at the range's precision.
    """
    rules: list[ConditionRule] = []
    for name, text in conditions.select("condition", "icd10_range").iter_rows():
        test = (
            _is_diabetic_retinopathy if name == _DIABETIC_RETINOPATHY else _range_test(name, text)
        )
        rules.append((name, test))
    return rules


# -- frame preparation --------------------------------------------------------------------------

_STUDY_LOOKUP_COLUMNS = (
    "institution_id",
    "study_date",
    "modality",
    "sex",
    "age",
    "birth_year",
    "state",
    "area_type",
    "diagnosis_icd10",
    "body_part",
    "facility_type",
    "n_images",
    "annotation_status",
    "consent",
    "fitzpatrick",
)


def _prepare(
    raw: pl.DataFrame, columns: Sequence[str], lookup_columns: Collection[str]
) -> pl.DataFrame:
    """``_row`` plus each contract column as text; a missing column is all absent (null).

    "" is absent too: set to null here, except in lookup columns, where the lookup does it.
    """
    row = (
        pl.col("_row").cast(pl.Int64)
        if "_row" in raw.columns
        else pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_row")
    )
    exprs = [row]
    for column in columns:
        if column not in raw.columns:
            exprs.append(pl.lit(None, dtype=pl.String).alias(column))
            continue
        text = pl.col(column).cast(pl.String)
        exprs.append(text if column in lookup_columns else pl.when(text != "").then(text))
    return raw.select(exprs)


def _distinct(frame: pl.DataFrame, columns: Sequence[str]) -> dict[str, pl.Series]:
    """The distinct present (non-null, non-empty) values of each column, sorted."""
    row = frame.select(pl.col(c).unique().implode() for c in columns)
    distinct = {c: row[c][0].alias("raw") for c in columns}
    return {c: values.filter(values != "").sort() for c, values in distinct.items()}


# -- lookups ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Check:
    """One kind of problem: the rows that have it and its reason (computed on those rows only)."""

    column: str
    bad: pl.Expr
    reason: pl.Expr
    value: pl.Expr | None = None
    """The value reported; the submitted one when None."""


@dataclass(frozen=True)
class _Lookup:
    """A column's distinct values (``raw``) with their normalised ``value`` (null when invalid),
    problem ``reason`` (null when valid) and ``bad`` flag, plus a last row for absent values.
    """

    table: pl.DataFrame

    @classmethod
    def of(
        cls,
        raw: pl.Series,
        value: pl.Series,
        reason: pl.Series,
        absent: object = None,
        **extra: pl.Series,
    ) -> _Lookup:
        """``absent``: what an absent value stands for (sex → "U"); None keeps it null."""
        reason = reason.cast(pl.String)
        body = pl.DataFrame(
            [raw.alias("raw"), value.alias("value"), reason.alias("reason")]
            + [reason.is_not_null().alias("bad")]
            + [series.alias(name) for name, series in extra.items()]
        )
        absent_row = {name: [None] for name in body.columns} | {"value": [absent], "bad": [False]}
        absent_frame = pl.DataFrame(absent_row, schema=body.schema)
        # rechunk: gathering from a multi-chunk series is ~100x slower in polars 2.1
        return cls(pl.concat([body, absent_frame], rechunk=True))

    @property
    def absent_position(self) -> int:
        return self.table.height - 1

    def index(self, column: str) -> pl.Expr:
        """Each row's position in the table (absent and "" go to the last row)."""
        if self.absent_position == 0:
            return pl.lit(0, dtype=pl.UInt32).alias(_index_name(column))
        # An Enum over exactly the distinct values maps each row to its position in one pass.
        categories = pl.Enum(self.table["raw"].head(self.absent_position))
        return (
            pl.col(column)
            .cast(categories, strict=False)
            .to_physical()
            .cast(pl.UInt32)
            .fill_null(self.absent_position)
            .alias(_index_name(column))
        )

    def field(self, column: str, field: str = "value") -> pl.Expr:
        """The table's ``field`` for each row; needs the :meth:`index` column."""
        return pl.lit(self.table[field]).gather(pl.col(_index_name(column))).alias(column)

    def is_absent(self, column: str) -> pl.Expr:
        return pl.col(_index_name(column)) == self.absent_position

    def checks(self, column: str) -> list[_Check]:
        """The check for invalid values; none when every distinct value is valid."""
        if not self.table["bad"].any():
            return []
        return [_Check(column, self.field(column, "bad"), self.field(column, "reason"))]


def _index_name(column: str) -> str:
    return f"__index_{column}"


def _key(raw: pl.Series) -> pl.Series:
    """Lower-case, runs of spaces and underscores as one space: the form vocabularies match in."""
    return raw.str.to_lowercase().str.replace_all(r"[\s_]+", " ").str.strip_chars()


def _suggest(raw: pl.Series, keys: pl.Series, labels: Mapping[str, str]) -> dict[str, str]:
    """raw value → label of the closest candidate key, for failed values that have one."""
    candidates = list(labels)
    hints: dict[str, str] = {}
    for value, key in islice(zip(raw, keys, strict=True), _MAX_SUGGESTED):
        close = difflib.get_close_matches(key, candidates, n=1, cutoff=_SUGGEST_CUTOFF)
        if close:
            hints[value] = labels[close[0]]
    return hints


def _reasons(raw: pl.Series, bad: pl.Series, message: str, hints: Mapping[str, str]) -> pl.Series:
    """``message`` with the value in its ``{}``, plus "; did you mean …?" where a hint exists."""
    suffixes = [f"; did you mean {label}?" for label in hints.values()]
    hint = raw.replace_strict(list(hints), suffixes, default="", return_dtype=pl.String)
    frame = pl.DataFrame({"raw": raw, "bad": bad, "hint": hint})
    return frame.select(pl.when("bad").then(pl.format(message, "raw") + pl.col("hint"))).to_series()


def _label(key: str, value: object) -> str:
    """How a suggestion is shown: the code itself, or 'name (code)'."""
    return str(value) if str(value).lower().replace("_", " ") == key else f"{key} ({value})"


def _enum_lookup(
    raw: pl.Series,
    column: str,
    table: Mapping[str, object],
    expected: str,
    *,
    dtype: pl.DataType | None = None,
    absent: object = None,
    labels: Mapping[str, str] | None = None,
) -> _Lookup:
    """Match lower-cased values against ``table`` (keys lower-case, single-spaced).

    ``labels``: how each key is shown in a suggestion; by default the code, or 'key (code)'.
    """
    keys = _key(raw)
    value = keys.replace_strict(
        list(table), list(table.values()), default=None, return_dtype=dtype or pl.String()
    )
    failed = value.is_null()
    labels = labels or {key: _label(key, code) for key, code in table.items()}
    hints = _suggest(raw.filter(failed), keys.filter(failed), labels)
    reason = _reasons(raw, failed, f"{column} '{{}}' is not {expected}", hints)
    return _Lookup.of(raw, value, reason, absent)


def _modality_lookup(raw: pl.Series) -> _Lookup:
    table = {code.lower(): code for code in contract.MODALITY_CODES} | contract.MODALITY_NAMES
    return _enum_lookup(raw, "modality", table, "a known modality")


def _facility_lookup(raw: pl.Series) -> _Lookup:
    table = {t.lower().replace("_", " "): t for t in contract.FACILITY_TYPES}
    table |= contract.FACILITY_NAMES
    return _enum_lookup(raw, "facility_type", table, f"a known facility type ({_FACILITY_HELP})")


def _state_lookup(raw: pl.Series, ref: ReferenceData) -> _Lookup:
    """Any alias in state_aliases.csv, official name or ISO code (old or new) → current ISO."""
    keys = pl.select(alias_key(pl.lit(raw))).to_series()
    aliases = ref.aliases
    value = keys.replace_strict(
        aliases["alias_key"], aliases["iso_code"], default=None, return_dtype=pl.String
    )
    failed = value.is_null()
    names = ref.state_names
    labels = {
        key: f"{names[iso]} ({iso})" for key, iso in aliases.select("alias_key", "iso_code").rows()
    }
    hints = _suggest(raw.filter(failed), keys.filter(failed), labels)
    reason = _reasons(raw, failed, "state '{}' is not a state or UT of India", hints)
    return _Lookup.of(raw, value, reason)


def _institution_lookup(raw: pl.Series, registered: Collection[str] | None) -> _Lookup:
    """Upper-case ids; when a registry is given, ids outside it are problems."""
    value = raw.str.to_uppercase()
    if registered is None:
        return _Lookup.of(raw, value, pl.repeat(None, len(raw), dtype=pl.String, eager=True))
    registry = sorted({r.strip().upper() for r in registered})
    failed = ~value.is_in(registry)
    hints = _suggest(raw.filter(failed), value.filter(failed), {r: r for r in registry})
    message = "institution_id '{}' is not in the institution registry"
    return _Lookup.of(raw, value, _reasons(raw, failed, message, hints))


def _upper_lookup(raw: pl.Series) -> _Lookup:
    return _Lookup.of(
        raw, raw.str.to_uppercase(), pl.repeat(None, len(raw), dtype=pl.String, eager=True)
    )


def _date_lookup(
    raw: pl.Series, column: str, *, earliest: dt.date | None = None, latest: dt.date | None = None
) -> _Lookup:
    """The four accepted forms, day-first; a month-first date gets its day-first spelling."""
    text = pl.col("raw")
    parsed = pl.when(text.str.contains(_DATE_SHAPE)).then(
        pl.coalesce(text.str.strptime(pl.Date, f, strict=False) for f in _DATE_FORMATS)
    )
    month_first = pl.when(parsed.is_null() & text.str.contains(_MONTH_FIRST_SHAPE)).then(
        pl.coalesce(text.str.strptime(pl.Date, f, strict=False) for f in ("%m/%d/%Y", "%m-%d-%Y"))
    )
    hint = pl.format("; did you mean {} (day first)?", month_first.dt.strftime("%d/%m/%Y"))
    invalid = f"{column} '{{}}' is not a valid date (accepted: {DATE_FORMATS_TEXT})"
    reason = pl.when(parsed.is_null()).then(pl.format(invalid, text) + hint.fill_null(""))
    if latest is not None:
        late = f"{column} '{{}}' is after today ({latest.isoformat()})"
        reason = reason.when(parsed > latest).then(pl.format(late, text))
    if earliest is not None:
        early = f"{column} '{{}}' is before {earliest.year}"
        reason = reason.when(parsed < earliest).then(pl.format(early, text))
    table = pl.DataFrame({"raw": raw}).select(
        value=pl.when(reason.is_null()).then(parsed), reason=reason
    )
    return _Lookup.of(raw, table["value"], table["reason"])


def _age_lookup(raw: pl.Series) -> _Lookup:
    """Plain years (45, 45.5) or DICOM AS (045Y, 006M, 003W, 010D), in years, within 0–120."""
    text = pl.col("raw")
    dicom = text.str.extract_groups(_AGE_STRING)
    unit = dicom.struct.field("unit").str.to_uppercase()
    years = pl.coalesce(
        pl.when(text.str.contains(_NUMBER)).then(text.cast(pl.Float64, strict=False)),
        dicom.struct.field("n").cast(pl.Float64)
        * unit.replace_strict(_AGE_UNIT_YEARS, default=None, return_dtype=pl.Float64),
    )
    not_age = f"age '{{}}' is not an age in years ({_AGE_HELP})"
    out_of_range = f"age '{{}}' is outside 0–{contract.MAX_AGE_YEARS} years"
    reason = (
        pl.when(years.is_null())
        .then(pl.format(not_age, text))
        .when(~_age_in_range(years))
        .then(pl.format(out_of_range, text))
    )
    table = pl.DataFrame({"raw": raw}).select(
        value=pl.when(reason.is_null()).then(years), reason=reason
    )
    return _Lookup.of(raw, table["value"], table["reason"])


def _birth_year_lookup(raw: pl.Series) -> _Lookup:
    text = pl.col("raw")
    valid = text.str.contains(r"^\d{4}$")
    table = pl.DataFrame({"raw": raw}).select(
        value=pl.when(valid).then(text.cast(pl.Int32)),
        reason=pl.when(~valid).then(pl.format("birth_year '{}' is not a 4-digit year", text)),
    )
    return _Lookup.of(raw, table["value"], table["reason"])


def _count_lookup(raw: pl.Series, column: str) -> _Lookup:
    text = pl.col("raw")
    count = pl.when(text.str.contains(r"^\d+$")).then(text.str.to_integer(strict=False))
    table = pl.DataFrame({"raw": raw}).select(
        value=count,
        reason=pl.when(count.is_null()).then(
            pl.format(f"{column} '{{}}' is not a whole number ≥ 0", text)
        ),
    )
    return _Lookup.of(raw, table["value"], table["reason"])


def _diagnosis_lookup(raw: pl.Series, rules: Sequence[ConditionRule]) -> _Lookup:
    """ICD-10 code lists ('C50.9; E11.3', 'C509') or 'normal', with the conditions they imply.

    ``value`` is the list of codes (upper-case, with the dot, duplicates dropped; [] for
    'normal'); ``conditions`` the conditions.csv names covering any code, in file order,
    ["other"] when none does and ["normal"] for 'normal'.
    """
    values = pl.DataFrame({"raw": raw}).with_row_index("u")
    per_value = _icd10_per_value(_icd10_tokens(values), rules)
    normal = pl.col("raw").str.to_lowercase() == "normal"
    # a value with no token at all (";") has no row in per_value: its lists are null
    n_malformed = pl.col("malformed").list.len().fill_null(0)
    valid = ~normal & (n_malformed == 0) & (pl.col("codes").list.len().fill_null(0) > 0)
    names = [name for name, _ in rules]
    condition_names = pl.col("ranks").list.eval(
        pl.element().replace_strict(range(len(names)), names, return_dtype=pl.String)
    )
    table = values.join(per_value, on="u", how="left", maintain_order="left").select(
        value=pl.when(normal).then(pl.lit([], dtype=pl.List(pl.String))).when(valid).then("codes"),
        reason=pl.when(~normal & ~valid).then(_icd10_reason()),
        conditions=pl.when(normal)
        .then(pl.lit(["normal"], dtype=pl.List(pl.String)))
        .when(valid & (pl.col("ranks").list.len() > 0))
        .then(condition_names)
        .when(valid)
        .then(pl.lit(["other"], dtype=pl.List(pl.String))),
    )
    return _Lookup.of(raw, table["value"], table["reason"], conditions=table["conditions"])


def _icd10_per_value(tokens: pl.DataFrame, rules: Sequence[ConditionRule]) -> pl.DataFrame:
    """Per value (u): its codes, malformed tokens, their fixes and the ranks of its conditions."""
    codes = tokens["code"].drop_nulls().unique().sort()
    per_code = pl.DataFrame(
        {"code": codes, "rank": [_condition_ranks(c, rules) for c in codes]},
        schema={"code": pl.String, "rank": pl.List(pl.UInt32)},
    )
    broken = tokens.filter(pl.col("code").is_null())["token"].unique().sort()
    fixes = {t: fixed for t in islice(broken, _MAX_SUGGESTED) if (fixed := _icd10_fix(t))}
    malformed = pl.col("code").is_null()
    return (
        tokens.with_columns(
            fix=pl.col("token").replace_strict(fixes, default=None, return_dtype=pl.String)
        )
        .join(per_code, on="code", how="left")
        .explode("rank", empty_as_null=True)  # keep codes that have no condition
        .group_by("u")
        .agg(
            codes=pl.col("code").drop_nulls().unique(maintain_order=True),
            malformed=pl.col("token").filter(malformed).unique(maintain_order=True),
            fixes=pl.col("fix").filter(malformed).unique(maintain_order=True),
            unfixable=pl.col("fix").filter(malformed).null_count(),
            ranks=pl.col("rank").drop_nulls().unique().sort(),
        )
    )


def _icd10_reason() -> pl.Expr:
    malformed = pl.col("malformed")
    count = malformed.list.len().fill_null(0)
    hint = pl.when((count > 0) & (pl.col("unfixable") == 0)).then(
        pl.format("; did you mean {}?", pl.col("fixes").list.join(", "))
    )
    message = pl.format(
        "diagnosis_icd10 '{}' has malformed ICD-10 code{} {} ({})",
        "raw",
        pl.when(count > 1).then(pl.lit("s")).otherwise(pl.lit("")),
        malformed.list.eval(pl.format("'{}'", pl.element())).list.join(", "),
        pl.lit(_ICD10_HELP),
    )
    return (
        pl.when(count > 0)
        .then(message + hint.fill_null(""))
        .otherwise(pl.format("diagnosis_icd10 '{}' contains no ICD-10 code", "raw"))
    )


def _icd10_fix(token: str) -> str | None:
    """A malformed code with O, I or L typed for a digit of its category, corrected (C5O.9)."""
    text = token.upper().replace(" ", "")
    candidate = text[:1] + text[1:3].translate(_DIGIT_LOOKALIKES) + text[3:]
    match = re.fullmatch(_ICD10, candidate)
    if match is None:
        return None
    return match["cat"] + (f".{match['sub']}" if match["sub"] else "")


def _icd10_tokens(values: pl.DataFrame) -> pl.DataFrame:
    """One row per ';'/','-separated token of each value: u, token, code (null if malformed)."""
    parts = pl.col("parts")
    category, sub = parts.struct.field("cat"), parts.struct.field("sub")
    return (
        values.filter(pl.col("raw").str.to_lowercase() != "normal")
        .select("u", token=pl.col("raw").str.split(r"[;,]", literal=False))
        .explode("token")
        .with_columns(pl.col("token").str.strip_chars())
        .filter(pl.col("token") != "")
        .with_columns(parts=pl.col("token").str.to_uppercase().str.extract_groups(f"^{_ICD10}$"))
        .select(
            "u",
            "token",
            code=pl.when(sub.is_null())
            .then(category)
            .otherwise(pl.concat_str(category, pl.lit("."), sub)),
        )
    )


def _condition_ranks(code: str, rules: Sequence[ConditionRule]) -> list[int]:
    return [rank for rank, (_, covers) in enumerate(rules) if covers(code)]


def _range_test(name: str, text: str) -> Callable[[str], bool]:
    bounds: list[tuple[str, str]] = []
    for part in re.split(r"[;,]", text):
        match = _ICD10_RANGE.fullmatch(part.strip())
        if match is None:
            raise ValueError(f"conditions.csv: cannot read icd10_range {text!r} of {name}")
        low = match[1].replace(".", "")
        high = (match[2] or match[1]).replace(".", "")
        bounds.append((low, high))

    def covers(code: str) -> bool:
        compact = code.replace(".", "")
        return any(lo <= compact[: len(lo)] and compact[: len(hi)] <= hi for lo, hi in bounds)

    return covers


def _is_diabetic_retinopathy(code: str) -> bool:
    """Diabetic retinopathy, whose conditions.csv row is prose rather than a range.

    The row reads: WHO ICD-10 asterisk code H36.0 (with an E10–E14 fourth character .3) and
    ICD-10-CM E08–E13 .3x. Implemented as: H36.0 and its extensions, or any code in E08–E14
    whose fourth character is 3 (E11.3, E11.31, E08.329 …). E10–E14 .3 are also
    diabetes_mellitus / high_blood_glucose: a code can belong to several conditions.
    """
    compact = code.replace(".", "")
    diabetic = compact[:3] in {"E08", "E09", "E10", "E11", "E12", "E13", "E14"}
    return compact.startswith("H360") or (diabetic and compact[3:4] == "3")


# -- studies: lookups, age from birth year, checks ----------------------------------------------


def _study_lookups(
    distinct: Mapping[str, pl.Series],
    ref: ReferenceData,
    today: dt.date,
    registered_institutions: Collection[str] | None,
) -> dict[str, _Lookup]:
    def one_of(values: Sequence[str]) -> str:
        return "one of " + ", ".join(values)

    return {
        "institution_id": _institution_lookup(distinct["institution_id"], registered_institutions),
        "study_date": _date_lookup(
            distinct["study_date"],
            "study_date",
            earliest=dt.date(contract.MIN_STUDY_YEAR, 1, 1),
            latest=today,
        ),
        "modality": _modality_lookup(distinct["modality"]),
        "sex": _enum_lookup(
            distinct["sex"], "sex", contract.SEX_NAMES, one_of(contract.SEX_CODES), absent="U"
        ),
        "age": _age_lookup(distinct["age"]),
        "birth_year": _birth_year_lookup(distinct["birth_year"]),
        "state": _state_lookup(distinct["state"], ref),
        "area_type": _enum_lookup(
            distinct["area_type"],
            "area_type",
            contract.AREA_NAMES,
            one_of(contract.AREA_TYPES),
            absent="unknown",
        ),
        "diagnosis_icd10": _diagnosis_lookup(
            distinct["diagnosis_icd10"], condition_rules(ref.conditions)
        ),
        "body_part": _upper_lookup(distinct["body_part"]),
        "facility_type": _facility_lookup(distinct["facility_type"]),
        "n_images": _count_lookup(distinct["n_images"], "n_images"),
        "annotation_status": _enum_lookup(
            distinct["annotation_status"],
            "annotation_status",
            {s: s for s in contract.ANNOTATION_STATUSES},
            one_of(contract.ANNOTATION_STATUSES),
        ),
        "consent": _enum_lookup(
            distinct["consent"],
            "consent",
            {s: s for s in contract.CONSENT_VALUES},
            one_of(contract.CONSENT_VALUES),
        ),
        "fitzpatrick": _enum_lookup(
            distinct["fitzpatrick"],
            "fitzpatrick",
            _FITZPATRICK,
            "a Fitzpatrick skin type (I–VI or 1–6)",
            dtype=pl.Int8(),
            labels={key: f"{key.upper()} ({n})" for key, n in _FITZPATRICK.items()},
        ),
    }


def _age_in_range(years: pl.Expr) -> pl.Expr:
    return years.is_between(0, contract.MAX_AGE_YEARS)


def _age_from_birth_year(
    lookups: Mapping[str, _Lookup], value: Mapping[str, pl.Expr]
) -> pl.Expr | None:
    """Study year − birth year where no age was given; None when no birth year is usable."""
    if lookups["birth_year"].table["value"].is_null().all():
        return None
    years = value["study_date"].dt.year().cast(pl.Int32) - value["birth_year"]
    return pl.when(lookups["age"].is_absent("age")).then(years.cast(pl.Float64))


def _study_checks(
    lookups: Mapping[str, _Lookup], from_birth: pl.Expr | None, study_date: pl.Expr
) -> list[_Check]:
    """Every check, in contract column order (the order a row's problems are listed in)."""
    checks: list[_Check] = []
    for column in contract.MANIFEST_COLUMNS:
        if column in contract.REQUIRED_COLUMNS:
            checks.append(_required_check(column, lookups))
        if column == "study_uid":
            checks.append(_study_uid_length_check())
        if column in lookups:
            checks.extend(lookups[column].checks(column))
        if column == "birth_year" and from_birth is not None:
            checks.extend(_birth_year_checks(from_birth, study_date))
    return checks


def _required_check(column: str, lookups: Mapping[str, _Lookup]) -> _Check:
    absent = lookups[column].is_absent(column) if column in lookups else pl.col(column).is_null()
    reason = pl.lit(f"{column} is required but empty")
    return _Check(column, absent, reason, value=pl.lit(None, dtype=pl.String))


def _study_uid_length_check() -> _Check:
    limit = contract.MAX_STUDY_UID_LENGTH
    length = pl.col("study_uid").str.len_chars()
    reason = pl.format(
        f"study_uid '{{}}…' is {{}} characters long; at most {limit} are allowed",
        pl.col("study_uid").str.slice(0, 40),
        length,
    )
    return _Check("study_uid", length > limit, reason)


def _birth_year_checks(from_birth: pl.Expr, study_date: pl.Expr) -> list[_Check]:
    after = pl.format(
        "birth_year '{}' is after the study year {}", "birth_year", study_date.dt.year()
    )
    too_old = pl.format(
        f"birth_year '{{}}' gives an age of {{}} years at the study date, outside "
        f"0–{contract.MAX_AGE_YEARS} years",
        "birth_year",
        from_birth.cast(pl.Int64),
    )
    return [
        _Check("birth_year", from_birth < 0, after),
        _Check("birth_year", from_birth > contract.MAX_AGE_YEARS, too_old),
    ]


# -- problems -----------------------------------------------------------------------------------


def _problems(work: pl.DataFrame, checks: Sequence[_Check]) -> pl.Series:
    """Each row's problems as a list of (column, value, reason), [] when it has none.

    One pass finds the rows with any problem; the lists are built in long form for those rows
    only and spread back by position. (A struct per check for every row, concatenated into
    lists, is orders of magnitude slower in polars.)
    """
    if not checks:
        return pl.repeat([], work.height, dtype=PROBLEMS_DTYPE, eager=True).alias("_problems")
    flagged = work.with_columns(
        __bad=pl.any_horizontal(check.bad for check in checks).fill_null(False)
    )
    failing = flagged.with_row_index("__i").filter("__bad").lazy()
    found = pl.concat(
        failing.filter(check.bad).select(
            "__i",
            column=pl.lit(check.column),
            value=pl.col(check.column) if check.value is None else check.value,
            reason=check.reason.cast(pl.String),
        )
        for check in checks
    )
    # group_by keeps each group's rows in check (= column) order; sort puts rows in file order.
    per_row = (
        found.group_by("__i")
        .agg(pl.struct("column", "value", "reason").alias("_problems"))
        .sort("__i")
        .collect()
    )
    # rechunk: gathering from a multi-chunk series is ~100x slower in polars 2.1
    lists = pl.concat([per_row["_problems"], pl.Series([[]], dtype=PROBLEMS_DTYPE)], rechunk=True)
    bad = pl.col("__bad")
    position = pl.when(bad).then(bad.cum_sum() - 1).otherwise(per_row.height)
    return flagged.select(pl.lit(lists).gather(position.cast(pl.UInt32))).to_series()
