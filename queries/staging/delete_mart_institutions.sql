-- name: delete_mart_institutions
-- description: Before an incremental update: remove the cube register and facts (recomputed), the cube rows of the changed institutions and the cubes rolled up from per-institution parts (rebuilt whole).
-- params: institutions, cubes
DELETE FROM mart_cube;
DELETE FROM mart_fact;
DELETE FROM mart_cell
WHERE list_contains($institutions::VARCHAR[], institution)
   OR list_contains($cubes::VARCHAR[], cube);
