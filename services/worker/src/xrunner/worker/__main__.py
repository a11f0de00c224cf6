"""`python -m xrunner.worker`: run a worker with settings from XR_* environment variables."""

from xrunner.servicekit.runtime import main
from xrunner.worker.app import start
from xrunner.worker.settings import WorkerSettings

if __name__ == "__main__":
    main("worker", WorkerSettings, start, fast_loop=False)
