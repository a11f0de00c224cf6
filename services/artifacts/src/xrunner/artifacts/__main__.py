"""`python -m xrunner.artifacts [rebuild]`: run the artifact service, or rebuild its index from the log and compare."""

from xrunner.artifacts.app import rebuild, start
from xrunner.artifacts.settings import ArtifactsSettings
from xrunner.servicekit.runtime import main

if __name__ == "__main__":
    main("artifacts", ArtifactsSettings, start, {"rebuild": rebuild})
