-- The gateway's named queries, loaded once by xrunner.servicekit.sql.load_queries; each runs against its schema.

-- name: upsert_jobs
-- A batch's folded views in one statement, one array per column (one element per job, each job once); an older
-- version never overwrites a newer one.
INSERT INTO jobs (tenant, id, state, created_at, updated_at, version, view)
SELECT tenant, id, state, created_at, updated_at, version, view::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::bigint[], $7::text[])
  AS batch (tenant, id, state, created_at, updated_at, version, view)
ON CONFLICT (tenant, id) DO UPDATE
  SET state = excluded.state, updated_at = excluded.updated_at, version = excluded.version, view = excluded.view
  WHERE jobs.version < excluded.version

-- name: forget_job
-- A dead letter's re-drive folds the job again from its history.
DELETE FROM jobs WHERE tenant = $1 AND id = $2

-- name: get_job
SELECT view::text AS view, artifacts FROM jobs WHERE tenant = $1 AND id = $2

-- name: list_jobs
-- A page of a tenant's jobs, newest first; a filter whose argument is NULL is off. $6 is one more than the page
-- size, so the caller knows whether another page follows.
SELECT view::text AS view, artifacts FROM jobs
WHERE tenant = $1
  AND ($2::text[] IS NULL OR state = ANY($2::text[]))
  AND ($3::jsonb IS NULL OR view->'spec'->'labels' @> $3::jsonb)
  AND ($4::timestamptz IS NULL OR created_at > $4::timestamptz)
  AND ($5::timestamptz IS NULL OR (created_at, id) < ($5::timestamptz, $7::text))
ORDER BY created_at DESC, id DESC
LIMIT $6

-- name: count_artifacts
-- A job's artifacts stored (+n) or expired (-n); the job's row exists, since every artifact follows its submission.
UPDATE jobs SET artifacts = greatest(artifacts + $3, 0) WHERE tenant = $1 AND id = $2
