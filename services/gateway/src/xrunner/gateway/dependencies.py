"""What route handlers are given by dependency injection: each dependency's name, its type, and its provider."""

from __future__ import annotations

from typing import TypeAlias, TypeVar

from litestar.di import NamedDependency, Provide
from nats.js import JetStreamContext

from xrunner.gateway.asof import Histories
from xrunner.gateway.jobs import Jobs
from xrunner.gateway.readmodel import JobsTable
from xrunner.servicekit.auth import Principal
from xrunner.servicekit.eventstore import EventStore
from xrunner.servicekit.guards import principal

T = TypeVar("T")

# A handler names a parameter after the dependency and annotates it with its alias: `who: Who`, `service: JobsService`.
Who: TypeAlias = NamedDependency[Principal]  # the caller, as the guard authenticated it
JobsService: TypeAlias = NamedDependency[Jobs]
Table: TypeAlias = NamedDependency[JobsTable]  # the read model, for lists
Stream: TypeAlias = NamedDependency[JetStreamContext]  # the log and the scheduler's snapshot, read directly
Store: TypeAlias = NamedDependency[EventStore]
TicketSecret: TypeAlias = NamedDependency[str]  # signs stream tickets; empty: tickets are not configured
JobHistories: TypeAlias = NamedDependency[Histories]  # jobs' histories for `as_of`, the archived events too


def provide(jobs: Jobs, js: JetStreamContext, ticket_secret: str, histories: Histories) -> dict[str, Provide]:
    """The providers, by the names above; everything but `who` is built once, in `create_app`."""
    return {
        "who": Provide(principal, sync_to_thread=False),
        "service": _value(jobs),  # not `jobs`: a body field of that name (the batch) would be taken for it
        "table": _value(jobs.table),
        "js": _value(js),
        "store": _value(jobs.store),
        "ticket_secret": _value(ticket_secret),
        "histories": _value(histories),
    }


def _value(value: T) -> Provide:
    def provided() -> T:
        return value

    return Provide(provided, use_cache=True, sync_to_thread=False)
