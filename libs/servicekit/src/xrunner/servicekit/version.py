"""The suite's version (one for every distribution, docs/release.md) and, in a checkout, the git revision."""

from __future__ import annotations

import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

VERSION = metadata.version("xrunner-servicekit")


@cache
def revision() -> str | None:
    """The checkout's short commit (with `-dirty` when it has changes), or None when installed from wheels."""
    here = Path(__file__).resolve().parent
    if not any((parent / ".git").exists() for parent in here.parents):
        return None
    try:
        described = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=10", "--exclude", "*"],
                                   cwd=here, capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return described.stdout.strip() or None


def describe() -> str:
    """`1.0.0` from wheels, `1.0.0+g1234abcd` (`…+g1234abcd.dirty` with changes) in a development checkout."""
    rev = revision()
    return f"{VERSION}+g{rev.replace('-', '.')}" if rev else VERSION
