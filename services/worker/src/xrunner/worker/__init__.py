"""The worker: pulls work for its pool, runs each attempt in a sandbox, streams its output and outcome."""
