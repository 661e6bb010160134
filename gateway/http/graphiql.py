"""GraphiQL served without internet access.

Strawberry's bundled GraphiQL page loads seven files from unpkg.com.  This
module serves the same page with those URLs pointing at copies vendored under
``static/graphiql/`` (fetched and checked by ``scripts/vendor-graphiql``).
The SRI ``integrity`` attributes are kept, so the browser still checks every
file against the hash strawberry ships.

Each ``https://unpkg.com/<package>@<version>/<folder>/<name>`` becomes
``/static/graphiql/<package>@<version>/<name>``.  The versions are pinned in
:data:`GRAPHIQL_ASSETS`.  When a strawberry upgrade changes its template (another
version, another file), :func:`offline_graphiql_html` raises ``RuntimeError``
instead of serving a page that would silently try to reach unpkg.com.
"""

from __future__ import annotations

import functools
import json
import pathlib
import urllib.parse
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import NamedTuple

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from strawberry.http.ides import get_graphql_ide_html

__all__ = [
    "GRAPHIQL_ASSETS",
    "GRAPHIQL_STATIC_DIR",
    "GRAPHIQL_STATIC_PREFIX",
    "SIGN_IN_EDITS",
    "UNPKG_URL",
    "GraphiQLAsset",
    "graphiql_routes",
    "graphiql_url",
    "offline_graphiql_html",
]

#: Folder holding the vendored GraphiQL assets and their licences.
GRAPHIQL_STATIC_DIR: pathlib.Path = pathlib.Path(__file__).resolve().parent / "static" / "graphiql"

#: URL path at which :func:`graphiql_routes` mounts :data:`GRAPHIQL_STATIC_DIR`.
GRAPHIQL_STATIC_PREFIX = "/static/graphiql"

#: Origin that strawberry's template loads its assets from.
UNPKG_URL = "https://unpkg.com/"


class GraphiQLAsset(NamedTuple):
    """One file that strawberry's GraphiQL page loads from unpkg."""

    #: npm package and exact version, e.g. ``"graphiql@3.8.3"``.
    spec: str
    #: The file's path inside the npm package, e.g. ``"dist/style.css"``.
    file: str

    @property
    def unpkg_url(self) -> str:
        """The URL in strawberry's template."""
        return f"{UNPKG_URL}{self.spec}/{self.file}"

    @property
    def local_path(self) -> str:
        """Path relative to :data:`GRAPHIQL_STATIC_DIR` (and to the URL prefix).

        Flat per package (no ``dist/`` or ``umd/`` folders), so that a
        ``dist/`` line in a .gitignore cannot drop vendored files.
        """
        return f"{self.spec}/{PurePosixPath(self.file).name}"

    @property
    def local_url(self) -> str:
        """The URL in the offline page."""
        return f"{GRAPHIQL_STATIC_PREFIX}/{self.local_path}"


#: The assets referenced by strawberry 0.341's ``graphiql.html``.  Each
#: package's licence is stored as ``GRAPHIQL_STATIC_DIR / spec / "LICENSE"``.
GRAPHIQL_ASSETS: tuple[GraphiQLAsset, ...] = (
    GraphiQLAsset("react@18.2.0", "umd/react.production.min.js"),
    GraphiQLAsset("react-dom@18.2.0", "umd/react-dom.production.min.js"),
    GraphiQLAsset("js-cookie@3.0.5", "dist/js.cookie.min.js"),
    GraphiQLAsset("graphiql@3.8.3", "graphiql.min.css"),
    GraphiQLAsset("graphiql@3.8.3", "graphiql.min.js"),
    GraphiQLAsset("@graphiql/plugin-explorer@1.0.2", "dist/style.css"),
    GraphiQLAsset("@graphiql/plugin-explorer@1.0.2", "dist/index.umd.js"),
)

# The line of strawberry's template that picks the URL GraphiQL posts to.
_FETCH_URL_LINE = 'const fetchURL = window.location.href.split("?")[0];'

# Ours, run before the template's component is defined.  A token handed over in the
# URL fragment (which browsers never send, so no access log or proxy sees it) fills
# the Headers editor, whose content GraphiQL's first introspection already sends:
# the docs pane works on first load.  The fragment is then dropped from the address
# bar and history.  The template's own URL sharing writes only the query and the
# variables to the query string; the token never joins them.  And a changed
# Authorization header in the editor (a token pasted later) makes GraphiQL fetch the
# schema again: it introspects whenever its fetcher changes.
_TOKEN_SCRIPT = """
      const handedOver = new URLSearchParams(window.location.hash.slice(1));
      const handedToken = handedOver.get("token");
      let handedHeaders;
      if (handedToken) {
        handedHeaders = JSON.stringify({ Authorization: `Bearer ${handedToken}` }, null, 2);
        handedOver.delete("token");
        const rest = handedOver.toString();
        history.replaceState(
          null, "", window.location.pathname + window.location.search + (rest ? `#${rest}` : ""),
        );
      }
      function authorizationOf(text) {
        try {
          const headers = JSON.parse(text || "{}");
          const name = Object.keys(headers).find((k) => k.toLowerCase() === "authorization");
          return name === undefined ? null : String(headers[name]);
        } catch {
          return undefined;  // half-typed JSON: wait for the next edit
        }
      }
      let introspectedAuthorization = authorizationOf(handedHeaders || parameters.headers);
      let reintrospection;
      function refetchSchemaOnNewAuthorization(text, setFetcher) {
        clearTimeout(reintrospection);
        reintrospection = setTimeout(() => {
          const authorization = authorizationOf(text);
          if (authorization === undefined || authorization === introspectedAuthorization) {
            return;
          }
          introspectedAuthorization = authorization;
          const fresh = GraphiQL.createFetcher({
            url: fetchURL, headers: defaultHeaders, subscriptionUrl,
          });
          setFetcher(() => fresh);
        }, 300);
      }
"""


class _ExternalRefs(HTMLParser):
    """Collects src/href attributes that would make the browser leave the host."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name not in {"src", "href"} or value is None:
                continue
            ref = value.strip().lower()
            if ref.startswith(("http:", "https:", "//")):
                self.external.append(f"<{tag} {name}={value!r}>")


#: Our edits of the template's component (line as shipped, line as served): the
#: headers start as the handed-over token's, and the fetcher lives in the component's
#: state so that a new Authorization replaces it (and so fetches the schema again).
SIGN_IN_EDITS: tuple[tuple[str, str], ...] = (
    (
        "const fetcher = GraphiQL.createFetcher({",
        _TOKEN_SCRIPT.lstrip() + "      const fetcher = GraphiQL.createFetcher({",
    ),
    (
        "const [headers, setHeaders] = React.useState(parameters.headers);",
        "const [headers, setHeaders] = React.useState(handedHeaders || parameters.headers);\n"
        "        const [activeFetcher, setActiveFetcher] = React.useState(() => fetcher);",
    ),
    (
        "          setHeaders(newHeaders);",
        "          setHeaders(newHeaders);\n"
        "          refetchSchemaOnNewAuthorization(newHeaders, setActiveFetcher);",
    ),
    ("          fetcher: fetcher,", "          fetcher: activeFetcher,"),
)


def _replace_once(html: str, old: str, new: str) -> str:
    count = html.count(old)
    if count != 1:
        raise RuntimeError(
            f"strawberry's graphiql.html contains {old!r} {count} times, expected once; "
            "strawberry's template changed: update GRAPHIQL_ASSETS in "
            "gateway/http/graphiql.py and run scripts/vendor-graphiql"
        )
    return html.replace(old, new)


@functools.cache
def offline_graphiql_html(graphql_path: str = "/graphql") -> str:
    """Strawberry's GraphiQL page, loading its assets from :data:`GRAPHIQL_STATIC_PREFIX`.

    ``graphql_path`` is the URL GraphiQL sends its queries (and subscriptions,
    as WebSocket) to, resolved against the page's own URL.  Strawberry's page
    uses its own URL instead; both agree when the page is served at
    ``graphql_path``.

    Raises ``RuntimeError`` if strawberry's template no longer matches the pinned
    assets, or if any reference to another host is left in the page.
    """
    html = get_graphql_ide_html("graphiql")
    for asset in GRAPHIQL_ASSETS:
        html = _replace_once(html, f'"{asset.unpkg_url}"', f'"{asset.local_url}"')
    # "</" would end the <script> element early; JSON allows escaping "<".
    path_literal = json.dumps(graphql_path).replace("<", "\\u003c")
    html = _replace_once(
        html,
        _FETCH_URL_LINE,
        f"const fetchURL = new URL({path_literal}, window.location.href).toString();",
    )
    for template_line, ours in SIGN_IN_EDITS:
        html = _replace_once(html, template_line, ours)

    refs = _ExternalRefs()
    refs.feed(html)
    refs.close()
    if "unpkg" in html.lower() or refs.external:
        left = ", ".join(refs.external) or "a mention of unpkg"
        raise RuntimeError(
            f"the offline GraphiQL page still references another host ({left}); "
            "strawberry's template changed: update GRAPHIQL_ASSETS in "
            "gateway/http/graphiql.py and run scripts/vendor-graphiql"
        )
    return html


def graphiql_url(graphql_url: str, token: str | None = None) -> str:
    """The URL opening GraphiQL, signed in with ``token`` when given: in the fragment,
    never the query string, which servers and proxies log."""
    if token is None:
        return graphql_url
    return f"{graphql_url}#{urllib.parse.urlencode({'token': token})}"  # read by _TOKEN_SCRIPT


def graphiql_routes() -> list[BaseRoute]:
    """The route serving the vendored assets at :data:`GRAPHIQL_STATIC_PREFIX`."""
    return [
        Mount(
            GRAPHIQL_STATIC_PREFIX,
            app=StaticFiles(directory=GRAPHIQL_STATIC_DIR),
            name="graphiql-static",
        )
    ]
