"""Capability gating: a case runs only if the connector declares what it exercises.

Kept free of heavy imports: the pytest plugin imports it in every pytest run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from gateway.connectors import Capability, Connector

__all__ = ["REQUIRES", "requires", "skip_reason"]

F = TypeVar("F", bound=Callable[..., Any])
REQUIRES = "__conformance_requires__"


def requires(*capabilities: Capability) -> Callable[[F], F]:
    """Mark a case as exercising ``capabilities``; it is skipped unless all are declared."""

    def mark(function: F) -> F:
        setattr(function, REQUIRES, tuple(capabilities))
        return function

    return mark


def skip_reason(connector_class: type[Connector], function: object) -> str | None:
    """Why the case ``function`` does not apply to ``connector_class``, or None if it does.

    "Does not declare" is the one legitimate skip: a declared capability is tested.
    """
    needed: tuple[Capability, ...] = getattr(function, REQUIRES, ())
    missing = [c.value for c in needed if c not in connector_class.capabilities]
    return f"connector does not declare {', '.join(missing)}" if missing else None
