"""Finds the regular files of a finished attempt's workspace that its artifact globs select, never leaving it.

Policy (docs/artifacts.md): only regular files are kept. A symbolic link is kept as its target only when the target
is a regular file inside the workspace; a link that points outside, a directory link (never descended), a device,
a FIFO or a socket is skipped with a note for the job's log. Names are the workspace-relative path in Unicode NFC,
without `..`, a leading `/`, control characters or surrounding blanks; two files whose names normalise alike keep
the first. The file opened for upload must be the very file checked (same device and inode), so a path swapped for a
link after the walk is refused too."""

from __future__ import annotations

import os
import stat
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from xrunner.worker.globs import compile_globs, search_roots

LOG_NAME = "logs.txt"
MAX_NAME_BYTES = 900  # S3 keys stop at 1024 bytes; the rest is the `tenants/<t>/jobs/<id>/<attempt>/` prefix


@dataclass(frozen=True)
class Found:
    """A selected file: its workspace-relative name (with `/`, NFC), its resolved path inside the workspace, and the
    (device, inode) it had when it was checked."""

    name: str
    path: Path
    ident: tuple[int, int]


@dataclass
class Selection:
    """What to keep, in path order, and one note per file passed over (for the job's log)."""

    files: list[Found] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def select(workspace: Path, globs: Sequence[str], limit: int) -> Selection:
    """At most `limit` files below `workspace` that `globs` select. Directory links are never descended; a file
    link counts only when it resolves to a regular file inside the workspace."""
    root = workspace.resolve()
    pattern = compile_globs(globs)
    selection, names = Selection(), set()
    for raw, path in _walk(root, search_roots(globs)):
        name = unicodedata.normalize("NFC", raw)
        if not pattern.fullmatch(name) and not pattern.fullmatch(raw):
            continue
        problem = _problem(root, name, path) or ("another file has the same name in NFC" if name in names else None)
        if problem:
            selection.notes.append(f"{shown(name)} not kept: {problem}")
        elif len(selection.files) == limit:
            selection.notes.append(f"more than {limit} files match; the rest are not kept (the limit is {limit})")
            break
        else:
            real = path.resolve()
            info = real.stat()
            names.add(name)
            selection.files.append(Found(name, real, (info.st_dev, info.st_ino)))
    return selection


def shown(name: str) -> str:
    """`name` safe for a log line: unprintable characters as escapes."""
    return name if name.isprintable() else name.encode("unicode_escape").decode("ascii")


def _walk(root: Path, starts: list[str]) -> Iterator[tuple[str, Path]]:
    for start in starts:
        top = root / start
        if not top.resolve().is_relative_to(root) or not top.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                yield path.relative_to(root).as_posix(), path


def _problem(root: Path, name: str, path: Path) -> str | None:
    # The name ends the event's dedupe id (a NATS header, which drops surrounding blanks) and the object key.
    if not name.isprintable() or name != name.strip() or len(name.encode()) > MAX_NAME_BYTES:
        return "its name is unprintable, too long, or ends in a blank"
    if name.startswith("/") or ".." in name.split("/"):
        return "its name leaves the workspace"
    if name == LOG_NAME:
        return f"{LOG_NAME} is reserved for the job's log"
    real = path.resolve()
    if not real.is_relative_to(root):
        return "it links to outside the workspace"
    try:
        return file_type_problem(real.stat().st_mode)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"


def file_type_problem(mode: int) -> str | None:
    """Why a file of this type is not kept, or None for a regular file."""
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    if stat.S_ISREG(mode):
        return None
    return "it is " + next((what for test, what in kinds if test(mode)), "not a regular file")


def open_regular(found: Found) -> BinaryIO:
    """Open the file `found` names for reading only if it is still the regular file that was checked (not a link or
    another file swapped in since)."""
    fd = os.open(found.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or found.ident != (info.st_dev, info.st_ino):
        os.close(fd)
        raise OSError(f"{found.path.name} is not the regular file that was selected")
    return os.fdopen(fd, "rb")
