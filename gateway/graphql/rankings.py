"""Rankings of positions opened in a period at one level (symbol, category, asset
class), shared by an account's analytics and a partner's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import strawberry
from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from gateway import models
from gateway.errors import InvalidInput

__all__ = ["MAX_RANKED", "OpenedRank", "RankingLevel", "check_rankings", "ranking"]

RankingLevel = strawberry.enum(
    models.RankingLevel,
    name="RankingLevel",
    description="How finely positions opened are ranked: by symbol, by the platform's"
    " symbol category, or by its asset class.",
)
#: The longest ranking a field answers (``first``).
MAX_RANKED = 500
_SHARE_PLACES = Decimal("0.0001")


@strawberry.type(description="Positions opened in the period under one name of a level.")
class OpenedRank:
    name: str | None = strawberry.field(
        description="The symbol, category or asset class; null counts the symbols the"
        " platform's symbol list does not classify at this level (never a guess)."
    )
    positions: int = strawberry.field(description="Positions opened in the period.")
    share: Decimal = strawberry.field(
        description="positions / all positions opened in the period, to 4 places."
    )


def _check_first(first: Any) -> None:
    if not isinstance(first, int) or not 1 <= first <= MAX_RANKED:
        raise InvalidInput(f"`first` must be between 1 and {MAX_RANKED}", field=["first"])


def _rankings(selections: Iterable[Selection]) -> Iterable[SelectedField]:
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name == "mostOpened":
                yield selection
        elif isinstance(selection, FragmentSpread | InlineFragment):
            yield from _rankings(selection.selections)


def check_rankings(info: Info[Any, Any]) -> None:
    """InvalidInput for a ``mostOpened(first:)`` out of range under this analytics
    field, before its read: bad input makes no upstream call."""
    for field in info.selected_fields:
        for ranked in _rankings(field.selections):
            first = ranked.arguments.get("first", 10)
            # A literal comes as its source text (strawberry's selected fields).
            try:
                first = int(first)
            except (TypeError, ValueError):
                continue  # not an Int: GraphQL's validation has refused it already
            _check_first(first)


def ranking(
    levels: Mapping[models.RankingLevel, Sequence[models.OpenedRank]],
    level: models.RankingLevel,
    first: int,
) -> list[OpenedRank] | None:
    """The first ``first`` entries of ``level`` with their shares, or None when the
    platform does not classify at that level; a bad ``first`` is InvalidInput."""
    _check_first(first)
    entries = levels.get(level)
    if entries is None:
        return None
    total = sum(e.positions for e in entries)
    return [
        OpenedRank(
            name=e.name,
            positions=e.positions,
            share=(Decimal(e.positions) / Decimal(total)).quantize(_SHARE_PLACES, ROUND_HALF_EVEN),
        )
        for e in entries[:first]
    ]
