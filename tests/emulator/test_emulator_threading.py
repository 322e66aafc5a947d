"""Threading: a message joins a thread only the way the Gmail guide describes."""

from __future__ import annotations

import httpx

from tests.emulator.helpers import build_message, mint_token, send


async def start_thread(client: httpx.AsyncClient, token: str) -> str:
    first = await send(client, token, build_message(subject="Project plan", message_id="<first@x>"))
    thread_id: str = first.json()["threadId"]
    return thread_id


async def test_reply_with_thread_id_references_and_subject_joins(emulator: httpx.AsyncClient) -> None:
    """threadId + In-Reply-To/References citing the thread + matching subject (Re:) joins it."""
    token = await mint_token(emulator)
    thread_id = await start_thread(emulator, token)
    reply = build_message(subject="Re: Project plan", in_reply_to="<first@x>", references="<first@x>")
    assert (await send(emulator, token, reply, thread_id=thread_id)).json()["threadId"] == thread_id


async def test_references_alone_suffice_to_cite_the_thread(emulator: httpx.AsyncClient) -> None:
    """A References header citing a message of the thread is enough, without In-Reply-To."""
    token = await mint_token(emulator)
    thread_id = await start_thread(emulator, token)
    reply = build_message(subject="Fwd: RE: project  plan", references="<other@x> <first@x>")
    assert (await send(emulator, token, reply, thread_id=thread_id)).json()["threadId"] == thread_id


async def test_thread_id_without_references_starts_a_new_thread(emulator: httpx.AsyncClient) -> None:
    """Naming the thread is not enough: without a reference to it the message starts a thread."""
    token = await mint_token(emulator)
    thread_id = await start_thread(emulator, token)
    answer = await send(emulator, token, build_message(subject="Re: Project plan"), thread_id=thread_id)
    assert answer.json()["threadId"] != thread_id


async def test_different_subject_starts_a_new_thread(emulator: httpx.AsyncClient) -> None:
    """A reply whose subject differs (beyond Re:/Fwd:) does not join."""
    token = await mint_token(emulator)
    thread_id = await start_thread(emulator, token)
    reply = build_message(subject="Re: Budget", in_reply_to="<first@x>", references="<first@x>")
    assert (await send(emulator, token, reply, thread_id=thread_id)).json()["threadId"] != thread_id


async def test_references_without_thread_id_start_a_new_thread(emulator: httpx.AsyncClient) -> None:
    """Headers alone don't thread a sent message in the sender's mailbox; threadId is needed."""
    token = await mint_token(emulator)
    thread_id = await start_thread(emulator, token)
    reply = build_message(subject="Re: Project plan", in_reply_to="<first@x>", references="<first@x>")
    assert (await send(emulator, token, reply)).json()["threadId"] != thread_id


async def test_unknown_thread_id_starts_a_new_thread(emulator: httpx.AsyncClient) -> None:
    """A threadId that names no thread of this mailbox is ignored."""
    token = await mint_token(emulator)
    await start_thread(emulator, token)
    reply = build_message(subject="Re: Project plan", in_reply_to="<first@x>")
    answer = await send(emulator, token, reply, thread_id="ffffffffffffffff")
    assert answer.json()["threadId"] == answer.json()["id"]


async def test_another_users_thread_cannot_be_joined(emulator: httpx.AsyncClient) -> None:
    """Threads belong to one mailbox: another account can't add to them."""
    thread_id = await start_thread(emulator, await mint_token(emulator))
    other = await mint_token(emulator, email="bob@gmail.local")
    reply = build_message(sender="bob@gmail.local", subject="Re: Project plan", in_reply_to="<first@x>")
    assert (await send(emulator, other, reply, thread_id=thread_id)).json()["threadId"] != thread_id
