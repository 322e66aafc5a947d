"""Ids no database row can have (beyond PostgreSQL's bigint) are client errors, never 500s.

Generated from the owned routes of the matrix (routes.py): every route that names a resource by id
is called with an id of 2**70. Found by schemathesis (ST101) over the OpenAPI documents.
"""

from __future__ import annotations

import re

import pytest

from tests.security.routes import OWNED, Endpoint, fill_path
from tests.system.harness import User

pytestmark = pytest.mark.system

HUGE = 2**70


def _case(endpoint: Endpoint) -> object:
    return pytest.param(endpoint, id=f"{endpoint.method} {endpoint.path}")


ROUTES_WITH_PATH_IDS = [_case(e) for e in sorted(OWNED) if "{" in e.path]


@pytest.mark.parametrize("endpoint", ROUTES_WITH_PATH_IDS)
async def test_an_id_beyond_bigint_is_a_client_error(user: User, endpoint: Endpoint) -> None:
    """An id of 2**70 in the path is a 4xx problem, not a server error."""
    path = fill_path(endpoint.path, dict.fromkeys(re.findall(r"\{(\w+)\}", endpoint.path), HUGE))
    response = await user.client.request(endpoint.method, path, json={} if endpoint.method != "GET" else None)
    assert 400 <= response.status_code < 500, response.text
