"""The schema's two printed forms: the subgraph SDL a router composes, the public SDL
tools read.

Strawberry prints the federation schema with its internals (``_Any``, ``_Entity``,
``_Service``, ``Query._entities``, ``Query._service``) and answers ``_service { sdl }``
with that text.  Federation libraries (Apollo's ``printSubgraphSchema``) leave the
internals out — the router adds them itself — and so does :func:`subgraph_sdl`:
the ``@link`` and ``@key`` applications stay, their definitions come from the
federation spec the ``@link`` names.

That SDL still names directives it does not define, so graphql-js's and
graphql-core's ``buildSchema`` refuse it (``Unknown directive "@link"``).
:func:`public_sdl` is the schema clients see, without federation: what codegen,
linters and IDEs read (committed as schema/schema.graphql, beside
schema/subgraph.graphql).
"""

from __future__ import annotations

from typing import Any, Protocol

import strawberry
from graphql import (
    REMOVE,
    DirectiveDefinitionNode,
    DirectiveNode,
    DocumentNode,
    ObjectTypeDefinitionNode,
    TypeDefinitionNode,
    Visitor,
    parse,
    print_ast,
    specified_directives,
    visit,
)
from strawberry.types.info import Info

__all__ = ["FederationService", "public_sdl", "subgraph_sdl"]

#: What strawberry adds for the router, named as the federation spec names them.
_INTERNAL_TYPES = frozenset({"_Any", "_Entity", "_Service"})
_INTERNAL_ROOT_FIELDS = frozenset({"_entities", "_service"})
_SPECIFIED_DIRECTIVES = frozenset(d.name for d in specified_directives)


def subgraph_sdl(printed: str) -> str:
    """Strawberry's printed federation schema without the federation internals."""
    document = parse(printed)
    definitions: list[Any] = []
    for definition in document.definitions:
        if isinstance(definition, TypeDefinitionNode) and definition.name.value in _INTERNAL_TYPES:
            continue
        if isinstance(definition, ObjectTypeDefinitionNode) and definition.name.value == "Query":
            fields = definition.fields or ()
            definition = ObjectTypeDefinitionNode(
                name=definition.name,
                description=definition.description,
                interfaces=definition.interfaces,
                directives=definition.directives,
                fields=tuple(f for f in fields if f.name.value not in _INTERNAL_ROOT_FIELDS),
            )
        definitions.append(definition)
    return print_ast(DocumentNode(definitions=tuple(definitions)))


class _UndefinedDirectivesRemoved(Visitor):
    def __init__(self, defined: frozenset[str]) -> None:
        super().__init__()
        self.defined = defined

    def enter_directive(self, node: DirectiveNode, *_: Any) -> Any:
        return None if node.name.value in self.defined else REMOVE


def public_sdl(subgraph: str) -> str:
    """The subgraph SDL without the applications of directives it does not define
    (federation's ``@link``, ``@key`` …), which every ``buildSchema`` accepts."""
    document = parse(subgraph)
    defined = _SPECIFIED_DIRECTIVES | {
        d.name.value for d in document.definitions if isinstance(d, DirectiveDefinitionNode)
    }
    stripped: DocumentNode = visit(document, _UndefinedDirectivesRemoved(defined))
    return print_ast(stripped)


class _PrintsSubgraph(Protocol):
    def subgraph_sdl(self) -> str: ...


@strawberry.type(name="_Service")
class _Service:
    sdl: str


@strawberry.type
class FederationService:
    """``Query._service`` answering with :func:`subgraph_sdl` (strawberry keeps a root
    type's own ``_service`` instead of adding its own, which prints the internals)."""

    @strawberry.field(name="_service")
    def service(self, info: Info) -> _Service:
        schema: _PrintsSubgraph = info.schema  # type: ignore[assignment]
        return _Service(sdl=schema.subgraph_sdl())
