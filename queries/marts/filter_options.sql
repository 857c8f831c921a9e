-- name: filter_options
-- description: What the sidebar filters can offer: registered institutions, and the first and last study dates in the index.
-- params: none
SELECT
    (SELECT list(institution_id ORDER BY institution_id) FROM institution) AS institutions,
    (SELECT list(name ORDER BY institution_id) FROM institution) AS institution_names,
    (SELECT min(study_date) FROM study) AS first_date,
    (SELECT max(study_date) FROM study) AS last_date,
    (SELECT list(condition ORDER BY condition) FROM ref_condition) AS conditions;
