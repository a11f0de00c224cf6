"""Feeds a running interactive job's stdin from core NATS `xr.stdin.<job_id>` (what attach publishes): payloads are
written as is, `Xr-Resize: <rows>x<cols>` resizes its terminal, `Xr-Eof: 1` closes its stdin. A request gets an
empty reply once its message was handled, so a sender can tell "nobody listens yet" (no responders: the job is
still starting) from "delivered", and retry the former instead of losing keystrokes."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg

from xrunner.contracts import subjects
from xrunner.worker.logstream import LogStream
from xrunner.worker.sandbox import Running

log = structlog.get_logger()

_SIZE = re.compile(r"^([1-9][0-9]{0,3})x([1-9][0-9]{0,3})$")
DROPPED = b"\n[xrunner: input dropped: the job is not reading its stdin]\n"
# What the NATS client may hold for us before it drops messages itself; the sandbox bounds what the job left unread.
PENDING_MSGS, PENDING_BYTES = 1024, 4 * 1024 * 1024


class StdinFeed:
    """One attempt's stdin messages, handled in order."""

    def __init__(self, running: Running, logs: LogStream, job_id: str) -> None:
        self.running, self.logs, self.job_id = running, logs, job_id
        self.dropping = False  # one marker per run of dropped input, not one per message

    async def on_msg(self, msg: Msg) -> None:
        headers = msg.headers or {}
        if subjects.STDIN_RESIZE_HEADER in headers:
            self._resize(headers[subjects.STDIN_RESIZE_HEADER])
        else:
            if msg.data:
                await self._write(msg.data)
            if headers.get(subjects.STDIN_EOF_HEADER) == "1":
                self.running.close_stdin()
        if msg.reply:
            await msg.respond(b"")

    async def _write(self, data: bytes) -> None:
        if self.running.write_stdin(data):  # False: dropped, the job left too much unread
            self.dropping = False
        elif not self.dropping:
            self.dropping = True
            log.warning("stdin input dropped: the job is not reading it", job_id=self.job_id)
            await self.logs.write("system", DROPPED)

    def _resize(self, value: str) -> None:
        size = _SIZE.match(value.strip())
        if size is None:
            log.info("ignored a bad terminal size", job_id=self.job_id, size=value[:40])
            return
        self.running.resize(int(size[1]), int(size[2]))


@contextlib.asynccontextmanager
async def fed_stdin(nc: Client, running: Running, logs: LogStream, job_id: str) -> AsyncIterator[None]:
    """Feed `running`'s stdin from its subject while the block runs."""
    feed = StdinFeed(running, logs, job_id)
    sub = await nc.subscribe(subjects.job_stdin(job_id), cb=feed.on_msg, pending_msgs_limit=PENDING_MSGS,
                             pending_bytes_limit=PENDING_BYTES)
    try:
        yield
    finally:
        with contextlib.suppress(nats.errors.Error):  # a closed connection dropped it already
            await sub.unsubscribe()
