-- name: states_total
-- description: How many states and union territories the reference lists.
-- params: none
SELECT count(*)::BIGINT AS states_total FROM ref_state;
