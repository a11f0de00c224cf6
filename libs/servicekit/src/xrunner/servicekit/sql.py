"""Named SQL: a package's `sql/queries.sql`, split into queries at `-- name: <name>` headers and loaded once."""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.resources import files
from types import MappingProxyType

_HEADER = re.compile(r"^--\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$", re.MULTILINE)


def parse_queries(text: str) -> Mapping[str, str]:
    """name -> SQL for every `-- name: <name>` section of `text` (a section runs to the next header; comment lines
    under a header document the query and stay in it). A repeated name or a section without SQL fails loudly."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        sql = body.strip()
        if name in queries:
            raise ValueError(f"the query {name!r} is defined twice")
        if not sql or all(line.lstrip().startswith("--") for line in sql.splitlines() if line.strip()):
            raise ValueError(f"the query {name!r} has no SQL")
        queries[name] = sql
    return MappingProxyType(queries)


def load_queries(package: str, resource: str = "sql/queries.sql") -> Mapping[str, str]:
    """The named queries of `package` (e.g. `xrunner.scheduler`), read from its `sql/queries.sql`."""
    return parse_queries(files(package).joinpath(resource).read_text())
