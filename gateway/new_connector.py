"""``brokergraph new-connector NAME``: a complete connector distribution from the template.

The template (``gateway/templates/connector``, shipped as package data) is the
smallest connector that passes the conformance kit: a pyproject with the
``brokergraph.plugins`` entry point, a connector with one capability built on the
toolkit (settings with TLS, a vendor error table, a token session), an HTTPS
sandbox with the standard knobs, a README with the settings and the fidelity table,
and tests wiring the kit.  Generated, it is green; the author grows it from there.

Placeholders are ``{{name}}`` (the connector's name), ``{{Name}}`` (its class
prefix) and ``{{dist}}`` (the distribution); they are replaced in file contents and
paths, and a ``.tmpl`` suffix is dropped (so the template's Python files are not
modules of this package).
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from gateway.cli_commands import CliCommand

__all__ = ["COMMAND", "render_connector"]

#: A connector name: the settings section, the entry point and the package suffix.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_SUFFIX = ".tmpl"


def _template() -> Traversable:
    return files("gateway") / "templates" / "connector"


def _class_prefix(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_") if part)


def _distribution(name: str) -> str:
    return "brokergraph-" + name.replace("_", "-")


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name) or keyword.iskeyword(name) or name.endswith("_"):
        raise ValueError(
            f"connector name {name!r} must be a lowercase identifier of at most 32 "
            "characters (letters, digits, single underscores), e.g. acme_fx"
        )
    if "__" in name:
        raise ValueError(f"connector name {name!r} must not hold a double underscore")


def render_connector(name: str, target: Path) -> list[Path]:
    """Write the connector distribution for ``name`` into ``target`` (new or empty).

    Returns the files written.  ``ValueError`` for a bad name or a non-empty target.
    """
    _check_name(name)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(f"{target} exists and is not an empty directory")
    values = {"name": name, "Name": _class_prefix(name), "dist": _distribution(name)}

    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        return text

    written: list[Path] = []

    def walk(node: Traversable, into: Path) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.name == "__pycache__":
                continue
            destination = into / fill(child.name).removesuffix(_SUFFIX)
            if child.is_dir():
                walk(child, destination)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_text(fill(child.read_text(encoding="utf-8")), encoding="utf-8")
            written.append(destination)

    walk(_template(), target)
    return written


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the connector's name, e.g. acme_fx")
    parser.add_argument(
        "--output",
        metavar="DIR",
        help="where to write it (default: ./brokergraph-NAME); must be new or empty",
    )


def _run(args: argparse.Namespace) -> int:
    name: str = args.name
    target = Path(args.output or _distribution(name))
    try:
        written = render_connector(name, target)
    except ValueError as error:
        print(f"brokergraph: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files to {target}/ (connector {name!r})")
    print(f'next: pip install -e "{target}[test]" && pytest {target}')
    return 0


COMMAND = CliCommand(
    name="new-connector",
    help="write a new connector distribution (connector, sandbox, tests, README) to start from",
    run=_run,
    configure=_configure,
)
