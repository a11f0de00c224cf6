"""`python -m xrunner.scheduler COMMAND`: run the scheduler, or rebuild its projection from the log and compare, or
snapshot it, or rebuild from its snapshot and the log's tail, or replay its recorded decisions (`replay --help`)."""

from xrunner.scheduler.app import rebuild, rebuild_from_snapshot, snapshot, start
from xrunner.scheduler.replaycli import replay
from xrunner.scheduler.settings import SchedulerSettings
from xrunner.servicekit.runtime import main

if __name__ == "__main__":
    main("scheduler", SchedulerSettings, start, {
        "rebuild": rebuild, "snapshot": snapshot, "rebuild-from-snapshot": rebuild_from_snapshot, "replay": replay})
