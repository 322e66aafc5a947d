"""The Redis cache of reads: used on the hot path, never returns content older than the last write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from litestar import Litestar
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from mailmerger_templates import service
from mailmerger_templates.cache import TemplateCache
from mailmerger_templates.reads import UserReads, template_json
from mailmerger_templates.schemas import TemplateUpdate
from mailmerger_templates.writes import write_transaction
from tests.templates.helpers import User, counting_statements, create_template


async def test_a_cached_list_is_served_without_the_database(
    client: httpx.AsyncClient,
    new_user: Callable[[], User],
    templates_app: Litestar,
    redis_client: aioredis.Redis,
    redis_prefix: str,
) -> None:
    """The second identical list and read run no SQL: their bodies come from the user's Redis hash."""
    user = new_user()
    created = await create_template(client, user)
    first_list = await client.get("/v1/templates", headers=user.headers)
    first_read = await client.get(f"/v1/templates/{created['id']}", headers=user.headers)
    with counting_statements(templates_app) as statements:
        second_list = await client.get("/v1/templates", headers=user.headers)
        second_read = await client.get(f"/v1/templates/{created['id']}", headers=user.headers)
    assert statements == []
    assert (second_list.content, second_read.content) == (first_list.content, first_read.content)
    cached = await redis_client.hgetall(f"{redis_prefix}templates:{user.id}:reads")
    assert cached == {
        b"page:20:": first_list.content,
        f"template:{created['id']}".encode(): first_read.content,
    }


async def test_a_search_is_not_cached(
    client: httpx.AsyncClient, new_user: Callable[[], User], templates_app: Litestar
) -> None:
    """Searches always read the database (there are too many distinct ones to cache)."""
    user = new_user()
    await create_template(client, user, name="Offer")
    await client.get("/v1/templates", params={"q": "off"}, headers=user.headers)
    with counting_statements(templates_app) as statements:
        await client.get("/v1/templates", params={"q": "off"}, headers=user.headers)
    assert statements


async def test_every_write_is_visible_to_the_next_read(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """Create, update, delete — v1 or legacy — each show in the very next (cached) list and read."""
    user = new_user()

    async def listed() -> list[tuple[int, int]]:
        page = (await client.get("/v1/templates", headers=user.headers)).json()
        return [(item["id"], item["version"]) for item in page["items"]]

    assert await listed() == []
    created = await create_template(client, user)
    assert await listed() == [(created["id"], 1)]
    await client.patch(f"/v1/templates/{created['id']}", json={"name": "renamed"}, headers=user.headers)
    assert (await client.get(f"/v1/templates/{created['id']}", headers=user.headers)).json()[
        "name"
    ] == "renamed"
    assert await listed() == [(created["id"], 2)]
    legacy = await client.post(
        "/api/templates/add-template", json={"t_body": "x", "t_key": ""}, headers=user.headers
    )
    legacy_id = legacy.json()["data"]["template_id"]
    assert await listed() == [(legacy_id, 1), (created["id"], 2)]
    await client.patch(
        "/api/templates/update-template",
        json={"template_id": legacy_id, "t_body": "y", "t_key": ""},
        headers=user.headers,
    )
    assert (await client.get(f"/v1/templates/{legacy_id}", headers=user.headers)).json()["html"] == "y"
    await client.request("DELETE", "/api/templates/delete-template", json=[legacy_id], headers=user.headers)
    await client.delete(f"/v1/templates/{created['id']}", headers=user.headers)
    assert await listed() == []
    assert (await client.get(f"/v1/templates/{created['id']}", headers=user.headers)).status_code == 404


async def test_readers_racing_a_writer_never_see_a_write_undone(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """With readers hammering the cache meanwhile, a read issued after each edit returned shows that edit."""
    user = new_user()
    created = await create_template(client, user)
    path = f"/v1/templates/{created['id']}"
    writing = True
    reads = 0

    async def reader() -> None:
        nonlocal reads
        while writing:
            for response in await asyncio.gather(
                client.get(path, headers=user.headers), client.get("/v1/templates", headers=user.headers)
            ):
                assert response.status_code == 200
                reads += 1

    readers = [asyncio.create_task(reader()) for _ in range(8)]
    try:
        for version in range(2, 14):
            edited = await client.patch(path, json={"name": f"edit {version}"}, headers=user.headers)
            assert edited.json()["version"] == version
            read, page = await asyncio.gather(
                client.get(path, headers=user.headers), client.get("/v1/templates", headers=user.headers)
            )
            assert (read.json()["version"], read.json()["name"]) == (version, f"edit {version}")
            assert page.json()["items"][0]["version"] == version
    finally:
        writing = False
        await asyncio.gather(*readers)
    assert reads > 100  # the readers really did race the writer


async def test_a_fill_that_raced_an_invalidation_is_not_kept(
    templates_app: Litestar, new_user: Callable[[], User]
) -> None:
    """A reader that read the database before a write committed may answer old data, but never caches it."""
    cache: TemplateCache = templates_app.state.template_cache
    user_id = new_user().id
    in_database, write_committed = asyncio.Event(), asyncio.Event()

    async def read_before_the_write() -> bytes:
        in_database.set()
        await write_committed.wait()
        return b"old"

    async def read_after_the_write() -> bytes:
        return b"new"

    slow_reader = asyncio.create_task(cache.read(user_id, "template:1", read_before_the_write))
    await in_database.wait()
    await cache.invalidate(
        user_id
    )  # the writer commits, then invalidates, while the reader is in the database
    write_committed.set()
    assert await slow_reader == b"old"
    assert await cache.read(user_id, "template:1", read_after_the_write) == b"new"


async def test_a_read_during_an_uncommitted_write_is_voided_by_the_commit(
    client: httpx.AsyncClient, new_user: Callable[[], User], templates_app: Litestar
) -> None:
    """What a reader caches while a write is still open is dropped by the invalidation after its commit."""
    user = new_user()
    created = await create_template(client, user)
    state = templates_app.state
    reads = UserReads(user.id, state.infra.sessions, state.template_cache)
    async with write_transaction(state.infra.sessions, state.template_cache) as write:
        changes = TemplateUpdate(name="edited")
        await service.update_template(write, state.template_engine, user.id, created["id"], changes)
        during = msgspec.json.decode(await template_json(reads, created["id"]))
        assert during["version"] == 1  # read committed data and cached it, after the first invalidation
    after = msgspec.json.decode(await template_json(reads, created["id"]))
    assert (after["version"], after["name"]) == (2, "edited")


@asynccontextmanager
async def refusing_redis() -> AsyncIterator[tuple[aioredis.Redis, list[int]]]:
    """A client of a "Redis" that drops every connection; the list counts connection attempts.

    The client does not retry: retries only add waiting to what these tests observe.
    """
    attempts: list[int] = []

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        attempts.append(1)
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = aioredis.Redis(port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    try:
        yield client, attempts
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


async def test_reads_fall_back_to_the_database_without_redis() -> None:
    """With Redis failing, reads still answer, from the database, and then stop trying Redis for a while."""

    async def from_database() -> bytes:
        return b"fresh"

    async with refusing_redis() as (refusing, attempts):
        cache = TemplateCache(refusing, key_prefix="mm_dead:", ttl_seconds=60)
        assert await cache.read(1, "page:20:", from_database) == b"fresh"
        tried = len(attempts)
        assert [await cache.read(1, "page:20:", from_database) for _ in range(3)] == [b"fresh"] * 3
    assert tried > 0
    assert len(attempts) == tried


async def test_a_write_rolls_back_when_the_cache_cannot_be_invalidated(
    client: httpx.AsyncClient, new_user: Callable[[], User], templates_app: Litestar
) -> None:
    """A write whose invalidation Redis refuses fails before committing, so nothing stale can be served."""
    user = new_user()
    created = await create_template(client, user)
    state = templates_app.state

    async def edit(cache: TemplateCache) -> None:
        async with write_transaction(state.infra.sessions, cache) as write:
            changes = TemplateUpdate(name="lost")
            await service.update_template(write, state.template_engine, user.id, created["id"], changes)

    async with refusing_redis() as (refusing, _):
        with pytest.raises(RedisError):
            await edit(TemplateCache(refusing, key_prefix="mm_dead:", ttl_seconds=60))
    assert (await client.get(f"/v1/templates/{created['id']}", headers=user.headers)).json()["version"] == 1
