-- name: build_mart_month_cells
-- description: One coverage cube by month and the chosen dimensions (month is always one): per cell and month, distinct patients, patients first seen in the cell that month (new_patients), studies, images, demo and complete-demographics studies, over the staged studies (mart_source).
-- params: cube, dims
INSERT INTO mart_cell BY NAME
WITH per_patient AS (
    -- one row per (cell, month, patient) of the patients with more than one study
    SELECT
        COLUMNS(lambda c: list_contains($dims, c) AND c <> 'month'),
        month,
        patient_key,
        count(*) AS studies,
        coalesce(sum(n_images), 0) AS images,
        sum(is_demo) AS demo_studies,
        sum(is_complete) AS complete_studies
    FROM mart_source
    WHERE NOT single
    GROUP BY ALL
),
first_seen AS (
    -- one row per (cell, patient): the month the patient was first seen in the cell
    SELECT COLUMNS(lambda c: list_contains($dims, c) AND c <> 'month'), patient_key,
           min(month) AS month
    FROM per_patient
    GROUP BY ALL
),
counts AS (
    -- a patient with a single study is one patient, new that month, in one cell; a patient's
    -- first month in a cell is one of their months there, so new patients add no cell
    SELECT COLUMNS(lambda c: list_contains($dims, c) AND c <> 'month'), month,
           count(*) AS patients, count(*) AS new_patients, count(*) AS studies,
           coalesce(sum(n_images), 0) AS images, sum(is_demo) AS demo_studies,
           sum(is_complete) AS complete_studies
    FROM mart_source
    WHERE single
    GROUP BY ALL
    UNION ALL BY NAME
    SELECT COLUMNS(lambda c: list_contains($dims, c) AND c <> 'month'), month,
           count(*) AS patients, sum(studies) AS studies, sum(images) AS images,
           sum(demo_studies) AS demo_studies, sum(complete_studies) AS complete_studies
    FROM per_patient
    GROUP BY ALL
    UNION ALL BY NAME
    SELECT COLUMNS(lambda c: list_contains($dims, c) AND c <> 'month'), month,
           count(*) AS new_patients
    FROM first_seen
    GROUP BY ALL
),
cells AS (
    SELECT COLUMNS(lambda c: list_contains($dims, c) AND c <> 'month'), month,
           coalesce(sum(COLUMNS(lambda c: c IN (
               'patients', 'new_patients', 'studies', 'images', 'demo_studies',
               'complete_studies'
           ))), 0)::BIGINT
    FROM counts
    GROUP BY ALL
)
SELECT
    $cube AS cube,
    v.value_of[COLUMNS(lambda c: list_contains($dims, c) AND c <> 'month')],
    v.value_of[month] AS month,
    COLUMNS(lambda c: c IN (
        'patients', 'new_patients', 'studies', 'images', 'demo_studies', 'complete_studies'
    ))
FROM cells, (SELECT list(value ORDER BY code) AS value_of FROM mart_value) AS v;
