-- name: build_mart_month_cells
-- description: One coverage cube by month and the chosen dimensions: per cell and month, distinct patients, patients first seen in the cell that month (new_patients), studies, images, demo and complete-demographics studies, over the studies of the given institutions (NULL: all).
-- params: cube, dims, institutions
INSERT INTO mart_cell BY NAME
WITH per_patient AS (
    -- one row per (cell without month, month, patient)
    SELECT
        struct_pack(*COLUMNS(lambda c: list_contains($dims, c) AND c <> 'month')) AS cell,
        month,
        patient_key,
        count(*) AS studies,
        coalesce(sum(n_images), 0) AS images,
        count(*) FILTER (WHERE source = 'demo') AS demo_studies,
        count(*) FILTER (
            WHERE sex <> 'U' AND age_band IS NOT NULL AND state IS NOT NULL
              AND area_type <> 'unknown'
        ) AS complete_studies
    FROM coverage_facts(
        $dims, NULL, $institutions, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    )
    GROUP BY ALL
),
cells AS (
    SELECT cell, month, count(*) AS patients, sum(studies) AS studies, sum(images) AS images,
           sum(demo_studies) AS demo_studies, sum(complete_studies) AS complete_studies
    FROM per_patient
    GROUP BY cell, month
),
first_seen AS (
    SELECT cell, month, count(*) AS new_patients
    FROM (SELECT cell, patient_key, min(month) AS month FROM per_patient GROUP BY cell, patient_key)
    GROUP BY cell, month
)
SELECT
    $cube AS cube,
    unnest(c.cell),
    c.month,
    c.patients::BIGINT AS patients,
    coalesce(f.new_patients, 0)::BIGINT AS new_patients,
    c.studies::BIGINT AS studies,
    c.images::BIGINT AS images,
    c.demo_studies::BIGINT AS demo_studies,
    c.complete_studies::BIGINT AS complete_studies
FROM cells AS c
LEFT JOIN first_seen AS f ON c.cell IS NOT DISTINCT FROM f.cell AND c.month = f.month;
