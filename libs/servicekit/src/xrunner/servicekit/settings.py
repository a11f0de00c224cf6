"""Reads a service's settings once from `XR_*` environment variables; unknown service settings fail loudly."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal, TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)


class SettingsError(ValueError):
    """The environment names a setting that does not exist or holds a value of the wrong type."""


class CommonSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Settings every service has. Each may be given as `XR_<SERVICE>_<NAME>` or, shared, as `XR_<NAME>`."""

    nats_url: str = "nats://127.0.0.1:4222"  # a JetStream cluster: every server's URL, comma-separated
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    http_host: str = "127.0.0.1"
    http_port: int = 0
    log_level: str = "info"
    log_format: str = "json"
    jwt_secret: str = ""
    jwt_issuer: str = "xrunner"
    jwt_audience: str = "xrunner"
    ticket_secret: str = ""  # signs stream tickets (gateway → realtime); empty: the JWT secret
    jwt_algorithms: list[str] = []  # empty: HS256 with jwt_secret, RS256 and ES256 with a JWKS
    jwks_file: str = ""  # production: the identity provider's public keys, from a file ...
    jwks_url: str = ""  # ... or fetched (and cached) from a URL; set one of jwt_secret, jwks_file, jwks_url
    jwt_leeway_s: float = 30.0  # clock skew tolerated for exp and nbf
    metrics_token: str = ""  # the bearer token that shows per-tenant series on /metrics; empty: nobody sees them
    # The log keeps events this long; with an archive it must outlast `archive_after_s` by a margin (docs/replay.md).
    events_max_age_s: float = 33 * 86_400.0
    logs_max_age_s: float = 7 * 86_400.0
    sync_always: bool = False
    # After folding a batch smaller than its maximum, a projector waits this long before its next pull, so that
    # under load one transaction and one pull carry many events (docs/benchmarks.md, "Projection linger").
    projection_linger_s: float = 0.02
    stream_replicas: int = 1  # copies of every stream and bucket: 3 on a three-node JetStream cluster
    # The log's archive (docs/replay.md#archive-and-snapshots): "" none, "local" (archive_dir) or "s3".
    archive_store: Literal["", "local", "s3"] = ""
    archive_dir: str = ""
    archive_bucket: str = ""
    archive_s3_endpoint_url: str = ""
    archive_s3_region: str = "us-east-1"
    archive_s3_access_key_id: str = ""
    archive_s3_secret_access_key: str = ""
    archive_after_s: float = 30 * 86_400.0  # events stored longer ago than this are archived
    archive_interval_s: float = 600.0  # how often the archiver (in the artifacts service) looks


def load_settings(cls: type[S], service: str, environ: Mapping[str, str]) -> S:
    """Build `cls` from `environ`: `XR_<SERVICE>_<FIELD>` wins over `XR_<FIELD>`."""
    prefix = f"XR_{service.upper()}_"
    names = {f.name for f in msgspec.structs.fields(cls)}
    unknown = sorted(k for k in environ if k.startswith(prefix) and k[len(prefix) :].lower() not in names)
    if unknown:
        raise SettingsError(f"unknown settings for {service}: {', '.join(unknown)}")
    raw: dict[str, object] = {}
    for name in names:
        for key in (prefix + name.upper(), f"XR_{name.upper()}"):
            if key in environ:
                raw[name] = _parse(environ[key])
                break
    try:
        return msgspec.convert(raw, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid settings for {service}: {exc}") from exc


def _parse(value: str) -> object:
    """Values that look like JSON lists or objects are decoded; everything else stays a string."""
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
