-- name: build_mart_first_cells
-- description: One first-study cube: each patient counted once, in the month and cell of their first study (ties broken exactly as monthly_accrual breaks them), for accrual in patients.
-- params: cube, dims
INSERT INTO mart_cell BY NAME
WITH firsts AS (
    SELECT * EXCLUDE (conditions)
    FROM filtered_study(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
    QUALIFY row_number() OVER (
        PARTITION BY patient_key
        ORDER BY study_date, institution, modality, state, sex, age_band, area_type,
            facility_type, body_part, manufacturer
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
