"""The engine as the service runs it: compiled versions cached per (template_id, version), compiles shared."""

from __future__ import annotations

import asyncio

import pytest

from mailmerger_templates.engine import TemplateEngine
from mailmerger_templates.rendering import CompiledTemplate, Renderer, TemplateInvalid, TemplateSource

SOURCE = TemplateSource(subject="Hi {{ name }}", html="<p>{{ name }}</p>")


class CountingRenderer(Renderer):
    """A real renderer that counts its compiles."""

    def __init__(self) -> None:
        super().__init__()
        self.compiles = 0

    def compile(self, source: TemplateSource) -> CompiledTemplate:
        self.compiles += 1
        return super().compile(source)


async def test_concurrent_requests_for_a_version_share_one_compile() -> None:
    """Many renders of a version nobody compiled yet compile it once."""
    renderer = CountingRenderer()
    engine = TemplateEngine(renderer, threads=4, cache_size=8)
    compiled = await asyncio.gather(*(engine.compiled((1, 1), SOURCE) for _ in range(10)))
    assert renderer.compiles == 1
    assert all(each is compiled[0] for each in compiled)


async def test_least_recently_used_versions_are_evicted() -> None:
    """Past its size, the cache drops the version used longest ago, and compiles it again when asked."""
    renderer = CountingRenderer()
    engine = TemplateEngine(renderer, threads=1, cache_size=2)
    for key in ((1, 1), (2, 1), (1, 1), (3, 1)):  # (1, 1) is used again, so (2, 1) is the oldest
        await engine.compiled(key, SOURCE)
    assert renderer.compiles == 3
    await engine.compiled((1, 1), SOURCE)
    assert renderer.compiles == 3
    await engine.compiled((2, 1), SOURCE)
    assert renderer.compiles == 4


async def test_a_failed_compile_is_not_cached() -> None:
    """A version that does not compile raises to every waiter and is tried again next time."""
    renderer = CountingRenderer()
    engine = TemplateEngine(renderer, threads=1, cache_size=2)
    broken = TemplateSource(subject="s", html="{{ x")
    for _ in range(2):
        with pytest.raises(TemplateInvalid):
            await engine.compiled((9, 1), broken)
    assert renderer.compiles == 2


async def test_renders_run_in_worker_threads() -> None:
    """Rendering happens off the event loop, and gives the engine's result."""
    engine = TemplateEngine(Renderer(), threads=2, cache_size=2)
    compiled = await engine.compile(SOURCE)
    rendered = await engine.render(compiled, {"name": "Ada"})
    assert (rendered.subject, rendered.html) == ("Hi Ada", "<p>Ada</p>")
