"""Ready means this process is ready: a port picked free a moment ago can be taken by another test's server before
the service binds it; the service then exits, and whoever asked must not take the other server's 200 for its own."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import httpx
import pytest
from integration.cluster import Cluster

from xrunner.cli import embedded


class _Squatter(http.server.BaseHTTPRequestHandler):
    """Another service on the port: ready, but not the process that was started."""

    def do_GET(self) -> None:
        body = json.dumps({"ready": True, "checks": {}, "pid": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def squatter() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Squatter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_a_service_started_on_a_taken_port_is_started_again_elsewhere_not_taken_for_ready(
    cluster: Cluster, squatter: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    picks = iter([squatter])
    real = embedded.free_port
    monkeypatch.setattr(embedded, "free_port", lambda: next(picks, None) or real())
    cluster.start("scheduler", "scheduler", scheduler_id="ready-test")
    assert cluster.ports["scheduler"] != squatter
    assert b"address already in use" in (cluster.logs / "scheduler.log").read_bytes().lower()
    answer = httpx.get(f"{cluster.api('scheduler')}/readyz", timeout=5).json()
    assert answer["ready"] is True and answer["pid"] == cluster.procs["scheduler"].pid
    # The check `xrunner up` and the test cluster use: only their own child's answer counts.
    assert embedded.serves(f"{cluster.api('scheduler')}/readyz", cluster.procs["scheduler"].pid)
    assert not embedded.serves(f"http://127.0.0.1:{squatter}/readyz", cluster.procs["scheduler"].pid)
