"""Every plugin builds as an sdist and a wheel from a copy of its own folder alone.

That is how a third party publishes a connector (``python -m build`` in its own
repository), so nothing in a plugin's build may reach outside its folder — the QST
plugin once read ``../../proto``.  The wheel is built from the sdist (what ``build``
does by default), so the sdist is proved complete too.  Builds run without isolation,
with this venv's pinned build tools (the ``dev`` extra), as the Containerfile does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
NAMES = ("ctrader", "dxtrade", "qort", "qst")
# What a clean checkout of a plugin's repository holds: no build outputs, no
# generated code, no editable-install metadata.
LEFT_BEHIND = shutil.ignore_patterns(
    "*.egg-info", "build", "dist", "_proto", "__pycache__", ".mypy_cache", ".pytest_cache"
)


def _build(name: str, root: Path) -> tuple[str, subprocess.CompletedProcess[str]]:
    folder = root / name
    shutil.copytree(PLUGINS / name, folder, ignore=LEFT_BEHIND)
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(root / "dist"), "."],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return name, done


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugin-builds")
    # Concurrently: each build is mostly a Python process starting and zipping.
    with ThreadPoolExecutor(max_workers=len(NAMES)) as pool:
        results = list(pool.map(lambda n: _build(n, root), NAMES))
    failed = {n: d.stdout[-2000:] + d.stderr[-2000:] for n, d in results if d.returncode != 0}
    assert not failed, failed
    return root / "dist"


@pytest.mark.parametrize("name", NAMES)
def test_the_wheel_holds_the_package_and_its_entry_point(built: Path, name: str) -> None:
    (wheel,) = built.glob(f"brokergraph_{name}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
        declared = archive.read(entry_points).decode()
    assert f"brokergraph_{name}/plugin.py" in names
    assert f"brokergraph_{name}/py.typed" in names
    assert "[brokergraph.plugins]" in declared
    assert f"{name} = brokergraph_{name}.plugin" in declared
    # Tests stay in the repository; only the package is shipped.
    assert not any(n.startswith("tests/") for n in names)


@pytest.mark.parametrize("name", NAMES)
def test_the_sdist_holds_the_package(built: Path, name: str) -> None:
    (sdist,) = built.glob(f"brokergraph_{name}-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert "pyproject.toml" in names
    assert f"brokergraph_{name}/plugin.py" in names


def test_the_qst_wheel_holds_the_generated_protobuf_module(built: Path) -> None:
    (wheel,) = built.glob("brokergraph_qst-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "brokergraph_qst/_proto/order_routing_pb2.py" in names
    assert "brokergraph_qst/_proto/order_routing_pb2.pyi" in names


def test_the_qst_sdist_carries_the_proto_source(built: Path) -> None:
    (sdist,) = built.glob("brokergraph_qst-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert "proto/order_routing.proto" in names
    assert "setup.py" in names
