"""How a stored file is handed to a browser: which content types it could execute (HTML, SVG, JavaScript, XML) and
so are only ever downloaded, never rendered, and the headers that say so."""

from __future__ import annotations

from urllib.parse import quote

ACTIVE = frozenset({
    "text/html",
    "application/xhtml+xml",
    "image/svg+xml",
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "text/ecmascript",
    "application/ecmascript",
    "text/xml",
    "application/xml",
    "text/xsl",
    "application/xslt+xml",
})


def is_active(content_type: str) -> bool:
    """Whether a browser could run `content_type` (any `+xml` type included): served as an attachment only."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ACTIVE or media.endswith("+xml")


def disposition(name: str, content_type: str) -> str:
    """`attachment` for active types, else `inline`, with the file's base name (RFC 6266 / 5987)."""
    base = name.rsplit("/", 1)[-1] or "artifact"
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in base)
    kind = "attachment" if is_active(content_type) else "inline"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base, safe='')}"


def headers(name: str, content_type: str) -> dict[str, str]:
    """Headers every download carries: no sniffing, and for active types attachment plus a sandbox CSP."""
    found = {"X-Content-Type-Options": "nosniff", "Content-Disposition": disposition(name, content_type)}
    if is_active(content_type):
        found["Content-Security-Policy"] = "sandbox"
    return found
