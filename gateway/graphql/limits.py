"""Depth, alias and repeated-field limits, computed once per fragment.

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
and named fragments bring into it; that rule runs first and aborts the validation,
so the pairwise comparison never starts on such a document.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
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

__all__ = ["MAX_REPEATS", "alias_limit_rule", "depth_limit_rule", "repeated_fields_rule"]

#: How often one response name may appear in one selection set (fragments included):
#: generous for fragments that each select ``id``, far below a pairwise blow-up.
MAX_REPEATS: Final = 10


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


class _TooManyRepeats(Exception):
    """Raised out of the walk at the first name seen too often."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def repeated_fields_rule(max_repeats: int = MAX_REPEATS) -> type[ValidationRule]:
    """Abort the validation of a document repeating a response name too often.

    It checks the whole document on entering it, before any rule (whatever its
    place in the list) has looked at a selection set.
    """

    class RepeatedFields(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self._fragments: dict[str, Counter[str]] = {}
            self._in_progress: set[str] = set()

        def enter_document(self, *_: Any) -> None:
            try:
                for definition in self.context.document.definitions:
                    if isinstance(definition, OperationDefinitionNode):
                        self._top(definition.selection_set)
            except _TooManyRepeats as repeated:
                raise ValidationAbortedError(
                    f"A selection set holds '{repeated.name}' more than {max_repeats} "
                    "times (fragments included).",
                    extensions={"code": "TOO_MANY_REPEATED_FIELDS", "limit": max_repeats},
                ) from None

        def _top(self, selections: SelectionSetNode) -> Counter[str]:
            """The response names at the top of ``selections``; nested sets are checked."""
            names: Counter[str] = Counter()
            for selection in selections.selections:
                if isinstance(selection, FieldNode):
                    self._add(names, {(selection.alias or selection.name).value: 1})
                    if selection.selection_set is not None:
                        self._top(selection.selection_set)
                elif isinstance(selection, InlineFragmentNode):
                    self._add(names, self._top(selection.selection_set))
                elif isinstance(selection, FragmentSpreadNode):
                    self._add(names, self._fragment(selection.name.value))
            return names

        def _add(self, names: Counter[str], more: Mapping[str, int]) -> None:
            for name, count in more.items():
                names[name] += count
                if names[name] > max_repeats:
                    raise _TooManyRepeats(name)

        def _fragment(self, name: str) -> Counter[str]:
            known = self._fragments.get(name)
            if known is not None:
                return known
            fragment = self.context.get_fragment(name)
            if fragment is None or name in self._in_progress:
                return Counter()  # unknown or cyclic fragments are reported by other rules
            self._in_progress.add(name)
            names = self._fragments[name] = self._top(fragment.selection_set)
            self._in_progress.discard(name)
            return names

    return RepeatedFields
