"""The error answers of every route, documented once for all of them in each service's OpenAPI.

Every error a route gives goes through the problem handlers (``problems.py``): an RFC 9457 body
as ``application/problem+json``, or, on a legacy route, the same status in the legacy envelope as
``application/json`` (``legacy.py``). Litestar would document a 400 of its own shape only, so
``DocumentedErrors`` adds to every route, as it is registered, the problems the kit itself gives:

- 400 when the route takes input (path, query, header or cookie parameters, or a body);
- 401 when the route needs a user token (the JWT middleware);
- 404 when the route names a resource in its path (another user's is a 404 too);
- 413 and 422 when the route decodes a body (Litestar's body-size limit; a NUL in the body's
  text, refused by ``input_guard``);
- 503 on every route (a database, Redis or broker outage, see ``_on_unexpected``);

and a route declares the problems of its own domain with ``responses=problems(409, 422)``.
Whatever the route declares wins over these defaults. A 204 is documented without content.

``documented_body`` documents a request body Litestar cannot see (one the handler streams itself,
like an upload) or describes too loosely (it drops the bounds of a list's items).

``StrictStructs`` documents a request body that refuses unknown fields
(``forbid_unknown_fields=True``) as ``additionalProperties: false``, which Litestar leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

# Litestar's own schema for msgspec Structs, extended below. Litestar 2.x has no public name for it
# (nor for SchemaCreator, which its own plugins import from here too), so shared/pyproject.toml bounds
# litestar below 3 (a 2.x release that moved it would fail here, at import, not silently).
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.constants import RESERVED_KWARGS
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    RequestBody,
)
from litestar.openapi.spec import Schema as OpenAPISchema
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute
from litestar.typing import FieldDefinition

from mailmerger_shared.web.problems import EXCEPTION_HANDLERS, PROBLEM_JSON, Problem

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.openapi.spec import Schema


class ProblemDetails(msgspec.Struct, frozen=True, kw_only=True):
    """An RFC 9457 problem. Some add members of their own: ``errors`` (which input is invalid),
    ``problems`` (a template's), ``missing`` (a row's fields)…"""

    type: str
    title: str
    status: int
    detail: str
    instance: str


class ErrorEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """A legacy route's error: the problem's status in ``status_code``, its detail in ``message``,
    and its extra members in ``data``."""

    success: bool
    status_code: int
    message: str
    data: dict[str, Any]


DESCRIPTIONS: dict[int, str] = {
    400: "The request does not have the documented shape; `detail` (and `errors`) say what to fix",
    401: "No valid access token: send one as 'Authorization: Bearer <token>'",
    403: "Not allowed: the token does not allow this, or the password given to confirm is wrong",
    404: "No such resource among yours",
    409: "The change conflicts with the resource's current state; `detail` says which",
    413: "The body is larger than this route accepts",
    415: "The body's media type is not one this route accepts",
    422: "The request is well formed but cannot be carried out; `detail` says what to fix",
    429: "Too many attempts; retry after the seconds in Retry-After",
    503: "A dependency (database, Redis, broker, Google) is unavailable; retry shortly",
}


def problem_spec(status: int, description: str | None = None) -> ResponseSpec:
    return ResponseSpec(
        data_container=ProblemDetails,
        description=description or DESCRIPTIONS.get(status, "An error; `detail` says what to fix"),
        media_type=PROBLEM_JSON,
        generate_examples=False,
    )


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """``responses=`` for a route's own error statuses (as problems; legacy routes' become envelopes)."""
    return {status: problem_spec(status) for status in statuses}


def _as_envelope(spec: ResponseSpec) -> ResponseSpec:
    return ResponseSpec(
        data_container=ErrorEnvelope,
        description=spec.description,
        media_type="application/json",
        generate_examples=False,
    )


def _takes_input(handler: HTTPRouteHandler, route: HTTPRoute) -> bool:
    if route.path_parameters:
        return True
    not_input = set(handler.resolve_dependencies()) | (RESERVED_KWARGS - {"data"})
    return any(name not in not_input for name in handler.parsed_fn_signature.parameters)


def _answers_in_envelope(handler: HTTPRouteHandler) -> bool:
    """Whether the route's problems are re-dressed as the legacy envelope by its exception handlers."""
    handlers = handler.resolve_exception_handlers()
    chosen = next((handlers[kind] for kind in Problem.__mro__ if kind in handlers), None)
    return chosen is not None and chosen is not EXCEPTION_HANDLERS[Problem]


@dataclass
class _NoContent(Operation):
    """A 204 has no body (RFC 9110), whatever the handler's return type (``Response[None]``) says."""

    def __post_init__(self) -> None:
        success = (self.responses or {}).get("204")
        if isinstance(success, OpenAPIResponse):
            success.content = None


@dataclass
class _OptionalBody(Operation):
    """A body the handler takes as ``X | None = None`` may be left out: Litestar documents every
    body as required, and a client generated from the document would always send one."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False


class DocumentedErrors(ReceiveRoutePlugin):
    """Adds the kit's error answers to every documented route as it is registered."""

    def __init__(self, *, authenticated: bool) -> None:
        self._authenticated = authenticated

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute):
            return
        for handler in route.route_handlers:
            if handler.resolve_include_in_schema():
                handler.responses = self._responses(handler, route)
                if handler.status_code == 204 and handler.operation_class is Operation:
                    handler.operation_class = _NoContent
                body = handler.parsed_fn_signature.parameters.get("data")
                if body is not None and body.is_optional and handler.operation_class is Operation:
                    handler.operation_class = _OptionalBody

    def _responses(self, handler: HTTPRouteHandler, route: HTTPRoute) -> dict[int, ResponseSpec]:
        statuses = {503}
        if self._authenticated and not handler.opt.get("exclude_from_auth"):
            statuses.add(401)
        if _takes_input(handler, route):
            statuses.add(400)
        if route.path_parameters:
            statuses.add(404)
        if "data" in handler.parsed_fn_signature.parameters:
            statuses |= {413, 422}
        responses = {status: problem_spec(status) for status in sorted(statuses)}
        responses.update(handler.responses or {})
        if _answers_in_envelope(handler):
            responses = {
                status: _as_envelope(spec) if spec.data_container is ProblemDetails else spec
                for status, spec in responses.items()
            }
        return responses


def documented_body(content: dict[str, OpenAPISchema]) -> type[Operation]:
    """An ``operation_class=`` whose operation documents the request body: a schema per media type."""
    body = RequestBody(
        content={media_type: OpenAPIMediaType(schema=schema) for media_type, schema in content.items()},
        required=True,
    )

    @dataclass
    class DocumentedBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = body

    return DocumentedBody


def id_list(*, minimum: int | None, maximum: int) -> OpenAPISchema:
    """A JSON array of ids, each within the bounds."""
    return OpenAPISchema(
        type=OpenAPIType.ARRAY,
        items=OpenAPISchema(type=OpenAPIType.INTEGER, minimum=minimum, maximum=maximum),
    )


def multipart_form(
    *, file_field: str, choice_field: str, choices: list[str], choice_required: bool
) -> OpenAPISchema:
    """A multipart/form-data upload: one file, and a field naming one of ``choices``."""
    return OpenAPISchema(
        type=OpenAPIType.OBJECT,
        required=[file_field, choice_field] if choice_required else [file_field],
        properties={
            file_field: OpenAPISchema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY),
            choice_field: OpenAPISchema(type=OpenAPIType.STRING, enum=choices),
        },
    )


class StrictStructs(StructSchemaPlugin):
    """msgspec Structs as Litestar documents them, plus what it leaves out: a Struct that forbids
    unknown fields has ``additionalProperties: false``, and a list field's items keep their bounds
    (``list[Annotated[int, Meta(ge=1)]]`` was documented as a list of any integers)."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if not isinstance(info, msgspec.inspect.StructType):
            return schema
        if info.forbid_unknown_fields:
            schema.additional_properties = False
        for field in info.fields:
            documented = (schema.properties or {}).get(field.encode_name)
            if isinstance(field.type, msgspec.inspect.ListType) and isinstance(documented, OpenAPISchema):
                _bound_items(documented, field.type.item_type)
        return schema


def _bound_items(array: OpenAPISchema, item: msgspec.inspect.Type) -> None:
    if not isinstance(array.items, OpenAPISchema):
        return
    if isinstance(item, msgspec.inspect.IntType):
        array.items.minimum = item.ge if item.ge is not None else array.items.minimum
        array.items.maximum = item.le if item.le is not None else array.items.maximum
    elif isinstance(item, msgspec.inspect.StrType):
        array.items.min_length = item.min_length
        array.items.max_length = item.max_length
        array.items.pattern = item.pattern


__all__ = [
    "DocumentedErrors",
    "ErrorEnvelope",
    "ProblemDetails",
    "StrictStructs",
    "documented_body",
    "id_list",
    "multipart_form",
    "problem_spec",
    "problems",
]
