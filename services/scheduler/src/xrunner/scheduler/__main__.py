"""`python -m xrunner.scheduler [rebuild | replay ...]`: run the scheduler, rebuild its projection from the log and
compare, or replay its recorded decisions (`replay --help`)."""

from xrunner.scheduler.app import rebuild, start
from xrunner.scheduler.replaycli import replay
from xrunner.scheduler.settings import SchedulerSettings
from xrunner.servicekit.runtime import main

if __name__ == "__main__":
    main("scheduler", SchedulerSettings, start, {"rebuild": rebuild, "replay": replay})
