"""The command line as a newcomer meets it: help, plugins, and the demo serving /graphql."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from gateway.cli import main

ROOT = Path(__file__).resolve().parent.parent
BROKERGRAPH = [sys.executable, "-m", "gateway.cli"]


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("serve", "demo", "schema", "plugins"):
        assert command in out
    assert "BROKERGRAPH_<SECTION>__<KEY>" in out


def test_plugins_command_reports_the_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    assert "gateway.builtins" in capsys.readouterr().out


def test_serve_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERGRAPH_")}
    result = subprocess.run(
        [*BROKERGRAPH, "serve", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "auth.jwt_secret is not set" in result.stderr


def test_demo_serves_graphql_and_prints_tokens(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*BROKERGRAPH, "demo", "--port", "0", "--data-dir", str(tmp_path / "demo")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        output = ""
        deadline = time.monotonic() + 60
        while "Press Ctrl+C" not in output and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output += line
        url = re.search(r"GraphiQL:\s+(\S+)", output)
        tokens = dict(re.findall(r"^\s+(admin|manager|client)\s+(\S+)$", output, re.M))
        assert url and set(tokens) == {"admin", "manager", "client"}, output
        # The sandboxes speak TLS as the vendors do, and the demo says which CA to trust.
        sandboxes = re.findall(r"^\s+sandbox \w+: (\w+)://", output, re.M)
        assert sandboxes and set(sandboxes) <= {"https", "wss"}, output
        ca_file = re.search(r"Sandbox CA \(curl --cacert\): (\S+)", output)
        assert ca_file and Path(ca_file.group(1)).is_file(), output
        response = httpx.post(
            url.group(1),
            json={"query": "{ viewer { role } }"},
            headers={"Authorization": f"Bearer {tokens['manager']}"},
            timeout=10,
        )
        assert response.json() == {"data": {"viewer": {"role": "manager"}}}
        page = httpx.get(url.group(1), headers={"Accept": "text/html"}, timeout=10)
        assert "graphiql" in page.text.lower()
        # The client area, signed in through the fragment (never sent to the server).
        area = re.search(r"Client area as client: (\S+)#token=\S+", output)
        assert area, output
        served = httpx.get(area.group(1), timeout=10)  # the app, or how to build it
        assert served.status_code in (200, 404) and "client area" in served.text.lower()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    assert process.returncode == 0


def test_the_wheel_ships_graphiql_assets_for_the_container(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("brokergraph-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "gateway/http/static/graphiql/graphiql@3.8.3/graphiql.min.js" in names
    assert "gateway/py.typed" in names
