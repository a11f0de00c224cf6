"""`python -m xrunner.gateway`: run the gateway with settings from XR_* environment variables."""

from xrunner.gateway.app import start
from xrunner.gateway.settings import GatewaySettings
from xrunner.servicekit.runtime import main

if __name__ == "__main__":
    main("gateway", GatewaySettings, start)
