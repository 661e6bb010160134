"""``auth.jwks_url``: keys fetched from an identity provider, rotated without a restart.

A real JWKS server on a local socket (plain HTTP to loopback, and HTTPS with the
sandbox CA) serves whatever key set the test puts in it and counts its requests;
the clock of :class:`RemoteJwks` is the test's, so intervals are stepped, never
waited out, and the assertions are fetch counts.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from gateway.auth import (
    AuthenticatorChain,
    PublicKeyJwtAuthenticator,
    PublicKeySettings,
    RemoteJwks,
)
from gateway.config import AuthSettings, ConfigError, load_settings
from gateway.errors import Unauthenticated
from gateway.sandbox_tls import sandbox_certificate
from gateway.services import jwt_verifiers
from gateway.testing import TEST_JWT_SECRET, open_test_gateway

KEY_A = ec.generate_private_key(ec.SECP256R1())
KEY_B = ec.generate_private_key(ec.SECP256R1())
KEY_C = ec.generate_private_key(ec.SECP256R1())


def _jwk(private_key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "ES256", "use": "sig"}


def _token(private_key: ec.EllipticCurvePrivateKey, kid: str, subject: str = "user-1") -> str:
    now = int(datetime.now(UTC).timestamp())
    claims = {"iss": "brokergraph", "aud": "brokergraph", "sub": subject, "role": "admin",
              "iat": now, "exp": now + 600}  # fmt: skip
    return jwt.encode(claims, private_key, algorithm="ES256", headers={"kid": kid})


class JwksServer:
    """An identity provider's JWKS endpoint: ``keys`` is served, ``status`` answered."""

    def __init__(self, *, tls: bool = False) -> None:
        self.keys: list[dict[str, Any]] = []
        self.status = 200
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                del format, args  # quiet: pytest shows stderr of failures only anyway

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            context = sandbox_certificate().server_context()
            self._http.socket = context.wrap_socket(self._http.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self._http.server_address[1]}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[JwksServer]:
    with JwksServer() as running:
        running.keys = [_jwk(KEY_A, "a")]
        yield running


def _chain(keys: RemoteJwks) -> AuthenticatorChain:
    settings = PublicKeySettings(keys=keys, algorithms=("ES256",))
    return AuthenticatorChain([PublicKeyJwtAuthenticator(settings)])


async def _viewer(chain: AuthenticatorChain, token: str) -> str:
    return (await chain.viewer_from_authorization_header(f"Bearer {token}")).subject


async def test_a_key_rotated_in_is_accepted_without_a_restart(server: JwksServer) -> None:
    # Through the gateway's own wiring: [auth] settings -> verifiers -> chain.
    auth = AuthSettings(algorithms=("ES256",), jwks_url=server.url, jwks_refetch_seconds=0.001)
    chain = AuthenticatorChain(await asyncio.to_thread(jwt_verifiers, auth))
    assert await _viewer(chain, _token(KEY_A, "a")) == "user-1"
    assert server.requests == 1
    server.keys = [_jwk(KEY_B, "b")]  # the provider rotates: a is withdrawn, b is new
    await asyncio.sleep(0.01)  # past the (tiny) refetch interval; nothing is timed
    assert await _viewer(chain, _token(KEY_B, "b", subject="user-2")) == "user-2"
    assert server.requests == 2
    # The withdrawn key signs nothing any more (a token the chain never saw).
    with pytest.raises(Unauthenticated):
        await _viewer(chain, _token(KEY_A, "a", subject="user-3"))


async def test_a_flood_of_unknown_kids_fetches_once_per_interval(server: JwksServer) -> None:
    clock = Clock()
    keys = await asyncio.to_thread(RemoteJwks, server.url, refetch_seconds=30, clock=clock)
    chain = _chain(keys)
    forged = [_token(KEY_C, f"invented-{i}") for i in range(40)]

    async def refused(token: str) -> bool:
        try:
            await _viewer(chain, token)
        except Unauthenticated:
            return True
        return False

    # Inside the interval since the start-up fetch: no fetch at all.
    assert all(await asyncio.gather(*(refused(t) for t in forged)))
    assert server.requests == 1
    # Past it: one fetch for the whole flood, however the requests interleave.
    clock.now += 31
    assert all(await asyncio.gather(*(refused(t) for t in forged)))
    assert server.requests == 2
    assert all(await asyncio.gather(*(refused(t) for t in forged)))
    assert server.requests == 2
    # The known key kept working throughout.
    assert await _viewer(chain, _token(KEY_A, "a")) == "user-1"


async def test_an_old_copy_is_refreshed_in_the_background(server: JwksServer) -> None:
    clock = Clock()
    keys = await asyncio.to_thread(
        RemoteJwks, server.url, cache_seconds=300, refetch_seconds=30, clock=clock
    )
    chain = _chain(keys)
    server.keys = [_jwk(KEY_A, "a"), _jwk(KEY_B, "b")]
    clock.now += 301
    # Served from the old copy at once; the refresh happens beside it.
    assert await _viewer(chain, _token(KEY_A, "a")) == "user-1"
    for _ in range(500):  # bounded: a fetch from a local server
        if server.requests == 2 and keys.select("b") is not None:
            break
        await asyncio.sleep(0.01)
    assert server.requests == 2
    assert keys.select("b") is not None


async def test_a_failed_refresh_keeps_the_keys_held(server: JwksServer) -> None:
    clock = Clock()
    keys = await asyncio.to_thread(RemoteJwks, server.url, refetch_seconds=30, clock=clock)
    chain = _chain(keys)
    server.status = 500
    clock.now += 31
    with pytest.raises(Unauthenticated):
        await _viewer(chain, _token(KEY_B, "b"))
    assert server.requests == 2
    assert await _viewer(chain, _token(KEY_A, "a", subject="still")) == "still"


async def test_https_with_a_trusted_ca_and_refused_without(tmp_path: Path) -> None:
    with JwksServer(tls=True) as server:
        server.keys = [_jwk(KEY_A, "a")]
        trusted = sandbox_certificate().client_context()
        keys = await asyncio.to_thread(RemoteJwks, server.url, verify=trusted)
        assert await _viewer(_chain(keys), _token(KEY_A, "a")) == "user-1"
        # The gateway's wiring trusts the system's CAs, which never signed the sandbox CA.
        auth = AuthSettings(algorithms=("ES256",), jwks_url=server.url)
        with pytest.raises(ConfigError, match="cannot be fetched"):
            await asyncio.to_thread(jwt_verifiers, auth)


async def test_a_running_gateway_accepts_a_rotated_key(server: JwksServer, tmp_path: Path) -> None:
    auth = {
        "jwt_secret": TEST_JWT_SECRET,  # the test gateway's own tokens stay valid
        "algorithms": ["HS256", "ES256"],
        "jwks_url": server.url,
        "jwks_refetch_seconds": 0.001,
    }
    async with open_test_gateway([], [], tmp_path, auth=auth) as gateway:
        # A report download authenticates first: 401 refused, 404 once past authentication.
        async def status(token: str) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            answer = await gateway.http.get(f"{gateway.url}/reports/nope", headers=headers)
            return answer.status_code

        assert await status(_token(KEY_A, "a")) == 404
        assert await status(_token(KEY_B, "b")) == 401
        server.keys = [_jwk(KEY_A, "a"), _jwk(KEY_B, "b")]
        await asyncio.sleep(0.01)  # past the (tiny) refetch interval; nothing is timed
        assert await status(_token(KEY_B, "b")) == 404


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"jwks_url": "http://idp.example.com/jwks"}, "must be an https:// URL"),
        ({"jwks_url": "ftp://127.0.0.1/jwks"}, "must be an https:// URL"),
        ({"jwks_url": "https:///jwks"}, "must be an https:// URL"),
        ({"jwks_url": "https://idp/jwks", "jwks_file": "k"}, "not both jwks_file and jwks_url"),
        ({"jwks_url": "https://idp/jwks", "jwks_refetch_seconds": 0}, "must be positive"),
        ({"jwks_url": ""}, "jwks_url must not be empty"),
    ],
)
def test_bad_jwks_settings_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={}, overrides={"auth": {"algorithms": ["ES256"], **values}})


def test_plain_http_is_allowed_to_loopback_only() -> None:
    for url in ("http://127.0.0.1:8080/jwks", "http://localhost/jwks", "http://[::1]/jwks"):
        settings = load_settings(
            environ={}, overrides={"auth": {"algorithms": ["ES256"], "jwks_url": url}}
        )
        assert settings.auth.jwks_url == url


async def test_a_provider_down_at_start_is_a_configuration_error(server: JwksServer) -> None:
    server.status = 503
    auth = AuthSettings(algorithms=("ES256",), jwks_url=server.url)
    with pytest.raises(ConfigError, match=r"answered HTTP 503"):
        await asyncio.to_thread(jwt_verifiers, auth)
