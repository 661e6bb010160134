"""Loading plugins: entry points, built-ins, validation and a report of what happened.

A plugin that fails to import, asks for arguments a hook does not have, or
implements a hook that does not exist is reported and skipped; the others load.
``strict=True`` (tests, CI, ``[plugins] strict = true``) turns any of those into
an error instead, as pytest's ``--strict`` does.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy

from gateway import hookspecs
from gateway.connectors import Capability, Connector, family_of
from gateway.contract._version import CONTRACT_ATTRIBUTE, CONTRACT_VERSION, ENTRY_POINT_GROUP

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginContractError",
    "PluginReport",
    "Plugins",
    "check_contract_version",
    "load_plugins",
    "validate_connector_class",
]

BUILTIN_PLUGINS = ("gateway.builtins",)

logger = logging.getLogger("gateway.plugins")


class PluginContractError(Exception):
    """A plugin breaks the contract (unknown hook, bad connector class, import failure)."""


@dataclass(frozen=True, slots=True)
class PluginReport:
    """One line of ``brokergraph plugins``: what was found and whether it loaded."""

    name: str
    distribution: str | None
    version: str | None
    loaded: bool
    error: str | None = None


def validate_connector_class(cls: type[Any]) -> None:
    """Raise PluginContractError unless ``cls`` is a usable, honestly declared connector."""
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise PluginContractError(f"{cls!r} is not a subclass of gateway.contract.Connector")
    for attribute in ("name", "platform"):
        value = getattr(cls, attribute, None)
        if not isinstance(value, str) or not value.isidentifier():
            raise PluginContractError(f"{cls.__name__}.{attribute} must be an identifier string")
    declared = cls.capabilities
    if not isinstance(declared, frozenset) or not all(isinstance(c, Capability) for c in declared):
        raise PluginContractError(f"{cls.__name__}.capabilities must be a frozenset of Capability")
    for capability in Capability:
        family = family_of(capability)
        if capability in declared and not issubclass(cls, family):
            raise PluginContractError(
                f"{cls.__name__} declares {capability.value} "
                f"but does not subclass {family.__name__}"
            )
        if capability not in declared and issubclass(cls, family):
            raise PluginContractError(
                f"{cls.__name__} subclasses {family.__name__} "
                f"but does not declare {capability.value}"
            )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise PluginContractError(
            f"{cls.__name__} leaves abstract methods unimplemented: {missing}"
        )


def check_contract_version(plugin: object, name: str, *, required: bool) -> None:
    """Refuse a plugin built for another contract version (or, if ``required``, for none)."""
    declared = getattr(plugin, CONTRACT_ATTRIBUTE, None)
    if declared is None:
        if required:
            raise PluginContractError(
                f"plugin {name} declares no contract version; add "
                f"{CONTRACT_ATTRIBUTE} = {CONTRACT_VERSION} to its plugin module"
            )
        return
    if declared != CONTRACT_VERSION:
        raise PluginContractError(
            f"plugin {name} was built for brokergraph contract {declared!r}, but this "
            f"gateway speaks contract {CONTRACT_VERSION}; install a release of the plugin "
            "built for it"
        )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


class Plugins:
    """The loaded plugins and the declarations they made, collected once."""

    def __init__(self, manager: pluggy.PluginManager, reports: Sequence[PluginReport]) -> None:
        self.manager = manager
        self.reports = list(reports)
        self.hook: Any = manager.hook
        self.connector_classes = self._collect_connectors()

    def _collect_connectors(self) -> dict[str, type[Connector]]:
        classes: dict[str, type[Connector]] = {}
        for batch in self.hook.brokergraph_connectors():
            for cls in batch:
                try:
                    validate_connector_class(cls)
                except PluginContractError as error:
                    self._fail(getattr(cls, "__module__", "?"), error)
                    continue
                if cls.name in classes and classes[cls.name] is not cls:
                    self._fail(
                        cls.__module__, PluginContractError(f"duplicate connector {cls.name}")
                    )
                    continue
                classes[cls.name] = cls
        return classes

    def _fail(self, name: str, error: BaseException) -> None:
        logger.warning("plugin %s skipped: %s", name, _first_line(error))
        self.reports.append(PluginReport(name, None, None, loaded=False, error=_first_line(error)))

    def collect(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Flatten the sequences every implementation of ``hook_name`` returned."""
        results: list[Any] = []
        for batch in getattr(self.hook, hook_name)(**kwargs):
            results.extend(batch)
        return results

    def collect_mapping(self, hook_name: str) -> dict[str, Any]:
        """Merge the mappings every implementation returned; a duplicate key is an error."""
        merged: dict[str, Any] = {}
        for mapping in getattr(self.hook, hook_name)():
            for key, value in mapping.items():
                if key in merged and merged[key] is not value:
                    raise PluginContractError(f"{hook_name}: two plugins provide {key!r}")
                merged[key] = value
        return merged


def load_plugins(
    *,
    entry_points: bool = True,
    extra: Iterable[ModuleType | object] = (),
    blocked: Iterable[str] = (),
    strict: bool = False,
) -> Plugins:
    """Register the built-ins, the installed entry points and ``extra`` plugin objects."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    blocked_names = set(blocked)
    for name in blocked_names:
        manager.set_blocked(name)
    reports: list[PluginReport] = []

    def register(
        plugin: object, name: str, dist: str | None, version: str | None, *, installed: bool
    ) -> None:
        try:
            # Installed plugins must say which contract they were built for; in-process
            # ones (tests, embedding code) are checked when they say.
            check_contract_version(plugin, name, required=installed)
        except PluginContractError as error:
            if strict:
                raise
            logger.warning("plugin %s skipped: %s", name, _first_line(error))
            reports.append(PluginReport(name, dist, version, loaded=False, error=str(error)))
            return
        try:
            manager.register(plugin, name=name)
            manager.check_pending()
        except pluggy.PluginValidationError as error:
            if manager.is_registered(plugin):
                manager.unregister(plugin)
            if strict:
                raise PluginContractError(f"plugin {name}: {error}") from error
            logger.warning("plugin %s skipped: %s", name, _first_line(error))
            reports.append(
                PluginReport(name, dist, version, loaded=False, error=_first_line(error))
            )
            return
        reports.append(PluginReport(name, dist, version, loaded=True))

    for module_name in BUILTIN_PLUGINS:
        register(
            importlib.import_module(module_name),
            module_name,
            "brokergraph",
            _version(),
            installed=True,
        )
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in blocked_names:
                reports.append(
                    PluginReport(ep.name, _dist(ep), None, loaded=False, error="blocked")
                )
                continue
            try:
                plugin = ep.load()
            except Exception as error:  # any import-time failure of a third-party plugin
                if strict:
                    raise PluginContractError(f"plugin {ep.name} failed to import") from error
                logger.warning("plugin %s failed to import: %s", ep.name, _first_line(error))
                reports.append(
                    PluginReport(ep.name, _dist(ep), _dist_version(ep), False, _first_line(error))
                )
                continue
            register(plugin, ep.name, _dist(ep), _dist_version(ep), installed=True)
    for index, plugin in enumerate(extra):
        name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{index}"
        register(plugin, name, None, None, installed=False)
    plugins = Plugins(manager, reports)
    if strict and not all(report.loaded for report in plugins.reports):
        failures = "; ".join(f"{r.name}: {r.error}" for r in plugins.reports if not r.loaded)
        raise PluginContractError(failures)
    return plugins


def _dist(ep: importlib.metadata.EntryPoint) -> str | None:
    return ep.dist.name if ep.dist is not None else None


def _dist_version(ep: importlib.metadata.EntryPoint) -> str | None:
    return ep.dist.version if ep.dist is not None else None


def _version() -> str:
    from gateway import __version__

    return __version__
