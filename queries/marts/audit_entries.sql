-- name: audit_entries
-- description: The audit log, oldest entry first.
-- params: none
SELECT logged_at, actor, role, action, what, channel, detail
FROM audit_log
ORDER BY logged_at, rowid;
