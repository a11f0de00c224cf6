"""Writes the sources of web/packages/api-types: the gateway's and the artifacts service's OpenAPI documents and the
contracts' JSON Schema.

No server, NATS or Postgres is needed: each app is built with dummy collaborators only to render its
OpenAPI document. The output is stable (sorted keys, fixed indentation, trailing newline) so that the committed
files can be compared byte for byte. Run it with the workspace's venv; web/scripts/generate.sh does.

    .venv/bin/python web/scripts/export_schemas.py [--out DIR]   # DIR defaults to web/schema
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"
OPENAPI_FILE = "openapi.json"
CONTRACTS_FILE = "contracts.schema.json"
ARTIFACTS_FILE = "artifacts.openapi.json"


def openapi_document() -> dict[str, Any]:
    from xrunner.gateway.app import Infra, create_app
    from xrunner.gateway.settings import GatewaySettings
    from xrunner.servicekit.auth import JwtVerifier

    # Only the route and type declarations matter for the document: the connections and ready check are dummies.
    infra = Infra(None, None, None, JwtVerifier("x" * 32, issuer="a", audience="b"), None)  # type: ignore[arg-type]
    return create_app(GatewaySettings(), infra).openapi_schema.to_schema()


def artifacts_openapi_document() -> dict[str, Any]:
    from xrunner.artifacts.app import Infra, create_app
    from xrunner.artifacts.settings import ArtifactsSettings
    from xrunner.servicekit.auth import JwtVerifier

    verifier = JwtVerifier("x" * 32, issuer="a", audience="b")
    infra = Infra(None, None, None, verifier, None, "http://localhost")  # type: ignore[arg-type]
    return create_app(ArtifactsSettings(jwt_secret="x" * 32), infra).openapi_schema.to_schema()


def contracts_schema() -> dict[str, Any]:
    from xrunner.contracts.codec import json_schema

    return json_schema()


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    documents = ((OPENAPI_FILE, openapi_document()), (CONTRACTS_FILE, contracts_schema()),
                 (ARTIFACTS_FILE, artifacts_openapi_document()))
    for name, document in documents:
        path = out / name
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR, help="folder to write into (default: web/schema)")
    args = parser.parse_args()
    for path in export(args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
