"""`python -m xrunner.gateway [rebuild]`: run the gateway, or rebuild its read model from the log and compare."""

from xrunner.gateway.app import rebuild, start
from xrunner.gateway.settings import GatewaySettings
from xrunner.servicekit.runtime import main

if __name__ == "__main__":
    main("gateway", GatewaySettings, start, {"rebuild": rebuild})
