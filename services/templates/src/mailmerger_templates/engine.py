"""The rendering engine as the service runs it: in worker threads, with compiled versions cached.

Compiling a maximum-size template takes about two seconds and rendering a row up to its time
budget, so neither runs on the event loop; a capacity limiter bounds how many run at once, so a
burst of large templates queues instead of starving the process.

Compiled versions are kept in an LRU keyed by ``(template_id, version)``. A version never changes,
so an entry is never stale; callers check ownership in the database before asking for one.
Concurrent requests for the same uncompiled version share one compile.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import anyio
import anyio.to_thread

from mailmerger_templates.domain import VersionKey, check_size
from mailmerger_templates.errors import InvalidTemplate
from mailmerger_templates.rendering import (
    CompiledTemplate,
    Rendered,
    Renderer,
    RenderLimits,
    RowError,
    TemplateInvalid,
    TemplateSource,
)


class TemplateEngine:
    """Compiles and renders off the event loop; see the module docstring."""

    def __init__(self, renderer: Renderer, *, threads: int, cache_size: int) -> None:
        self._renderer = renderer
        self._limiter = anyio.CapacityLimiter(threads)
        self._cache_size = cache_size
        self._compiled: OrderedDict[VersionKey, CompiledTemplate] = OrderedDict()
        self._compiling: dict[VersionKey, asyncio.Task[CompiledTemplate]] = {}

    @property
    def limits(self) -> RenderLimits:
        return self._renderer.limits

    async def compile(self, source: TemplateSource) -> CompiledTemplate:
        """Check and compile ``source``; raise ``TemplateInvalid`` listing every problem."""
        return await anyio.to_thread.run_sync(self._renderer.compile, source, limiter=self._limiter)

    async def compiled(self, key: VersionKey, source: TemplateSource) -> CompiledTemplate:
        """The compiled form of version ``key``, whose content is ``source``."""
        found = self._compiled.get(key)
        if found is not None:
            self._compiled.move_to_end(key)
            return found
        task = self._compiling.get(key)
        if task is None:
            task = asyncio.create_task(self._compile_version(key, source), name=f"compile-{key}")
            self._compiling[key] = task
            task.add_done_callback(lambda done: self._compile_finished(key, done))
        # A waiter that is cancelled must not cancel the compile the others are waiting for.
        return await asyncio.shield(task)

    def _compile_finished(self, key: VersionKey, task: asyncio.Task[CompiledTemplate]) -> None:
        self._compiling.pop(key, None)
        if not task.cancelled():
            # Retrieved here so that a failure every waiter gave up on is not reported as lost.
            task.exception()

    async def _compile_version(self, key: VersionKey, source: TemplateSource) -> CompiledTemplate:
        compiled = await self.compile(source)
        self.remember(key, compiled)
        return compiled

    def remember(self, key: VersionKey, compiled: CompiledTemplate) -> None:
        """Keep ``compiled`` as version ``key`` (just written, so likely rendered soon).

        Safe before the write commits: a rolled-back id is never handed out again, and renders
        look the version up in the database before asking for its compiled form.
        """
        self._compiled[key] = compiled
        self._compiled.move_to_end(key)
        while len(self._compiled) > self._cache_size:
            self._compiled.popitem(last=False)

    async def render(self, compiled: CompiledTemplate, fields: Mapping[str, object]) -> Rendered:
        """Render one row; raise a ``RenderError`` saying why it cannot be rendered."""
        return await anyio.to_thread.run_sync(self._renderer.render, compiled, fields, limiter=self._limiter)

    async def render_batch(
        self, compiled: CompiledTemplate, rows: Sequence[Mapping[str, object]]
    ) -> list[Rendered | RowError]:
        """Render every row in order; a failing row yields a ``RowError`` in its place."""
        return await anyio.to_thread.run_sync(
            self._renderer.render_batch, compiled, rows, limiter=self._limiter
        )


async def compile_or_explain(engine: TemplateEngine, source: TemplateSource) -> CompiledTemplate:
    """Compile ``source``, or report it too large or invalid, with every problem and its place."""
    check_size(engine.limits, source)
    try:
        return await engine.compile(source)
    except TemplateInvalid as invalid:
        raise InvalidTemplate(invalid) from None
