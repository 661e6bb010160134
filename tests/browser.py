"""Helpers for tests that drive Debian's headless Chromium against a local server.

Chromium runs with every host except 127.0.0.1 unresolvable, so a page that
needs the internet fails the same way it would on a machine without it.  A
missing chromium fails the test (it is never skipped): install it with
scripts/setup-test-deps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"

#: Flags of every run: headless, no first-run or background traffic, and no
#: host but 127.0.0.1 resolvable (so no CDN, no Google services).
OFFLINE_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


def chromium_path() -> str:
    """Path of Debian's chromium; fails the calling test if it is not installed."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "chromium is not on PATH, and the browser tests need it (they are never skipped). "
            "Run scripts/setup-test-deps, which apt-get installs Debian's chromium.",
            pytrace=False,
        )
    return path


def kill_group(process_id: int) -> None:
    """Kill a chromium started with ``start_new_session=True`` and every helper it forked.

    Its renderer, zygote and crash handler share its process group and outlive a kill
    of the browser process alone, writing into the profile folder meanwhile.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process_id, signal.SIGKILL)


@contextlib.contextmanager
def chromium_profile() -> Iterator[Path]:
    """A fresh ``--user-data-dir``, removed afterwards; kill chromium's group first.

    Removal is retried briefly: a helper killed a moment ago may have been finishing a
    write, and a folder left behind would pile up in /tmp on every run.
    """
    folder = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
    try:
        yield folder
    finally:
        for attempt in range(50):
            try:
                shutil.rmtree(folder)
                break
            except FileNotFoundError:
                break
            except OSError:
                if attempt == 49:
                    raise
                time.sleep(0.1)


def run_chromium(url: str, *flags: str, budget_ms: int = 10_000, timeout: float = 90) -> str:
    """Run headless chromium offline on `url` with extra `flags`; returns its stdout.

    `budget_ms` is the virtual time the page gets to settle (network waits do
    not consume it).  A non-zero exit fails the test with chromium's stderr.
    """
    with chromium_profile() as profile:
        command = [
            chromium_path(),
            *OFFLINE_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            *flags,
            url,
        ]
        with subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, for kill_group
        ) as process:
            try:
                stdout, stderr = process.communicate(timeout=timeout)
            finally:
                kill_group(process.pid)
    if process.returncode != 0:
        pytest.fail(
            f"chromium exited with {process.returncode}: {' '.join(command)}\n{stderr}",
            pytrace=False,
        )
    return stdout


def dump_dom(url: str, *, budget_ms: int = 10_000) -> str:
    """The page's DOM, serialized after `budget_ms` of virtual time."""
    return run_chromium(url, "--dump-dom", budget_ms=budget_ms)


def screenshot(
    url: str, path: Path, *, size: tuple[int, int] = (1280, 800), budget_ms: int = 10_000
) -> Path:
    """Save a PNG screenshot of `url` to `path` (folders are created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    run_chromium(
        url,
        f"--screenshot={path}",
        f"--window-size={size[0]},{size[1]}",
        "--hide-scrollbars",
        budget_ms=budget_ms,
    )
    if not path.is_file() or not path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"):
        pytest.fail(f"chromium wrote no PNG screenshot to {path}", pytrace=False)
    return path


@dataclasses.dataclass(frozen=True)
class Hit:
    """One HTTP request the live server answered."""

    method: str
    path: str
    status: int


class RequestLog:
    """ASGI middleware recording every HTTP request's method, path and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.hits: list[Hit] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def logging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                with self._lock:
                    self.hits.append(Hit(scope["method"], scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, logging_send)

    def snapshot(self) -> list[Hit]:
        with self._lock:
            return list(self.hits)


@dataclasses.dataclass(frozen=True)
class LiveServer:
    url: str
    log: RequestLog


@contextlib.contextmanager
def serve(app: ASGIApp, *, startup_timeout: float = 10) -> Iterator[LiveServer]:
    """Serve `app` with uvicorn on a free 127.0.0.1 port, in a background thread."""
    log = RequestLog(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(log, lifespan="off", ws="none", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail(f"uvicorn did not start on 127.0.0.1:{port}", pytrace=False)
            time.sleep(0.02)
        yield LiveServer(f"http://127.0.0.1:{port}", log)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
