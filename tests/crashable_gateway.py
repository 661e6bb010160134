"""A gateway wired to a toy sandbox, in its own process, so a test can kill -9 it.

Usage: python -m tests.crashable_gateway SANDBOX_URL STORE_DIR
Prints the gateway's base URL on the first line, then serves until killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.gateway_fixtures import open_gateway
from tests.toy.sandbox import ToySandbox


class RemoteToySandbox(ToySandbox):
    """The settings of a toy sandbox running in another process."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._remote_url = url

    @property
    def url(self) -> str:
        return self._remote_url


async def main(sandbox_url: str, store_dir: str) -> None:
    sandbox = RemoteToySandbox(sandbox_url)
    async with open_gateway(
        sandbox, Path(store_dir), resilience={"timeout_seconds": 30, "read_retries": 0}
    ) as gateway:
        print(gateway.url, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
