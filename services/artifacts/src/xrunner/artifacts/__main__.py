"""`python -m xrunner.artifacts COMMAND`: run the artifact service, or rebuild its index
from the log and compare, or snapshot it, or rebuild from its snapshot and the log's tail."""

from xrunner.artifacts.app import rebuild, rebuild_from_snapshot, snapshot, start
from xrunner.artifacts.settings import ArtifactsSettings
from xrunner.servicekit.runtime import main

if __name__ == "__main__":
    main("artifacts", ArtifactsSettings, start, {
        "rebuild": rebuild, "snapshot": snapshot, "rebuild-from-snapshot": rebuild_from_snapshot})
