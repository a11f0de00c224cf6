"""The docker sandbox: jobs in containers, cold or warm, driven over the docker daemon's API."""
