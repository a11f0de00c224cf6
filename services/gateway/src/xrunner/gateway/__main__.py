"""`python -m xrunner.gateway [rebuild | redrive DEAD_SEQ]`: run the gateway, rebuild its read model from the log and
compare, or re-drive a dead letter into it."""

from xrunner.gateway.app import rebuild, redrive, start
from xrunner.gateway.settings import GatewaySettings
from xrunner.servicekit.runtime import main

if __name__ == "__main__":
    main("gateway", GatewaySettings, start, {"rebuild": rebuild, "redrive": redrive})
