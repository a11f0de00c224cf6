"""Makes job output safe for terminals and browsers: invalid UTF-8 replaced (across chunk boundaries), escape and
control sequences neutralised so that a job cannot drive the viewer's terminal. The raw bytes stay in the log."""

from __future__ import annotations

import codecs
import re

# C0 controls except tab and newline, DEL, and the C1 range (as decoded code points).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    return "\\r" if char == "\r" else f"\\x{ord(char):02x}"


class SafeText:
    """An incremental decoder: feed raw chunks, get displayable text."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes, final: bool = False) -> str:
        return _CONTROL.sub(_visible, self._decoder.decode(data, final))
