-- The scheduler's named queries (xrunner.servicekit.sql.load_queries); the schema is in the NNN_*.sql migrations.

-- name: live_jobs
-- The non-terminal jobs a new leader starts from.
SELECT view::text AS view FROM jobs WHERE state = ANY($1::text[]);

-- name: live_dispatches
-- The latest dispatch (fence sequence and time) of each live job.
SELECT tenant, id, dispatched_seq, dispatched_at FROM jobs
WHERE state = ANY($1::text[]) AND dispatched_seq IS NOT NULL;

-- name: upsert_jobs
-- A batch's views in one statement, one array per column (each job once). Guarded by the view's version: an older
-- fold never overwrites a newer one.
INSERT INTO jobs (tenant, id, state, attempt, pool, priority, queued_at, version, view)
SELECT tenant, id, state, attempt, pool, priority, queued_at, version, view::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::int[], $7::timestamptz[], $8::bigint[],
            $9::text[])
  AS batch (tenant, id, state, attempt, pool, priority, queued_at, version, view)
ON CONFLICT (tenant, id) DO UPDATE SET
  state = excluded.state, attempt = excluded.attempt, pool = excluded.pool, queued_at = excluded.queued_at,
  version = excluded.version, view = excluded.view
WHERE jobs.version < excluded.version;

-- name: set_dispatches
-- A batch's latest dispatches (each job once). Not guarded by the row's version: the scheduler's own appends may
-- already be in the row (it writes its working state, which runs ahead of the projector), but the dispatch columns
-- are only written here.
UPDATE jobs SET dispatched_seq = batch.seq, dispatched_at = batch.at
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[]) AS batch (tenant, id, seq, at)
WHERE jobs.tenant = batch.tenant AND jobs.id = batch.id
  AND (jobs.dispatched_seq IS NULL OR jobs.dispatched_seq < batch.seq);

-- name: all_tenants
SELECT * FROM tenants;

-- name: upsert_tenant
INSERT INTO tenants (tenant, weight, max_inflight, max_queued, submit_rate_per_s, configured, config_seq,
                     bucket_tokens, bucket_at, bucket_seq, usage_cpu, usage_memory, usage_gpu, usage_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (tenant) DO UPDATE SET
  weight = excluded.weight, max_inflight = excluded.max_inflight, max_queued = excluded.max_queued,
  submit_rate_per_s = excluded.submit_rate_per_s, configured = excluded.configured,
  config_seq = excluded.config_seq, bucket_tokens = excluded.bucket_tokens, bucket_at = excluded.bucket_at,
  bucket_seq = excluded.bucket_seq, usage_cpu = excluded.usage_cpu, usage_memory = excluded.usage_memory,
  usage_gpu = excluded.usage_gpu, usage_at = excluded.usage_at;
