"""Reads the events of one subject filter with JetStream's batched direct get (nats-server 2.11+): one request
answers up to `BATCH` messages and ends with an end-of-batch status, with no consumer to create and delete — the
cheapest read of a short history such as one job's (nats-py has no call for it, hence the request by hand)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from nats.aio.client import Client

STATUS, END_OF_BATCH, NOT_FOUND = "Status", "204", "404"
BATCH = 1024
WAIT_S = 5.0


class DirectGetError(Exception):
    """The server answered the batch with an error status."""


async def read(nc: Client, stream: str, subject: str, start_seq: int = 1) -> AsyncIterator[tuple[int, bytes]]:
    """(sequence, data) of the messages on `subject` from `start_seq` to the stream's end, in order."""
    seq = max(start_seq, 1)
    while True:
        got = 0
        async for item in _batch(nc, stream, subject, seq):
            yield item
            seq, got = item[0] + 1, got + 1
        if got < BATCH:
            return


async def _batch(nc: Client, stream: str, subject: str, seq: int) -> AsyncIterator[tuple[int, bytes]]:
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    try:
        request = {"seq": seq, "next_by_subj": subject, "batch": BATCH}
        await nc.publish(f"$JS.API.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox)
        while True:
            msg = await sub.next_msg(timeout=WAIT_S)
            headers = msg.headers or {}
            status = headers.get(STATUS)
            if status in (END_OF_BATCH, NOT_FOUND):
                return
            if status is not None:
                raise DirectGetError(f"direct get on {stream} {subject}: {status} {headers.get('Description', '')}")
            yield int(headers["Nats-Sequence"]), msg.data
    finally:
        await sub.unsubscribe()
