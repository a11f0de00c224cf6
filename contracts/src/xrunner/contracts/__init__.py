"""xrunner's contracts: the job spec, the events of the log, API bodies and subject names (stdlib + msgspec)."""
