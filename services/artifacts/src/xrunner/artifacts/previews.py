"""Decides what preview a stored file gets and derives it from the file alone, within fixed caps: the head of a
text, a thumbnail of an image or a PDF's first page, the listing of an archive, or none with the reason.

No I/O but reading the file it is given, no clock: the same bytes always give the same preview. It trusts nothing in
the file, yet runs only in a child process under CPU, memory and time limits (`isolation.py`): a decoder's own bug
can cost that process, never the service."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import Literal

import msgspec
import pypdfium2 as pdfium
from PIL import Image

from xrunner.artifacts.archives import MAX_ENTRIES, Listing, list_tar, list_zip
from xrunner.contracts.events import ArchiveEntry

TEXT_CAP = 64 * 1024  # bytes of UTF-8 text an event carries
THUMB_PX = 256
MAX_PIXELS = 40_000_000  # a declared image larger than this is never decoded
BOMB_RATIO = 1000  # an archive declaring this many times its own size (and over BOMB_BYTES) is treated as a bomb
BOMB_BYTES = 1 << 30
SNIFF = 4096
NOT_PREVIEWABLE = "not a type with a preview (text, image, PDF, zip or tar)"

Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow itself refuses (DecompressionBombError) above twice this

Kind = Literal["text", "image", "pdf", "archive", "none"]


class Preview(msgspec.Struct, frozen=True, kw_only=True):
    """What `derive` found: the fields of `artifact.previewed` but the ids, with the thumbnail's PNG bytes."""

    kind: Kind
    reason: str = ""
    text: str | None = None
    line_count: int | None = None
    thumbnail: bytes | None = None
    page_count: int | None = None
    entries: list[ArchiveEntry] = msgspec.field(default_factory=list)
    truncated: bool = False


def warm() -> None:
    """Load every image plugin now (Pillow does it on first use), so a child waiting for work has done it."""
    Image.init()


def none(reason: str) -> Preview:
    return Preview(kind="none", reason=reason)


def failed(exc: Exception) -> Preview:
    """The `none` preview of a derivation that raised: the error, in one line."""
    return none(f"deriving the preview failed: {type(exc).__name__}: {str(exc)[:300]}")


def derive(path: Path, name: str) -> Preview:
    """The preview of the file at `path`, stored as `name` (its extension decides between look-alikes)."""
    with path.open("rb") as src:
        head = src.read(SNIFF)
    match sniff(head, name):
        case "image":
            return image(path)
        case "pdf":
            return pdf(path)
        case "zip":
            return archive(list_zip(path), path)
        case "tar":
            return archive(list_tar(path), path)
        case "text":
            return text(path, name)
    return none(NOT_PREVIEWABLE)


_TAR_NAMES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def sniff(head: bytes, name: str) -> str:
    """Which deriver the file's first bytes (and, for compressed tars, its name) call for."""
    lower = name.lower()
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    ):
        return "image"
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head[257:262] == b"ustar" or (lower.endswith(_TAR_NAMES) and head.startswith(_COMPRESSED)):
        return "tar"
    if looks_textual(head):
        return "text"
    return "other"


def looks_textual(head: bytes) -> bool:
    """No NUL byte, and (nearly) UTF-8: at most one byte in 32 is not (it is replaced when shown)."""
    if b"\0" in head:
        return False
    return head.decode(errors="replace").count("\ufffd") <= (len(head) + 64) // 32


# --- text -----------------------------------------------------------------------------------------------------------

# C0 controls but \t and \n become their visible Control Pictures (U+2400 block), DEL too; C1 controls and the bidi
# overrides and isolates (which can make a line read differently than it is) become U+FFFD.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u202a-\u202e\u2066-\u2069]")


def _picture(match: re.Match[str]) -> str:
    c = ord(match.group())
    return chr(0x2400 + c) if c < 0x20 else "\u2421" if c == 0x7F else "\ufffd"


def neutralise(s: str) -> str:
    """`s` safe to show in a browser or a terminal: no escape sequences, no invisible reordering."""
    return _UNSAFE.sub(_picture, s.replace("\r\n", "\n"))


def cut(s: str, limit: int) -> tuple[str, bool]:
    """`s` cut to at most `limit` bytes of UTF-8 on a character boundary, and whether it was cut."""
    data = s.encode()
    if len(data) <= limit:
        return s, False
    return data[:limit].decode(errors="ignore"), True


def count_lines(path: Path) -> int:
    """Lines in the file: its newlines, plus one for a last line without one."""
    lines, last = 0, b"\n"
    with path.open("rb") as src:
        while chunk := src.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def text(path: Path, name: str) -> Preview:
    """The first `TEXT_CAP` bytes (invalid UTF-8 replaced, made safe) and the file's line count; a JSON document
    that fits whole is shown pretty-printed (and its lines are those shown)."""
    with path.open("rb") as src:
        head = src.read(TEXT_CAP + 1)
    whole = len(head) <= TEXT_CAP
    json_like = name.lower().endswith(".json") or head.lstrip()[:1] in (b"{", b"[")
    pretty = _pretty_json(head) if whole and json_like else None
    body = pretty if pretty is not None else head[:TEXT_CAP].decode(errors="replace")
    shown, cut_short = cut(neutralise(body), TEXT_CAP)
    lines = shown.count("\n") + (not shown.endswith("\n")) if pretty is not None and shown else count_lines(path)
    return Preview(kind="text", text=shown, line_count=lines, truncated=cut_short or not whole)


def _pretty_json(data: bytes) -> str | None:
    try:
        msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return None
    return msgspec.json.format(data, indent=2).decode(errors="replace")


# --- images and PDFs ------------------------------------------------------------------------------------------------


def image(path: Path) -> Preview:
    """A PNG thumbnail of at most `THUMB_PX` a side; the declared size is checked before any pixel is decoded."""
    try:
        with warnings.catch_warnings():  # the size is checked here, against a lower bound than Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            width, height = im.size
            if width * height > MAX_PIXELS:
                return none(f"the image declares {width} x {height} pixels, more than {MAX_PIXELS:,} are not decoded")
            im.draft("RGB", (THUMB_PX, THUMB_PX))  # JPEG decodes at a reduced scale
            im.thumbnail((THUMB_PX, THUMB_PX))
            return Preview(kind="image", thumbnail=png(im))
    except Image.DecompressionBombError as exc:
        return none(f"the image declares too many pixels: {exc}")
    except (OSError, ValueError, SyntaxError) as exc:
        return none(f"the image cannot be read: {exc}")


def png(im: Image.Image) -> bytes:
    if im.mode not in ("RGB", "RGBA", "L", "LA"):
        im = im.convert("RGBA")
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def pdf(path: Path) -> Preview:
    """The page count (read from the page tree) and a thumbnail of page 1 alone, scaled to `THUMB_PX`."""
    try:
        document = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        return none(f"the PDF cannot be opened: {exc}")
    try:
        pages = len(document)
        if pages == 0:
            return Preview(kind="pdf", page_count=0)
        page = document[0]
        width, height = page.get_size()
        if width <= 0 or height <= 0:
            return Preview(kind="pdf", page_count=pages, reason="the first page has no area")
        bitmap = page.render(scale=THUMB_PX / max(width, height))
        return Preview(kind="pdf", page_count=pages, thumbnail=png(bitmap.to_pil()))
    except pdfium.PdfiumError as exc:
        return none(f"the PDF cannot be rendered: {exc}")
    finally:
        document.close()


# --- archives -------------------------------------------------------------------------------------------------------


def archive(listing: Listing | str, path: Path) -> Preview:
    """The archive's entry list (never extracted), or none for an unreadable one or a likely bomb."""
    if isinstance(listing, str):
        return none(listing)
    size = path.stat().st_size
    if listing.declared > BOMB_BYTES and listing.declared > BOMB_RATIO * max(size, 1):
        return none(f"the archive declares {listing.declared:,} bytes in {size:,}: a likely bomb, not listed")
    return Preview(kind="archive", entries=listing.entries[:MAX_ENTRIES], truncated=listing.truncated,
                   reason=listing.note)
