-- name: insert_audit
-- description: Append one entry to the audit log.
-- params: now, actor, role, action, what, channel, detail
INSERT INTO audit_log VALUES ($now::TIMESTAMP, $actor, $role, $action, $what, $channel, $detail);
