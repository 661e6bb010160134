"""Strawberry's schema-extension runner with each extension class's hooks worked out once.

Strawberry's own runner builds, per request and per stage, a context manager that
inspects every extension's hook anew (``inspect.isgeneratorfunction``, a bound
method, ``contextlib.contextmanager`` around it) and an exit stack even for one
hook: about a fifth of a warm read.  Here the inspection is done once per
combination of extension classes and cached on the schema; a request only calls
the prepared factories.  A stage with no hook is a shared null context, one with
a single synchronous hook that hook's own context manager; only several hooks
need a stack.  Hooks run in the same order and with the same semantics
(generator, async generator, plain or async callable) as Strawberry's.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext

__all__ = ["PreparedExtensionsRunner", "StagePlans"]

Manager = contextlib.AbstractContextManager[None] | contextlib.AbstractAsyncContextManager[None]
Traceback = TracebackType | None
Factory = Callable[[SchemaExtension], Manager]

_STAGES: Final = ("on_operation", "on_validate", "on_parse", "on_execute")
_NONE: Final = contextlib.nullcontext()  # usable by ``with`` and ``async with``, reusable


def _factory(hook: Callable[..., Any]) -> tuple[Factory, bool]:
    """A context-manager factory for an unbound hook and whether it is async."""
    if inspect.isgeneratorfunction(hook):
        return contextlib.contextmanager(hook), False
    if inspect.isasyncgenfunction(hook):
        return contextlib.asynccontextmanager(hook), True
    if inspect.iscoroutinefunction(hook):

        @contextlib.asynccontextmanager
        async def awaited(extension: SchemaExtension) -> AsyncIterator[None]:
            await hook(extension)
            yield

        return awaited, True
    if callable(hook):

        @contextlib.contextmanager
        def called(extension: SchemaExtension) -> Iterator[None]:
            hook(extension)
            yield

        return called, False
    raise ValueError(f"Hook {hook!r} must be callable")


@dataclass(frozen=True, slots=True)
class _Hook:
    index: int  # the extension's position in the request's list
    factory: Factory
    is_async: bool
    stage: str


class StagePlans:
    """For one tuple of extension classes: each stage's hooks, in extension order."""

    def __init__(self, classes: tuple[type[SchemaExtension], ...]) -> None:
        self.stages: dict[str, tuple[_Hook, ...]] = {}
        for stage in _STAGES:
            default = getattr(SchemaExtension, stage)
            hooks = []
            for index, cls in enumerate(classes):
                hook = getattr(cls, stage)
                if hook is not default:
                    factory, is_async = _factory(hook)
                    hooks.append(_Hook(index, factory, is_async, stage))
            self.stages[stage] = tuple(hooks)


class _SingleSync:
    """One synchronous hook, entered by ``with`` or ``async with`` alike."""

    __slots__ = ("manager",)

    def __init__(self, manager: contextlib.AbstractContextManager[None]) -> None:
        self.manager = manager

    def __enter__(self) -> None:
        self.manager.__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: Traceback
    ) -> bool | None:
        return self.manager.__exit__(kind, error, tb)

    async def __aenter__(self) -> None:
        self.manager.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: Traceback
    ) -> bool | None:
        return self.manager.__exit__(kind, error, tb)


class _Several:
    """Several hooks, entered in order and left in reverse, as Strawberry's stack does."""

    __slots__ = ("async_stack", "extensions", "hooks", "stack")

    def __init__(self, hooks: tuple[_Hook, ...], extensions: list[SchemaExtension]) -> None:
        self.hooks = hooks
        self.extensions = extensions

    def __enter__(self) -> None:
        self.stack = contextlib.ExitStack()
        self.stack.__enter__()
        for hook in self.hooks:
            if hook.is_async:
                raise RuntimeError(
                    f"SchemaExtension hook {self.extensions[hook.index]}.{hook.stage} "
                    "failed to complete synchronously."
                )
            manager = hook.factory(self.extensions[hook.index])
            assert isinstance(manager, contextlib.AbstractContextManager)
            self.stack.enter_context(manager)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: Traceback
    ) -> bool | None:
        return self.stack.__exit__(kind, error, tb)

    async def __aenter__(self) -> None:
        self.async_stack = contextlib.AsyncExitStack()
        await self.async_stack.__aenter__()
        for hook in self.hooks:
            manager = hook.factory(self.extensions[hook.index])
            if isinstance(manager, contextlib.AbstractAsyncContextManager):
                await self.async_stack.enter_async_context(manager)
            else:
                self.async_stack.enter_context(manager)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: Traceback
    ) -> bool | None:
        return await self.async_stack.__aexit__(kind, error, tb)


class PreparedExtensionsRunner(SchemaExtensionsRunner):
    """Strawberry's runner, its stages built from :class:`StagePlans` made beforehand."""

    def __init__(
        self,
        execution_context: ExecutionContext,
        extensions: list[SchemaExtension],
        plans: StagePlans,
    ) -> None:
        super().__init__(execution_context, extensions)
        self.plans = plans

    def _stage(self, stage: str) -> Any:
        hooks = self.plans.stages[stage]
        if not hooks:
            return _NONE
        if len(hooks) == 1 and not hooks[0].is_async:
            manager = hooks[0].factory(self.extensions[hooks[0].index])
            assert isinstance(manager, contextlib.AbstractContextManager)
            return _SingleSync(manager)
        return _Several(hooks, self.extensions)

    def operation(self) -> Any:
        return self._stage("on_operation")

    def validation(self) -> Any:
        return self._stage("on_validate")

    def parsing(self) -> Any:
        return self._stage("on_parse")

    def executing(self) -> Any:
        return self._stage("on_execute")
