"""The sender's adapters: auth's token route, storage (in memory and S3), Gmail's wire, Redis limiter."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta

import boto3
import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from moto.server import ThreadedMotoServer
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from mailmerger_sender.adapters.attachments import (
    AttachmentCorrupt,
    AttachmentMissing,
    Attachments,
    AttachmentUnavailable,
    open_s3,
)
from mailmerger_sender.adapters.gmail import AnswerLost, HttpGmail, RequestNotSent
from mailmerger_sender.adapters.tokens import (
    AccessTokens,
    AccountUnknown,
    ReconnectRequired,
    TokenUnavailable,
)
from mailmerger_sender.limiter import AccountLimiter
from mailmerger_sender.settings import GmailSettings
from mailmerger_shared.internal_api import GmailAccessToken
from mailmerger_shared.settings import ObjectStoreSettings
from mailmerger_shared.web.internal import InternalClient
from tests.sender.conftest import free_port
from tests.sender.support import MemoryBlobs

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


# --- tokens ------------------------------------------------------------------------------------


def token_body(account_id: int, token: str, expires_at: datetime) -> bytes:
    return msgspec.json.encode(
        GmailAccessToken(
            account_id=account_id,
            user_id=1,
            email="a@gmail.test",
            access_token=token,
            expires_at=expires_at,
            scopes=["https://www.googleapis.com/auth/gmail.send"],
        )
    )


class AuthStub:
    """auth's token route answering from a script; counts the requests per account."""

    def __init__(self, answer: Callable[[int, int], httpx.Response]) -> None:
        self.calls: dict[int, int] = {}
        self._answer = answer

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        account_id = int(request.url.path.split("/")[-2])
        self.calls[account_id] = self.calls.get(account_id, 0) + 1
        await asyncio.sleep(0.01)  # concurrent callers overlap with this one
        return self._answer(account_id, self.calls[account_id])


@pytest.fixture
def clock() -> list[datetime]:
    return [NOW]


def tokens_for(stub: AuthStub, clock: list[datetime]) -> AccessTokens:
    client = InternalClient(
        "http://auth.test", caller="sender", token="secret", transport=httpx.MockTransport(stub)
    )
    return AccessTokens(client, refresh_margin=timedelta(minutes=2), clock=lambda: clock[0])


async def test_token_is_cached_until_shortly_before_it_expires(clock: list[datetime]) -> None:
    """One request per account while the token has more than the margin left, then a refresh."""
    stub = AuthStub(
        lambda account, n: httpx.Response(200, content=token_body(account, f"t{n}", NOW + timedelta(hours=1)))
    )
    tokens = tokens_for(stub, clock)
    assert (await tokens.get(7)).access_token == "t1"
    clock[0] = NOW + timedelta(minutes=57)
    assert (await tokens.get(7)).access_token == "t1"
    clock[0] = NOW + timedelta(minutes=58, seconds=1)
    assert (await tokens.get(7)).access_token == "t2"
    assert stub.calls == {7: 2}


async def test_concurrent_sends_of_one_account_share_one_token_request(clock: list[datetime]) -> None:
    """Fifty sends asking at once cause one request to auth."""
    stub = AuthStub(
        lambda account, n: httpx.Response(200, content=token_body(account, "t", NOW + timedelta(hours=1)))
    )
    tokens = tokens_for(stub, clock)
    await asyncio.gather(*(tokens.get(3) for _ in range(50)))
    assert stub.calls == {3: 1}


async def test_invalidate_drops_only_the_refused_token(clock: list[datetime]) -> None:
    """A stale refusal cannot throw away a newer token fetched meanwhile."""
    stub = AuthStub(
        lambda account, n: httpx.Response(200, content=token_body(account, f"t{n}", NOW + timedelta(hours=1)))
    )
    tokens = tokens_for(stub, clock)
    await tokens.get(1)
    tokens.invalidate(1, "t1")
    assert (await tokens.get(1)).access_token == "t2"
    tokens.invalidate(1, "t1")
    assert (await tokens.get(1)).access_token == "t2"


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(409, json={"detail": "refused", "reason": "reconnect_required"}), ReconnectRequired),
        (httpx.Response(404, json={"detail": "no such account"}), AccountUnknown),
        (httpx.Response(409, json={"detail": "something else"}), TokenUnavailable),
        (httpx.Response(503, json={"detail": "database unavailable"}), TokenUnavailable),
        (httpx.Response(200, content=b"{}"), TokenUnavailable),
    ],
)
async def test_auth_answers_map_to_what_the_sender_does(
    clock: list[datetime], response: httpx.Response, error: type[Exception]
) -> None:
    """409 reconnect_required, 404, and anything else (transient) are told apart."""
    tokens = tokens_for(AuthStub(lambda account, n: response), clock)
    with pytest.raises(error):
        await tokens.get(1)


# --- attachments -------------------------------------------------------------------------------


async def test_attachment_is_read_once_and_verified() -> None:
    """Concurrent sends of one attachment read it once; the bytes match the command's hash."""
    blobs = MemoryBlobs()
    ref = blobs.put(b"resume bytes")
    attachments = Attachments(blobs, capacity_bytes=10_000)
    contents = await asyncio.gather(*(attachments.content(ref) for _ in range(20)))
    assert {content.data for content in contents} == {b"resume bytes"}
    await attachments.content(ref)
    assert blobs.reads[ref.object_key] == 1


async def test_attachment_not_matching_its_hash_is_refused() -> None:
    """Bytes whose sha256 is not the command's raise AttachmentCorrupt and are not cached."""
    blobs = MemoryBlobs()
    ref = blobs.put(b"original")
    blobs.objects[ref.object_key] = b"tampered"
    attachments = Attachments(blobs, capacity_bytes=10_000)
    for _ in range(2):
        with pytest.raises(AttachmentCorrupt):
            await attachments.content(ref)
    assert blobs.reads[ref.object_key] == 2


async def test_cache_is_bounded_in_bytes_and_evicts_the_least_recently_used() -> None:
    """Entries (with their base64 bodies) never exceed the capacity; the oldest unused goes first."""
    blobs = MemoryBlobs()
    a, b, c = (blobs.put(bytes([n]) * 1000) for n in range(3))
    attachments = Attachments(blobs, capacity_bytes=5_000)  # room for two 1000-byte entries (~2.4 KB each)
    await attachments.content(a)
    await attachments.content(b)
    await attachments.content(a)  # a is now the most recently used
    await attachments.content(c)  # evicts b
    await attachments.content(a)
    await attachments.content(b)
    assert blobs.reads == {a.object_key: 1, b.object_key: 2, c.object_key: 1}


async def test_attachment_larger_than_the_cache_is_served_but_not_kept() -> None:
    """An attachment above the capacity is read every time rather than evicting everything."""
    blobs = MemoryBlobs()
    big = blobs.put(b"x" * 10_000)
    attachments = Attachments(blobs, capacity_bytes=5_000)
    await attachments.content(big)
    await attachments.content(big)
    assert blobs.reads[big.object_key] == 2


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
async def s3_attachments(s3_endpoint: str) -> AsyncIterator[tuple[Attachments, object]]:
    settings = ObjectStoreSettings(
        endpoint_url=s3_endpoint, bucket="sender-test", access_key_id="k", secret_access_key="s"
    )
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
    )
    client.create_bucket(Bucket="sender-test")
    async with open_s3(settings) as blobs:
        yield Attachments(blobs, capacity_bytes=1_000_000), client


@pytest.mark.slow  # a moto S3 server of its own: about a second to start
async def test_s3_attachment_is_read_by_its_key(s3_attachments: tuple[Attachments, object]) -> None:
    """An object in the bucket is read, verified and returned."""
    attachments, client = s3_attachments
    data = b"%PDF-1.7 resume"
    client.put_object(Bucket="sender-test", Key="u1/resume.pdf", Body=data)  # type: ignore[attr-defined]
    ref = MemoryBlobs().put(data)
    ref = msgspec.structs.replace(ref, object_key="u1/resume.pdf", sha256=hashlib.sha256(data).hexdigest())
    assert (await attachments.content(ref)).data == data


@pytest.mark.slow  # a moto S3 server of its own: about a second to start
async def test_s3_missing_object_is_a_missing_attachment(s3_attachments: tuple[Attachments, object]) -> None:
    """NoSuchKey means the attachment is gone for good (not a transient failure)."""
    attachments, _ = s3_attachments
    ref = msgspec.structs.replace(MemoryBlobs().put(b"x"), object_key="u1/deleted.pdf")
    with pytest.raises(AttachmentMissing):
        await attachments.content(ref)


@pytest.mark.slow  # the S3 client retries before it gives up
async def test_unreachable_storage_is_transient() -> None:
    """Storage that cannot be reached is AttachmentUnavailable: the message is deferred, not failed."""
    settings = ObjectStoreSettings(
        endpoint_url=f"http://127.0.0.1:{free_port()}", access_key_id="k", secret_access_key="s"
    )
    async with open_s3(settings) as blobs:
        with pytest.raises(AttachmentUnavailable):
            await Attachments(blobs, capacity_bytes=1000).content(MemoryBlobs().put(b"x"))


# --- the Gmail wire ----------------------------------------------------------------------------


async def test_send_posts_the_raw_message_as_base64url_json() -> None:
    """The body is the JSON Gmail expects: unpadded or padded base64url of the exact bytes, and the
    threadId (escaped like any JSON string) only when there is one."""
    bodies: list[dict[str, object]] = []

    def gmail_api(request: httpx.Request) -> httpx.Response:
        assert request.headers["content-type"] == "application/json"
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"id": "1", "threadId": "1"})

    gmail = HttpGmail(GmailSettings(api_url="http://gmail.test"), transport=httpx.MockTransport(gmail_api))
    raw = bytes(range(256)) * 3 + b"\xff\xfe"  # every byte value; "+/" in plain base64
    await gmail.send("token", raw, thread_id=None, upload=False)
    await gmail.send("token", raw, thread_id='t"1\\é', upload=False)
    assert bodies == [
        {"raw": base64.urlsafe_b64encode(raw).decode()},
        {"raw": base64.urlsafe_b64encode(raw).decode(), "threadId": 't"1\\é'},
    ]


async def test_refused_connection_is_not_sent() -> None:
    """Nothing listening: the request never left, so retrying cannot duplicate (RequestNotSent)."""
    gmail = HttpGmail(GmailSettings(api_url=f"http://127.0.0.1:{free_port()}", connect_timeout=1))
    try:
        with pytest.raises(RequestNotSent):
            await gmail.send("token", b"raw", thread_id=None, upload=False)
    finally:
        await gmail.aclose()


async def test_server_that_accepts_and_never_answers_is_ambiguous() -> None:
    """The request was written and no answer came in time: AnswerLost, never "not sent"."""
    accepted: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read(65536)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gmail = HttpGmail(GmailSettings(api_url=f"http://127.0.0.1:{port}", request_timeout=0.5))
    try:
        with pytest.raises(AnswerLost):
            await gmail.send("token", b"raw", thread_id=None, upload=False)
    finally:
        await gmail.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_server_that_closes_after_reading_is_ambiguous() -> None:
    """A connection closed once the request was read (Gmail may have acted): AnswerLost."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gmail = HttpGmail(GmailSettings(api_url=f"http://127.0.0.1:{port}"))
    try:
        with pytest.raises(AnswerLost):
            await gmail.send("token", b"raw", thread_id=None, upload=False)
    finally:
        await gmail.aclose()
        server.close()
        await server.wait_closed()


# --- the limiter -------------------------------------------------------------------------------


async def test_the_window_counts_at_most_the_limit_then_names_the_wait(
    redis: aioredis.Redis, redis_prefix: str
) -> None:
    """per_minute sends pass at once; the next waits until the oldest leaves the minute."""
    limiter = AccountLimiter(redis, key_prefix=f"{redis_prefix}window:", per_minute=3)
    assert [await limiter.acquire("ada@gmail.com") for _ in range(3)] == [None, None, None]
    hold = await limiter.acquire("ada@gmail.com")
    assert hold is not None
    assert not hold.paused
    assert timedelta(seconds=50) <= hold.wait <= timedelta(seconds=60)  # minus the time the three took
    assert await limiter.acquire("ada@gmail.com") is not None  # a refused send was not counted: still waiting


async def test_the_window_slides(redis: aioredis.Redis, redis_prefix: str) -> None:
    """A send counted a minute ago no longer counts (the set's scores are Redis's clock, in ms)."""
    key = f"{redis_prefix}slide:sender:window:ada@gmail.com"
    limiter = AccountLimiter(redis, key_prefix=f"{redis_prefix}slide:", per_minute=2)
    now_s, now_us = await redis.time()
    now_ms = now_s * 1000 + now_us // 1000
    await redis.zadd(key, {"old": now_ms - 60_001, "recent": now_ms - 1_000})
    assert await limiter.acquire("ada@gmail.com") is None  # "old" left the window, so one more fits
    assert await limiter.acquire("ada@gmail.com") is not None


async def test_sends_asked_for_together_are_decided_in_one_call_and_in_order(
    redis: aioredis.Redis, redis_prefix: str
) -> None:
    """Concurrent sends share one script call: an account's limit holds inside it, others are apart."""
    limiter = AccountLimiter(redis, key_prefix=f"{redis_prefix}together:", per_minute=3)
    waits = await asyncio.gather(
        *(limiter.acquire("ada@gmail.com" if n % 2 == 0 else "bob@gmail.com") for n in range(10))
    )
    first = [w for n, w in enumerate(waits) if n % 2 == 0]
    second = [w for n, w in enumerate(waits) if n % 2 == 1]
    assert first[:3] == [None, None, None]
    assert all(w is not None for w in first[3:])
    assert second[:3] == [None, None, None]
    assert all(w is not None for w in second[3:])


async def test_windows_are_per_account(redis: aioredis.Redis, redis_prefix: str) -> None:
    """One account spending its minute does not slow another."""
    limiter = AccountLimiter(redis, key_prefix=f"{redis_prefix}split:", per_minute=1)
    assert await limiter.acquire("ada@gmail.com") is None
    assert await limiter.acquire("ada@gmail.com") is not None
    assert await limiter.acquire("bob@gmail.com") is None


async def test_replicas_share_one_window(redis: aioredis.Redis, redis_prefix: str) -> None:
    """Two limiters (two replicas) on the same Redis count into the same minute."""
    prefix = f"{redis_prefix}shared:"
    first = AccountLimiter(redis, key_prefix=prefix, per_minute=2)
    second = AccountLimiter(redis, key_prefix=prefix, per_minute=2)
    results = await asyncio.gather(
        *(limiter.acquire("cy@gmail.com") for limiter in (first, second, first, second))
    )
    assert sum(result is None for result in results) == 2


async def test_a_paused_account_holds_its_sends_until_the_pause_ends(
    redis: aioredis.Redis, redis_prefix: str
) -> None:
    """After pause(), every send of the account waits out the pause (and is not counted); others go."""
    limiter = AccountLimiter(redis, key_prefix=f"{redis_prefix}pause:", per_minute=100)
    await limiter.pause("ada@gmail.com", timedelta(seconds=30))
    hold = await limiter.acquire("ada@gmail.com")
    assert hold is not None
    assert hold.paused
    assert timedelta(seconds=29) <= hold.wait <= timedelta(seconds=30)
    assert await limiter.acquire("bob@gmail.com") is None
    assert await redis.zcard(f"{redis_prefix}pause:sender:window:ada@gmail.com") == 0


async def test_a_pause_is_never_shortened(redis: aioredis.Redis, redis_prefix: str) -> None:
    """A brief pause asked for during a longer one leaves the longer one."""
    limiter = AccountLimiter(redis, key_prefix=f"{redis_prefix}longer:", per_minute=100)
    await limiter.pause("ada@gmail.com", timedelta(minutes=20))
    await limiter.pause("ada@gmail.com", timedelta(seconds=5))
    hold = await limiter.acquire("ada@gmail.com")
    assert hold is not None
    assert hold.wait > timedelta(minutes=19)


async def test_unreachable_redis_lets_the_send_through() -> None:
    """The bucket is a second guard: without Redis the send is not blocked."""
    client = aioredis.Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    try:
        limiter = AccountLimiter(client, key_prefix="x:", per_minute=1)
        assert await limiter.acquire("ada@gmail.com") is None
    finally:
        await client.aclose()
