"""Lists the members of a zip or tar archive without extracting anything: a zip's central directory read record by
record, a tar's headers (a compressed tar streamed, with a cap on the bytes decompressed), stopping at
`MAX_ENTRIES`. A member's name is made safe to show and cut to `MAX_NAME_BYTES`."""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import struct
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, cast

from xrunner.contracts.events import ArchiveEntry

MAX_ENTRIES = 1000
MAX_NAME_BYTES = 256
MAX_DECOMPRESSED = 512 * 1024 * 1024  # a compressed tar is streamed; past this the listing stops

_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # signature, 6 shorts (flags 3rd), crc, sizes, 5 shorts, 2 longs
_UNSAFE_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@dataclass
class Listing:
    """Entries (at most `MAX_ENTRIES`), the uncompressed bytes all members declare, and whether some were left out."""

    entries: list[ArchiveEntry] = field(default_factory=list)
    declared: int = 0
    truncated: bool = False
    note: str = ""

    def add(self, name: str, size: int) -> None:
        self.declared += max(size, 0)
        if len(self.entries) < MAX_ENTRIES:
            self.entries.append(ArchiveEntry(name=safe_name(name), size=max(size, 0)))
        else:
            self.truncated = True


def safe_name(name: str) -> str:
    """A member name safe to show: control and reordering characters replaced, at most `MAX_NAME_BYTES`."""
    shown = _UNSAFE_NAME.sub("\ufffd", name)
    data = shown.encode()
    return shown if len(data) <= MAX_NAME_BYTES else data[: MAX_NAME_BYTES - 3].decode(errors="ignore") + "…"


# --- zip ------------------------------------------------------------------------------------------------------------


def list_zip(path: Path) -> Listing | str:
    """The zip's central directory, or why it cannot be read. Declared sizes are reported, never trusted."""
    with path.open("rb") as src:
        found = _directory(src, path.stat().st_size)
        if isinstance(found, str):
            return found
        count, offset = found
        listing = Listing()
        src.seek(offset)
        for _ in range(count):
            record = src.read(_CENTRAL.size)
            if len(record) < _CENTRAL.size or record[:4] != b"PK\x01\x02":
                listing.note = "the central directory ends early"
                break
            fields = _CENTRAL.unpack(record)
            name_len, extra_len, comment_len, size = fields[10], fields[11], fields[12], fields[9]
            raw_name, extra = src.read(name_len), src.read(extra_len)
            src.seek(comment_len, 1)
            if size == 0xFFFFFFFF:
                size = _zip64_size(extra, size)
            listing.add(raw_name.decode("utf-8" if fields[3] & 0x800 else "cp437", errors="replace"), size)
        return listing


def _directory(src: BinaryIO, size: int) -> tuple[int, int] | str:
    """(entries, offset) of the central directory from the end record (zip64's when the plain one overflows)."""
    tail_len = min(size, _EOCD.size + 0xFFFF)
    src.seek(size - tail_len)
    tail = src.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        return "not a zip archive: no end of central directory"
    _, _, _, _, count, _, offset, _ = _EOCD.unpack(tail[at : at + _EOCD.size])
    if count != 0xFFFF and offset != 0xFFFFFFFF:
        return count, offset
    locator = tail[at - _ZIP64_LOCATOR.size : at] if at >= _ZIP64_LOCATOR.size else b""
    if locator[:4] != b"PK\x06\x07":
        return "a zip64 archive without its locator"
    src.seek(_ZIP64_LOCATOR.unpack(locator)[2])
    record = src.read(_ZIP64_EOCD.size)
    if len(record) < _ZIP64_EOCD.size or record[:4] != b"PK\x06\x06":
        return "a zip64 archive without its end record"
    fields = _ZIP64_EOCD.unpack(record)
    return fields[7], fields[9]


def _zip64_size(extra: bytes, fallback: int) -> int:
    """The uncompressed size from the zip64 extra field (tag 1, first value)."""
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack_from("<2H", extra, at)
        if tag == 1 and length >= 8:
            return int(struct.unpack_from("<Q", extra, at + 4)[0])
        at += 4 + length
    return fallback


# --- tar ------------------------------------------------------------------------------------------------------------


class _Capped:
    """A decompressed stream that ends (raising `Overflow`) once `limit` bytes have been read from it."""

    class Overflow(Exception):
        pass

    def __init__(self, src: IO[bytes], limit: int) -> None:
        self.src, self.left = src, limit

    def read(self, size: int = -1) -> bytes:
        data = self.src.read(size if 0 <= size <= self.left + 1 else self.left + 1)
        self.left -= len(data)
        if self.left < 0:
            raise _Capped.Overflow
        return data


def _open_decompressed(path: Path) -> IO[bytes]:
    with path.open("rb") as src:
        magic = src.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(path, "rb")
    return path.open("rb")


def list_tar(path: Path) -> Listing | str:
    """The tar's member headers, read as a stream (so a compressed one is never held whole)."""
    listing = Listing()
    try:
        with _open_decompressed(path) as raw, tarfile.open(
            fileobj=cast(IO[bytes], _Capped(raw, MAX_DECOMPRESSED)), mode="r|"
        ) as tar:
            for member in tar:
                listing.add(member.name + ("/" if member.isdir() else ""), member.size if member.isfile() else 0)
                if listing.truncated:
                    break
    except _Capped.Overflow:
        listing.truncated, listing.note = True, f"listing stopped after {MAX_DECOMPRESSED:,} decompressed bytes"
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError) as exc:
        if not listing.entries:
            return f"not a readable tar archive: {exc}"
        listing.truncated, listing.note = True, f"listing stopped at a damaged header: {exc}"
    return listing
