-- An artifact's preview, folded from artifact.previewed: the event's fields but its ids (event, tenant, job,
-- attempt) and time; NULL until the artifacts service has derived it.
ALTER TABLE artifacts ADD COLUMN preview jsonb;
