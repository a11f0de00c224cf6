"""Previews per kind: text heads made safe, image and PDF thumbnails, archive listings, and the hostile files that
get none with a reason; the child process that derives them under limits."""

from __future__ import annotations

import io
import json
import os
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import asyncpg
import msgspec
import pytest
import sample_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.js import JetStreamContext
from PIL import Image

from xrunner.artifacts import archives, previews
from xrunner.artifacts.index import preview_json
from xrunner.artifacts.isolation import Isolated, Limits
from xrunner.artifacts.objects import LocalStore
from xrunner.artifacts.previewer import EMPTY, Previewer, outcome, previewed
from xrunner.contracts import codec
from xrunner.contracts.events import ArchiveEntry, ArtifactStored

AT = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


def derive(tmp_path: Path, name: str, data: bytes) -> previews.Preview:
    path = tmp_path / name.replace("/", "_")
    path.write_bytes(data)
    return previews.derive(path, name)


def thumbnail_size(preview: previews.Preview) -> tuple[int, int]:
    assert preview.thumbnail is not None
    with Image.open(io.BytesIO(preview.thumbnail)) as im:
        assert im.format == "PNG"
        return im.size


# --- text -----------------------------------------------------------------------------------------------------------


def test_a_log_is_shown_with_escape_sequences_and_controls_made_visible_and_bad_utf8_replaced(tmp_path: Path) -> None:
    data = b"build ok\r\n\x1b[2J\x1b]0;pwned\x07 done\xff\n\xc2\x9b31m \xe2\x80\xaeevil\tend\n"
    preview = derive(tmp_path, "out/build.log", data)
    assert preview.kind == "text" and preview.line_count == 3 and not preview.truncated
    assert preview.text == "build ok\n\u241b[2J\u241b]0;pwned\u2407 done\ufffd\n\ufffd31m \ufffdevil\tend\n"


def test_a_long_text_shows_its_first_64_kib_and_counts_every_line(tmp_path: Path) -> None:
    line = "é" * 99 + "\n"  # 199 bytes: the cap falls inside a character
    preview = derive(tmp_path, "big.txt", (line * 2000).encode())
    assert preview.kind == "text" and preview.truncated and preview.line_count == 2000
    assert preview.text is not None and len(preview.text.encode()) <= previews.TEXT_CAP
    assert preview.text.startswith(line) and len(preview.text.encode()) > previews.TEXT_CAP - 4


def test_a_json_document_that_fits_is_pretty_printed(tmp_path: Path) -> None:
    preview = derive(tmp_path, "out/report.json", b'{"loss":0.12,"steps":[1,2]}')
    assert preview.kind == "text" and preview.text is not None
    assert json.loads(preview.text) == {"loss": 0.12, "steps": [1, 2]}
    assert preview.text.count("\n") >= 4 and preview.line_count == len(preview.text.splitlines())


@pytest.mark.parametrize("data", [b'{"a": [1, 2', b"[" * 60_000 + b"]" * 60_000], ids=["invalid", "too deep"])
def test_a_json_document_that_does_not_parse_is_shown_as_it_is(tmp_path: Path, data: bytes) -> None:
    preview = derive(tmp_path, "x.json", data)
    assert preview.kind == "text" and preview.text == data[: previews.TEXT_CAP].decode()


def test_csv_is_text_and_a_binary_file_has_no_preview(tmp_path: Path) -> None:
    assert derive(tmp_path, "t.csv", b"a,b\n1,2\n").line_count == 2
    binary = derive(tmp_path, "model.pt", b"\x00\x01\x02binary" * 100)
    assert (binary.kind, binary.reason) == ("none", previews.NOT_PREVIEWABLE)


# --- images and PDFs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_an_image_gets_a_png_thumbnail_of_at_most_256_pixels_a_side(tmp_path: Path, fmt: str) -> None:
    out = io.BytesIO()
    Image.new("RGB", (1000, 400), (200, 10, 10)).save(out, fmt)
    preview = derive(tmp_path, f"plot.{fmt.lower()}", out.getvalue())
    assert preview.kind == "image" and thumbnail_size(preview) == (256, 102)


def test_a_png_header_declaring_20000_by_20000_pixels_is_not_decoded(tmp_path: Path) -> None:
    preview = derive(tmp_path, "bomb.png", sample_files.png_header(20_000, 20_000))
    assert preview.kind == "none" and "pixels" in preview.reason


def test_a_png_just_over_the_pixel_cap_is_refused_before_decoding(tmp_path: Path) -> None:
    preview = derive(tmp_path, "wide.png", sample_files.png_header(previews.MAX_PIXELS // 1000 + 1, 1000))
    assert preview.kind == "none" and "declares" in preview.reason


def test_a_truncated_image_has_no_preview_and_says_why(tmp_path: Path) -> None:
    preview = derive(tmp_path, "cut.png", sample_files.png(300, 300)[:120])
    assert preview.kind == "none" and preview.reason


def test_a_pdf_gets_its_page_count_and_a_thumbnail_of_its_first_page(tmp_path: Path) -> None:
    preview = derive(tmp_path, "paper.pdf", sample_files.pdf(pages=3))
    assert (preview.kind, preview.page_count) == ("pdf", 3)
    assert thumbnail_size(preview) == (171, 256)


def test_a_pdf_of_10000_pages_is_counted_and_only_its_first_page_rendered(tmp_path: Path) -> None:
    preview = derive(tmp_path, "long.pdf", sample_files.pdf(pages=10_000))
    assert (preview.kind, preview.page_count) == ("pdf", 10_000) and max(thumbnail_size(preview)) == 256


def test_a_damaged_pdf_has_no_preview(tmp_path: Path) -> None:
    preview = derive(tmp_path, "bad.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\n%%EOF\n")
    assert preview.kind == "none" and "PDF" in preview.reason


# --- archives -------------------------------------------------------------------------------------------------------


def test_a_zip_lists_its_entries_with_names_made_safe_and_capped(tmp_path: Path) -> None:
    long_name = "d/" + "n" * 400
    files = {"a.txt": b"hello", "\x1b[31mred": b"", long_name: b"x"}
    preview = derive(tmp_path, "bundle.zip", sample_files.zip_of(files))
    assert preview.kind == "archive" and not preview.truncated
    names = [e.name for e in preview.entries]
    assert names[:2] == ["a.txt", "\ufffd[31mred"] and preview.entries[0].size == 5
    assert len(names[2].encode()) <= archives.MAX_NAME_BYTES and names[2].endswith("…")


def test_a_zip_of_more_than_1000_entries_lists_the_first_1000(tmp_path: Path) -> None:
    preview = derive(tmp_path, "many.zip", sample_files.zip_of({f"f{i:05d}": b"" for i in range(1200)}))
    assert preview.kind == "archive" and preview.truncated and len(preview.entries) == archives.MAX_ENTRIES
    assert preview.entries[-1].name == "f00999"


def test_a_zip_bomb_is_not_listed_and_nothing_is_extracted(tmp_path: Path) -> None:
    listing = archives.list_zip(_write(tmp_path / "bomb.zip", sample_files.zip_bomb()))
    assert not isinstance(listing, str) and listing.entries[0].size == 1 << 50  # the declared size, only read
    preview = previews.derive(tmp_path / "bomb.zip", "bomb.zip")
    assert preview.kind == "none" and "bomb" in preview.reason


def test_a_tar_and_a_compressed_tar_list_their_members(tmp_path: Path) -> None:
    for name, mode in (("b.tar", "w"), ("b.tar.gz", "w:gz"), ("b.tar.xz", "w:xz")):
        with tarfile.open(tmp_path / name, mode) as tar:
            _add(tar, "data/x.bin", b"1234")
            _add(tar, "readme", b"")
        preview = previews.derive(tmp_path / name, name)
        assert preview.entries == [ArchiveEntry("data/x.bin", 4), ArchiveEntry("readme", 0)], name


def test_a_compressed_tar_is_listed_only_up_to_the_decompression_cap(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archives, "MAX_DECOMPRESSED", 1 << 20)
    with tarfile.open(tmp_path / "z.tgz", "w:gz") as tar:
        _add(tar, "first", b"1")
        _add(tar, "zeros", bytes(4 << 20))
        _add(tar, "never", b"")
    preview = previews.derive(tmp_path / "z.tgz", "z.tgz")
    assert preview.kind == "archive" and preview.truncated and "decompressed" in preview.reason
    assert [e.name for e in preview.entries] == ["first", "zeros"]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- any bytes ------------------------------------------------------------------------------------------------------

MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF\0\0\0\0WEBP", b"%PDF-1.7\n", b"PK\x03\x04",
         b"PK\x05\x06", b"\x1f\x8b", b"{"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(MAGIC), st.binary(max_size=600), st.sampled_from(["f.bin", "f.tar.gz", "f.json", "f.zip"]))
def test_any_bytes_give_a_preview_within_the_caps(tmp_path: Path, magic: bytes, tail: bytes, name: str) -> None:
    preview = previews.derive(_write(tmp_path / "any", magic + tail), name)
    assert preview.kind in ("text", "image", "pdf", "archive", "none")
    assert len((preview.text or "").encode()) <= previews.TEXT_CAP and len(preview.entries) <= archives.MAX_ENTRIES
    assert preview.kind != "none" or preview.reason


# --- the event and the index row ------------------------------------------------------------------------------------

STORED = ArtifactStored(event_id="e1", occurred_at=AT, tenant="acme", job_id="j1", attempt=2, artifact_id="a1",
                        name="out/plot.png", key="tenants/acme/jobs/j1/2/out/plot.png", size=10, sha256="00",
                        content_type="image/png")


def test_the_event_carries_the_preview_and_the_index_row_keeps_all_but_its_ids() -> None:
    preview = previews.Preview(kind="image", thumbnail=b"png")
    event = previewed(STORED, preview, STORED.key + ".preview.png", "e2", AT)
    assert codec.decode_event(codec.encode(event)) == event
    assert (event.thumbnail_key, event.thumbnail_content_type) == (STORED.key + ".preview.png", "image/png")
    row = json.loads(preview_json(event))
    assert set(row) == {"artifact_id", "kind", "reason", "text", "line_count", "thumbnail_key",
                        "thumbnail_content_type", "page_count", "entries", "truncated"}


def test_a_reason_is_made_printable_and_short_and_outcomes_tell_failures_from_unsupported_types() -> None:
    event = previewed(STORED, previews.none("bad\x00\x1b" + "x" * 2000), None, "e2", AT)
    assert "\x00" not in event.reason and "\x1b" not in event.reason and len(event.reason.encode()) <= 500
    assert outcome(previews.none(previews.NOT_PREVIEWABLE)) == "none"
    assert outcome(previews.none("took too long")) == "failed"
    assert outcome(previews.Preview(kind="text", text="")) == "made"


# --- the child process ----------------------------------------------------------------------------------------------


async def test_a_child_derives_the_preview_and_a_hung_or_starved_one_gives_none_with_the_reason(
    tmp_path: Path,
) -> None:
    image = _write(tmp_path / "p.png", sample_files.png(600, 300))
    fifo = tmp_path / "never"
    os.mkfifo(fifo)  # opening it for reading blocks forever: no writer ever comes
    isolated = Isolated(Limits(timeout_s=3.0, cpu_s=5, memory_bytes=1 << 30))
    try:
        assert thumbnail_size(await isolated.derive(image, "p.png")) == (256, 128)
        hung = await isolated.derive(fifo, "never.txt")
        assert hung.kind == "none" and "longer than 3s" in hung.reason
        assert (await isolated.derive(image, "p.png")).kind == "image", "the next file gets a fresh child"
    finally:
        await isolated.close()
    starved = Isolated(Limits(timeout_s=30.0, cpu_s=5, memory_bytes=16 << 20))
    try:
        failed = await starved.derive(image, "p.png")
    finally:
        await starved.close()
    assert failed.kind == "none" and failed.reason.startswith("deriving the preview")


async def test_text_is_previewed_without_a_child_and_every_decoder_runs_in_one(tmp_path: Path) -> None:
    """The previewer derives text itself (no decoder runs for it) and sends images, PDFs and archives to a child:
    here every child is starved of memory, so only text gets a preview."""
    files = {"logs.txt": b"step 1\n\x1b[31mred\x1b[0m\n", "data.json": b'{"a": 1}',
             "plot.png": sample_files.png(64, 32), "bundle.zip": sample_files.zip_of({"a.csv": b"x\n"})}
    for name, data in files.items():
        (tmp_path / "tenants" / "acme").mkdir(parents=True, exist_ok=True)
        _write(tmp_path / "tenants" / "acme" / name, data)
    starved = Isolated(Limits(timeout_s=30.0, cpu_s=5, memory_bytes=16 << 20))
    previewer = Previewer(cast(JetStreamContext, None), cast(asyncpg.Pool, None), LocalStore(tmp_path), starved,
                          max_bytes=1 << 20)
    try:
        got = {name: await previewer.preview(msgspec.structs.replace(STORED, name=name, key=f"tenants/acme/{name}",
                                                                     size=len(data)))
               for name, data in files.items()}
    finally:
        await starved.close()
    assert got["logs.txt"] == (previews.Preview(kind="text", text="step 1\n␛[31mred␛[0m\n", line_count=2), "text")
    assert got["data.json"][0].text == '{\n  "a": 1\n}'
    assert {name: (preview.kind, kind) for name, (preview, kind) in got.items() if name.endswith(("png", "zip"))} == {
        "plot.png": ("none", "image"), "bundle.zip": ("none", "zip")}


def test_a_preview_round_trips_through_msgpack_as_the_child_sends_it() -> None:
    preview = previews.Preview(kind="archive", entries=[ArchiveEntry("a", 1)], truncated=True)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(preview), type=previews.Preview) == preview


@pytest.mark.parametrize("name", ["logs.txt", "data.json", "picture.png", "bundle.zip", "blob"])
def test_the_previewers_shortcut_for_an_empty_artifact_is_what_deriving_it_gives(tmp_path: Path, name: str) -> None:
    assert derive(tmp_path, name, b"") == EMPTY
