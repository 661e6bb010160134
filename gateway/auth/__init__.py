"""Authentication and the viewer's data scope.

Every request is turned into a :class:`Viewer` by an :class:`Authenticator`: a
running gateway uses an :class:`AuthenticatorChain` that sends ``Bearer`` JWTs
to :class:`JwtAuthenticator` (HS*, a shared secret) or
:class:`PublicKeyJwtAuthenticator` (RS*/ES*, a PEM key, a JWKS file or URL) by the token's
algorithm, and ``ApiKey`` credentials to :class:`ApiKeyAuthenticator` (keys
stored hashed).  Resolvers then ask the viewer, with pure and cheap methods,
what it may see (:meth:`Viewer.can_see_partner`), what it may do
(:meth:`Viewer.require_role`) and which cache partition it reads
(:attr:`Viewer.scope_key`).  Failures raise ``Unauthenticated`` or
``PermissionDenied`` from :mod:`gateway.errors`, with messages that never hold a
token, a key or a secret.
"""

from __future__ import annotations

from gateway.auth._api_keys import (
    DEFAULT_CACHE_TTL_SECONDS,
    ApiKeyAuthenticator,
    ApiKeyStore,
    NewApiKey,
    create_api_key,
)
from gateway.auth._chain import AuthenticatorChain, TokenVerifier
from gateway.auth._jwt import HMAC_ALGORITHMS, JwtAuthenticator, JwtSettings
from gateway.auth._lifetime import api_key_id, bearer_expiry
from gateway.auth._protocol import Authenticator
from gateway.auth._public_keys import (
    PUBLIC_KEY_ALGORITHMS,
    PublicKey,
    PublicKeyJwtAuthenticator,
    PublicKeys,
    PublicKeySettings,
    RemoteJwks,
    UnknownKeyId,
    check_jwks_url,
)
from gateway.auth._viewer import Role, Viewer

__all__ = [
    "DEFAULT_CACHE_TTL_SECONDS",
    "HMAC_ALGORITHMS",
    "PUBLIC_KEY_ALGORITHMS",
    "ApiKeyAuthenticator",
    "ApiKeyStore",
    "Authenticator",
    "AuthenticatorChain",
    "JwtAuthenticator",
    "JwtSettings",
    "NewApiKey",
    "PublicKey",
    "PublicKeyJwtAuthenticator",
    "PublicKeySettings",
    "PublicKeys",
    "RemoteJwks",
    "Role",
    "TokenVerifier",
    "UnknownKeyId",
    "Viewer",
    "api_key_id",
    "bearer_expiry",
    "check_jwks_url",
    "create_api_key",
]
