"""`python -m xrunner.scheduler`: run the scheduler with settings from XR_* environment variables."""

from xrunner.scheduler.app import start
from xrunner.scheduler.settings import SchedulerSettings
from xrunner.servicekit.runtime import main

if __name__ == "__main__":
    main("scheduler", SchedulerSettings, start)
