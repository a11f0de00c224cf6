"""`python -m xrunner.gateway COMMAND`: run the gateway, or rebuild its read model from the log and compare, or
snapshot it, or rebuild from its snapshot and the log's tail, or re-drive a dead letter into it (`redrive DEAD_SEQ`)."""

from xrunner.gateway.app import rebuild, rebuild_from_snapshot, redrive, snapshot, start
from xrunner.gateway.settings import GatewaySettings
from xrunner.servicekit.runtime import main

if __name__ == "__main__":
    main("gateway", GatewaySettings, start, {
        "rebuild": rebuild, "snapshot": snapshot, "rebuild-from-snapshot": rebuild_from_snapshot, "redrive": redrive})
