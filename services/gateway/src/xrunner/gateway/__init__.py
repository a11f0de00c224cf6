"""The gateway: xrunner's REST API and its job read model."""
