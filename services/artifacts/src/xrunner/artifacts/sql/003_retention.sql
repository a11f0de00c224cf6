-- Retention: each configured tenant's artifact TTL (folded from tenant.configured), and the live artifacts by age.
CREATE TABLE tenants (
  tenant         text             PRIMARY KEY,
  artifact_ttl_s double precision NOT NULL
);
CREATE INDEX artifacts_live_by_age ON artifacts (stored_at) WHERE expired_at IS NULL;
