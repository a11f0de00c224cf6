-- Label filters on the job list: a GIN index on the spec's labels.
CREATE INDEX jobs_labels ON jobs USING gin ((view->'spec'->'labels') jsonb_path_ops);
