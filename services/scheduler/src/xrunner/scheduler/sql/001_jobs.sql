-- The scheduler's projection of the log: what it needs to admit, order and place jobs.
CREATE TABLE jobs (
  tenant          text        NOT NULL,
  id              text        NOT NULL,
  state           text        NOT NULL,
  attempt         int         NOT NULL,
  pool            text,
  priority        int         NOT NULL,
  queued_at       timestamptz,
  dispatched_at   timestamptz,
  dispatched_seq  bigint,
  version         bigint      NOT NULL,
  view            jsonb       NOT NULL,
  PRIMARY KEY (tenant, id)
);
CREATE INDEX jobs_queued ON jobs (pool, priority DESC, queued_at, id) WHERE state = 'queued';
CREATE INDEX jobs_active ON jobs (pool) WHERE state IN ('dispatched', 'running');

CREATE TABLE projection_position (
  projection text PRIMARY KEY,
  position   bigint NOT NULL
);
