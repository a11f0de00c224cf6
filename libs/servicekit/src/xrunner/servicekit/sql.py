"""Loads a service's named SQL: the `-- name: <name>` sections of its `sql/queries.sql`, read once at import."""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.resources import files

_HEADER = re.compile(r"^--\s*name:\s*(\S+)\s*$", re.MULTILINE)


def load_queries(package: str) -> Mapping[str, str]:
    """Each query of `package`'s `sql/queries.sql` by its name; the text under a header up to the next one,
    stripped. A name given twice is a mistake and fails loudly."""
    text = (files(package) / "sql" / "queries.sql").read_text(encoding="utf-8")
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice in {package}'s sql/queries.sql")
        queries[name] = body.strip()
    return queries
