"""The DICOM privacy audit as a page shows it: pure functions over the ``phi_flags`` query.

The audit holds, per institution and DICOM element, how many files carried an identifying
value there (the values themselves are never stored). ``phi_flags`` (queries/marts) returns one
row per institution and element keyword; these functions reshape it for a table and headline.
"""

from __future__ import annotations

import polars as pl

# Plain-language names of the audited elements (dashboard.ingest.dicom.PHI_TAGS), in the order
# columns are shown.
TAG_LABELS: dict[str, str] = {
    "PatientName": "Patient name",
    "PatientBirthName": "Birth name",
    "PatientMotherBirthName": "Mother's birth name",
    "PatientAddress": "Address",
    "PatientTelephoneNumbers": "Telephone",
    "OtherPatientIDs": "Other patient IDs",
    "OtherPatientIDsSequence": "Other patient IDs (sequence)",
    "BurnedInAnnotation": "Burned-in annotation",
}


def phi_by_institution(flags: pl.DataFrame) -> pl.DataFrame:
    """One row per institution, most flagged files first.

    Columns: institution_id, institution_name, flagged_files (files with any identifying
    value; a file carrying two counts once), flagged_studies, then one column per element
    found anywhere, headed by its label, giving the files that carried it (0 where none did).
    ``flags`` is the output of the ``phi_flags`` query.
    """
    base = flags.group_by("institution_id", maintain_order=True).agg(
        pl.col("institution_name").first(),
        pl.col("institution_flagged_files").first().alias("flagged_files"),
        pl.col("institution_flagged_studies").first().alias("flagged_studies"),
    )
    present = [t for t in TAG_LABELS if t in set(flags["tag"].to_list())]
    if not present:
        return base.sort("flagged_files", "institution_id", descending=[True, False])
    wide = flags.pivot(
        on="tag", index="institution_id", values="files", on_columns=present
    ).with_columns(pl.col(present).fill_null(0))
    return (
        base.join(wide, on="institution_id", how="left", maintain_order="left")
        .rename({t: TAG_LABELS[t] for t in present})
        .sort("flagged_files", "institution_id", descending=[True, False])
    )


def phi_totals(flags: pl.DataFrame) -> dict[str, int]:
    """Institutions with any flagged file, and the flagged files and studies over them all."""
    per_institution = flags.unique("institution_id")
    return {
        "institutions": per_institution.height,
        "flagged_files": int(per_institution["institution_flagged_files"].sum()),
        "flagged_studies": int(per_institution["institution_flagged_studies"].sum()),
    }
