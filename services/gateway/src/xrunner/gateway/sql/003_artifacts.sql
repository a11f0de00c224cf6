-- How many artifacts each job has that retention has not removed (folded from artifact.stored / artifact.expired).
ALTER TABLE jobs ADD COLUMN artifacts int NOT NULL DEFAULT 0;
