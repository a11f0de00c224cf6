"""Finds the regular files of a finished attempt's workspace that its artifact globs select, never leaving it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from xrunner.worker.globs import compile_globs, search_roots

LOG_NAME = "logs.txt"
MAX_NAME_BYTES = 900  # S3 keys stop at 1024 bytes; the rest is the `tenants/<t>/jobs/<id>/<attempt>/` prefix


@dataclass(frozen=True)
class Found:
    """A selected file: its workspace-relative name (with `/`) and its resolved path inside the workspace."""

    name: str
    path: Path


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
    selection = Selection()
    for name, path in _walk(root, search_roots(globs)):
        if not pattern.fullmatch(name):
            continue
        problem = _problem(root, name, path)
        if problem:
            selection.notes.append(f"{name} not kept: {problem}")
        elif len(selection.files) == limit:
            selection.notes.append(f"more than {limit} files match; the rest are not kept")
            break
        else:
            selection.files.append(Found(name, path.resolve()))
    return selection


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
    if name == LOG_NAME:
        return f"{LOG_NAME} is reserved for the job's log"
    real = path.resolve()
    if not real.is_relative_to(root):
        return "it links to outside the workspace"
    if not real.is_file():
        return "it is not a regular file"
    return None


def open_regular(path: Path) -> BinaryIO:
    """Open `path` for reading only if it is a regular file itself (not a link swapped in since it was checked)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path.name} is not a regular file")
    return os.fdopen(fd, "rb")
