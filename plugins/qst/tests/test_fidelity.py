"""The README's fidelity table stays true: every test it names exists, every verified QST
rule of the vendor facts (and every inferred one the connector depends on) has its row,
with the tag the facts give it.  The checker is the kit's (``gateway.testing.fidelity``);
the last tests show it refuses what it must."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.testing.fidelity import check_fidelity_table, read_fidelity_table

README = Path(__file__).resolve().parents[1] / "README.md"
TESTS = Path(__file__).resolve().parent

#: Rules of the vendor research on QST the sandbox mimics, by a phrase of their README
#: row, with the tag the research gives them.
RULES = {
    # [V] in the vendor facts or the seed text (001)
    "out of order": "verified",
    "one server response": "verified",
    "first request must be a LoginRequest": "verified",
    "list of available accounts": "verified",
    "serverMessage holds the reason": "verified",
    "rejects are text notifications": "verified",
    "accompanied by a text notification": "verified",
    "numbers as strings": "verified",
    "ServerErrorMessage": "verified",
    "if invalid, USD is used": "verified",
    "general workflow": "verified",
    '"New Order"': "verified",
    "isRelogin": "verified",
    # [I]/[D]: our reading, which the connector depends on
    "request id is echoed": "inferred",
    "PlaceOrderResponse carries the new order number": "inferred",
    "buying power and max order size": "inferred",
    "replacement a new order number": "inferred",
    "every account of the user": "inferred",
    "the other statuses' texts": "inferred",
    "password sent as a hash": "inferred",
    "close 4101": "inferred",
    "close 4102": "inferred",
    "LogoutRequest": "inferred",
    "binary WebSocket frame": "inferred",
}


def test_the_readme_fidelity_table_is_true() -> None:
    check_fidelity_table(README, TESTS, required=RULES)


# --------------------------------------------------------------------------- the checker

GOOD_ROW = "| answers out of order | verified | jitter | `tests/test_a.py::test_one` |"


def write(tmp_path: Path, rows: list[str], tests: str = "def test_one() -> None: ...\n") -> Path:
    (tmp_path / "tests").mkdir(exist_ok=True)
    (tmp_path / "tests" / "test_a.py").write_text(tests)
    readme = tmp_path / "README.md"
    table = ["| rule | tag | sandbox | test |", "|---|---|---|---|", *rows]
    readme.write_text("# x\n\n" + "\n".join(table) + "\n\nafter\n")
    return readme


def test_the_checker_accepts_a_true_table_with_class_tests(tmp_path: Path) -> None:
    tests = (
        "class TestK:\n    async def test_two(self) -> None: ...\n\ndef test_one() -> None: ...\n"
    )
    both = "`tests/test_a.py::TestK::test_two`, tests/test_a.py::test_one"
    row = f"| a \\| b | inferred | knob | {both} |"
    readme = write(tmp_path, [GOOD_ROW, row], tests)
    check_fidelity_table(readme, tmp_path / "tests", required={"a | b": "inferred"})
    check_fidelity_table(readme, tmp_path)  # the plugin's root will do as well
    rows = read_fidelity_table(readme)
    assert [r.rule for r in rows] == ["answers out of order", "a | b"]
    assert rows[1].tests == ("tests/test_a.py::TestK::test_two", "tests/test_a.py::test_one")


@pytest.mark.parametrize(
    ("rows", "required", "message"),
    [
        (
            ["| x | verified | y | `tests/test_a.py::test_gone` |"],
            {},
            "no test 'test_gone'",
        ),
        (["| x | verified | y | `tests/test_b.py::test_one` |"], {}, "no file"),
        (["| x | verified | y | `tests/test_a.py::TestK::test_one` |"], {}, "no test"),
        (["| x | guessed | y | `tests/test_a.py::test_one` |"], {}, "tag 'guessed'"),
        (["| x | verified |  | `tests/test_a.py::test_one` |"], {}, "sandbox cell"),
        (["| x | verified | y | see the code |"], {}, "names no test"),
        (["| x | verified | y | `tests/test_a.py::test_one` and more |"], {}, "more than"),
        ([GOOD_ROW], {"one response per request": "verified"}, "no fidelity row"),
        ([GOOD_ROW], {"out of order": "inferred"}, "must be tagged inferred"),
    ],
    ids=[
        "missing-test",
        "missing-file",
        "missing-method",
        "bad-tag",
        "empty-sandbox",
        "no-test",
        "prose",
        "missing-rule",
        "wrong-tag",
    ],
)
def test_the_checker_refuses_what_is_not_true(
    tmp_path: Path, rows: list[str], required: dict[str, str], message: str
) -> None:
    readme = write(tmp_path, rows)
    with pytest.raises(AssertionError, match=message):
        check_fidelity_table(readme, tmp_path / "tests", required=required)


def test_the_checker_refuses_a_readme_without_the_table(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("| rule | sandbox |\n|---|---|\n| a | b |\n")
    with pytest.raises(AssertionError, match="no fidelity table"):
        check_fidelity_table(readme, tmp_path)
