-- name: schema_audit
-- description: The audit log: one row per export and per login (who, when, what, as which role).
-- params: none
-- The log lives in its own small file beside the index (dashboard/audit.py): republishing the
-- whole index for every export would copy gigabytes per click. Every schema file is applied to
-- every writable file, so the index carries this table too, always empty; read the audit file.
CREATE TABLE IF NOT EXISTS audit_log (
    logged_at TIMESTAMP NOT NULL, -- UTC
    actor VARCHAR NOT NULL,      -- e-mail of a signed-in user, else the operating-system user
    role VARCHAR NOT NULL,       -- admin, programme, partner:ID or public
    action VARCHAR NOT NULL,     -- export, login, login_refused
    what VARCHAR NOT NULL,       -- e.g. "coverage --by state --unit patients --format csv"
    channel VARCHAR NOT NULL,    -- cli or app
    detail VARCHAR               -- JSON: rows, suppressed cells, file name…
);
