"""Who is asking: the role and the data scope every resolver checks."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.errors import PermissionDenied

__all__ = ["Role", "Viewer"]

# The manager scope key joins broker codes with this; a code containing it would let
# two different scopes share one cache key, so such codes are refused outright.
_BROKER_SEPARATOR = ","


class Role(enum.Enum):
    """What kind of user the viewer is; decides which data scope applies."""

    CLIENT = "client"
    MANAGER = "manager"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Viewer:
    """The authenticated user of one request.

    The constructor enforces the role's scope (a client has exactly one partner, a
    manager at least one broker, an admin neither), so a resolver can trust any
    ``Viewer`` it is handed whatever authenticator built it.
    """

    subject: str
    role: Role
    partner_code: str | None = None
    brokers: frozenset[str] = frozenset()
    token_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.role, Role):
            raise ValueError("role must be a Role")
        if not isinstance(self.subject, str) or not self.subject:
            raise ValueError("subject must be a non-empty string")
        if not isinstance(self.brokers, frozenset):
            # Frozen, so the only way to normalise a set or list a caller passed.
            object.__setattr__(self, "brokers", frozenset(self.brokers))
        for broker in self.brokers:
            if not isinstance(broker, str) or not broker or _BROKER_SEPARATOR in broker:
                raise ValueError("broker codes must be non-empty strings without ','")
        if self.token_id is not None and not isinstance(self.token_id, str):
            raise ValueError("token_id must be a string")
        if self.role is Role.CLIENT:
            if not isinstance(self.partner_code, str) or not self.partner_code:
                raise ValueError("a client viewer needs its partner_code")
            if self.brokers:
                raise ValueError("a client viewer has no brokers")
        elif self.role is Role.MANAGER:
            if not self.brokers:
                raise ValueError("a manager viewer needs at least one broker")
            if self.partner_code is not None:
                raise ValueError("a manager viewer has no partner_code")
        elif self.partner_code is not None or self.brokers:
            # An admin carrying a scope would invite code that checks the scope
            # fields directly to under-serve (or, worse, over-trust) them.
            raise ValueError("an admin viewer has no partner_code or brokers")

    def can_see_partner(self, partner_code: str, partner_broker: str | None) -> bool:
        """Whether this viewer may see the business partner ``partner_code``."""
        if self.role is Role.ADMIN:
            return True
        if self.role is Role.CLIENT:
            return partner_code == self.partner_code
        # A partner not attached to any broker belongs to no manager's scope.
        return partner_broker is not None and partner_broker in self.brokers

    def require_role(self, *roles: Role) -> None:
        """Raise :class:`PermissionDenied` unless the viewer has one of ``roles``."""
        if self.role not in roles:
            allowed = " or ".join(role.value for role in roles) or "no role"
            raise PermissionDenied(f"this operation requires role {allowed}")

    @property
    def scope_key(self) -> str:
        """A short, stable string naming the data this viewer may see (for cache keys).

        Viewers with equal scope share it, whoever they are, so cached results are
        shared exactly as far as the data they hold may be.
        """
        if self.role is Role.ADMIN:
            return "admin"
        if self.role is Role.CLIENT:
            return f"client:{self.partner_code}"
        return "manager:" + _BROKER_SEPARATOR.join(sorted(self.brokers))
