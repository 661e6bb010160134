"""The reference client area (examples/client-area) builds, typed against the committed
SDL: GraphQL codegen generates the types and typed operations from schema/schema.graphql,
then ``tsc`` type-checks the app and Vite bundles it.  An operation that no longer
matches the schema (a renamed field, a changed argument) fails codegen or tsc here.
The gateway then serves the bundle at /client-area, and a how-to-build 404 without one.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from gateway.http.client_area import CLIENT_AREA_DIST, client_area_routes
from tests.gateway_fixtures import open_gateway
from tests.toy.sandbox import ToySandbox

APP_DIR = Path(__file__).resolve().parents[1] / "examples" / "client-area"
#: npm ci rewrites node_modules' own lock copy; newer than it means the pins moved.
INSTALLED_LOCK = APP_DIR / "node_modules" / ".package-lock.json"


def npm() -> str:
    path = shutil.which("npm")
    if path is None or shutil.which("node") is None:
        pytest.skip("node/npm are missing (Node.js 20 is needed to build the client area)")
    return path


async def run(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=APP_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    text = out.decode(errors="replace")
    assert process.returncode == 0, f"{' '.join(args)} failed:\n{text}"
    return text


async def build_client_area() -> None:
    """npm ci only when node_modules is absent or older than the lock; then codegen + build."""
    tool = npm()
    lock = APP_DIR / "package-lock.json"
    if not INSTALLED_LOCK.is_file() or INSTALLED_LOCK.stat().st_mtime < lock.stat().st_mtime:
        await run(tool, "ci", "--no-audit", "--no-fund", "--loglevel=error")
    await run(tool, "run", "build")


@pytest.mark.timeout(300)  # a cold npm ci downloads; with node_modules it is ~15 s
async def test_the_client_area_is_typed_from_the_sdl_and_builds(tmp_path: Path) -> None:
    await build_client_area()
    generated = (APP_DIR / "src" / "gql" / "graphql.ts").read_text()
    # The typed operations of the app, from the committed SDL.
    for name in ("MyAccountsQuery", "OrderEventsSubscription", "PlaceOrderMutation"):
        assert f"export type {name} " in generated
    index = (CLIENT_AREA_DIST / "index.html").read_text()
    scripts = re.findall(r'src="(/client-area/assets/[^"]+\.js)"', index)
    assert len(scripts) == 1, index
    # Everything the page loads comes from the gateway itself: no CDN.
    assert "http://" not in index and "https://" not in index

    async with (
        ToySandbox() as sandbox,
        open_gateway(sandbox, tmp_path) as gateway,
        httpx.AsyncClient(base_url=gateway.url) as http,
    ):
        page = await http.get("/client-area/")
        assert page.status_code == 200
        assert page.text == index
        bundle = await http.get(scripts[0])
        assert bundle.status_code == 200
        assert "javascript" in bundle.headers["content-type"]
        bare = await http.get("/client-area")
        assert bare.status_code in (301, 307, 308)
        assert bare.headers["location"].endswith("/client-area/")


async def test_without_a_build_the_page_says_how_to_build(tmp_path: Path) -> None:
    app = Starlette(routes=client_area_routes(tmp_path / "dist"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        answer = await http.get("/client-area/")
    assert answer.status_code == 404
    assert "npm run build" in answer.text
    assert str(tmp_path / "dist") in answer.text
