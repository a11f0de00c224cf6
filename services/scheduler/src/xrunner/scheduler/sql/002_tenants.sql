-- Tenants as the scheduler folds them: configured limits, the submit-rate bucket, decayed recent usage.
CREATE TABLE tenants (
  tenant      text        PRIMARY KEY,
  weight      double precision NOT NULL,
  max_inflight int        NOT NULL,
  max_queued  int         NOT NULL,
  submit_rate_per_s double precision NOT NULL,
  configured  boolean     NOT NULL,
  config_seq  bigint      NOT NULL,
  bucket_tokens double precision NOT NULL,
  bucket_at   timestamptz,
  bucket_seq  bigint      NOT NULL,
  usage_cpu   double precision NOT NULL,
  usage_memory double precision NOT NULL,
  usage_gpu   double precision NOT NULL,
  usage_at    timestamptz
);
