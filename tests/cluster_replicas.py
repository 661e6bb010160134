"""Real ``brokergraph serve`` replicas for the cluster tests: subprocesses on loopback.

Each replica is the installed command line, started with a TOML configuration the
test writes (shared store, secrets, connectors aimed at sandboxes running in the
test process), on a free port (``--port 0``); it prints its URL on the first line.
Its log goes to a file beside the configuration, for the failure message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["Replica", "replicas", "toml_config"]

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 60.0


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def toml_config(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """``{"store": {"url": …}, "connectors.qst": {...}}`` as TOML (flat tables only)."""
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


@dataclass
class Replica:
    """One ``brokergraph serve`` process and where it listens."""

    name: str
    process: asyncio.subprocess.Process
    url: str
    log: Path

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive:
            self.process.send_signal(sig)

    async def wait(self, seconds: float = 20.0) -> int:
        return await asyncio.wait_for(self.process.wait(), seconds)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])


async def _start(name: str, config: Path, log: Path) -> Replica:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERGRAPH_")}
    env["BROKERGRAPH_CONFIG"] = str(config)
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            "--log-level",
            "INFO",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=sink,
        )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), START_SECONDS)
    except TimeoutError:
        process.kill()
        raise
    if not line:
        await process.wait()
        tail = await asyncio.to_thread(log.read_text, encoding="utf-8", errors="replace")
        raise AssertionError(f"replica {name} exited: {tail[-3000:]}")
    url = line.decode().split()[-1].removesuffix("/graphql")
    return Replica(name, process, url, log)


@contextlib.asynccontextmanager
async def replicas(
    directory: Path, sections: Mapping[str, Mapping[str, Any]], count: int = 3
) -> AsyncIterator[Sequence[Replica]]:
    """``count`` replicas sharing one configuration; every one is killed on exit."""
    config = directory / "cluster.toml"
    config.write_text(toml_config(sections), encoding="utf-8")
    started: list[Replica] = []
    try:
        names = [chr(ord("a") + i) for i in range(count)]
        results = await asyncio.gather(
            *(_start(n, config, directory / f"replica-{n}.log") for n in names),
            return_exceptions=True,
        )
        started.extend(r for r in results if isinstance(r, Replica))
        for result in results:
            if isinstance(result, BaseException):
                raise result
        async with httpx.AsyncClient(timeout=10) as http:
            for replica in started:
                assert (await http.get(f"{replica.url}/healthz")).status_code == 200
        yield started
    finally:
        for replica in started:
            replica.signal(signal.SIGKILL)
        for replica in started:
            with contextlib.suppress(ProcessLookupError):
                await replica.wait()
