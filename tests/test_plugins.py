"""Plugin loading through real entry points: failures are reported, never fatal."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.connectors import Capability, Connector, Funding
from gateway.hookspecs import hookimpl
from gateway.models import ConnectorHealth, HealthStatus
from gateway.plugins import (
    ENTRY_POINT_GROUP,
    PluginContractError,
    load_plugins,
    validate_connector_class,
)


def install_distribution(root: Path, name: str, modules: dict[str, str], entry: str) -> None:
    """A real installed distribution on sys.path: dist-info with an entry point."""
    # dist-info folders name the distribution with underscores ("a-b" would read as "a").
    dist_info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry}\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for module in [m for m in sys.modules if m.startswith("bgtest_")]:
        del sys.modules[module]


GOOD = """
from gateway.contract import hookimpl, Connector, ConnectorHealth, HealthStatus

BROKERGRAPH_CONTRACT = 1

class GoodConnector(Connector):
    name = "good"
    platform = "good"
    version = "1.2"
    async def health(self):
        return ConnectorHealth(status=HealthStatus.UP)

@hookimpl
def brokergraph_connectors():
    return [GoodConnector]
"""


def test_broken_plugins_are_reported_and_the_good_one_loads(site: Path) -> None:
    install_distribution(site, "bgtest-good", {"bgtest_good": GOOD}, "good = bgtest_good")
    install_distribution(
        site,
        "bgtest-broken",
        {"bgtest_broken": "import a_module_that_does_not_exist\n"},
        "broken = bgtest_broken",
    )
    install_distribution(
        site,
        "bgtest-typo",
        {
            "bgtest_typo": """
            from gateway.contract import hookimpl
            BROKERGRAPH_CONTRACT = 1
            @hookimpl
            def brokergraph_conectors():
                return []
        """
        },
        "typo = bgtest_typo",
    )
    plugins = load_plugins()
    reports = {r.name: r for r in plugins.reports}
    assert reports["good"].loaded and reports["good"].distribution == "bgtest-good"
    assert reports["good"].version == "1.0"
    assert not reports["broken"].loaded
    assert "ModuleNotFoundError" in (reports["broken"].error or "")
    assert not reports["typo"].loaded
    assert "brokergraph_conectors" in (reports["typo"].error or "")
    assert "good" in plugins.connector_classes  # installed plugins load beside it


def test_a_plugin_built_for_another_contract_is_refused_with_a_clear_message(
    site: Path,
) -> None:
    future = GOOD.replace("BROKERGRAPH_CONTRACT = 1", "BROKERGRAPH_CONTRACT = 2")
    install_distribution(site, "bgtest-future", {"bgtest_future": future}, "future = bgtest_future")
    undeclared = GOOD.replace("BROKERGRAPH_CONTRACT = 1", "")
    install_distribution(site, "bgtest-old", {"bgtest_old": undeclared}, "old = bgtest_old")
    plugins = load_plugins()
    reports = {r.name: r for r in plugins.reports}
    assert not reports["future"].loaded
    assert "built for brokergraph contract 2" in (reports["future"].error or "")
    assert "speaks contract 1" in (reports["future"].error or "")
    assert not reports["old"].loaded
    assert "BROKERGRAPH_CONTRACT = 1" in (reports["old"].error or "")
    assert "good" not in plugins.connector_classes  # neither registered its connector
    with pytest.raises(PluginContractError, match="contract 2"):
        load_plugins(strict=True)


def test_strict_mode_turns_a_failure_into_an_error(site: Path) -> None:
    install_distribution(
        site,
        "bgtest-broken2",
        {"bgtest_broken2": "raise RuntimeError('boom at import')\n"},
        "broken2 = bgtest_broken2",
    )
    with pytest.raises(PluginContractError, match="broken2"):
        load_plugins(strict=True)


def test_blocked_plugins_are_not_imported(site: Path) -> None:
    install_distribution(
        site,
        "bgtest-blocked",
        {"bgtest_blocked": "raise RuntimeError('must not be imported')\n"},
        "blocked = bgtest_blocked",
    )
    plugins = load_plugins(blocked=["blocked"])
    (report,) = [r for r in plugins.reports if r.name == "blocked"]
    assert report.error == "blocked"
    assert "bgtest_blocked" not in sys.modules


class _Health(Connector):
    name = "x"
    platform = "x"

    async def health(self) -> ConnectorHealth:
        return ConnectorHealth(status=HealthStatus.UP)


def test_a_declared_capability_needs_its_family() -> None:
    class Liar(_Health):
        capabilities = frozenset({Capability.FUNDING})

    with pytest.raises(PluginContractError, match="does not subclass Funding"):
        validate_connector_class(Liar)


def test_an_implemented_family_must_be_declared() -> None:
    class Shy(_Health, Funding):
        async def deposit(self, movement):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        async def withdraw(self, movement):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    with pytest.raises(PluginContractError, match="does not declare FUNDING"):
        validate_connector_class(Shy)


def test_abstract_methods_left_open_are_reported() -> None:
    class Half(_Health, Funding):
        capabilities = frozenset({Capability.FUNDING})

        async def deposit(self, movement):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    with pytest.raises(PluginContractError, match="withdraw"):
        validate_connector_class(Half)


def test_a_bad_connector_class_from_a_plugin_is_skipped_and_reported() -> None:
    class NoName(_Health):
        name = "not an identifier"

    class Plugin:
        @hookimpl
        def brokergraph_connectors(self) -> list[type[Connector]]:
            return [NoName, _Health]

    plugins = load_plugins(entry_points=False, extra=[Plugin()])
    assert set(plugins.connector_classes) == {"x"}
    assert any("identifier" in (r.error or "") for r in plugins.reports)
