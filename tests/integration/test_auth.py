"""JWT authentication at the gateway's HTTP edge, against real NATS and Postgres: every forged, stale, misdirected
or malformed token is a 401 `unauthenticated` (never a 5xx), a token in the query string is refused even beside a
valid header, a missing scope is a 403, and real RS256/ES256 tokens verify against a JWKS file or URL.

The JWKS URL is served by a stdlib HTTP server in a thread: the closest real stand-in for an identity provider."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from integration.gateway_app import gateway_infra
from integration.gateway_app import serve as serve_gateway
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from xrunner.servicekit.auth import AuthError, JwtVerifier, mint

SECRET, ISSUER, AUDIENCE, SCHEMA = "a-test-secret-of-at-least-32-bytes", "https://idp.test", "xrunner", "gateway"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
JWKS = {
    "keys": [
        {**json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key())), "kid": "rsa-1", "use": "sig", "alg": "RS256"},
        {**json.loads(ECAlgorithm.to_jwk(EC_KEY.public_key())), "kid": "ec-1", "use": "sig"},
    ]
}
Serve = Callable[[JwtVerifier], Any]  # an async context manager yielding an httpx client for the gateway


# --- tokens ---------------------------------------------------------------------------------------------------


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for tenant `acme` with read access; an override of None removes the claim."""
    now = int(time.time())
    base = dict(sub="alice", tenant="acme", scope="jobs:read", iss=ISSUER, aud=AUDIENCE, iat=now, nbf=now,
                exp=now + 600)
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


def rs256(kid: str = "rsa-1", key: rsa.RSAPrivateKey = RSA_KEY, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key, algorithm="RS256", headers={"kid": kid})


def es256(kid: str = "ec-1", **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), EC_KEY, algorithm="ES256", headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A token PyJWT refuses to produce (unsigned, or HMAC-signed with a public key), assembled by hand."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}".encode()
    return f"{signing_input.decode()}.{b64(sign(signing_input))}"


def unsigned(kid: str = "rsa-1") -> str:
    return handmade({"alg": "none", "typ": "JWT", "kid": kid}, lambda _: b"")


def hs256_with_public_key(kid: str = "rsa-1") -> str:
    """The key-confusion attack: HS256 with the RSA public key (PEM, known to everyone) as the HMAC secret."""
    return handmade({"alg": "HS256", "typ": "JWT", "kid": kid},
                    lambda data: hmac.new(RSA_PUBLIC_PEM, data, hashlib.sha256).digest())


def hs256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- the gateway under test -----------------------------------------------------------------------------------


@pytest.fixture
def jwks_file(tmp_path: Path) -> str:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(JWKS))
    return str(path)


@dataclass
class JwksServer:
    """An identity provider's JWKS endpoint: serves `keys` and counts the fetches."""

    url: str
    keys: dict[str, Any]
    fetches: int = 0


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    state = JwksServer(url="", keys=JWKS)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches += 1
            body = json.dumps(state.keys).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
async def serve(nats_url: str, database_url: str) -> AsyncIterator[Serve]:
    """Serve the real gateway app (on real NATS and Postgres) with a given verifier, as production serves it."""
    async with gateway_infra(nats_url, database_url, "gateway-auth-test", project=False) as infra:

        @asynccontextmanager
        async def served(verifier: JwtVerifier) -> AsyncIterator[httpx.AsyncClient]:
            async with serve_gateway(infra, verifier) as http:
                yield http

        yield served


def jwks_verifier(jwks_file: str = "", jwks_url: str = "", **options: Any) -> JwtVerifier:
    return JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks_file, jwks_url=jwks_url, **options)


def secret_verifier(**options: Any) -> JwtVerifier:
    return JwtVerifier(SECRET, issuer=ISSUER, audience=AUDIENCE, **options)


async def assert_unauthenticated(http: httpx.AsyncClient, token: str, params: dict[str, str] | None = None) -> str:
    """The request is a 401 problem+json `unauthenticated`; returns its detail."""
    response = await http.get("/v1/whoami", headers=bearer(token), params=params)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    problem = response.json()
    assert problem["code"] == "unauthenticated"
    detail: str = problem.get("detail", "")
    return detail


# --- rejected over HTTP ---------------------------------------------------------------------------------------

ALG = "alg value is not allowed"
REJECTED_BY_JWKS: dict[str, tuple[Callable[[], str], str]] = {  # what is sent, and why it is refused
    "an unsigned token (alg none)": (lambda: unsigned(), ALG),
    "an HS256 token signed with the RSA public key as the secret": (lambda: hs256_with_public_key(), ALG),
    "an HS256 token signed with the shared secret": (
        lambda: jwt.encode(claims(), SECRET, "HS256", headers={"kid": "rsa-1"}), ALG),
    "an RS256 token naming the EC key": (lambda: rs256(kid="ec-1"), ALG),
    "a token signed by a key not in the JWKS under a known kid": (lambda: rs256(key=OTHER_RSA_KEY), "Signature"),
    "a token for another audience": (lambda: rs256(aud="someone-else"), "Audience"),
    "a token without an audience": (lambda: rs256(aud=None), '"aud"'),
    "a token from another issuer": (lambda: rs256(iss="https://evil.test"), "issuer"),
    "a token without an issuer": (lambda: rs256(iss=None), '"iss"'),
    "a token without a subject": (lambda: rs256(sub=None), '"sub"'),
    "a token without an expiry": (lambda: rs256(exp=None), '"exp"'),
    "an expired token": (lambda: rs256(exp=int(time.time()) - 120), "expired"),
    "a token not valid before two minutes from now": (lambda: es256(nbf=int(time.time()) + 120), "nbf"),
    "a token without a tenant claim": (lambda: rs256(tenant=None), "no 'tenant' claim"),
    "a token whose tenant has a dot": (lambda: es256(tenant="acme.other"), "not a valid tenant"),
    "a token whose tenant is a NATS wildcard": (lambda: es256(tenant="*"), "not a valid tenant"),
    "a token with an unknown kid": (lambda: rs256(kid="rsa-2"), "no key 'rsa-2'"),
    "a token without a kid": (lambda: jwt.encode(claims(), RSA_KEY, algorithm="RS256"), "no 'kid'"),
    "garbage": (lambda: "not.a.jwt", ""),
    "an empty-looking token": (lambda: "e30.e30.", "no 'kid'"),
}


@pytest.mark.parametrize(("make", "reason"), REJECTED_BY_JWKS.values(), ids=REJECTED_BY_JWKS.keys())
async def test_a_jwks_gateway_answers_401_unauthenticated_to(serve: Serve, jwks_file: str, make: Callable[[], str],
                                                            reason: str) -> None:
    async with serve(jwks_verifier(jwks_file)) as http:
        assert reason in await assert_unauthenticated(http, make())


REJECTED_BY_SECRET: dict[str, tuple[Callable[[], str], str]] = {
    "an unsigned token (alg none)": (lambda: handmade({"alg": "none"}, lambda _: b""), ALG),
    "an RS256 token": (lambda: rs256(), ALG),
    "an HS256 token signed with another secret": (
        lambda: jwt.encode(claims(), "another-secret-of-32-bytes-or-more", "HS256"), "Signature"),
    "an HS512 token when only HS256 is pinned": (lambda: jwt.encode(claims(), SECRET * 2, "HS512"), ALG),
    "a token for another audience": (lambda: hs256(aud="someone-else"), "Audience"),
    "an expired token": (lambda: hs256(exp=int(time.time()) - 120), "expired"),
    "garbage": (lambda: "garbage", ""),
}


@pytest.mark.parametrize(("make", "reason"), REJECTED_BY_SECRET.values(), ids=REJECTED_BY_SECRET.keys())
async def test_a_shared_secret_gateway_answers_401_unauthenticated_to(serve: Serve, make: Callable[[], str],
                                                                      reason: str) -> None:
    async with serve(secret_verifier()) as http:
        assert reason in await assert_unauthenticated(http, make())


@pytest.mark.parametrize("name", ["access_token", "token", "jwt", "bearer", "Access_Token"])
async def test_a_token_in_the_query_string_is_refused_even_beside_a_valid_header(serve: Serve, jwks_file: str,
                                                                                 name: str) -> None:
    async with serve(jwks_verifier(jwks_file)) as http:
        detail = await assert_unauthenticated(http, rs256(), params={name: rs256()})
    assert "Authorization header" in detail


async def test_a_request_without_an_authorization_header_is_401(serve: Serve, jwks_file: str) -> None:
    async with serve(jwks_verifier(jwks_file)) as http:
        response = await http.get("/v1/whoami")
    assert (response.status_code, response.json()["code"]) == (401, "unauthenticated")


async def test_a_valid_token_without_the_needed_scope_is_403_not_401(serve: Serve, jwks_file: str) -> None:
    async with serve(jwks_verifier(jwks_file)) as http:
        response = await http.post("/v1/jobs", json={"workload": {"kind": "process", "argv": ["true"]}},
                                   headers=bearer(rs256(scope="jobs:read")))
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "forbidden"


# --- accepted -------------------------------------------------------------------------------------------------


async def test_rs256_and_es256_tokens_verify_against_a_jwks_file_with_their_tenant_and_scopes(
    serve: Serve, jwks_file: str
) -> None:
    async with serve(jwks_verifier(jwks_file)) as http:
        rsa_who = await http.get("/v1/whoami", headers=bearer(rs256(tenant="acme", scope="jobs:read jobs:write")))
        ec_who = await http.get("/v1/whoami", headers=bearer(es256(tenant="globex", sub="bob", scope="admin")))
    assert rsa_who.status_code == 200, rsa_who.text
    assert rsa_who.json() == {"subject": "alice", "tenant": "acme", "scopes": ["jobs:read", "jobs:write"]}
    assert ec_who.status_code == 200, ec_who.text
    assert ec_who.json() == {"subject": "bob", "tenant": "globex", "scopes": ["admin"]}


async def test_tokens_verify_against_a_jwks_url_which_is_fetched_once_and_cached(
    serve: Serve, jwks_server: JwksServer
) -> None:
    async with serve(jwks_verifier(jwks_url=jwks_server.url)) as http:
        first = await http.get("/v1/whoami", headers=bearer(es256(tenant="initech")))
        second = await http.get("/v1/whoami", headers=bearer(rs256(tenant="initech")))
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    assert first.json()["tenant"] == second.json()["tenant"] == "initech"
    assert jwks_server.fetches == 1


async def test_a_jwks_url_gateway_rejects_unknown_kids_and_key_confusion(serve: Serve, jwks_server: JwksServer) -> None:
    async with serve(jwks_verifier(jwks_url=jwks_server.url)) as http:
        await assert_unauthenticated(http, rs256(kid="rsa-2"))
        await assert_unauthenticated(http, hs256_with_public_key())
        await assert_unauthenticated(http, unsigned())


def test_unknown_kids_cannot_make_the_verifier_refetch_the_jwks_url_within_the_cooldown(
    jwks_server: JwksServer,
) -> None:
    verifier = JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_server.url)
    assert verifier.verify(rs256()).tenant == "acme"
    new_key = json.loads(RSAAlgorithm.to_jwk(OTHER_RSA_KEY.public_key()))
    jwks_server.keys = {"keys": [*JWKS["keys"], {**new_key, "kid": "rsa-2"}]}
    with pytest.raises(AuthError):  # within the cooldown an unknown kid cannot force a refetch
        verifier.verify(rs256(kid="rsa-2", key=OTHER_RSA_KEY))
    assert jwks_server.fetches == 1


async def test_the_embedded_shared_secret_path_still_accepts_minted_tokens(serve: Serve) -> None:
    token = mint(SECRET, tenant="dev", subject="dev-user", scopes=["jobs:read"], issuer=ISSUER, audience=AUDIENCE,
                 ttl_s=60, now=int(time.time()))
    async with serve(secret_verifier()) as http:
        response = await http.get("/v1/whoami", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["tenant"] == "dev"


# --- the verifier alone: leeway and configuration -------------------------------------------------------------


def test_a_token_expired_within_the_leeway_is_still_accepted_and_beyond_it_is_not(jwks_file: str) -> None:
    verifier = jwks_verifier(jwks_file, leeway_s=30.0)
    assert verifier.verify(rs256(exp=int(time.time()) - 10)).tenant == "acme"
    with pytest.raises(AuthError, match="expired"):
        verifier.verify(rs256(exp=int(time.time()) - 40))


def test_a_configurable_claim_names_the_tenant(jwks_file: str) -> None:
    verifier = jwks_verifier(jwks_file, tenant_claim="org")
    assert verifier.verify(es256(org="umbrella", tenant=None)).tenant == "umbrella"
    with pytest.raises(AuthError, match="'org'"):
        verifier.verify(es256())


def test_a_jwks_verifier_defaults_to_rs256_and_es256_and_a_secret_to_hs256(jwks_file: str) -> None:
    assert jwks_verifier(jwks_file).algorithms == ["RS256", "ES256"]
    assert secret_verifier().algorithms == ["HS256"]


def test_pinning_only_rs256_rejects_es256_tokens_from_the_same_jwks(jwks_file: str) -> None:
    verifier = jwks_verifier(jwks_file, algorithms=["RS256"])
    assert verifier.verify(rs256()).subject == "alice"
    with pytest.raises(AuthError, match="not allowed"):
        verifier.verify(es256())


BAD_CONFIGURATIONS = {
    "no key at all": dict(),
    "a secret and a JWKS file": dict(secret=SECRET, jwks_file="jwks.json"),
    "a JWKS file and a URL": dict(jwks_file="jwks.json", jwks_url="http://127.0.0.1/jwks"),
    "a secret with an asymmetric algorithm": dict(secret=SECRET, algorithms=["RS256"]),
    "a JWKS with HS256": dict(jwks_url="http://127.0.0.1/jwks", algorithms=["HS256"]),
    "alg none": dict(secret=SECRET, algorithms=["none"]),
}


@pytest.mark.parametrize("options", BAD_CONFIGURATIONS.values(), ids=BAD_CONFIGURATIONS.keys())
def test_a_verifier_refuses_to_start_with(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        JwtVerifier(issuer=ISSUER, audience=AUDIENCE, **options)
