"""Decides which workspace-relative file paths a job's artifact globs select, and where a search must start.

`*`, `?` and `[...]` match within one path segment; a `**` segment matches any number of segments. A glob that is
absolute or climbs out with `..` selects nothing."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath

_WILD = re.compile(r"[*?\[]")


def _parts(glob: str) -> list[str] | None:
    """The glob's segments without `.` and empty ones, or None for a glob that points outside the workspace."""
    if glob.startswith("/"):
        return None
    parts = [p for p in glob.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return parts


def _segment(segment: str) -> str:
    """A regex for one segment: wildcards never cross a `/`."""
    out, i = [], 0
    while i < len(segment):
        c = segment[i]
        end = segment.find("]", i + 2) if c == "[" else -1
        end = -1 if segment[i + 1 : end] in ("", "!") else end
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif end != -1:
            body = segment[i + 1 : end]
            negate = body.startswith("!")
            body = "".join(ch if ch == "-" else re.escape(ch) for ch in body[negate:])
            out.append("(?!/)[" + "^" * negate + body + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _regex(parts: list[str]) -> str:
    pieces = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            pieces.append(".+" if last else "(?:[^/]+/)*")
        else:
            pieces.append(_segment(part) + ("" if last else "/"))
    return "".join(pieces)


def compile_globs(globs: Sequence[str]) -> re.Pattern[str]:
    """One pattern that fully matches the relative paths (with `/`) any of `globs` selects."""
    regexes = [_regex(parts) for glob in globs if (parts := _parts(glob)) is not None]
    return re.compile("|".join(f"(?:{r})" for r in regexes) or "(?!)")


def search_roots(globs: Sequence[str]) -> list[str]:
    """The directories (relative, `""` for the workspace) below which every selected file lies: each glob's
    leading literal directories, with nested roots folded into the outer one."""
    roots: set[str] = set()
    for glob in globs:
        parts = _parts(glob)
        if parts is None:
            continue
        literal: list[str] = []
        for part in parts[:-1]:
            if _WILD.search(part):
                break
            literal.append(part)
        roots.add("/".join(literal))
    return sorted(r for r in roots if not any(_below(r, other) for other in roots if other != r))


def _below(path: str, root: str) -> bool:
    return root == "" or PurePosixPath(path).is_relative_to(root)
