"""`python -m xrunner.artifacts`: run the artifact service with settings from XR_* environment variables."""

from xrunner.artifacts.app import start
from xrunner.artifacts.settings import ArtifactsSettings
from xrunner.servicekit.runtime import main

if __name__ == "__main__":
    main("artifacts", ArtifactsSettings, start)
