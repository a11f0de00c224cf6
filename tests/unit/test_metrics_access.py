"""/metrics shows series that name a tenant only to a scrape with the operator's metrics token."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient
from prometheus_client import CollectorRegistry, Gauge

from xrunner.servicekit.http import health_app
from xrunner.servicekit.metrics import HIDDEN_SERIES, Access, access, exposition

TOKEN = "s3cret-metrics-token"


async def _ready() -> dict[str, bool]:
    return {"nats": True}


@pytest.fixture(scope="module")
def tenant_gauge() -> Gauge:
    gauge = Gauge("xrunner_test_tenant_backlog", "A per-tenant series", ["tenant"])
    gauge.labels("acme-secret-tenant").set(3)
    return gauge


@pytest.mark.parametrize(
    ("header", "token", "expected"),
    [
        (None, TOKEN, Access.PUBLIC),
        (None, "", Access.PUBLIC),
        (f"Bearer {TOKEN}", TOKEN, Access.FULL),
        (f"bearer {TOKEN}", TOKEN, Access.FULL),
        ("Bearer wrong", TOKEN, Access.DENIED),
        (f"Basic {TOKEN}", TOKEN, Access.DENIED),
        ("Bearer ", "", Access.DENIED),  # with no token configured, nobody is authorised
        (f"Bearer {TOKEN}", "", Access.DENIED),
    ],
)
def test_the_authorization_header_decides_what_a_scrape_may_read(
    header: str | None, token: str, expected: Access
) -> None:
    assert access(header, token) is expected


def test_the_public_view_drops_every_tenant_series_and_counts_them() -> None:
    registry = CollectorRegistry()
    per_tenant = Gauge("backlog", "per tenant", ["tenant"], registry=registry)
    per_pool = Gauge("pool_backlog", "per pool", ["pool"], registry=registry)
    for tenant in ("acme", "globex"):
        per_tenant.labels(tenant).set(1)
    per_pool.labels("default").set(2)
    public = exposition(Access.PUBLIC, registry).decode()
    assert "acme" not in public and "globex" not in public
    assert 'pool_backlog{pool="default"} 2.0' in public
    assert f"{HIDDEN_SERIES} 2.0" in public
    full = exposition(Access.FULL, registry).decode()
    assert 'backlog{tenant="acme"} 1.0' in full and 'backlog{tenant="globex"} 1.0' in full
    assert HIDDEN_SERIES not in full


def test_metrics_without_a_token_name_no_tenant_and_with_it_they_do(tenant_gauge: Gauge) -> None:
    with TestClient(health_app(_ready, TOKEN)) as client:
        anonymous = client.get("/metrics")
        assert anonymous.status_code == 200
        assert "xrunner_test_tenant_backlog" in anonymous.text and "acme-secret-tenant" not in anonymous.text
        operator = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert operator.status_code == 200
        assert 'xrunner_test_tenant_backlog{tenant="acme-secret-tenant"} 3.0' in operator.text


def test_a_wrong_metrics_token_is_refused_with_401(tenant_gauge: Gauge) -> None:
    with TestClient(health_app(_ready, TOKEN)) as client:
        refused = client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "acme-secret-tenant" not in refused.text


def test_without_a_configured_token_no_scrape_sees_tenant_names(tenant_gauge: Gauge) -> None:
    with TestClient(health_app(_ready, "")) as client:
        assert "acme-secret-tenant" not in client.get("/metrics").text
        assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
