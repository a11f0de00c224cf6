"""The job list's opaque cursor: the creation time and id of a page's last job, so pages stay stable while new
jobs arrive."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from xrunner.contracts.api import JobView


class BadCursor(ValueError):
    """The cursor was not one this API handed out."""


def encode_cursor(view: JobView) -> str:
    return base64.urlsafe_b64encode(f"{view.created_at.isoformat()}|{view.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, _, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        if "\x00" in job_id:  # no id holds one, and Postgres cannot take it as text
            raise ValueError("NUL in the cursor's job id")
        return datetime.fromisoformat(at), job_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadCursor(cursor) from exc
