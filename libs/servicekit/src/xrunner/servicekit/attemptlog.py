"""Reads one attempt's output from a byte offset: which log chunks belong to it, and what of each is new."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext

from xrunner.contracts import codec, subjects
from xrunner.contracts.messages import LogChunk
from xrunner.servicekit.eventstore import read_raw


@dataclass(frozen=True, slots=True)
class Output:
    """Bytes of one stream of the attempt's output; `offset` is the byte offset of the first of them."""

    stream: str
    offset: int
    data: bytes

    @property
    def end(self) -> int:
        """The byte offset after this output: where reading resumes."""
        return self.offset + len(self.data)


class AttemptLog:
    """A cursor at byte `offset` of attempt `attempt`'s output. Fed the job's chunks in stream order (chunks of
    other attempts, the end-of-log marker and bytes already read are passed over), it returns what is new."""

    def __init__(self, attempt: int, offset: int) -> None:
        self.attempt = attempt
        self.offset = offset

    def take(self, chunk: LogChunk) -> Output | None:
        """The part of `chunk` at or after the cursor, which then moves past it; None when nothing of it is new."""
        if chunk.attempt != self.attempt or chunk.eof or chunk.offset + len(chunk.data) <= self.offset:
            return None
        skip = max(0, self.offset - chunk.offset)
        output = Output(chunk.stream, chunk.offset + skip, chunk.data[skip:])
        self.offset = output.end
        return output

    def ends_with(self, chunk: LogChunk) -> bool:
        """Whether `chunk` is this attempt's end-of-log marker."""
        return chunk.attempt == self.attempt and chunk.eof


async def stored_output(js: JetStreamContext, tenant: str, job_id: str, attempt: int, offset: int,
                        limit: int) -> tuple[list[Output], bool]:
    """The attempt's output stored so far from byte `offset`, at most `limit` bytes, in order; and whether it was
    cut at `limit` (more is stored)."""
    cursor, outputs, taken = AttemptLog(attempt, offset), list[Output](), 0
    async for _, data in read_raw(js, subjects.LOGS_STREAM, subjects.job_logs(tenant, job_id)):
        output = cursor.take(codec.decode(data, LogChunk))
        if output is None:
            continue
        room = limit - taken
        outputs.append(Output(output.stream, output.offset, output.data[:room]))
        taken += min(room, len(output.data))
        if taken >= limit:
            return outputs, True
    return outputs, False
