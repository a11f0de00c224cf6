"""The artifact service's pure rules: URL signatures and key rotation, byte ranges, ETags, and which content types
a browser could run."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xrunner.artifacts.blobs import Slice, byte_range, etag_matches
from xrunner.artifacts.exposure import disposition, headers, is_active
from xrunner.artifacts.signing import Keyring, Signature

RING = Keyring.parse("new:a-new-secret-0123456789,old:an-old-secret-0123456789")
KEY = "tenants/acme/jobs/j1/1/out/report.json"


def test_the_first_key_signs_and_its_signature_verifies_until_it_expires() -> None:
    signed = RING.sign("GET", KEY, 1000, "acme")
    assert signed.kid == "new"
    assert RING.check("GET", KEY, "acme", signed, now=999.0) is None
    assert RING.check("GET", KEY, "acme", signed, now=1000.5) == "expired"


def test_a_url_signed_by_the_previous_key_verifies_while_that_key_is_on_the_ring() -> None:
    old = Keyring.parse("old:an-old-secret-0123456789").sign("GET", KEY, 1000, "acme")
    assert RING.check("GET", KEY, "acme", old, now=0.0) is None
    dropped = Keyring.parse("new:a-new-secret-0123456789")
    assert dropped.check("GET", KEY, "acme", old, now=0.0) == "unknown_key"


@pytest.mark.parametrize(
    ("method", "key", "tenant", "expires"),
    [("PUT", KEY, "acme", 1000), ("GET", KEY + "x", "acme", 1000), ("GET", KEY, "evil", 1000),
     ("GET", KEY, "acme", 1001)],
)
def test_a_signature_covers_method_key_tenant_and_expiry(method: str, key: str, tenant: str, expires: int) -> None:
    signed = RING.sign("GET", KEY, 1000, "acme")
    moved = Signature(expires, signed.kid, signed.sig)
    assert RING.check(method, key, tenant, moved, now=0.0) == "bad_signature"


@given(st.integers(min_value=0, max_value=42), st.sampled_from("ABCDEFabcdef0123456789-_"))
def test_any_changed_character_of_the_signature_is_refused(position: int, char: str) -> None:
    signed = RING.sign("GET", KEY, 1000, "acme")
    changed = signed.sig[:position] + char + signed.sig[position + 1:]
    verdict = RING.check("GET", KEY, "acme", Signature(1000, "new", changed), now=0.0)
    assert verdict == (None if changed == signed.sig else "bad_signature")


@pytest.mark.parametrize(
    "text", ["", "nokey", "k:short", "bad id:0123456789abcdef", "k:0123456789abcdef,k:0123456789abcdef"]
)
def test_a_malformed_short_or_repeated_key_is_refused_at_startup(text: str) -> None:
    with pytest.raises(ValueError):
        Keyring.parse(text)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", Slice(0, 10)),
        ("bytes=90-", Slice(90, 10)),
        ("bytes=95-200", Slice(95, 5)),
        ("bytes=-10", Slice(90, 10)),
        ("bytes=-500", Slice(0, 100)),
        ("bytes=100-", "unsatisfiable"),
        ("bytes=-0", "unsatisfiable"),
        ("bytes=5-2", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_a_range_header_selects_one_slice_of_a_100_byte_file(header: str | None, expected: object) -> None:
    assert byte_range(header, 100) == expected


def test_an_etag_matches_itself_weakly_or_a_star_only() -> None:
    assert etag_matches('"abc"', '"abc"') and etag_matches('W/"abc", "x"', '"abc"') and etag_matches("*", '"abc"')
    assert not etag_matches('"abd"', '"abc"') and not etag_matches(None, '"abc"')


@pytest.mark.parametrize(
    ("content_type", "active"),
    [("text/html", True), ("text/html; charset=utf-8", True), ("image/svg+xml", True), ("application/xml", True),
     ("text/javascript", True), ("application/atom+xml", True), ("text/plain", False), ("image/png", False),
     ("application/json", False), ("application/pdf", False)],
)
def test_types_a_browser_could_run_are_attachments_in_a_sandbox(content_type: str, active: bool) -> None:
    assert is_active(content_type) is active
    found = headers("out/x", content_type)
    assert found["X-Content-Type-Options"] == "nosniff"
    assert found["Content-Disposition"].startswith("attachment" if active else "inline")
    assert ("Content-Security-Policy" in found) is active


def test_the_file_name_in_the_disposition_is_its_base_name_quoted_safely() -> None:
    assert disposition('out/a "b".html', "text/html") == (
        "attachment; filename=\"a _b_.html\"; filename*=UTF-8''a%20%22b%22.html")
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.txt" in disposition("résumé.txt", "text/plain")
