-- The gateway's read model: one row per job, the folded view as JSON plus the columns lists filter on.
CREATE TABLE jobs (
  tenant      text        NOT NULL,
  id          text        NOT NULL,
  state       text        NOT NULL,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL,
  version     bigint      NOT NULL,
  view        jsonb       NOT NULL,
  PRIMARY KEY (tenant, id)
);
CREATE INDEX jobs_tenant_created ON jobs (tenant, created_at DESC, id DESC);
CREATE INDEX jobs_tenant_state ON jobs (tenant, state);

CREATE TABLE projection_position (
  projection text PRIMARY KEY,
  position   bigint NOT NULL
);
