"""The fidelity table: each vendor rule a sandbox mimics, and the test that holds it.

A plugin's README carries a Markdown table with exactly these columns::

    | rule | tag | sandbox | test |
    |---|---|---|---|
    | "Responses out of order" | verified | `reorder=True` … | `tests/test_x.py::test_y` |

* ``rule``: the vendor's rule, quoted or named shortly (non-empty);
* ``tag``: how we know it: ``verified`` (the vendor's own documentation),
  ``observed`` (seen in third-party code or traffic), ``inferred`` (our reading:
  the sandbox needs a knob for the alternative);
* ``sandbox``: what the sandbox does about it (non-empty);
* ``test``: one or more ``tests/<file>.py::<name>`` (or ``::<Class>::<name>``),
  separated by commas, each the name of a test defined in that file (checked by
  parsing the file, not importing it, so a table check costs no imports;
  a case a class inherits from a kit cannot be named: name a test of the file).

A plugin's test calls :func:`check_fidelity_table` on its README and tests
directory; ``required`` names rules (substrings of the rule cell) that must have a
row with a given tag, e.g. the verified rules of the vendor facts, so a row cannot
quietly be dropped.  Every failure is an ``AssertionError`` naming the row.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TAGS", "FidelityRow", "check_fidelity_table", "read_fidelity_table"]

TAGS = frozenset({"verified", "observed", "inferred"})
_HEADER = ["rule", "tag", "sandbox", "test"]
_TEST_REF = re.compile(r"tests/(?P<file>[\w/]+\.py)::(?P<name>\w+(?:::\w+)?)")
# What may sit between test references in the test cell besides the references.
_SEPARATORS = re.compile(r"[\s,`]*")


@dataclass(frozen=True)
class FidelityRow:
    line: int  # 1-based line of the README, for messages
    rule: str
    tag: str
    sandbox: str
    tests: tuple[str, ...]  # each "tests/<file>.py::<name>"


def _cells(line: str) -> list[str]:
    # A rule may quote a "|" as "\|"; only unescaped pipes split cells.
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", body)]


def read_fidelity_table(readme: Path) -> list[FidelityRow]:
    """The rows of every ``| rule | tag | sandbox | test |`` table in *readme*.

    Raises AssertionError when there is no such table or a row is malformed.
    """
    lines = readme.read_text(encoding="utf-8").splitlines()
    rows: list[FidelityRow] = []
    tables = 0
    index = 0
    while index < len(lines):
        if not lines[index].lstrip().startswith("|"):
            index += 1
            continue
        if [cell.lower() for cell in _cells(lines[index])] != _HEADER:
            index += 1
            continue
        tables += 1
        index += 2  # the header and its |---| line
        while index < len(lines) and lines[index].lstrip().startswith("|"):
            rows.append(_row(readme, index + 1, _cells(lines[index])))
            index += 1
    if tables == 0:
        raise AssertionError(
            f"{readme}: no fidelity table (a table headed | rule | tag | sandbox | test |)"
        )
    if not rows:
        raise AssertionError(f"{readme}: the fidelity table has no rows")
    return rows


def _row(readme: Path, line: int, cells: list[str]) -> FidelityRow:
    where = f"{readme}:{line}"
    if len(cells) != len(_HEADER):
        raise AssertionError(
            f"{where}: a fidelity row needs {len(_HEADER)} cells, found {len(cells)}"
        )
    rule, tag, sandbox, test_cell = cells
    tag = tag.strip("`*_ ").lower()
    if not rule:
        raise AssertionError(f"{where}: the rule cell is empty")
    if tag not in TAGS:
        raise AssertionError(f"{where}: tag {tag!r} is not one of {sorted(TAGS)}")
    if not sandbox:
        raise AssertionError(f"{where}: the sandbox cell of {rule!r} is empty")
    tests = tuple(match.group(0) for match in _TEST_REF.finditer(test_cell))
    if not tests:
        raise AssertionError(f"{where}: {rule!r} names no test (write tests/<file>.py::<name>)")
    leftover = _TEST_REF.sub("", test_cell)
    if not _SEPARATORS.fullmatch(leftover):
        raise AssertionError(
            f"{where}: the test cell of {rule!r} holds more than test references: "
            f"{leftover.strip()!r}"
        )
    return FidelityRow(line=line, rule=rule, tag=tag, sandbox=sandbox, tests=tests)


def _defined_tests(path: Path) -> set[str]:
    """Names of the test functions in *path*: ``name`` and ``Class::name``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, functions):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            methods = (item.name for item in node.body if isinstance(item, functions))
            names.update(f"{node.name}::{method}" for method in methods)
    return {name for name in names if name.rsplit("::", 1)[-1].startswith("test")}


def check_fidelity_table(
    readme: Path,
    tests_root: Path,
    *,
    required: Mapping[str, str] | None = None,
) -> None:
    """Assert *readme*'s fidelity table is well formed and every named test exists.

    ``tests/<file>.py`` in a row is the file ``<file>.py`` under *tests_root*, the
    plugin's ``tests`` directory (or ``tests/<file>.py`` under it, should *tests_root*
    be the plugin's root).  *required* maps a rule's short name (a case-insensitive
    substring of a rule cell) to the tag its row must carry.
    """
    rows = read_fidelity_table(readme)
    defined: dict[Path, set[str]] = {}
    problems: list[str] = []
    for row in rows:
        for ref in row.tests:
            match = _TEST_REF.fullmatch(ref)
            assert match is not None  # read_fidelity_table only keeps full matches
            path = tests_root / match.group("file")
            if not path.is_file() and (tests_root / "tests" / match.group("file")).is_file():
                path = tests_root / "tests" / match.group("file")
            if not path.is_file():
                problems.append(f"{readme}:{row.line}: {ref}: no file {path}")
                continue
            if path not in defined:
                defined[path] = _defined_tests(path)
            if match.group("name") not in defined[path]:
                test_name = match.group("name")
                problems.append(f"{readme}:{row.line}: {ref}: no test {test_name!r} in {path}")
    for name, tag in (required or {}).items():
        matching = [row for row in rows if name.lower() in row.rule.lower()]
        if not matching:
            problems.append(f"{readme}: no fidelity row for the {tag} rule {name!r}")
        elif all(row.tag != tag for row in matching):
            lines = ", ".join(str(row.line) for row in matching)
            problems.append(f"{readme}: the rule {name!r} (line {lines}) must be tagged {tag}")
    if problems:
        raise AssertionError("fidelity table out of date:\n" + "\n".join(problems))
