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

-- name: configure_tenant
-- tenant.configured: the tenant's artifact TTL. An artifact expires `artifact_ttl_s` after it was stored: its
-- tenant's latest configuration, else the default (the reads below take it as $1).
INSERT INTO tenants (tenant, artifact_ttl_s) VALUES ($1, $2)
ON CONFLICT (tenant) DO UPDATE SET artifact_ttl_s = excluded.artifact_ttl_s

-- name: job_artifacts
-- A job's artifacts that are not expired at $4, by attempt and name; $3 (an attempt) NULL means all attempts.
SELECT * FROM (
  SELECT a.id, a.tenant, a.job_id, a.attempt, a.name, a.key, a.size, a.sha256, a.content_type, a.stored_at,
         a.expired_at, a.stored_at + make_interval(secs => coalesce(t.artifact_ttl_s, $1)) AS expires_at,
         a.preview::text AS preview
  FROM artifacts a LEFT JOIN tenants t ON t.tenant = a.tenant
  WHERE a.tenant = $2 AND a.job_id = $5 AND ($3::int IS NULL OR a.attempt = $3) AND a.expired_at IS NULL
) live
WHERE expires_at > $4
ORDER BY attempt, name, id

-- name: artifact
-- One artifact by id, of tenant $2 (NULL: any tenant, for signed URLs, which carry no tenant).
SELECT a.id, a.tenant, a.job_id, a.attempt, a.name, a.key, a.size, a.sha256, a.content_type, a.stored_at,
       a.expired_at, a.stored_at + make_interval(secs => coalesce(t.artifact_ttl_s, $1)) AS expires_at,
       a.preview::text AS preview
FROM artifacts a LEFT JOIN tenants t ON t.tenant = a.tenant
WHERE a.id = $3 AND ($2::text IS NULL OR a.tenant = $2)

-- name: due
-- Live artifacts whose time is up at $2, oldest first, at most $3.
SELECT a.id, a.tenant, a.job_id, a.attempt, a.key, a.preview::text AS preview
FROM artifacts a LEFT JOIN tenants t ON t.tenant = a.tenant
WHERE a.expired_at IS NULL AND a.stored_at + make_interval(secs => coalesce(t.artifact_ttl_s, $1)) <= $2
ORDER BY a.stored_at
LIMIT $3
