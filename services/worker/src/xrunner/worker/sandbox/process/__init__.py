"""The process sandbox: jobs as processes in bubblewrap (or, when the operator asks, unsandboxed), in cgroups."""
