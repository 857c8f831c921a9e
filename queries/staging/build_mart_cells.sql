-- name: build_mart_cells
-- description: One coverage cube: exact distinct patients, studies, images, demo and complete-demographics studies, and studies missing each curated field, per cell of the chosen dimensions (no month), over the studies of the given institutions (NULL: all), as the base coverage queries count them.
-- params: cube, dims, institutions
INSERT INTO mart_cell BY NAME
SELECT
    $cube AS cube,
    COLUMNS(lambda c: list_contains($dims, c)),
    count(DISTINCT patient_key)::BIGINT AS patients,
    count(*)::BIGINT AS studies,
    coalesce(sum(n_images), 0)::BIGINT AS images,
    count(*) FILTER (WHERE source = 'demo')::BIGINT AS demo_studies,
    count(*) FILTER (
        WHERE sex <> 'U' AND age_band IS NOT NULL AND state IS NOT NULL AND area_type <> 'unknown'
    )::BIGINT AS complete_studies,
    count(*) FILTER (WHERE sex = 'U')::BIGINT AS missing_sex,
    count(*) FILTER (WHERE age_years IS NULL)::BIGINT AS missing_age,
    count(*) FILTER (WHERE state IS NULL)::BIGINT AS missing_state,
    count(*) FILTER (WHERE area_type = 'unknown')::BIGINT AS missing_area_type,
    count(*) FILTER (WHERE diagnosis_unknown)::BIGINT AS missing_diagnosis,
    count(*) FILTER (WHERE body_part IS NULL)::BIGINT AS missing_body_part,
    count(*) FILTER (WHERE manufacturer IS NULL)::BIGINT AS missing_manufacturer,
    count(*) FILTER (WHERE n_images IS NULL)::BIGINT AS missing_n_images,
    count(*) FILTER (WHERE facility_type IS NULL)::BIGINT AS missing_facility_type
FROM coverage_facts(
    $dims, NULL, $institutions, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
)
GROUP BY ALL;
