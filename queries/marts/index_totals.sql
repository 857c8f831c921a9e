-- name: index_totals
-- description: Headline totals of the index: studies, patients, images, institutions, states/UTs covered, synthetic share and complete-demographics share.
-- params: none
SELECT
    count(*)::BIGINT AS studies,
    count(DISTINCT patient_key)::BIGINT AS patients,
    coalesce(sum(n_images), 0)::BIGINT AS images,
    count(DISTINCT institution_id)::BIGINT AS institutions,
    count(DISTINCT state)::BIGINT AS states_covered,
    (SELECT count(*) FROM ref_state)::BIGINT AS states_total,
    count(*) FILTER (WHERE source = 'demo')::BIGINT AS demo_studies,
    count(*) FILTER (
        WHERE sex <> 'U' AND age_band IS NOT NULL AND state IS NOT NULL AND area_type <> 'unknown'
    )::BIGINT AS complete_demographics,
    max(ingested_at) AS last_ingest
FROM study;
