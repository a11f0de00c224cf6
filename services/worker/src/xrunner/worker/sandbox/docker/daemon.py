"""The docker daemon's long-lived streams, spoken with asyncio: a job's hijacked attach/exec connection (its stdio)
and the daemon's event feed (every exit of this worker's containers and execs). The docker SDK would need a thread
per blocked stream; here a thousand running jobs cost a thousand sockets and no threads."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import quote, urlsplit

import structlog

log = structlog.get_logger()

STREAM_LIMIT = 1 << 20
STDERR = 2


class DaemonError(Exception):
    """The daemon refused a streaming request (the container or exec is gone, ...)."""


class Daemon:
    """Where the daemon listens (`unix:///path` or `tcp://host:port`, no TLS) and which API version it speaks."""

    def __init__(self, url: str, api_version: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("unix", "tcp", "http"):
            raise ValueError(f"the docker sandbox streams over unix:// or tcp:// only, not {url!r}")
        self.unix_path = parts.path if parts.scheme == "unix" else None
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 2375
        self.prefix = f"/v{api_version}"

    async def open(
        self, method: str, path: str, body: object = None, *, upgrade: bool = False
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Send one request; return the connection positioned right after the response's headers. An upgraded
        (hijacked) connection carries the job's stdio both ways; HTTP/1.0 keeps other bodies unchunked."""
        if self.unix_path is not None:
            reader, writer = await asyncio.open_unix_connection(self.unix_path, limit=STREAM_LIMIT)
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=STREAM_LIMIT)
        data = json.dumps(body).encode() if body is not None else b""
        head = [f"{method} {self.prefix}{path} HTTP/1.{int(upgrade)}", "Host: docker",
                "Content-Type: application/json", f"Content-Length: {len(data)}"]
        if upgrade:
            head += ["Connection: Upgrade", "Upgrade: tcp"]
        writer.write("\r\n".join(head).encode() + b"\r\n\r\n" + data)
        try:
            status = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n", 1)[0].decode(errors="replace")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            writer.close()
            raise DaemonError(f"{method} {path}: the daemon closed the connection") from exc
        if status.split(" ")[1:2] not in (["101"], ["200"]):
            writer.close()
            raise DaemonError(f"{method} {path}: {status}")
        return reader, writer


async def pump(
    src: asyncio.StreamReader, out: asyncio.StreamReader, err: asyncio.StreamReader, *, tty: bool
) -> None:
    """Copy a job's stream into `out`/`err` until it ends. Without a tty the daemon multiplexes both into frames
    (1 byte stream, 3 zero bytes, 4 bytes big-endian length, payload); with one, everything is raw terminal output."""
    try:
        while True:
            if tty:
                data = await src.read(65_536)
                if not data:
                    break
                out.feed_data(data)
                continue
            header = await src.readexactly(8)
            data = await src.readexactly(int.from_bytes(header[4:], "big"))
            (err if header[0] == STDERR else out).feed_data(data)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        out.feed_eof()
        err.feed_eof()


class Exits:
    """The exit codes of this worker's containers (`die`) and execs (`exec_die`) from one event feed, and the
    containers the kernel's OOM killer visited. Register with `expect` before starting what you wait for; after a
    dropped connection the feed resumes from its last event, so the daemon replays what happened meanwhile."""

    def __init__(self, daemon: Daemon, worker_id: str) -> None:
        self.daemon = daemon
        wanted = {"type": ["container"], "label": [f"xrunner.worker={worker_id}"], "event": ["die", "exec_die", "oom"]}
        self.path = f"/events?filters={quote(json.dumps(wanted))}"
        self.waiting: dict[str, asyncio.Future[int]] = {}
        self.oom: set[str] = set()
        self.connected = asyncio.Event()

    def expect(self, key: str) -> asyncio.Future[int]:
        """A future for the exit code of container or exec `key`."""
        future = self.waiting[key] = asyncio.get_running_loop().create_future()
        return future

    def resolve(self, key: str, code: int) -> None:
        future = self.waiting.pop(key, None)
        if future is not None and not future.done():
            future.set_result(code)

    def forget(self, container_id: str) -> None:
        self.oom.discard(container_id)
        self.waiting.pop(container_id, None)

    async def run(self) -> None:
        since, retry_s = "", 0.5
        while True:
            try:
                reader, writer = await self.daemon.open("GET", self.path + since)
                self.connected.set()
                retry_s = 0.5
                with contextlib.closing(writer):
                    while line := await reader.readline():
                        event = json.loads(line)
                        since = f"&since={event['timeNano'] // 10**9}.{event['timeNano'] % 10**9:09d}"
                        self._apply(event)
                log.warning("docker event feed ended; reconnecting")
            except (OSError, ValueError, KeyError, DaemonError) as exc:
                log.warning("docker event feed failed; reconnecting", error=str(exc), retry_in_s=retry_s)
            self.connected.clear()
            await asyncio.sleep(retry_s)
            retry_s = min(30.0, retry_s * 2)

    def _apply(self, event: dict[str, Any]) -> None:
        actor = event.get("Actor", {})
        attributes = actor.get("Attributes", {})
        if event.get("Action") == "oom":
            self.oom.add(actor.get("ID", ""))
        elif event.get("Action") == "exec_die":
            self.resolve(attributes.get("execID", ""), int(attributes.get("exitCode", 255)))
        else:
            self.resolve(actor.get("ID", ""), int(attributes.get("exitCode", 255)))
