"""The ``brokergraph`` command line.  Plugins add subcommands through a hook."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import logging
import secrets
import signal
import sys
import urllib.parse
from collections.abc import Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url

from gateway import __version__
from gateway.auth import (
    DEFAULT_CACHE_TTL_SECONDS,
    JwtAuthenticator,
    JwtSettings,
    Role,
    create_api_key,
)
from gateway.cli_commands import CliCommand
from gateway.config import ConfigError, Settings, load_settings
from gateway.graphql import build_schema
from gateway.http.graphiql import graphiql_url
from gateway.logging_redaction import install_redaction
from gateway.new_connector import COMMAND as NEW_CONNECTOR
from gateway.plugins import Plugins, load_plugins
from gateway.runner import running_gateway, tune_garbage_collector
from gateway.sandboxes import Sandbox, seed_demo
from gateway.store import (
    SchemaBehind,
    SchemaUnknown,
    Store,
    head_revision,
    history,
    read_store_schema,
    upgrade_store,
)

__all__ = ["CORE_COMMANDS", "main", "run_server"]

T = TypeVar("T")

logger = logging.getLogger("gateway.cli")
DEFAULT_SCHEMA_FILE = Path("schema/schema.graphql")
DEMO_BROKER = "demo-broker"
DEMO_CLIENT = "DEMO-001"
DEMO_TOKEN_TTL_SECONDS = 12 * 3600


def _plugins_for(settings: Settings) -> Plugins:
    return load_plugins(blocked=settings.plugins.blocked, strict=settings.plugins.strict)


def _host_port(parser: argparse.ArgumentParser, default_port: int | None) -> None:
    parser.add_argument("--host", help="interface to listen on (default: [server] host)")
    parser.add_argument(
        "--port",
        type=int,
        default=default_port,
        help="port to listen on; 0 picks a free one (default: [server] port)",
    )


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# --------------------------------------------------------------------------- serve


def run_server(main: Coroutine[Any, Any, T]) -> T:
    """Serve on uvloop where it is installed (a dependency everywhere but Windows): its
    event loop is written in C, and a warm read spends much of its time in the loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    plugins = _plugins_for(settings)

    async def run() -> None:
        async with running_gateway(settings, plugins, host=args.host, port=args.port) as gateway:
            tune_garbage_collector()
            print(f"brokergraph {__version__} serving {gateway.graphql_url}", flush=True)
            await _wait_for_signal()

    run_server(run())
    return 0


# --------------------------------------------------------------------------- demo


def _demo_tokens(secret: str) -> dict[str, str]:
    issuer = JwtAuthenticator(JwtSettings(secret=secret))
    ttl = DEMO_TOKEN_TTL_SECONDS
    return {
        "admin": issuer.issue(subject="demo-admin", role=Role.ADMIN, ttl_seconds=ttl),
        "manager": issuer.issue(
            subject="demo-manager", role=Role.MANAGER, brokers=[DEMO_BROKER], ttl_seconds=ttl
        ),
        "client": issuer.issue(
            subject="demo-client", role=Role.CLIENT, partner_code=DEMO_CLIENT, ttl_seconds=ttl
        ),
    }


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    _host_port(parser, 8000)
    parser.add_argument("--data-dir", default="var/demo", help="where the demo store lives")


def _demo(args: argparse.Namespace) -> int:
    run_server(run_demo(args.host or "127.0.0.1", args.port, Path(args.data_dir), args.config))
    return 0


def _reset_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)


async def run_demo(
    host: str,
    port: int,
    data_dir: Path,
    config: str | None = None,
    *,
    ready: asyncio.Event | None = None,
) -> None:
    """Start every sandbox, a fresh store, and the gateway wired to them; print how to use it."""
    store_file = data_dir / "demo.db"
    # A fresh store each run: the sandboxes reseed too, so old links would dangle.
    await asyncio.to_thread(_reset_file, store_file)
    secret = secrets.token_urlsafe(48)
    plugins = load_plugins()
    sandboxes: list[Sandbox] = [cls() for cls in plugins.collect("brokergraph_sandboxes")]
    async with contextlib.AsyncExitStack() as stack:
        for sandbox in sandboxes:
            await sandbox.start(host="127.0.0.1", port=0)
            stack.push_async_callback(sandbox.stop)
        settings = load_settings(
            config,
            overrides={
                "auth": {"jwt_secret": secret},
                "store": {"url": f"sqlite+aiosqlite:///{store_file}"},
                "connectors": {s.name: dict(s.connector_settings()) for s in sandboxes},
            },
        )
        gateway = await stack.enter_async_context(
            running_gateway(settings, plugins, host=host, port=port)
        )
        for sandbox in sandboxes:
            sandbox.attach_gateway(gateway.url)
        await seed_demo(
            gateway.services.store, sandboxes, lambda n: plugins.connector_classes[n].platform
        )
        tune_garbage_collector()
        tokens = _demo_tokens(secret)
        lines = [
            f"brokergraph {__version__} demo is running",
            f"  GraphiQL:  {gateway.graphql_url}",
            # Signed in: the token rides in the URL fragment, which browsers never send.
            *(
                f"  GraphiQL as {role}: {graphiql_url(gateway.graphql_url, token)}"
                for role, token in tokens.items()
            ),
            # The reference client area (served when built: scripts/demo builds it).
            *(
                f"  Client area as {role}: {gateway.url}/client-area/#"
                + urllib.parse.urlencode({"token": token})
                for role, token in tokens.items()
                if role in ("client", "manager")
            ),
            *(f"  sandbox {s.name}: {s.url}" for s in sandboxes),
            *_sandbox_ca_line(sandboxes),
            '  Tokens (other clients: {"Authorization": "Bearer <token>"}):',
            *(f"    {role:8} {token}" for role, token in tokens.items()),
            f"  The client token is partner {DEMO_CLIENT}; the manager sees broker {DEMO_BROKER}.",
            "  Press Ctrl+C to stop.",
        ]
        print("\n".join(lines), flush=True)
        if ready is not None:
            ready.set()
        await _wait_for_signal()


def _sandbox_ca_line(sandboxes: list[Sandbox]) -> list[str]:
    """Where the sandboxes' throwaway CA is, for calling a sandbox (HTTPS/WSS) by hand."""
    certificate = next((s.certificate for s in sandboxes if s.certificate is not None), None)
    if certificate is None:
        return []
    return [f"  Sandbox CA (curl --cacert): {certificate.ca_file}"]


# --------------------------------------------------------------------------- schema


def _schema(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    schema = build_schema(_plugins_for(settings), settings.limits)
    sdl = (schema.subgraph_sdl() if args.subgraph else schema.as_str()) + "\n"
    if args.check:
        path = Path(args.check)
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == sdl:
            print(f"{path} matches the schema")
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True), sdl.splitlines(keepends=True), str(path), "code"
        )
        sys.stdout.writelines(diff)
        print(f"\n{path} is out of date: run `brokergraph schema --output {path}`")
        return 1
    if args.output:
        Path(args.output).write_text(sdl, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(sdl)
    return 0


def _configure_schema(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--output", metavar="FILE", help=f"write the SDL to FILE (e.g. {DEFAULT_SCHEMA_FILE})"
    )
    group.add_argument("--check", metavar="FILE", help="exit 1 and show a diff when FILE differs")
    parser.add_argument(
        "--subgraph",
        action="store_true",
        help="the federation subgraph SDL (_service.sdl, e.g. schema/subgraph.graphql) "
        "instead of the public one",
    )


# --------------------------------------------------------------------------- plugins


def _plugins(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    plugins = _plugins_for(settings)
    print("plugins:")
    for report in plugins.reports:
        state = "loaded" if report.loaded else f"FAILED: {report.error}"
        origin = f"{report.distribution} {report.version}" if report.distribution else "-"
        print(f"  {report.name:32} {origin:28} {state}")
    print("connectors:")
    for name, cls in sorted(plugins.connector_classes.items()):
        configured = "configured" if name in settings.connectors else "not configured"
        capabilities = ", ".join(sorted(c.value for c in cls.capabilities)) or "-"
        print(f"  {name:12} {cls.platform:12} {cls.version:10} {configured:15} {capabilities}")
    return 0 if all(r.loaded for r in plugins.reports) else 1


# --------------------------------------------------------------------------- api-key


def _configure_api_key(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="api_key_action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="create a key and print it once",
        description="Create an API key for a server-to-server caller and print it once: "
        "only its hash is stored. Callers send `Authorization: ApiKey <key>`.",
    )
    create.add_argument(
        "--role", required=True, choices=[role.value for role in Role], help="the key's role"
    )
    scope = create.add_mutually_exclusive_group()
    scope.add_argument("--partner", metavar="CODE", help="the partner of a client key")
    scope.add_argument(
        "--brokers", metavar="B1,B2", help="comma-separated brokers of a manager key"
    )
    create.add_argument("--name", help="a label for the listing (who uses the key)")
    actions.add_parser("list", help="list keys (never the keys themselves)")
    revoke = actions.add_parser("revoke", help="revoke a key for good")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the id shown by create and list")


def _api_key(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if not settings.auth.api_keys:
        print("brokergraph: note: auth.api_keys is false; the gateway refuses API keys")
    return asyncio.run(_api_key_action(args, settings))


async def _api_key_action(args: argparse.Namespace, settings: Settings) -> int:
    # The same schema policy as serve: an admin command never upgrades a shared store.
    store = await Store.open(settings.store.url, upgrade=settings.store.upgrades_at_start)
    try:
        if args.api_key_action == "create":
            return await _api_key_create(args, store)
        if args.api_key_action == "list":
            return await _api_key_list(store)
        return await _api_key_revoke(args.key_id, store)
    finally:
        await store.close()


async def _api_key_create(args: argparse.Namespace, store: Store) -> int:
    brokers = [b.strip() for b in (args.brokers or "").split(",") if b.strip()]
    try:
        created = await create_api_key(
            store, role=Role(args.role), partner_code=args.partner, brokers=brokers, name=args.name
        )
    except ValueError as error:
        print(
            f"brokergraph: {error} (--partner for a client, --brokers for a manager)",
            file=sys.stderr,
        )
        return 2
    print(f"created API key {created.key_id} ({_scope(args.role, args.partner, brokers)})")
    print("The key is shown only this once; store it now:")
    print(created.key)
    return 0


def _scope(role: str, partner: str | None, brokers: Sequence[str]) -> str:
    if partner:
        return f"{role}, partner {partner}"
    if brokers:
        return f"{role}, brokers {','.join(sorted(brokers))}"
    return role


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def _api_key_list(store: Store) -> int:
    keys = await store.list_api_keys()
    print(f"{'KEY_ID':16}  {'STATUS':7}  {'CREATED':20}  {'LAST USED':20}  SCOPE  NAME")
    for key in keys:
        status = "active" if key.active else "revoked"
        scope = _scope(key.role, key.partner_code, key.brokers)
        print(
            f"{key.key_id:16}  {status:7}  {_when(key.created_at):20}  "
            f"{_when(key.last_used_at):20}  {scope}  {key.name or '-'}"
        )
    return 0


async def _api_key_revoke(key_id: str, store: Store) -> int:
    record = await store.revoke_api_key(key_id)
    if record is None:
        print(f"brokergraph: no API key {key_id!r}", file=sys.stderr)
        return 1
    # Another process (a running gateway) keeps a verified key for its cache's TTL.
    print(
        f"revoked API key {key_id} at {_when(record.revoked_at)}; running gateways refuse it "
        f"within {int(DEFAULT_CACHE_TTL_SECONDS)} s"
    )
    return 0


# --------------------------------------------------------------------------- db


def _configure_db(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="db_action", metavar="ACTION", required=True)
    actions.add_parser(
        "upgrade",
        help="upgrade the store's schema to this version's revision (back it up first)",
        description="Upgrade [store] url to this version's schema revision. A store made "
        "before migrations existed is recognised by its tables and stamped first; one whose "
        "tables match no known revision is left untouched.",
    )
    actions.add_parser(
        "current",
        help="print the store's revision; exit status 1 when an upgrade is due",
    )
    actions.add_parser("history", help="list the schema revisions this version knows")


def _db(args: argparse.Namespace) -> int:
    if args.db_action == "history":
        head = head_revision()
        for script in history():
            mark = "  (head)" if script.revision == head else ""
            print(f"{script.revision}  {script.doc}{mark}")
        return 0
    settings = load_settings(args.config)
    url = settings.store.url
    shown = make_url(url).render_as_string(hide_password=True)
    if args.db_action == "upgrade":
        before = asyncio.run(upgrade_store(url))
        if before.up_to_date and not before.legacy:
            print(f"store {shown} is at revision {before.head}: nothing to do")
        else:
            print(f"store {shown} upgraded: was {before.describe()}, now at {before.head}")
        return 0
    state = asyncio.run(read_store_schema(url))
    if state.up_to_date:
        print(f"store {shown} is {state.describe()} (head)")
        return 0
    print(
        f"store {shown} is {state.describe()}; head is {state.head}: run `brokergraph db upgrade`"
    )
    return 1


CORE_COMMANDS: tuple[CliCommand, ...] = (
    CliCommand(
        name="serve",
        help="serve the gateway (GraphQL on /graphql, /healthz, /readyz) until interrupted",
        run=_serve,
        configure=lambda p: _host_port(p, None),
    ),
    CliCommand(
        name="demo",
        help="start every sandbox and a gateway wired to them; print the GraphiQL URL and tokens",
        run=_demo,
        configure=_configure_demo,
    ),
    CliCommand(
        name="schema",
        help="print, write or check the composed SDL of this install",
        run=_schema,
        configure=_configure_schema,
    ),
    CliCommand(
        name="api-key",
        help="create, list or revoke API keys for server-to-server callers",
        run=_api_key,
        configure=_configure_api_key,
    ),
    CliCommand(
        name="db",
        help="the store's schema: upgrade it, show its revision, list the revisions",
        run=_db,
        configure=_configure_db,
    ),
    CliCommand(
        name="plugins",
        help="list plugins (and why any failed), connectors and their capabilities",
        run=_plugins,
    ),
    NEW_CONNECTOR,
)


def build_parser(commands: Sequence[CliCommand]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brokergraph",
        description="One GraphQL API over a broker's trading and back-office platforms.",
        epilog="Configuration: --config FILE or $BROKERGRAPH_CONFIG (TOML), overridden by "
        "BROKERGRAPH_<SECTION>__<KEY> environment variables. See the README.",
    )
    parser.add_argument("--version", action="version", version=f"brokergraph {__version__}")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    # Also accepted after the subcommand (`brokergraph serve --config FILE`), where people
    # put it; SUPPRESS keeps a subcommand without it from erasing one given before.
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument(
        "--config", metavar="FILE", default=argparse.SUPPRESS, help="TOML configuration file"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands:
        child = sub.add_parser(
            command.name, help=command.help, description=command.help, parents=[after]
        )
        command.configure(child)
        child.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    plugins = load_plugins()
    commands: list[Any] = plugins.collect("brokergraph_cli_commands")
    parser = build_parser(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    install_redaction()
    try:
        result: int = args.run(args)
    except ConfigError as error:
        print(f"brokergraph: configuration error: {error}", file=sys.stderr)
        return 2
    except (SchemaBehind, SchemaUnknown) as error:
        print(f"brokergraph: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    raise SystemExit(main())
