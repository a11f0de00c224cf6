"""The gateway's HTTP API (v1), one module per resource; handlers get what they need as dependencies."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from xrunner.gateway.routes.auth import AuthRoutes
from xrunner.gateway.routes.decisions import get_decisions
from xrunner.gateway.routes.jobs import JobRoutes
from xrunner.gateway.routes.logs import get_logs
from xrunner.gateway.routes.stats import StatsRoutes
from xrunner.gateway.routes.tenants import TenantRoutes

HANDLERS: list[ControllerRouterHandler] = [JobRoutes, get_logs, StatsRoutes, TenantRoutes, AuthRoutes, get_decisions]
