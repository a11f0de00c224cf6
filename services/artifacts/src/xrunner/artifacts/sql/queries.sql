-- The artifacts service's named queries, loaded once by xrunner.servicekit.sql.load_queries; each runs against its
-- schema.

-- name: insert_artifact
-- artifact.stored: the first one for an id wins (a repeat changes nothing).
INSERT INTO artifacts (id, tenant, job_id, attempt, name, key, size, sha256, content_type, stored_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (id) DO NOTHING

-- name: expire_artifact
-- artifact.expired: retention removed the object.
UPDATE artifacts SET expired_at = $2 WHERE id = $1 AND tenant = $3

-- name: set_preview
-- artifact.previewed: the preview ($2, JSON) of the artifact; a repeat carries the same preview.
UPDATE artifacts SET preview = $2::jsonb WHERE id = $1 AND tenant = $3
