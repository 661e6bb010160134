"""Mapping between verified token claims and a :class:`Viewer`.

Kept apart from the JWT mechanics so the HS* and the RS*/ES* authenticators read
the same claims the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.auth._viewer import Role, Viewer

__all__ = ["InvalidClaims", "claims_for_viewer", "viewer_from_claims"]


class InvalidClaims(ValueError):
    """The token's claims do not describe a valid viewer (never shown to a client)."""


def viewer_from_claims(claims: Mapping[str, Any]) -> Viewer:
    """The viewer the (already verified) ``claims`` describe.

    Only the claims of the viewer's own role are read: a partner on a manager's
    token, say, is ignored rather than trusted.
    """
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidClaims("sub")
    raw_role = claims.get("role")
    try:
        role = Role(raw_role)
    except ValueError:
        raise InvalidClaims("role") from None
    token_id = claims.get("jti")
    if token_id is not None and not isinstance(token_id, str):
        raise InvalidClaims("jti")

    partner_code: str | None = None
    brokers: frozenset[str] = frozenset()
    if role is Role.CLIENT:
        partner = claims.get("partner")
        if not isinstance(partner, str) or not partner:
            raise InvalidClaims("partner")
        partner_code = partner
    elif role is Role.MANAGER:
        raw_brokers = claims.get("brokers")
        # A bare string would otherwise be read as a set of one-letter brokers.
        if not isinstance(raw_brokers, list) or not raw_brokers:
            raise InvalidClaims("brokers")
        if not all(isinstance(broker, str) for broker in raw_brokers):
            raise InvalidClaims("brokers")
        brokers = frozenset(raw_brokers)

    try:
        return Viewer(
            subject=subject,
            role=role,
            partner_code=partner_code,
            brokers=brokers,
            token_id=token_id,
        )
    except ValueError as exc:
        raise InvalidClaims(str(exc)) from None


def claims_for_viewer(viewer: Viewer) -> dict[str, Any]:
    """The role and scope claims that :func:`viewer_from_claims` reads back."""
    claims: dict[str, Any] = {"sub": viewer.subject, "role": viewer.role.value}
    if viewer.partner_code is not None:
        claims["partner"] = viewer.partner_code
    if viewer.brokers:
        claims["brokers"] = sorted(viewer.brokers)
    if viewer.token_id is not None:
        claims["jti"] = viewer.token_id
    return claims
