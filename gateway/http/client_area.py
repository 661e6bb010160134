"""The reference client area (examples/client-area), served at ``/client-area``.

The app is built by npm into ``examples/client-area/dist``; the gateway only serves
those files.  Whether they exist is checked per request, so building while the
gateway runs needs no restart, and a checkout without a build (or an installed
wheel, which carries no examples) answers a 404 page that says how to build.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

CLIENT_AREA_PREFIX = "/client-area"
#: Where ``npm run build`` in examples/client-area writes the app (a source checkout).
CLIENT_AREA_DIST = Path(__file__).resolve().parents[2] / "examples" / "client-area" / "dist"

NOT_BUILT_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Client area not built</title></head>
<body><main><h1>The client area is not built</h1>
<p>This gateway serves the reference client area from <code>{dist}</code>, which does not
exist.  Build it with Node.js 20 and npm:</p>
<pre>cd examples/client-area
npm ci &amp;&amp; npm run build</pre>
<p><code>./scripts/demo</code> does this when Node.js is installed.</p></main></body></html>
"""


class ClientAreaFiles:
    """Static files of the built app, or the how-to-build page while there are none."""

    def __init__(self, dist: Path) -> None:
        self.dist = dist
        self.files: StaticFiles | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (self.dist / "index.html").is_file():
            page = NOT_BUILT_HTML.format(dist=escape(str(self.dist)))
            await HTMLResponse(page, status_code=404)(scope, receive, send)
            return
        if self.files is None:
            # html=True: "/client-area/" answers index.html, "/client-area" redirects there.
            self.files = StaticFiles(directory=self.dist, html=True)
        await self.files(scope, receive, send)


def client_area_routes(dist: Path = CLIENT_AREA_DIST) -> list[BaseRoute]:
    return [Mount(CLIENT_AREA_PREFIX, app=ClientAreaFiles(dist), name="client-area")]
