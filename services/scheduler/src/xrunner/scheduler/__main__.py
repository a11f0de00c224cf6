"""`python -m xrunner.scheduler [rebuild]`: run the scheduler, or rebuild its projection from the log and compare."""

from xrunner.scheduler.app import rebuild, start
from xrunner.scheduler.settings import SchedulerSettings
from xrunner.servicekit.runtime import main

if __name__ == "__main__":
    main("scheduler", SchedulerSettings, start, {"rebuild": rebuild})
