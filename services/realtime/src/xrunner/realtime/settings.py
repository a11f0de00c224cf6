"""The realtime edge's settings."""

from __future__ import annotations

from xrunner.servicekit.settings import CommonSettings


class RealtimeSettings(CommonSettings, kw_only=True, frozen=True):
    http_port: int = 8701
