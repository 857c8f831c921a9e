-- name: accrual_by_institution
-- description: New patients (first study in the cell), studies or images per institution, cell of the chosen dimensions and study month, after the shared filters; summed over months it equals coverage by institution and the same dimensions.
-- params: dims, unit, f_states, f_institutions, f_modalities, f_sexes, f_age_min, f_age_max, f_area_types, f_facility_types, f_conditions, f_date_from, f_date_to
WITH facts AS (
    SELECT
        * EXCLUDE (conditions),
        unnest(
            CASE WHEN list_contains($dims, 'condition')
                THEN coalesce(conditions, [NULL]::VARCHAR[])
                ELSE [NULL]::VARCHAR[]
            END
        ) AS condition
    FROM filtered_study(
        $f_states, $f_institutions, $f_modalities, $f_sexes, $f_age_min, $f_age_max,
        $f_area_types, $f_facility_types, $f_conditions, $f_date_from, $f_date_to
    )
),
per_patient_month AS (
    SELECT
        institution,
        COLUMNS(lambda c: list_contains($dims, c)),
        patient_key,
        month,
        count(*) AS studies,
        coalesce(sum(n_images), 0) AS images
    FROM facts
    GROUP BY ALL
),
marked AS (
    -- A patient is new to a cell in the first month the institution saw them in that cell.
    SELECT
        *,
        month = min(month) OVER (
            PARTITION BY institution, patient_key, row(*COLUMNS(lambda c: list_contains($dims, c)))
        ) AS first_in_cell
    FROM per_patient_month
)
SELECT
    institution AS institution_id,
    COLUMNS(lambda c: list_contains($dims, c)),
    month,
    (CASE $unit
        WHEN 'patients' THEN count(*) FILTER (WHERE first_in_cell)
        WHEN 'studies' THEN sum(studies)
        WHEN 'images' THEN sum(images)
    END)::BIGINT AS n
FROM marked
GROUP BY ALL
ORDER BY ALL;
