"""`python -m xrunner.realtime`: run the realtime edge with settings from XR_* environment variables."""

from xrunner.realtime.app import start
from xrunner.realtime.settings import RealtimeSettings
from xrunner.servicekit.runtime import main

if __name__ == "__main__":
    main("realtime", RealtimeSettings, start)
