"""The command-line contract: a subcommand a plugin adds to ``brokergraph``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CliCommand"]


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


@dataclass(frozen=True, slots=True)
class CliCommand:
    """``brokergraph <name>``: ``configure`` adds its options, ``run`` returns the exit code."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    configure: Callable[[argparse.ArgumentParser], None] = field(default=_no_arguments)
