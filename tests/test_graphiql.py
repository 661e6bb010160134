"""The offline GraphiQL page: vendored assets, their SRI hashes, and a real browser."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from strawberry.asgi import GraphQL
from strawberry.extensions import SchemaExtension
from strawberry.http.ides import get_graphql_ide_html

import gateway.http.graphiql as graphiql_module
from gateway.http.graphiql import (
    GRAPHIQL_ASSETS,
    GRAPHIQL_STATIC_DIR,
    GRAPHIQL_STATIC_PREFIX,
    SIGN_IN_EDITS,
    graphiql_routes,
    offline_graphiql_html,
)
from tests import browser


class _Refs(HTMLParser):
    """Every src/href of a page, with the element's integrity attribute."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str, str | None]] = []  # (tag, url, integrity)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            url = found.get(name)
            if url is not None:
                self.refs.append((tag, url, found.get("integrity")))


def page_refs(html: str) -> list[tuple[str, str, str | None]]:
    parser = _Refs()
    parser.feed(html)
    parser.close()
    return parser.refs


def asset_refs(html: str) -> list[tuple[str, str | None]]:
    """(url, integrity) of the page's scripts and stylesheets (not its data: favicon)."""
    return [(url, sri) for _, url, sri in page_refs(html) if not url.startswith("data:")]


def sri_sha384(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    offline_graphiql_html.cache_clear()
    yield
    offline_graphiql_html.cache_clear()


# --- the page and the vendored files ----------------------------------------------------


def test_page_references_only_local_assets() -> None:
    html = offline_graphiql_html()
    assert "unpkg" not in html.lower()
    for tag, url, _ in page_refs(html):
        assert not url.lower().startswith(("http:", "https:", "//")), (tag, url)
    urls = [url for url, _ in asset_refs(html)]
    assert sorted(urls) == sorted(asset.local_url for asset in GRAPHIQL_ASSETS)
    assert all(url.startswith(GRAPHIQL_STATIC_PREFIX + "/") for url in urls)


def test_same_page_as_strawberry_apart_from_urls() -> None:
    """Only the asset URLs, the fetch URL and the sign-in edits differ from strawberry's
    template."""
    stock = get_graphql_ide_html("graphiql")
    ours = offline_graphiql_html()
    for asset in GRAPHIQL_ASSETS:
        stock = stock.replace(asset.unpkg_url, asset.local_url)
    stock = stock.replace(
        'const fetchURL = window.location.href.split("?")[0];',
        'const fetchURL = new URL("/graphql", window.location.href).toString();',
    )
    for template_line, edited in SIGN_IN_EDITS:
        stock = stock.replace(template_line, edited)
    assert ours == stock


def test_every_asset_exists_and_matches_its_integrity_attribute() -> None:
    refs = asset_refs(offline_graphiql_html())
    assert len(refs) == 7
    for url, integrity in refs:
        assert integrity is not None, url
        assert integrity.startswith("sha384-"), url
        path = GRAPHIQL_STATIC_DIR / url.removeprefix(GRAPHIQL_STATIC_PREFIX + "/")
        assert path.is_file(), f"{path} is missing: run scripts/vendor-graphiql"
        assert sri_sha384(path.read_bytes()) == integrity, f"{path} does not match the page's SRI"


def test_integrity_attributes_are_strawberrys() -> None:
    stock = dict(asset_refs(get_graphql_ide_html("graphiql")))
    ours = dict(asset_refs(offline_graphiql_html()))
    for asset in GRAPHIQL_ASSETS:
        assert ours[asset.local_url] == stock[asset.unpkg_url]


def test_vendored_folder_holds_the_assets_and_their_licences_only() -> None:
    files = {
        path.relative_to(GRAPHIQL_STATIC_DIR).as_posix()
        for path in GRAPHIQL_STATIC_DIR.rglob("*")
        if path.is_file()
    }
    assets = {asset.local_path for asset in GRAPHIQL_ASSETS}
    licences = {f"{asset.spec}/LICENSE" for asset in GRAPHIQL_ASSETS}
    assert files == assets | licences
    for licence in licences:
        text = (GRAPHIQL_STATIC_DIR / licence).read_text(encoding="utf-8")
        assert "MIT License" in text or "Permission is hereby granted" in text, licence


def test_page_is_computed_once() -> None:
    assert offline_graphiql_html() is offline_graphiql_html()


def test_graphql_path_sets_the_fetch_url(fresh_cache: None) -> None:
    html = offline_graphiql_html("/api/graphql")
    assert 'const fetchURL = new URL("/api/graphql", window.location.href)' in html
    # A path cannot close the <script> element.
    html = offline_graphiql_html("/x</script><script>alert(1)//")
    assert "</script><script>alert" not in html
    assert '"/x\\u003c/script>\\u003cscript>alert(1)//"' in html


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # strawberry upgraded graphiql: the pinned URL is gone, a new one appears.
        ("graphiql@3.8.3/graphiql.min.js", "graphiql@3.9.0/graphiql.min.js"),
        # a new CDN asset next to the known ones.
        ("</head>", '<script src="https://cdn.example.com/x.js"></script></head>'),
        ("</head>", '<link rel="stylesheet" href="//cdn.example.com/x.css"></head>'),
        # the line choosing the GraphQL URL changed.
        ('window.location.href.split("?")[0]', "window.location.href"),
    ],
)
def test_changed_strawberry_template_raises(
    monkeypatch: pytest.MonkeyPatch, fresh_cache: None, old: str, new: str
) -> None:
    template = get_graphql_ide_html("graphiql")
    assert old in template
    monkeypatch.setattr(
        graphiql_module, "get_graphql_ide_html", lambda _ide: template.replace(old, new)
    )
    with pytest.raises(RuntimeError, match="scripts/vendor-graphiql"):
        offline_graphiql_html()


async def test_routes_serve_the_assets() -> None:
    routes = graphiql_routes()
    assert len(routes) == 1
    mount = routes[0]
    assert isinstance(mount, Mount)
    assert mount.path == GRAPHIQL_STATIC_PREFIX
    assert isinstance(mount.app, StaticFiles)
    transport = httpx.ASGITransport(app=Starlette(routes=routes))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for asset in GRAPHIQL_ASSETS:
            response = await client.get(asset.local_url)
            assert response.status_code == 200, asset.local_url
            assert response.content == (GRAPHIQL_STATIC_DIR / asset.local_path).read_bytes()
            kind = "text/css" if asset.file.endswith(".css") else "javascript"
            assert kind in response.headers["content-type"], asset.local_url
        assert (await client.get(f"{GRAPHIQL_STATIC_PREFIX}/nope.js")).status_code == 404


# --- in a real browser, with no internet ------------------------------------------------

_queries_seen: list[str] = []
_queries_lock = threading.Lock()


class _RecordQueries(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        with _queries_lock:
            _queries_seen.append(self.execution_context.query or "")
        yield


@strawberry.type
class _Query:
    @strawberry.field
    def hello(self) -> str:
        return "world"


_schema = strawberry.Schema(query=_Query, extensions=[_RecordQueries])


class OfflineGraphQL(GraphQL[Any, Any]):
    """What the gateway does: strawberry's view with the offline GraphiQL page."""

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(offline_graphiql_html())


def make_app(view: type[GraphQL[Any, Any]]) -> Starlette:
    return Starlette(routes=[Route("/graphql", view(_schema)), *graphiql_routes()])


@pytest.mark.browser
def test_offline_graphiql_renders_in_chromium_without_internet() -> None:
    with _queries_lock:
        _queries_seen.clear()
    with browser.serve(make_app(OfflineGraphQL)) as server:
        dom = browser.dump_dom(f"{server.url}/graphql")
        hits = server.log.snapshot()
        shot = browser.screenshot(
            f"{server.url}/graphql", browser.ARTIFACTS_DIR / "graphiql-offline.png"
        )

    assert "Loading..." not in dom
    # GraphiQL's React UI: editor sessions, the query editor, the run button, the logo.
    for css_class in (
        "graphiql-sessions",
        "graphiql-query-editor",
        "graphiql-execute-button",
        "graphiql-logo",
        "graphiql-sidebar",
    ):
        assert f'class="{css_class}' in dom or f" {css_class}" in dom, css_class
    # Every asset came from this server, and GraphiQL fetched the schema.
    assert {(h.path, h.status) for h in hits if h.method == "GET"} == {
        ("/graphql", 200),
        *((asset.local_url, 200) for asset in GRAPHIQL_ASSETS),
    }
    assert ("POST", "/graphql", 200) in {(h.method, h.path, h.status) for h in hits}
    with _queries_lock:
        assert any("__schema" in query for query in _queries_seen), _queries_seen
    assert shot.stat().st_size > 20_000  # a rendered UI, not a blank page


@pytest.mark.browser
def test_stock_strawberry_graphiql_stays_loading_without_internet() -> None:
    """The control: the same browser flags leave strawberry's own page at "Loading..."."""
    with browser.serve(make_app(GraphQL)) as server:
        dom = browser.dump_dom(f"{server.url}/graphql")
        hits = server.log.snapshot()
        browser.screenshot(f"{server.url}/graphql", browser.ARTIFACTS_DIR / "graphiql-stock.png")

    assert 'class="graphiql-container">Loading...</div>' in dom
    assert "graphiql-sessions" not in dom
    assert [(h.method, h.path) for h in hits] == [("GET", "/graphql")]
