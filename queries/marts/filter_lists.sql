-- name: filter_lists
-- description: The registry and condition lists of filter_options, without its scan of every study for the first and last dates (which the marts keep).
-- params: none
SELECT
    (SELECT list(institution_id ORDER BY institution_id) FROM institution) AS institutions,
    (SELECT list(name ORDER BY institution_id) FROM institution) AS institution_names,
    (SELECT list(condition ORDER BY condition) FROM ref_condition) AS conditions;
