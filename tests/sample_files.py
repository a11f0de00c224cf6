"""Files the preview tests feed the artifacts service, built in memory: ordinary ones (a PNG, a PDF, a zip) and
hostile ones (a PNG header declaring 20,000 x 20,000 pixels, a zip declaring petabytes, a 10,000-page PDF)."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from PIL import Image


def png(width: int = 640, height: int = 480) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(out, "PNG")
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares `width` x `height` RGB pixels and whose data is one empty IDAT: tiny on disk."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")


def pdf(pages: int = 2, size: tuple[int, int] = (200, 300)) -> bytes:
    """A valid PDF (with its xref table) of `pages` pages of `size` points, the first with a filled rectangle."""
    content = b"0.8 0.1 0.1 rg 20 20 100 150 re f"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count %d /Kids [%s] >>" % (pages, b" ".join(b"%d 0 R" % (4 + i) for i in range(pages))),
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
    ]
    box = b"[0 0 %d %d]" % size
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox %s%s >>" % (box, b" /Contents 3 0 R" * (i == 0))
                for i in range(pages)]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def zip_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def zip_bomb(entries: int = 16, declared: int = 1 << 50) -> bytes:
    """A small zip whose central directory declares `declared` uncompressed bytes per entry (zip64 sizes)."""
    out = bytearray()
    central = bytearray()
    for i in range(entries):
        name = b"bomb-%02d.bin" % i
        offset = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 45, 0, 8, 0, 0, 0, 2, 0xFFFFFFFF, len(name), 0) + name
        out += b"\x03\x00"  # an empty deflate stream: nothing is there to extract
        extra = struct.pack("<2H2Q", 1, 16, declared, 2)
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 45, 45, 0, 8, 0, 0, 0, 2, 0xFFFFFFFF, len(name),
                               len(extra), 0, 0, 0, 0, offset) + name + extra
    start = len(out)
    out += central
    end = len(out)
    out += struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, len(central), start)
    out += struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1)
    out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return bytes(out)
