"""The `xrunner` command: brings up the embedded stack, submits jobs and follows their logs and events."""
