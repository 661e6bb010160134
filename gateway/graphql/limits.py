"""Depth, alias and repeated-field limits, each in time bounded by the document.

Strawberry's limiter rules expand every fragment spread anew, so a chain of
fragments each spreading the previous one twice costs 2**n steps before the
refusal, and their recursion runs before graphql-core's own nesting guard.  These
rules remember each fragment's depth and alias count, so checking a document
takes time linear in its size, and they run while graphql-core visits the
document (after its guard against fragments nested too deeply).  Each refusal
carries a stable ``extensions.code``.

graphql-core's check that same-named fields can merge compares every pair of them
(and every pair of fragments spread side by side): 600 copies of ``viewer { role }``
— a cheap document by cost — hold the event loop for a second.  So a selection set
may hold one response name at most :data:`MAX_REPEATS` times, counting what inline
and named fragments bring into it and merging same-named fields' selections as
execution does; that walk stops after :data:`WALK_BUDGET` selections, and it runs
on entering the document and aborts the validation, so the pairwise comparison
never starts on such a document.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from graphql.validation.validate import ValidationAbortedError

from gateway.graphql.cost import saturate

__all__ = [
    "MAX_REPEATS",
    "WALK_BUDGET",
    "alias_limit_rule",
    "depth_limit_rule",
    "repeated_fields_rule",
]

#: How often one response name may appear in one selection set (fragments included):
#: generous for fragments that each select ``id``, far below a pairwise blow-up.
MAX_REPEATS: Final = 100
#: How many selections the repeated-fields walk may visit (fragments expanded).
WALK_BUDGET: Final = 20_000


class _FragmentFold(ValidationRule):
    """A value of each selection set, each fragment's value computed once."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self._fragments: dict[str, int] = {}
        self._in_progress: set[str] = set()

    def combine(self, value: int, part: int) -> int:
        """Fold one selection's value into its selection set's (max for depth, sum ...)."""
        raise NotImplementedError

    def field_value(self, node: FieldNode, children: int) -> int:
        """The value of a field, given the value of its selection set (0 if none)."""
        raise NotImplementedError

    def fold(self, selections: SelectionSetNode) -> int:
        value = 0
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                children = self.fold(selection.selection_set) if selection.selection_set else 0
                part = self.field_value(selection, children)
            elif isinstance(selection, InlineFragmentNode):
                part = self.fold(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                part = self._fragment(selection.name.value)
            value = self.combine(value, part)
        return value

    def _fragment(self, name: str) -> int:
        known = self._fragments.get(name)
        if known is not None:
            return known
        fragment = self.context.get_fragment(name)
        if fragment is None or name in self._in_progress:
            return 0  # unknown or cyclic fragments are reported by other rules
        self._in_progress.add(name)
        value = self._fragments[name] = self.fold(fragment.selection_set)
        self._in_progress.discard(name)
        return value


def depth_limit_rule(max_depth: int) -> type[ValidationRule]:
    """Refuse operations nesting fields deeper than ``max_depth`` (introspection is free).

    The depth counts the levels below the root fields, as Strawberry's limiter did:
    ``{ a { b } }`` has depth 1.
    """

    class DepthLimit(_FragmentFold):
        def combine(self, value: int, part: int) -> int:
            return max(value, part)

        def field_value(self, node: FieldNode, children: int) -> int:
            if node.name.value.startswith("__") or node.selection_set is None:
                return 0
            return 1 + children

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            depth = self.fold(node.selection_set)
            if depth > max_depth:
                name = node.name.value if node.name else "anonymous"
                self.report_error(
                    GraphQLError(
                        f"'{name}' exceeds maximum operation depth of {max_depth}",
                        node,
                        extensions={"code": "QUERY_TOO_DEEP", "depth": depth, "limit": max_depth},
                    )
                )

    return DepthLimit


def alias_limit_rule(max_aliases: int) -> type[ValidationRule]:
    """Refuse documents whose operations hold more than ``max_aliases`` aliased fields.

    Aliases inside a fragment count once per spread, as if the fragment were inlined.
    """

    class AliasLimit(_FragmentFold):
        def combine(self, value: int, part: int) -> int:
            return saturate(value + part)

        def field_value(self, node: FieldNode, children: int) -> int:
            return saturate(children + (1 if node.alias else 0))

        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self._total = 0

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            self._total = saturate(self._total + self.fold(node.selection_set))

        def leave_document(self, *_: Any) -> None:
            if self._total > max_aliases:
                self.report_error(
                    GraphQLError(
                        f"{self._total} aliases found. Allowed: {max_aliases}",
                        extensions={
                            "code": "TOO_MANY_ALIASES",
                            "aliases": self._total,
                            "limit": max_aliases,
                        },
                    )
                )

    return AliasLimit


class _Refused(Exception):
    """Raised out of the walk at the first reason to refuse."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def repeated_fields_rule(
    max_repeats: int = MAX_REPEATS, budget: int = WALK_BUDGET
) -> type[ValidationRule]:
    """Abort the validation of a document repeating a response name too often.

    Fields are merged as execution merges them: the selections of every ``a`` in a
    set (through inline and named fragments) form one set below ``a``, and no name
    may appear there more than ``max_repeats`` times either.  The walk stops after
    ``budget`` selections (a document that large is refused as QUERY_TOO_COMPLEX).
    It checks the whole document on entering it, before any rule (whatever its
    place in the list) has looked at a selection set.
    """

    class RepeatedFields(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self._left = budget
            self._checked: set[tuple[int, ...]] = set()
            self._in_progress: set[str] = set()

        def enter_document(self, *_: Any) -> None:
            try:
                for definition in self.context.document.definitions:
                    if isinstance(definition, OperationDefinitionNode):
                        self._check((definition.selection_set,))
            except _Refused as refused:
                raise ValidationAbortedError(
                    refused.message, extensions={"code": refused.code, "limit": max_repeats}
                ) from None

        def _check(self, sets: tuple[SelectionSetNode, ...]) -> None:
            """Check one merged selection set, then the merged sets below it."""
            key = tuple(map(id, sets))
            if key in self._checked:
                return  # the same fragments merged the same way: already checked
            self._checked.add(key)
            names: Counter[str] = Counter()
            below: dict[str, list[SelectionSetNode]] = {}
            for selections in sets:
                self._collect(selections, names, below)
            for merged in below.values():
                self._check(tuple(merged))

        def _collect(
            self,
            selections: SelectionSetNode,
            names: Counter[str],
            below: dict[str, list[SelectionSetNode]],
        ) -> None:
            for selection in selections.selections:
                self._left -= 1
                if self._left < 0:
                    raise _Refused(
                        f"The document expands to more than {budget} selections.",
                        "QUERY_TOO_COMPLEX",
                    )
                if isinstance(selection, FieldNode):
                    name = (selection.alias or selection.name).value
                    names[name] += 1
                    if names[name] > max_repeats:
                        raise _Refused(
                            f"A selection set holds '{name}' more than {max_repeats} "
                            "times (fragments and merged fields included).",
                            "TOO_MANY_REPEATED_FIELDS",
                        )
                    if selection.selection_set is not None:
                        below.setdefault(name, []).append(selection.selection_set)
                elif isinstance(selection, InlineFragmentNode):
                    self._collect(selection.selection_set, names, below)
                elif isinstance(selection, FragmentSpreadNode):
                    self._spread(selection.name.value, names, below)

        def _spread(
            self, name: str, names: Counter[str], below: dict[str, list[SelectionSetNode]]
        ) -> None:
            fragment = self.context.get_fragment(name)
            if fragment is None or name in self._in_progress:
                return  # unknown or cyclic fragments are reported by other rules
            self._in_progress.add(name)
            self._collect(fragment.selection_set, names, below)
            self._in_progress.discard(name)

    return RepeatedFields
