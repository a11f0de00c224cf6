"""Who may read which metrics: series labelled with a tenant only for the operator's metrics token, the rest for
anyone who can reach `/metrics`.

Tenant names are withheld rather than hashed: tenant ids are short, guessable names, so a hash of one is found
by hashing candidates, and a keyed hash would still let a scraper link a tenant across series and over time.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator
from enum import Enum
from typing import Protocol

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

TENANT_LABELS = frozenset({"tenant"})
HIDDEN_SERIES = "xrunner_metrics_hidden_series"


class Access(Enum):
    FULL = "full"  # the operator's token: every series
    PUBLIC = "public"  # no credentials: every series that names no tenant
    DENIED = "denied"  # credentials that are not the token: refused, so that a misconfigured scraper notices


class Collector(Protocol):
    def collect(self) -> Iterable[Metric]: ...


def access(authorization: str | None, token: str) -> Access:
    """Decide from the request's Authorization header; with no token configured nobody sees tenant series."""
    if authorization is None:
        return Access.PUBLIC
    scheme, _, credentials = authorization.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode()):
        return Access.FULL
    return Access.DENIED


def exposition(level: Access, registry: Collector = REGISTRY) -> bytes:
    """The text exposition that `level` may read (never called with DENIED)."""
    assert level is not Access.DENIED
    return generate_latest(registry if level is Access.FULL else _Public(registry))


class _Public:
    """A view of a registry without the samples that carry a tenant label, plus how many were left out."""

    def __init__(self, registry: Collector) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        hidden = 0
        for family in self.registry.collect():
            kept = [sample for sample in family.samples if TENANT_LABELS.isdisjoint(sample.labels)]
            hidden += len(family.samples) - len(kept)
            public = Metric(family.name, family.documentation, family.type, family.unit)
            public.samples = kept
            yield public
        yield GaugeMetricFamily(
            HIDDEN_SERIES,
            "Series left out of this scrape because they name a tenant (scrape with the metrics token)",
            value=hidden,
        )
