"""``--config FILE`` is accepted after the subcommand too (``brokergraph serve --config FILE``).

It used to be refused there, though that is where people (and most CLIs) put it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main

BROKERGRAPH = [sys.executable, "-m", "gateway.cli"]
SECRET = "s" * 48


def _config(tmp_path: Path) -> Path:
    file = tmp_path / "brokergraph.toml"
    file.write_text(
        f'[auth]\njwt_secret = "{SECRET}"\n'
        f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path / "store.db"}"\n',
        encoding="utf-8",
    )
    return file


def test_serve_reads_a_config_given_after_the_subcommand(tmp_path: Path) -> None:
    # Without the file there is no secret and serve refuses to start; with it, it serves.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERGRAPH_")}
    with subprocess.Popen(
        [*BROKERGRAPH, "serve", "--config", str(_config(tmp_path)), "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        # The exit status is not the point (a signal before the handler is installed
        # ends it with 130); that it served with the file's secret is.
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=30)
    assert " serving http://" in line, errors


@pytest.mark.parametrize(
    "order",
    [
        lambda good, bad: ["--config", str(bad), "plugins", "--config", str(good)],
        lambda good, bad: ["--config", str(good), "plugins"],
        lambda good, bad: ["plugins", "--config", str(good)],
    ],
    ids=["after-wins", "before-only", "after-only"],
)
def test_the_config_used_is_the_last_one_given(
    tmp_path: Path, order: object, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = _config(tmp_path), tmp_path / "missing.toml"
    assert callable(order)
    assert main(order(good, bad)) == 0
    assert "configuration error" not in capsys.readouterr().err


def test_a_missing_file_after_the_subcommand_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.toml"
    assert main(["--config", str(_config(tmp_path)), "plugins", "--config", str(missing)]) == 2
    assert f"configuration file {missing} does not exist" in capsys.readouterr().err
