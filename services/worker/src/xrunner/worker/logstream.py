"""Streams one attempt's output to `xr.log.<tenant>.<job_id>` in chunks: flushed at `chunk_bytes` or after
`flush_s`, numbered, with byte offsets so readers resume anywhere; capped per job and per line with a visible
marker (a cut line keeps its first `max_line_bytes` and its newline, the rest is dropped); and,
when given a spool file, every published byte is also kept (in memory up to `SPOOL_IN_MEMORY` bytes, then in the
file) so the whole log can be stored at the end: most jobs' logs never touch the disk before they are stored.
Readers wait while a flush is in progress, so a flood never grows the worker's memory beyond one chunk per stream."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import BinaryIO

from nats.js import JetStreamContext

from xrunner.contracts import codec, subjects
from xrunner.contracts.messages import LogChunk
from xrunner.servicekit import tracing
from xrunner.servicekit.eventstore import publish

SPOOL_IN_MEMORY = 64 * 1024


class LogStream:
    def __init__(
        self,
        js: JetStreamContext,
        tenant: str,
        job_id: str,
        attempt: int,
        *,
        chunk_bytes: int,
        flush_s: float,
        max_bytes: int,
        max_line_bytes: int = 1 << 20,
        spool: Path | None = None,
    ) -> None:
        self.js, self.subject = js, subjects.job_logs(tenant, job_id)
        self.job_id, self.attempt = job_id, attempt
        self.chunk_bytes, self.flush_s, self.max_bytes = chunk_bytes, flush_s, max_bytes
        self.seq = 0
        self.offset = 0
        self.accepted = 0
        self.truncated = False
        self.max_line_bytes = max_line_bytes
        self._line_len: dict[str, int] = {}  # bytes of each stream's current (unfinished) line
        self._cut: set[str] = set()  # streams whose current line was cut (its marker written)
        self._pending: list[tuple[str, bytes]] = []
        self._pending_bytes = 0
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self.spool = spool
        self._kept = bytearray()  # the log so far, while it fits in memory
        self._spool_file: BinaryIO | None = None  # the log so far, once it did not
        self.finished = self.closed = False

    async def pump(self, reader: asyncio.StreamReader, stream: str) -> None:
        """Copy `reader` to the log until EOF."""
        while data := await reader.read(self.chunk_bytes):
            await self.write(stream, data)

    async def write(self, stream: str, data: bytes) -> None:
        if stream != "system":
            data = self._cap_lines(stream, data)
        room = self.max_bytes - self.accepted
        if room <= 0:
            return
        if len(data) > room:
            data = data[:room]
            self.truncated = True
        self.accepted += len(data)
        self._pending.append((stream, data))
        self._pending_bytes += len(data)
        if self._pending_bytes >= self.chunk_bytes:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.flush_s, self._flush_soon)

    def _cap_lines(self, stream: str, data: bytes) -> bytes:
        """`data` with every line of `stream` cut at `max_line_bytes`, a marker where a line is cut."""
        run = self._line_len.get(stream, 0)
        if run + len(data) <= self.max_line_bytes:  # no line can be too long: the usual case, no copy
            newline = data.rfind(b"\n")
            self._line_len[stream] = run + len(data) if newline < 0 else len(data) - newline - 1
            return data
        out, start = bytearray(), 0
        while start < len(data):
            newline = data.find(b"\n", start)
            end = len(data) if newline < 0 else newline
            room = max(0, self.max_line_bytes - run)
            if end - start > room:
                out += data[start : start + room]
                if stream not in self._cut:
                    self._cut.add(stream)
                    out += f"[xrunner: line cut at {self.max_line_bytes} bytes]".encode()
            else:
                out += data[start:end]
            run += end - start
            if newline >= 0:
                out += b"\n"
                run = 0
                self._cut.discard(stream)
            start = end + 1
        self._line_len[stream] = run
        return bytes(out)

    def _flush_soon(self) -> None:
        self._timer = None
        self._flush_task = asyncio.create_task(self.flush())

    async def flush(self) -> None:
        async with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            pending, self._pending, self._pending_bytes = self._pending, [], 0
            for stream, data in _merge(pending):
                await self._publish(stream, data)

    async def finish(self) -> None:
        """Publish what is left of the output and mark truncation: from now on the log's bytes are final (`kept`),
        only its end-of-log chunk is still to come (`close`). Once; later calls do nothing."""
        if self.finished:
            return
        self.finished = True
        await self.flush()
        if self._flush_task is not None:
            await self._flush_task
        async with self._lock:
            if self.truncated:
                marker = f"\n[xrunner: output truncated at {self.max_bytes} bytes]\n".encode()
                await self._publish("system", marker)
        if self._spool_file is not None:
            self._spool_file.flush()

    async def close(self) -> None:
        """Finish the log, then publish the end-of-log chunk; once, later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        try:
            await self.finish()
            async with self._lock:
                await self._publish("system", b"", eof=True)
        finally:
            if self._spool_file is not None:
                self._spool_file.close()

    async def _publish(self, stream: str, data: bytes, eof: bool = False) -> None:
        self.seq += 1
        chunk = LogChunk(
            job_id=self.job_id,
            attempt=self.attempt,
            seq=self.seq,
            stream=stream,  # type: ignore[arg-type]
            offset=self.offset,
            data=data,
            eof=eof,
        )
        self.offset += len(data)
        if self.spool is not None and data:
            self._keep(data)
        await publish(self.js, self.subject, codec.encode(chunk), stream=subjects.LOGS_STREAM,
                      headers=tracing.headers({"Nats-Msg-Id": f"log:{self.job_id}:{self.attempt}:{self.seq}"}))


    def _keep(self, data: bytes) -> None:
        if self._spool_file is None and len(self._kept) + len(data) <= SPOOL_IN_MEMORY:
            self._kept += data
            return
        if self._spool_file is None:
            assert self.spool is not None
            self._spool_file = self.spool.open("wb")
            self._spool_file.write(self._kept)
            self._kept = bytearray()
        self._spool_file.write(data)

    def kept(self) -> bytes | Path | None:
        """The whole log once finished: its bytes, or the spool file that holds them (None without a spool)."""
        if self.spool is None:
            return None
        return self.spool if self._spool_file is not None else bytes(self._kept)


def _merge(pending: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Join consecutive pieces of the same stream, keeping the order of arrival."""
    merged: list[tuple[str, bytes]] = []
    for stream, data in pending:
        if merged and merged[-1][0] == stream:
            merged[-1] = (stream, merged[-1][1] + data)
        else:
            merged.append((stream, data))
    return merged
