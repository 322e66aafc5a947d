"""Schemathesis over each service's OpenAPI document, against the whole system running for real.

Every operation of every public document (auth, templates, queue, storage; the sender serves no
public route) goes through schemathesis' examples, coverage and fuzzing phases, called through the
gateway with a real user's bearer token (a fresh user per service, with an emulated Gmail account
connected), so requests reach the handlers and not only the 401 path. Every response is held to all
of the installed schemathesis' default checks: not_a_server_error, status_code_conformance,
content_type_conformance, response_headers_conformance, response_schema_conformance,
positive_data_acceptance, negative_data_rejection, missing_required_header, unsupported_method,
allow_header_conformance, ignored_auth, use_after_free, ensure_resource_availability.

Deterministic: a fixed seed, Hypothesis derandomized, no example database, and a bounded number of
examples per operation.

Check settings, each with its reason (no operation is excluded and no check is turned off):

- positive_data_acceptance also accepts 422 everywhere. By the API's contract a schema-valid
  request never gets a 400 (its shape is as documented) but may get a 422 when it breaks a rule no
  schema states: an email address the server does not take, a password too short, a legacy
  ``t_key`` that must list ``t_body``'s placeholders, a schedule window that must not be empty.
- positive_data_acceptance also accepts 400 on the operations that take a token only the API
  issues, which no schema can tell from any other string: the ``cursor`` of the v1 lists
  (templates and a template's versions, attachments, emails, a campaign's report, suppressions,
  webhook deliveries), the connect ``ticket`` of the Google authorize routes, and the OAuth
  ``state`` of the Google callbacks (which Google redirects to).
- positive_data_acceptance also accepts 415 on the uploads (POST /v1/attachments, POST
  /api/storage/upload-file): the file's type is read from its bytes, which no schema describes.
- negative_data_rejection also accepts 200 on POST /api/storage/upload-file: the legacy client
  needs a refused upload answered HTTP 200 with ``success: false`` (shared/LEGACY_API.md).
- Server-Sent Events (GET /v1/campaigns/{campaign_id}/progress/stream) are read for at most
  ``MAX_STREAM_EVENTS`` events: a running campaign's stream only ends when the campaign does.

The account's own deletion (DELETE /v1/auth/me) runs last, so the other auth operations run as a
user who still exists.

schemathesis' pytest integration (``schemathesis.pytest.from_fixture``) does not run under pytest
9.2 (it sets ``Node._nodeid``, which pytest no longer has), so the test drives the same
per-operation tests that integration builds (``get_all_tests``) itself, and reports every failing
operation at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import schemathesis
from schemathesis import APIOperation, BaseSchema, Case
from schemathesis.core.result import Ok
from schemathesis.pytest.lazy import get_all_tests

from tests.system.harness import SystemUnderTest, connect_gmail, sign_up

pytestmark = pytest.mark.system

SERVICES = ("auth", "templates", "queue", "storage")
SEED = 20_240_601
MAX_EXAMPLES = 10
REQUEST_TIMEOUT = 30

ACCEPTED_POSITIVE = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
REJECTED_NEGATIVE = [
    "400",
    "401",
    "403",
    "404",
    "405",
    "406",
    "409",
    "413",
    "415",
    "422",
    "428",
    "429",
    "5xx",
]
# Operations whose inputs include a token only the API issues (see the module docstring).
OPAQUE_TOKENS = [
    "GET /v1/templates",
    "GET /v1/templates/{template_id}/versions",
    "GET /v1/attachments",
    "GET /v1/emails",
    "GET /v1/campaigns/{campaign_id}/report",
    "GET /v1/suppressions",
    "GET /v1/webhooks/{endpoint_id}/deliveries",
    "GET /v1/auth/google/callback",
    "GET /api/oauth/oauth2callback",
    "GET /v1/auth/google/authorize",
    "GET /api/oauth/gmail-authorize",
]
# Uploads, whose file type is read from the bytes (see the module docstring).
SNIFFED_UPLOADS = ["POST /v1/attachments", "POST /api/storage/upload-file"]
# The legacy upload answers a refused file with HTTP 200 (LEGACY_API.md).
REFUSED_AS_200 = ["POST /api/storage/upload-file"]
MAX_STREAM_EVENTS = 2
LAST = "DELETE /v1/auth/me"


def accepting(check: str, statuses: list[str], operations: list[str]) -> dict[str, Any]:
    return {"include-name": operations, "checks": {check: {"expected-statuses": statuses}}}


def fuzz_config(base_url: str, access_token: str) -> dict[str, Any]:
    return {
        "seed": SEED,
        "base-url": base_url,
        "headers": {"Authorization": f"Bearer {access_token}"},
        "max-stream-events": MAX_STREAM_EVENTS,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_POSITIVE}},
        "operations": [
            accepting("positive_data_acceptance", [*ACCEPTED_POSITIVE, "400"], OPAQUE_TOKENS),
            accepting("positive_data_acceptance", [*ACCEPTED_POSITIVE, "415"], SNIFFED_UPLOADS),
            accepting("negative_data_rejection", [*REJECTED_NEGATIVE, "200"], REFUSED_AS_200),
        ],
    }


@pytest.fixture(params=SERVICES)
async def api(request: pytest.FixtureRequest, system: SystemUnderTest) -> AsyncIterator[BaseSchema]:
    """One service's OpenAPI document, called as a fresh user of its own (with Gmail connected)."""
    service: str = request.param
    user = await sign_up(system, f"fuzz-{service}")
    try:
        await connect_gmail(user, system.base_url)
        config = schemathesis.Config.from_dict(fuzz_config(system.base_url, user.access_token))
        yield schemathesis.openapi.from_url(f"{system.base_url}/schema/{service}/openapi.json", config=config)
    finally:
        await user.client.aclose()


def call_and_validate(case: Case) -> None:
    case.call_and_validate(timeout=REQUEST_TIMEOUT)


def operation_tests(schema: BaseSchema) -> tuple[list[tuple[APIOperation, Callable[[], None]]], list[str]]:
    """Each operation's test (examples, coverage and fuzzing phases), and the schema's errors."""
    tests, errors = [], []
    for result in get_all_tests(schema=schema, test_func=call_and_validate, settings=None, given_kwargs=None):
        if isinstance(result, Ok):
            tests.append(result.ok())
        else:
            errors.append(f"invalid operation: {result.err()}")
    tests.sort(key=lambda test: test[0].label == LAST)
    return tests, errors


@pytest.mark.timeout(150)
def test_every_operation_answers_as_documented(api: BaseSchema) -> None:
    """No server error, and every status, content type, header and body as the document says."""
    tests, failures = operation_tests(api.clone(test_function=call_and_validate))
    assert tests, "the document lists no operation"
    for operation, test in tests:
        try:
            test()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
            failures.append(f"{operation.label}:\n{exc}")
    assert not failures, f"{len(failures)} operation(s) failed:\n\n" + "\n\n".join(failures)
