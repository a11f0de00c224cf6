"""The CLI's client of the realtime edge: Server-Sent Events parsed as they arrive, and the two streams the CLI
follows (a job's events, a job's log), each resumed exactly where it broke off when the connection drops."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial

import httpx

from xrunner.cli.client import ApiError, Client, problem_error
from xrunner.contracts import codec, lifecycle
from xrunner.contracts.api import JobView
from xrunner.contracts.events import Event

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
RECONNECT_DELAYS_S = (0.0, 0.2, 0.5, 1.0, 2.0, 5.0)  # then every 5 s, until `give_up_s` without a connection


@dataclass
class Sse:
    """One Server-Sent Event: its `id:` (the resume point), `event:` name and data lines joined by newlines."""

    id: str | None
    event: str | None
    data: str


@dataclass
class SseParser:
    """Lines in, events out; comments (the edge's keep-alive pings) are dropped."""

    ident: str | None = None
    event: str | None = None
    data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> Sse | None:
        """The event that `line` completes (a blank line ends one), else None."""
        if line == "":
            done = Sse(self.ident, self.event, "\n".join(self.data)) if self.data or self.event else None
            self.ident, self.event, self.data = None, None, []
            return done
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            self.ident = value
        elif name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        return None


def parse(lines: Iterable[str]) -> Iterator[Sse]:
    parser = SseParser()
    for line in lines:
        if (message := parser.feed(line)) is not None:
            yield message


class Edge:
    """Follows streams of the realtime edge at `base_url` with a bearer token."""

    def __init__(self, base_url: str, token: str, read_timeout: float = 60.0, give_up_s: float = 120.0) -> None:
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=httpx.Timeout(10.0, read=read_timeout))
        self.give_up_s = give_up_s

    def close(self) -> None:
        self.http.close()

    def follow(self, path: str, params: dict[str, str], resume: str | None = None) -> Generator[Sse]:
        """The stream at `path`, reconnecting after a drop with Last-Event-ID set to the last `id:` seen, so
        nothing is missed or repeated; it ends only when the caller stops reading (or `give_up_s` passes with
        no connection, or the edge refuses us)."""
        failures, lost_at = 0, None  # lost_at: since when no connection has worked
        while True:
            headers = {"Last-Event-ID": resume} if resume else {}
            error = ""
            try:
                with self.http.stream("GET", path, params=params, headers=headers) as response:
                    if response.status_code == 200:
                        failures, lost_at = 0, None
                        for message in parse(response.iter_lines()):
                            resume = message.id or resume
                            if message.event == "resync":  # we fell behind: reconnect from `resume`
                                break
                            if message.event == "expired":
                                raise ApiError(401, None, f"the stream ended: {message.data}")
                            yield message
                    elif response.status_code in RETRYABLE_STATUS:
                        error = f"{response.status_code} {response.reason_phrase}"
                    else:
                        raise problem_error(response.status_code, response.read())
            except httpx.TransportError as exc:
                error = str(exc) or type(exc).__name__
            if error:
                lost_at = time.monotonic() if lost_at is None else lost_at
                if time.monotonic() - lost_at > self.give_up_s:
                    raise ApiError(0, None, f"lost {self.http.base_url}: {error}")
            time.sleep(RECONNECT_DELAYS_S[min(failures, len(RECONNECT_DELAYS_S) - 1)])
            failures += 1

    def events(self, job_id: str, since: int) -> Generator[tuple[int, Event]]:
        """The job's events after stream sequence `since`, then live."""
        for message in self.follow("/v1/events", {"job": job_id}, str(since)):
            if message.id and message.id.isdigit():
                yield int(message.id), codec.decode_event(message.data.encode())

    def log(self, job_id: str) -> Generator[Sse]:
        """The job's current attempt's output (`stdout` / `stderr` events, terminal-safe text) up to its end."""
        for message in self.follow(f"/v1/jobs/{job_id}/logs/stream", {}):
            if message.event == "end":
                if message.data:
                    yield Sse(message.id, "stdout", message.data)
                return
            yield message

    def until(self, view: JobView, done: Callable[[JobView], bool]) -> JobView:
        """Fold the job's events after `view.version` into `view` until `done(view)` holds."""
        if done(view):
            return view
        with contextlib.closing(self.events(view.id, view.version)) as events:
            for seq, event in events:
                view = lifecycle.fold(view, event, seq) or view
                if done(view):
                    break
        return view


def follow(client: Client, edge: Edge, job_id: str, show: Callable[[Sse], None]) -> JobView:
    """Show the job's output as it is written, attempt by attempt (each after its dispatch), and return the job's
    view once it is terminal. Only the history comes from the gateway; the rest is pushed by the edge."""
    history = client.events(job_id)
    view = lifecycle.replay([(entry.seq, codec.decode_event(codec.encode(entry.event))) for entry in history])
    if view is None:
        raise ApiError(404, None, f"no such job {job_id}")
    shown = 0
    while True:
        view = edge.until(view, partial(_moved_on, shown))
        if view.attempt > shown:
            shown = view.attempt
            for message in edge.log(job_id):
                show(message)
        if lifecycle.is_terminal(view.state):
            return view


def _moved_on(attempt: int, view: JobView) -> bool:
    """The job has an attempt newer than `attempt`, or has ended."""
    return view.attempt > attempt or lifecycle.is_terminal(view.state)
