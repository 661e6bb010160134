"""``brokergraph new-connector``: the generated distribution installs, registers its entry
point and passes the conformance kit as generated.

The distribution is installed with pip into a directory of its own (``--target``) that
only the subprocesses see on ``PYTHONPATH``: the shared venv is never changed, so no
other test run meets a stray plugin, and its ``dist-info`` still makes the entry point
real for ``brokergraph plugins`` in those subprocesses.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.new_connector import render_connector

NAME = "acme_fx"


def _env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROKERGRAPH_", "PYTEST_"))}
    env["PYTHONPATH"] = str(site)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the generated folder, the directory it is installed into)."""
    root = tmp_path_factory.mktemp("new-connector")
    source, site = root / "brokergraph-acme-fx", root / "site"
    assert main(["new-connector", NAME, "--output", str(source)]) == 0
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return source, site


def test_the_generated_connector_passes_its_tests_and_the_kit(
    installed: tuple[Path, Path],
) -> None:
    source, site = installed
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"],
        cwd=source, env=_env(site), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    summary = run.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None, summary
    # The kit's ACCOUNT_READS and fault cases, the class check, health, the connector's
    # own tests and the fidelity table: far more than a handful.
    assert int(passed.group(1)) >= 12, summary
    assert "failed" not in summary and "error" not in summary, summary
    # Skips are only capabilities it does not declare, never a missing sample value.
    assert "sample." not in run.stdout, run.stdout[-4000:]


def test_the_installed_distribution_registers_its_plugin(installed: tuple[Path, Path]) -> None:
    _, site = installed
    run = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "plugins"],
        env=_env(site), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    lines = run.stdout.splitlines()
    plugin = [line for line in lines if "brokergraph-acme-fx" in line]
    assert plugin and plugin[0].rstrip().endswith("loaded"), run.stdout
    connector = [line.split() for line in lines if "not configured" in line]
    assert [NAME, NAME, "0.1.0", "not", "configured", "ACCOUNT_READS"] in connector, run.stdout


@pytest.mark.parametrize("name", ["Acme", "1acme", "acme-fx", "class", "acme__fx", "a" * 33, ""])
def test_a_bad_name_is_refused_and_nothing_is_written(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="connector name"):
        render_connector(name, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_non_empty_target_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("mine", encoding="utf-8")
    assert main(["new-connector", NAME, "--output", str(tmp_path)]) == 2
    assert "is not an empty directory" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_every_placeholder_is_filled(tmp_path: Path) -> None:
    written = render_connector("zeta", tmp_path / "zeta")
    assert tmp_path / "zeta" / "brokergraph_zeta" / "connector.py" in written
    for path in written:
        assert "{{" not in path.read_text(encoding="utf-8"), path
        assert "{{" not in str(path) and not path.name.endswith(".tmpl"), path
    assert 'zeta = "brokergraph_zeta.plugin"' in (tmp_path / "zeta" / "pyproject.toml").read_text(
        encoding="utf-8"
    )
