-- name: build_mart_cells
-- description: One coverage cube: exact distinct patients, studies, images, demo and complete-demographics studies, and studies missing each curated field, per cell of the chosen dimensions (no month), over the staged studies (mart_source), as the base coverage queries count them.
-- params: cube, dims
INSERT INTO mart_cell BY NAME
WITH facts AS NOT MATERIALIZED (
    -- with condition among the dimensions a study counts once per condition (NULL when its
    -- diagnosis is unknown), as coverage_facts has it; the branches are decided by a constant
    SELECT * EXCLUDE (conditions), NULL::UINTEGER AS condition
    FROM mart_source
    WHERE NOT list_contains($dims, 'condition')
    UNION ALL
    SELECT * EXCLUDE (conditions), unnest(conditions) AS condition
    FROM mart_source
    WHERE list_contains($dims, 'condition')
),
counts AS (
    -- a patient with a single study is in one cell: its rows are its distinct patients
    SELECT
        COLUMNS(lambda c: list_contains($dims, c)),
        count_if(single) AS patients,
        count(*) AS studies,
        coalesce(sum(n_images), 0) AS images,
        sum(is_demo) AS demo_studies,
        sum(is_complete) AS complete_studies,
        sum(no_sex) AS missing_sex,
        sum(no_age) AS missing_age,
        sum(no_state) AS missing_state,
        sum(no_area_type) AS missing_area_type,
        sum(no_diagnosis) AS missing_diagnosis,
        sum(no_body_part) AS missing_body_part,
        sum(no_manufacturer) AS missing_manufacturer,
        sum(no_n_images) AS missing_n_images,
        sum(no_facility_type) AS missing_facility_type
    FROM facts
    GROUP BY ALL
    UNION ALL BY NAME
    SELECT COLUMNS(lambda c: list_contains($dims, c)), count(DISTINCT patient_key) AS patients
    FROM facts
    WHERE NOT single
    GROUP BY ALL
),
cells AS (
    SELECT
        COLUMNS(lambda c: list_contains($dims, c)),
        sum(COLUMNS(lambda c: NOT list_contains($dims, c)))::BIGINT
    FROM counts
    GROUP BY ALL
)
SELECT
    $cube AS cube,
    v.value_of[COLUMNS(lambda c: list_contains($dims, c))],
    COLUMNS(lambda c: NOT list_contains($dims, c) AND c <> 'value_of')
FROM cells, (SELECT list(value ORDER BY code) AS value_of FROM mart_value) AS v;
