"""Give the contract's names their public home, as httpx does for its own.

A connector author reading a traceback or ``help()`` should see
``gateway.contract.Connector``, not the private module that happens to define it.
Classes written with ``from __future__ import annotations`` keep their annotations
as strings that ``typing.get_type_hints`` resolves in the *defining* module's
namespace; those are resolved once here, before ``__module__`` moves, so
serialisation and dataclass introspection keep working.  Strawberry types keep
their module: Strawberry resolves their annotations lazily, from that module.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["publish"]


def publish(public_module: str, namespace: Mapping[str, Any], names: Iterable[str]) -> None:
    """Set ``__module__`` of each class and function in ``names`` to ``public_module``."""
    for name in names:
        value = namespace[name]
        if not (isinstance(value, type) or inspect.isfunction(value)):
            continue  # constants and marker objects (``hookimpl``) have no home of their own
        if hasattr(value, "__strawberry_definition__") or hasattr(value, "_enum_definition"):
            continue
        if value.__module__ == public_module:
            continue
        if isinstance(value, type):
            _resolve_annotations(value, namespace)
        value.__module__ = public_module


def _resolve_annotations(cls: type, namespace: Mapping[str, Any]) -> None:
    own = inspect.get_annotations(cls)
    if not own:
        return
    defining = vars(sys.modules[cls.__module__])
    hints = typing.get_type_hints(cls, globalns={**namespace, **defining}, include_extras=True)
    cls.__annotations__ = {key: hints[key] for key in own}
