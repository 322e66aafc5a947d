"""Small helpers for driving the templates API in tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from litestar import Litestar
from sqlalchemy import event


@dataclass(frozen=True)
class User:
    id: int
    headers: dict[str, str]


async def create_template(client: httpx.AsyncClient, user: User, **fields: Any) -> dict[str, Any]:
    """Create a template (defaults for what ``fields`` omits); fail the test unless it is created."""
    body = {"name": "Welcome", "subject": "Hi {{ name }}", "html": "<p>Hello {{ name }}</p>", **fields}
    response = await client.post("/v1/templates", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def render_batch(
    client: httpx.AsyncClient,
    internal: dict[str, str],
    user: User,
    template_id: int,
    version: int,
    rows: list[dict[str, Any]],
) -> httpx.Response:
    body = {"user_id": user.id, "template_id": template_id, "version": version, "rows": rows}
    return await client.post("/internal/templates/render-batch", json=body, headers=internal)


def problem_messages(response: httpx.Response) -> str:
    """Every message of a problem answer (detail and each listed problem), as one text."""
    body = response.json()
    return "\n".join([body.get("detail", ""), *(problem["message"] for problem in body.get("problems", []))])


@contextmanager
def counting_statements(app: Litestar) -> Iterator[list[str]]:
    """Every SQL statement the app's engine runs inside the block."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = app.state.infra.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
