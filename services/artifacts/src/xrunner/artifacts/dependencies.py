"""What the artifact service's handlers are given by dependency injection: each dependency's name and type."""

from __future__ import annotations

from typing import TypeAlias, TypeVar

from litestar.di import NamedDependency, Provide
from nats.js import JetStreamContext

from xrunner.artifacts.catalog import Catalog
from xrunner.artifacts.objects import LocalStore
from xrunner.artifacts.signer import Signer
from xrunner.artifacts.signing import Keyring
from xrunner.servicekit.auth import Principal
from xrunner.servicekit.guards import principal

T = TypeVar("T")

# A handler names a parameter after the dependency and annotates it with its alias: `who: Who`, `catalog: Index`.
Who: TypeAlias = NamedDependency[Principal]
Index: TypeAlias = NamedDependency[Catalog]  # the artifact index
Sign: TypeAlias = NamedDependency[Signer]
Keys: TypeAlias = NamedDependency[Keyring]  # verifies the local store's signed URLs
Blobs: TypeAlias = NamedDependency[LocalStore | None]  # the local store whose bytes it serves; None with S3
Log: TypeAlias = NamedDependency[JetStreamContext]  # the log, to tell an unknown job from one without artifacts


def provide(catalog: Catalog, signer: Signer, js: JetStreamContext) -> dict[str, Provide]:
    """The providers, by the names above; everything but `who` is built once, in `create_app`."""
    blobs = signer.store if isinstance(signer.store, LocalStore) else None
    return {
        "who": Provide(principal, sync_to_thread=False),
        "catalog": _value(catalog),
        "signer": _value(signer),
        "keys": _value(signer.keyring),
        "blobs": _value(blobs),
        "js": _value(js),
    }


def _value(value: T) -> Provide:
    def provided() -> T:
        return value

    return Provide(provided, use_cache=True, sync_to_thread=False)
