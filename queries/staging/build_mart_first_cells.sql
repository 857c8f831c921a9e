-- name: build_mart_first_cells
-- description: One first-study cube: each patient counted once, in the month and cell of their first study (ties broken exactly as monthly_accrual breaks them), for accrual in patients; over the staged studies (mart_source). The order breaks every tie that could change the cube's columns, so a rebuild gives the same rows.
-- params: cube, dims
INSERT INTO mart_cell BY NAME
WITH first_days AS (
    -- each patient's first study date: only the studies on it can be the first study, so the
    -- window below sorts those (about one per patient) instead of every study
    SELECT patient_key, min(study_date) AS study_date
    FROM mart_source
    WHERE NOT single
    GROUP BY patient_key
),
firsts AS (
    -- a patient's only study is their first
    SELECT * EXCLUDE (conditions)
    FROM mart_source
    WHERE single
    UNION ALL
    -- codes order as their values do (mart_value), NULL last
    SELECT * EXCLUDE (conditions)
    FROM mart_source
    SEMI JOIN first_days USING (patient_key, study_date)
    QUALIFY row_number() OVER (
        PARTITION BY patient_key
        ORDER BY study_date, institution, modality, state, sex, age_band, area_type,
            facility_type, body_part, manufacturer, n_images, source
    ) = 1
),
cells AS (
    SELECT
        COLUMNS(lambda c: list_contains($dims, c)),
        count(*) AS patients,
        count(*) AS studies,
        coalesce(sum(n_images), 0) AS images,
        sum(is_demo) AS demo_studies,
        sum(is_complete) AS complete_studies
    FROM firsts
    GROUP BY ALL
)
SELECT
    $cube AS cube,
    v.value_of[COLUMNS(lambda c: list_contains($dims, c))],
    COLUMNS(lambda c: c IN ('patients', 'studies', 'images', 'demo_studies', 'complete_studies'))
        ::BIGINT
FROM cells, (SELECT list(value ORDER BY code) AS value_of FROM mart_value) AS v;
