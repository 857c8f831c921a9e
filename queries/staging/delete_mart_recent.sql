-- name: delete_mart_recent
-- description: Remove the recent studies of the given institutions from mart_recent (NULL: all of them).
-- params: institutions
DELETE FROM mart_recent
WHERE $institutions::VARCHAR[] IS NULL OR list_contains($institutions::VARCHAR[], institution);
