-- name: build_mart_first_cells
-- description: One first-study cube: each patient counted once, in the month and cell of their first study (ties broken exactly as monthly_accrual breaks them), for accrual in patients; over the patients of the given institutions (NULL: all). The order breaks every tie that could change the cube's columns, so a rebuild gives the same rows.
-- params: cube, dims, institutions
INSERT INTO mart_cell BY NAME
WITH first_days AS (
    -- each patient's first study date: only the studies on it can be the first study, so the
    -- window below sorts those (about one per patient) instead of every study
    SELECT patient_key, min(study_date) AS study_date
    FROM filtered_study(NULL, $institutions, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
    GROUP BY patient_key
),
firsts AS (
    SELECT * EXCLUDE (conditions)
    FROM filtered_study(NULL, $institutions, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
    SEMI JOIN first_days USING (patient_key, study_date)
    QUALIFY row_number() OVER (
        PARTITION BY patient_key
        ORDER BY study_date, institution, modality, state, sex, age_band, area_type,
            facility_type, body_part, manufacturer, n_images, source
    ) = 1
)
SELECT
    $cube AS cube,
    COLUMNS(lambda c: list_contains($dims, c)),
    count(*)::BIGINT AS patients,
    count(*)::BIGINT AS studies,
    coalesce(sum(n_images), 0)::BIGINT AS images,
    count(*) FILTER (WHERE source = 'demo')::BIGINT AS demo_studies,
    count(*) FILTER (
        WHERE sex <> 'U' AND age_band IS NOT NULL AND state IS NOT NULL AND area_type <> 'unknown'
    )::BIGINT AS complete_studies
FROM firsts
GROUP BY ALL;
