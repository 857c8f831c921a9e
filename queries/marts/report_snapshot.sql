-- name: report_snapshot
-- description: What identifies an index snapshot besides its study totals, for the datasheet's version: the ingest log (count, last ingest, digest of every logged file), the registry (count, digest), open quarantine rows and DICOM privacy-audit rows.
-- params: none
SELECT
    (SELECT count(*) FROM ingest_log)::BIGINT AS ingests,
    (SELECT max(ingest_id) FROM ingest_log)::BIGINT AS last_ingest_id,
    (SELECT max(finished_at) FROM ingest_log) AS last_ingest_at,
    (SELECT coalesce(sum(rows_read), 0) FROM ingest_log)::BIGINT AS rows_read,
    (SELECT coalesce(sum(quarantined), 0) FROM ingest_log)::BIGINT AS rows_quarantined,
    (
        SELECT md5(coalesce(string_agg(
            concat_ws('|', ingest_id, file, kind, sha256, rows_read, inserted, updated,
                unchanged, duplicates, quarantined, finished_at),
            chr(10) ORDER BY ingest_id
        ), ''))
        FROM ingest_log
    ) AS ingest_digest,
    (SELECT count(*) FROM institution)::BIGINT AS registered_institutions,
    (
        SELECT md5(coalesce(string_agg(
            concat_ws('|', institution_id, name, state, city, facility_type, sector, joined_date),
            chr(10) ORDER BY institution_id
        ), ''))
        FROM institution
    ) AS registry_digest,
    (SELECT count(DISTINCT (file, "row")) FROM quarantine)::BIGINT AS quarantine_rows,
    (SELECT count(*) FROM phi_flag)::BIGINT AS phi_flag_rows;
