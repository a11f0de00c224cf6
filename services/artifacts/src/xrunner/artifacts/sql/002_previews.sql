-- Each artifact's preview: the fields of its `artifact.previewed` event other than ids (null until derived).
ALTER TABLE artifacts ADD COLUMN preview jsonb;
