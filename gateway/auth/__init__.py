"""Authentication and the viewer's data scope.

Every request is turned into a :class:`Viewer` by an :class:`Authenticator` (today
:class:`JwtAuthenticator`, HS256); resolvers then ask the viewer, with pure and
cheap methods, what it may see (:meth:`Viewer.can_see_partner`), what it may do
(:meth:`Viewer.require_role`) and which cache partition it reads
(:attr:`Viewer.scope_key`).  Failures raise ``Unauthenticated`` or
``PermissionDenied`` from :mod:`gateway.errors`, with messages that never hold a
token or a secret.
"""

from __future__ import annotations

from gateway.auth._jwt import JwtAuthenticator, JwtSettings
from gateway.auth._protocol import Authenticator
from gateway.auth._viewer import Role, Viewer

__all__ = ["Authenticator", "JwtAuthenticator", "JwtSettings", "Role", "Viewer"]
