"""OIDC sign-in (authorization code + PKCE) against a real provider: panva's oidc-provider on loopback
(tests/browser/oidc/provider.mjs), and a stack of its own that accepts only that provider's tokens (`xrunner up` with
XR_JWKS_URL, XR_JWT_ISSUER, XR_JWT_AUDIENCE and the console's XR_GATEWAY_CONSOLE_OIDC_* settings). The console
trades the code for a JWT access token whose `tenant` claim and scopes the gateway, the realtime edge and the
artifacts service accept; a denied consent, a forged redirect and a token without a tenant end on /signin with the
reason."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
from e2e.conftest import free_base
from playwright.sync_api import Page, expect

from browser.console_harness import ROOT, ConsoleStack, Problems, console_stack_running

PROVIDER = ROOT / "tests" / "browser" / "oidc"
CLIENT_ID, AUDIENCE, SCOPES = "xrunner-console", "urn:xrunner:api", "jobs:read jobs:write"


class Oidc(NamedTuple):
    stack: ConsoleStack  # accepts the provider's tokens only
    issuer: str


def _provider_issuer(log: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 30
    while not (found := re.search(r'^\{"issuer".*$', log.read_text(errors="replace"), re.MULTILINE)):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the OIDC provider did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    issuer: str = json.loads(found.group(0))["issuer"]
    return issuer


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oidc]:
    """The provider (for the console's origin) and a stack that trusts it."""
    assert (PROVIDER / "node_modules" / "oidc-provider").is_dir(), "run ./dev test (npm ci in tests/browser/oidc)"
    base, port = tmp_path_factory.mktemp("oidc"), free_base()
    log = base / "provider.log"
    with log.open("wb") as out:
        provider = subprocess.Popen(["node", "provider.mjs", "--console-origin", f"http://127.0.0.1:{port}",
                                     "--client-id", CLIENT_ID, "--audience", AUDIENCE, "--scope", SCOPES],
                                    cwd=PROVIDER, stdout=out, stderr=subprocess.STDOUT)
    try:
        issuer = _provider_issuer(log, provider)
        discovery = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
        settings = {"XR_JWKS_URL": discovery["jwks_uri"], "XR_JWT_ISSUER": issuer, "XR_JWT_AUDIENCE": AUDIENCE,
                    "XR_GATEWAY_CONSOLE_OIDC_ISSUER": issuer, "XR_GATEWAY_CONSOLE_OIDC_CLIENT_ID": CLIENT_ID,
                    "XR_GATEWAY_CONSOLE_OIDC_SCOPE": f"openid {SCOPES}"}
        with console_stack_running(base, port, settings) as stack:
            yield Oidc(stack, issuer)
    finally:
        provider.terminate()
        provider.wait(10)


@pytest.fixture
def page(page: Page) -> Page:
    """The browser page, with the stylesheet the provider's development pages link from Google Fonts served empty:
    the test needs no network beyond loopback (offline, the failed load would be a console error)."""
    page.route("https://fonts.googleapis.com/**", lambda route: route.fulfill(content_type="text/css", body=""))
    return page


def _start_sign_in(page: Page, oidc: Oidc) -> None:
    page.goto(f"{oidc.stack.api}/console/signin")
    page.get_by_role("button", name=f"Sign in with {httpx.URL(oidc.issuer).netloc.decode()}").click()


def _sign_in_at_the_provider(page: Page, oidc: Oidc, login: str) -> None:
    _start_sign_in(page, oidc)
    page.locator("input[name=login]").fill(login)  # the provider's development login: any name, any password
    page.locator("input[name=password]").fill("any")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()  # consent to the scopes for the gateway's audience


def test_the_provider_signs_the_console_in_and_a_job_submitted_from_the_form_succeeds(
    oidc: Oidc, page: Page
) -> None:
    stack = oidc.stack
    _sign_in_at_the_provider(page, oidc, "alice@acme")
    expect(page.get_by_test_id("principal")).to_contain_text("alice@acme · tenant acme")
    expect(page).to_have_url(re.compile(rf"^{stack.api}/console/?$"))  # the code and state left the address bar
    token = page.evaluate("sessionStorage.getItem('xrunner.token')")
    whoami = httpx.get(f"{stack.api}/v1/whoami", headers={"Authorization": f"Bearer {token}"}).json()
    assert whoami["tenant"] == "acme" and set(whoami["scopes"]) == set(SCOPES.split())
    assert httpx.get(f"{stack.api}/v1/whoami", headers={"Authorization": f"Bearer {stack.token('acme')}"},
                     ).status_code == 401  # the stack's own secret signs no accepted token here
    page.get_by_role("link", name="Submit").click()
    page.get_by_label("Command").fill("echo signed-in-with-oidc")
    page.get_by_role("button", name="Submit").click()
    submitted = page.get_by_test_id("submitted-job").first
    expect(submitted.locator("[data-state]")).to_have_attribute("data-state", "succeeded", timeout=30_000)
    submitted.get_by_role("link").click()  # the job page: its output from realtime, its artifacts from that service
    expect(page.get_by_test_id("live-log")).to_contain_text("signed-in-with-oidc", timeout=30_000)
    expect(page.locator("[data-testid=artifact][data-name='logs.txt']")).to_be_visible(timeout=30_000)


def test_a_denied_sign_in_returns_to_the_sign_in_page_with_the_providers_reason(
    oidc: Oidc, page: Page
) -> None:
    _start_sign_in(page, oidc)
    page.get_by_role("link", name="[ Cancel ]").click()
    expect(page.get_by_role("alert")).to_have_text(
        "OIDC sign-in: access_denied (End-User aborted interaction)")
    expect(page).to_have_url(f"{oidc.stack.api}/console/signin")
    assert page.evaluate("sessionStorage.getItem('xrunner.token')") is None


def test_a_redirect_with_another_state_is_refused(oidc: Oidc, page: Page) -> None:
    _start_sign_in(page, oidc)
    expect(page.locator("input[name=login]")).to_be_visible()  # this tab's sign-in is pending at the provider
    page.goto(f"{oidc.stack.api}/console/signin?code=forged&state=forged")  # a callback someone else started
    expect(page.get_by_role("alert")).to_have_text("OIDC sign-in: the state does not match (start again)")
    expect(page).to_have_url(f"{oidc.stack.api}/console/signin")


def test_a_token_without_a_tenant_claim_is_refused_by_the_gateway(
    oidc: Oidc, page: Page, problems: Problems
) -> None:
    problems.expected.append("/v1/whoami")  # the browser logs the gateway's 401; nothing else may fail
    _sign_in_at_the_provider(page, oidc, "nobody")  # no "@tenant": the provider adds no tenant claim
    expect(page.get_by_role("alert")).to_contain_text("Sign-in failed")
    expect(page.get_by_role("alert")).to_contain_text("tenant")
    expect(page).to_have_url(f"{oidc.stack.api}/console/signin")
    assert page.evaluate("sessionStorage.getItem('xrunner.token')") is None
