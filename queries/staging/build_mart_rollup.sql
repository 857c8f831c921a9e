-- name: build_mart_rollup
-- description: A cube summed from its per-institution part over the columns it leaves out: exact for patients and new patients too, since each patient belongs to one institution (month part summed over the institution) or is in one row (first-study part, summed over any column).
-- params: cube, dims, part
INSERT INTO mart_cell BY NAME
SELECT
    $cube AS cube,
    COLUMNS(lambda c: list_contains($dims, c)),
    sum(patients)::BIGINT AS patients,
    sum(new_patients)::BIGINT AS new_patients,
    sum(studies)::BIGINT AS studies,
    sum(images)::BIGINT AS images,
    sum(demo_studies)::BIGINT AS demo_studies,
    sum(complete_studies)::BIGINT AS complete_studies
FROM mart_cell
WHERE cube = $part
GROUP BY ALL;
