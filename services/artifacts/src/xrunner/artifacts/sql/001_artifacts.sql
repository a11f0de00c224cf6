-- The artifact index, folded from artifact.stored / artifact.expired events.
CREATE TABLE artifacts (
  id           text        PRIMARY KEY,
  tenant       text        NOT NULL,
  job_id       text        NOT NULL,
  attempt      int         NOT NULL,
  name         text        NOT NULL,
  key          text        NOT NULL,
  size         bigint      NOT NULL,
  sha256       text        NOT NULL,
  content_type text        NOT NULL,
  stored_at    timestamptz NOT NULL,
  expired_at   timestamptz
);
CREATE INDEX artifacts_job ON artifacts (tenant, job_id);

CREATE TABLE projection_position (
  projection text PRIMARY KEY,
  position   bigint NOT NULL
);
